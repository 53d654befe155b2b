"""Bogus settings are refused the same way everywhere: silero_vad's device settings as conv's, a matrix's
parameters of the vad, diagnose and pot notebooks when the matrix is read, YAML aliases that expand without
bound, run names that differ only in case; messages quote a value briefly; planning a matrix is linear."""

from pathlib import Path

import pytest
import yaml

from gnaexp import cli
from gnaexp.batch import matrix, runner as batch
from gnaexp.core.excerpt import LIMIT

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ONE_WAV = ROOT / "data" / "speech" / "speech_snr5.wav"
RANGE = "{0} must be positive and at most 1e+09 (valid: 0 < {0} ≤ 1e+09)"


def _one_line(err: str) -> str:
    assert "Traceback" not in err and "internal error" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("setting, message", [
    ("execution_mode=bogus", "execution_mode must be one of AUTO, HW, HW_WITH_SW_FBACK, SW_EXACT, SW_FP32, got "
                             "'bogus'"),
    ("scale_factor=1e30", RANGE.format("scale_factor") + ", got 1e+30"),
    ("scale_factor=nan", RANGE.format("scale_factor") + ", got nan"),
    ("scale_factor=-inf", RANGE.format("scale_factor") + ", got -inf"),
    ("scale_factor=0", RANGE.format("scale_factor") + ", got 0.0"),
    ("scale_factor=abc", "scale_factor must be a number or recommended, got 'abc'"),
    ("state_scale_factor=1e300", RANGE.format("state_scale_factor") + ", got 1e+300"),
    ("precision=i4", "precision must be i16 or i8, got 'i4'"),
    ("plugin_release=2024.0", "plugin_release '2024.0' is not a GNA plugin release the emulator follows; use one "
                              "of 2022.3, 2023.0, 2023.1, 2023.2, 2023.3"),
])
@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_silero_vad_refuses_bogus_settings_as_conv_does(tmp_path, capsys, command, setting, message):
    audio = ["--set", f"audio={ONE_WAV}"] if command == "run" else ["--audio", str(ONE_WAV)]
    out = tmp_path / "out"
    assert cli.main([command, "silero_vad", *audio, "--set", setting, "--backends", "torch,gna-emu",
                     "--out", str(out)]) == 2
    assert message in _one_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("setting, message", [
    ("scale_factor=1e30", RANGE.format("scale_factor") + ", got 1e+30"),
    ("execution_mode=bogus", "execution_mode must be one of AUTO, HW, HW_WITH_SW_FBACK"),
    ("plugin_release=2023.9", "plugin_release '2023.9' is not a GNA plugin release the emulator follows"),
])
def test_conv_gives_the_same_messages(tmp_path, capsys, setting, message):
    assert cli.main(["run", "conv", "--set", setting, "--out", str(tmp_path / "out")]) == 2
    assert message in _one_line(capsys.readouterr().err)


def test_the_library_checks_silero_vad_settings_before_reading_audio(tmp_path):
    from gnaexp.vad import run as vad_run

    with pytest.raises(ValueError, match="execution_mode must be one of"):
        vad_run.run([tmp_path / "absent.wav"], ["torch"], None, {"execution_mode": "bogus"})
    with pytest.raises(ValueError, match="unknown silero_vad setting"):
        vad_run.run([tmp_path / "absent.wav"], ["torch"], None, {"layout": "correct"})
    assert vad_run.check_options({"scale_factor": "2048", "state_scale_factor": 512}).to_json() == {
        "scale_factor": 2048.0, "state_scale_factor": 512.0}


@pytest.mark.parametrize("command, offered", [("run", True), ("export", True), ("diagnose", False)])
def test_help_offers_silero_vad_only_where_it_is_taken(capsys, command, offered, tmp_path):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert ("silero_vad" in capsys.readouterr().out) is offered
    if not offered:
        assert cli.main([command, "silero_vad"]) == 2
        assert "unknown experiment 'silero_vad'" in capsys.readouterr().err
    if command == "export":  # a VAD pack needs its audio, asked for before anything is written
        assert cli.main([command, "silero_vad", "--out", str(tmp_path / "x")]) == 2
        assert "silero_vad takes --set audio=FILE.wav" in capsys.readouterr().err
        assert not (tmp_path / "x").exists()


