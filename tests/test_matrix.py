"""The batch matrix: names, grids, defaults, and every bad matrix refused with exit 2 before anything runs."""

from pathlib import Path

import pytest
import yaml

from gnaexp import cli
from gnaexp.batch import matrix

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _matrix(path: Path, runs: list, defaults: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({"defaults": defaults or {}, "runs": runs}, sort_keys=False))
    return path


def test_default_matrix_covers_the_forum_table():
    runs = [r for r in matrix.load_matrix(NOTEBOOKS / matrix.MATRIX_NAME)
            if r.notebook.stem in ("conv", "concat", "concat_conv")]
    combos = {(r.notebook.stem, r.parameters["scale_factor"], r.parameters["layout"]) for r in runs}
    # the legacy layout changes only a convolution fed by a Concat: conv and concat run in the correct one alone
    assert combos == {(nb, sf, lay) for nb in ("conv", "concat", "concat_conv") for sf in (1, 2048)
                      for lay in ("correct", "legacy-concat") if lay == "correct" or nb == "concat_conv"}
    assert all("gna-emu" in r.parameters["backends"] for r in runs)
    assert len({r.name for r in runs}) == len(runs)
    assert all(r.parameters["record_dir"] == f"{r.name}.record" for r in runs)


def test_grid_defaults_and_names(tmp_path):
    m = _matrix(tmp_path / "m.yaml", [{"notebook": str(NOTEBOOKS / "concat"),
                                       "grid": {"scale_factor": [1, 2048.0], "precision": ["i16", "i8"]}},
                                      {"notebook": str(NOTEBOOKS / "conv"), "name": "c"}],
                defaults={"seed": 5, "kernel": 4})  # kernel: a conv parameter, not a concat one
    runs = matrix.load_matrix(m)
    assert [r.name for r in runs] == ["concat-sf1-i16", "concat-sf1-i8", "concat-sf2048-i16", "concat-sf2048-i8", "c"]
    assert runs[0].parameters == {"seed": 5, "scale_factor": 1, "precision": "i16", "record_dir": "concat-sf1-i16.record"}
    assert runs[-1].parameters["kernel"] == 4


@pytest.mark.parametrize("content, message", [
    ("runs: [notebook: conv\n", "not valid YAML"),
    ("runs: []\n", "non-empty 'runs:'"),
    ("runs:\n  - notebook: nope\n", "unknown notebook 'nope'"),
    ("runs:\n  - notebook: conv\n    parameters: {scale_factr: 2}\n", "unknown parameter 'scale_factr'"),
    ("runs:\n  - notebook: conv\n    parameters: {layout: sideways}\n", "layout must be correct or legacy-concat"),
    ("runs:\n  - notebook: conv\n    grid: {seed: 3}\n", "non-empty list"),
    ("runs:\n  - notebook: conv\n  - notebook: conv\n", "more than once"),
    ("runs:\n  - notebook: conv\n    parameters: {length: 32.7}\n", "parameter length=32.7: expected a whole number"),
    ("runs:\n  - notebook: conv\n    parameters: {length: true}\n", "parameter length=True: expected a whole"),
    ("runs:\n  - notebook: conv\n    parameters: {backends: 'torch,gna_emu'}\n", "unknown backend 'gna_emu'"),
    ("defaults: {scale_factr: 2}\nruns:\n  - notebook: conv\n", "'defaults' key(s) ['scale_factr'] are parameters"),
])
def test_bad_matrix_exits_2_and_keeps_existing_output(tmp_path, capsys, content, message):
    m = tmp_path / "m.yaml"
    m.write_text(content.replace("notebook: conv", f"notebook: {NOTEBOOKS / 'conv'}"))
    out = tmp_path / "reports"
    out.mkdir()
    (out / "index.html").write_text("previous index")
    assert cli.main(["batch", str(m), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad matrix" in err and message in err
    assert (out / "index.html").read_text() == "previous index"
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]


def test_missing_matrix_file_exits_2(tmp_path, capsys):
    assert cli.main(["batch", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- running ---------------------------------------------------------------------------------------------------



@pytest.mark.parametrize("name, message", [
    ("../conv", "is not a plain name"),
    ("a/b", "is not a plain name"),
    ("..", "is not a plain name"),
    (".hidden", "is not a plain name"),
    ("index", "is reserved"),
    ("INDEX", "is reserved"),
])
def test_run_names_stay_inside_the_output_folder(tmp_path, capsys, name, message):
    """A name like ../conv beside a copy of the notebook once overwrote that notebook; now nothing runs."""
    (tmp_path / "conv.ipynb").write_bytes((NOTEBOOKS / "conv.ipynb").read_bytes())
    before = (tmp_path / "conv.ipynb").read_bytes()
    m = tmp_path / "sub" / "m.yaml"
    m.parent.mkdir()
    (m.parent / "conv.ipynb").write_bytes(before)
    _matrix(m, [{"notebook": "conv", "name": name, "parameters": {"length": 17}}])
    assert cli.main(["batch", str(m), "--out", str(tmp_path / "sub" / "out")]) == 2
    assert message in capsys.readouterr().err
    assert (tmp_path / "conv.ipynb").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv.ipynb", "sub"]
    assert not (tmp_path / "sub" / "out").exists()


def test_generated_names_are_plain():
    for params in ({"input_file": "../x/y.npy", "scale_factor": 2048.0}, {"model": "../../m.xml"}, {"a": "/"}):
        name = matrix._run_name("conv", params)
        assert matrix.NAME_PATTERN.fullmatch(name) and ".." not in name and "/" not in name, name


def test_parameter_names_are_those_papermill_reads(tmp_path):
    """The matrix checks names against the parameters cell without importing papermill; it reads the same names
    as papermill for every shipped notebook and for annotated, commented and multi-line values."""
    import nbformat
    import papermill

    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert matrix.notebook_parameters(nb) == list(papermill.inspect_notebook(str(nb))), nb.name
    cell = ("alpha = 1  # a comment\nbeta: float = 2.0\ngamma = [1,\n         2]\ndelta: str = 'x'  # help\n"
            "if alpha:\n    hidden = 3\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell, metadata={"tags": ["parameters"]})])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "p.ipynb"
    nbformat.write(nb, str(path))
    assert matrix.notebook_parameters(path) == ["alpha", "beta", "gamma", "delta"]
    assert [n for n in papermill.inspect_notebook(str(path)) if n != "hidden"] == ["alpha", "beta", "gamma", "delta"]
