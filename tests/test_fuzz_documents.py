"""Generated malformed text documents (matrix YAML) through the real CLI: exit 2, a message naming the file, no
traceback, and no change to an existing output folder."""

import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnaexp.cli import main
from gnaexp.matrix import MatrixError, load_matrix

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