# --- the batch matrix ------------------------------------------------------------------------------------------

def _batch(tmp_path: Path, capsys, runs: list, text: str | None = None) -> str:
    """``gnaexp batch`` on a matrix; must exit 2 before anything runs. Returns its one line."""
    m = tmp_path / "m.yaml"
    m.write_text(text if text is not None else yaml.safe_dump({"runs": runs}, sort_keys=False))
    out = tmp_path / "reports"
    assert cli.main(["batch", str(m), "--out", str(out)]) == 2
    assert not out.exists()
    line = _one_line(capsys.readouterr().err)
    assert "bad matrix" in line
    return line


@pytest.mark.parametrize("notebook, parameters, message", [
    ("vad", {"scale_factor": 1e30}, RANGE.format("scale_factor") + ", got 1e+30"),
    ("vad", {"scale_factor": "loud"}, "scale_factor must be a number or recommended, got 'loud'"),
    ("vad", {"state_scale_factor": -1}, RANGE.format("state_scale_factor") + ", got -1"),
    ("vad", {"precision": "i4"}, "precision must be i16 or i8, got 'i4'"),
    ("vad", {"backends": "import:x.npz,torch"}, "the first backend is the reference"),
    ("vad", {"backends": "torch,openvino"}, "unknown backend 'openvino' (name the device, e.g. openvino:CPU)"),
    ("vad", {"backends": "torch,gna"}, "unknown backend 'gna'"),
    ("vad", {"audio": 5}, "parameter audio=5: expected text"),
    ("diagnose", {"plugin_release": "2023"}, "plugin_release '2023' is not a GNA plugin release"),
    ("vad", {"plugin_release": "latest"}, "plugin_release 'latest' is not a GNA plugin release"),
    ("diagnose", {"device_layout": "sideways"}, "device_layout must be correct or legacy-concat, got 'sideways'"),
    ("diagnose", {"experiment": "model"}, "experiment 'model' needs model=PATH"),
    ("diagnose", {"scale_factor": float("inf")}, RANGE.format("scale_factor") + ", got inf"),
    ("diagnose", {"observed_file": ["a.npy"]}, "parameter observed_file=['a.npy']: expected text"),
    ("pot", {"scale_factors": "1,abc"}, "parameter scale_factors: 'abc' is not a number"),
    ("pot", {"scale_factors": "1,1e30"}, RANGE.format("scale_factors") + ", got 1e+30"),
    ("pot", {"experiments": "conv,bogus"}, "parameter experiments: unknown net 'bogus'; valid: conv, concat,"),
    ("pot", {"layouts": "correct,x"}, "layouts must be correct or legacy-concat, got 'x'"),
    ("pot", {"layouts": ""}, "parameter layouts is empty"),
    ("pot", {"weight_bits": 4}, "activation_bits and weight_bits must be 8 or 16"),
])
def test_matrix_checks_every_notebooks_parameters_when_read(tmp_path, capsys, notebook, parameters, message):
    line = _batch(tmp_path, capsys, [{"notebook": str(NOTEBOOKS / notebook), "parameters": parameters}])
    assert "run 1: " + message in line


def test_matrix_takes_what_the_notebooks_take():
    """The checks refuse nothing a notebook runs with: its own defaults, and vad's scale_factor=recommended."""
    import json

    from gnaexp import parameters

    for stem in ("vad", "diagnose", "pot", "conv", "concat", "concat_conv", "models"):
        nb = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())
        cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        values: dict = {}
        exec("".join(cell["source"]), {}, values)
        parameters.check(stem, values)
    parameters.check("vad", {"scale_factor": "recommended", "backends": ["torch", "gna-emu"]})
    assert parameters.pot({"scale_factors": [1, 2048.0]}).scale_factors == [1.0, 2048.0]
    assert len(matrix.load_matrix(NOTEBOOKS / matrix.MATRIX_NAME)) > 10


def test_run_names_that_differ_only_in_case_are_refused(tmp_path, capsys):
    conv = str(NOTEBOOKS / "conv")
    line = _batch(tmp_path, capsys, [{"notebook": conv, "name": "Run1"}, {"notebook": conv, "name": "run1"}])
    assert "run 2: run names 'Run1' and 'run1' differ only in case" in line and "Windows and macOS" in line
    line = _batch(tmp_path, capsys, [{"notebook": conv, "grid": {"input_kind": ["sines", "Sines"]}}])
    assert "'conv-sines' and 'conv-Sines' differ only in case" in line


