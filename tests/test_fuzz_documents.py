"""Generated malformed text documents (matrix YAML) through the real CLI: exit 2, a message naming the file, no
traceback, and no change to an existing output folder."""

import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnaexp.batch.matrix import load_matrix, MatrixError
from gnaexp.cli import main

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KEYS = st.sampled_from(["runs", "defaults", "description", "notebook", "name", "parameters", "grid", "length",
                        "scale_factor", "backends", "seed", "layout", "record_dir", "audio", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["conv", "concat", "../conv", "index", "Run1", "run1",
                                                           "torch", "openvino:CPU", "gna-emu", "2048"]))
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


def _text_of(doc, raw):
    return raw if raw is not None else yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=DOCUMENTS, raw=st.one_of(st.none(), st.text(max_size=80),
                                    st.sampled_from(["runs: [&a {notebook: conv}, *a]", "runs: *nope", "{",
                                                     "runs:\n  - notebook: conv\n    grid: {length: []}"])))
def test_a_malformed_matrix_is_exit_2_naming_it_and_touches_nothing(capsys, doc, raw):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(NOTEBOOKS / "conv.ipynb", folder / "conv.ipynb")
        matrix = folder / "m.yaml"
        matrix.write_text(_text_of(doc, raw), encoding="utf-8")
        try:
            load_matrix(matrix)
            return  # a valid matrix would execute notebooks: the property is about the refused ones
        except MatrixError:
            pass
        out = folder / "reports"
        out.mkdir()
        (out / "keep.html").write_text("an earlier report")
        capsys.readouterr()
        assert main(["batch", str(matrix), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "m.yaml" in err and "Traceback" not in err and "internal error" not in err
        assert len(err) < 2000  # a short excerpt, never a whole expanded document
        assert sorted(p.name for p in out.iterdir()) == ["keep.html"]
        assert (out / "keep.html").read_text() == "an earlier report"


RECORD_KEYS = st.sampled_from(["schema", "config", "experiment", "artifacts", "metrics", "backends", "reference",
                               "inputs", "outputs", "ir", "files", "input_fingerprint", "model_fingerprint", "x"])
RECORD_VALUES = st.one_of(SCALARS, st.sampled_from(["gnaexp.record/1", "gnaexp.vad.stream-record/1", "/etc/passwd",
                                                    "../outside.npz", "inputs.npz", "ir/model.xml"]))
RECORDS = st.recursive(RECORD_VALUES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                              st.dictionaries(RECORD_KEYS, inner, max_size=5)),
                       max_leaves=14)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=RECORDS, raw=st.one_of(st.none(), st.binary(max_size=40)))
def test_a_malformed_record_is_exit_2_naming_it_and_writes_no_bundle(capsys, doc, raw):
    import json

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        (run / "record.json").write_bytes(raw if raw is not None else json.dumps(doc).encode())
        before = {p.name: p.read_bytes() for p in run.iterdir()}
        capsys.readouterr()
        for extra in ([], ["--no-diagnosis"]):
            code = main(["bundle", str(run), "--out", str(Path(tmp) / "b.zip"), *extra])
            err = capsys.readouterr().err
            assert code == 2, err
            assert "record.json" in err and "Traceback" not in err and "internal error" not in err
            assert not (Path(tmp) / "b.zip").exists()
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