def _laughs(depth: int) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, depth + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines)


def test_yaml_aliases_that_explode_are_refused_before_they_are_built(tmp_path, capsys):
    """Depth 6 is 9^6 = 531,441 values (depth 8, 43 million, took 45 s and 2.8 GB and printed a 322 MB line)."""
    conv = NOTEBOOKS / "conv"
    text = _laughs(6).replace("\n", "\n  ")
    bomb = f"description:\n  {text}\nruns:\n  - notebook: {conv}\n    parameters: {{input_kind: *a6}}\n"
    line = _batch(tmp_path, capsys, [], bomb)
    assert "YAML aliases (*name) expand to" in line and "more than the 100,000" in line
    assert len(line) < 400
    recursive = f"runs:\n  - notebook: {conv}\n    parameters: &p {{input_kind: *p}}\n"
    assert "a YAML alias makes a value contain itself" in _batch(tmp_path, capsys, [], recursive)


def test_yaml_aliases_that_reuse_a_block_still_work(tmp_path):
    conv = NOTEBOOKS / "conv"
    m = tmp_path / "m.yaml"
    m.write_text(f"runs:\n  - notebook: {conv}\n    name: a\n    parameters: &small {{length: 17, seed: 3}}\n"
                 f"  - notebook: {conv}\n    name: b\n    parameters: *small\n"
                 f"  - notebook: {conv}\n    name: c\n    parameters: {{<<: *small, seed: 4}}\n")
    runs = matrix.load_matrix(m)
    assert [(r.parameters["length"], r.parameters["seed"]) for r in runs] == [(17, 3), (17, 3), (17, 4)]


@pytest.mark.parametrize("parameters", [
    {"input_kind": "x" * 100_000},
    {"length": [list(range(i, i + 1000)) for i in range(100)]},
    {"seed": "1" + "0" * 5000},
])
def test_messages_quote_a_short_excerpt_of_a_value(tmp_path, capsys, parameters):
    if "seed" in parameters:  # YAML reads the digits as an integer
        text = f"runs:\n  - notebook: {NOTEBOOKS / 'conv'}\n    parameters: {{seed: {parameters['seed']}}}\n"
        line = _batch(tmp_path, capsys, [], text)
    else:
        line = _batch(tmp_path, capsys, [{"notebook": str(NOTEBOOKS / "conv"), "parameters": parameters}])
    assert len(line) < 200 + len(str(tmp_path)) + 4 * LIMIT
    assert "…" in line or "..." in line or "digits" in line


def test_a_long_run_name_is_quoted_short(tmp_path, capsys):
    line = _batch(tmp_path, capsys, [{"notebook": str(NOTEBOOKS / "conv"), "name": "../" + "x" * 100_000}])
    assert "is not a plain name" in line and len(line) < 300 + len(str(tmp_path))


def test_planning_compares_no_runs_with_each_other(tmp_path, monkeypatch):
    """Planning is linear: a matrix of 4000 runs is keyed and planned without comparing runs pairwise (finding
    each run in the list of runs to execute made 8 million comparisons here; at 90k runs that took minutes).
    The number of comparisons is counted, not the time. ``bench/plan.py`` times it at 90k runs."""
    seeds = ", ".join(str(i) for i in range(1000))
    m = tmp_path / "m.yaml"
    m.write_text(f"runs:\n  - notebook: {NOTEBOOKS / 'conv'}\n    grid:\n      seed: [{seeds}]\n"
                 "      precision: [i16, i8]\n      layout: [correct, legacy-concat]\n")
    compared = []
    equal = matrix.Run.__eq__
    monkeypatch.setattr(matrix.Run, "__eq__", lambda a, b: compared.append(1) or equal(a, b))
    runs = matrix.load_matrix(m)
    assert len(runs) == 4000 and len({r.name.lower() for r in runs}) == 4000
    todo, skipped = batch.plan_runs(runs, tmp_path / "out", False, False, echo=lambda line: None)
    assert len(todo) == 4000 and not skipped
    assert len(compared) <= len(runs)
    assert not (tmp_path / "out").exists()
