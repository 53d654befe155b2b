"""Bad input: exit code 2 and a message naming the problem and the fix, no traceback, nothing lost, nothing
written outside the output folder. Each case reproduces a defect found by trying the commands as a user."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnaexp import experiment
from gnaexp.cli import main
from gnaexp.core.output_folder import LOCK, MANIFEST


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    np.save(d / "x.npy", np.random.default_rng(0).random((2, 1, 6, 255)).astype(np.float32))
    np.save(d / "empty.npy", np.zeros(0, np.float32))
    np.save(d / "bools.npy", np.ones(5, bool))
    np.save(d / "ones.npy", np.ones(5, np.float32))
    (d / "text.npy").write_text("not an array\n")
    (d / "folder.npy").mkdir()
    (d / "a_file").write_text("in the way\n")
    (d / "bad.yaml").write_bytes(b"\xff\xfe runs: []")
    assert main(["export", "conv", "--out", str(d / "pack")]) == 0
    return d


def _usage(capsys, argv, *expected):
    assert main(argv) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert "Traceback" not in err
    return err


def test_messages_name_the_problem_and_the_fix(files, capsys):
    d, model = files, str(files / "pack" / "model.xml")
    _usage(capsys, ["run", "conv", "--set", f"input_file={d / 'text.npy'}"], "text.npy is not a NumPy array file",
           "save the arrays with numpy.save")
    _usage(capsys, ["run", "conv", "--set", f"input_file={d / 'folder.npy'}"], "folder.npy", "it is a folder")
    _usage(capsys, ["emulate", model, str(d / "x.npy"), "--out", str(d / "folder.npy")], "it is a folder: give a file")
    _usage(capsys, ["emulate", model, str(d / "x.npy"), "--out", str(d / "y.txt")], "--out", "must end in .npy or .npz")
    _usage(capsys, ["emulate", model, str(d / "x.npy"), "--scale-factor", "zz=2048", "--out", str(d / "y.npy")],
           "unknown input(s) ['zz']; the model's inputs are ['input']")
    _usage(capsys, ["compare", str(d / "empty.npy"), str(d / "empty.npy")], "empty array: there is nothing to compare")
    _usage(capsys, ["compare", str(d / "bools.npy"), str(d / "bools.npy")], "holds bool values")
    _usage(capsys, ["compare", str(d / "ones.npy"), str(d / "ones.npy"), "--output-scale", "0"],
           "--output-scale must be a positive, finite scale factor, got 0")
    _usage(capsys, ["batch", str(d / "bad.yaml"), "--out", str(d / "r")], "is not UTF-8 text")
    _usage(capsys, ["batch", str(d / "folder.npy"), "--out", str(d / "r")], "folder.npy", "it is a folder")
    _usage(capsys, ["diagnose", "conv", "--observed", str(d / "text.npy")], "text.npy is not a NumPy array file")
    assert not (d / "y.npy").exists() and not (d / "y.txt").exists() and not (d / "r").exists()


def test_outputs_in_the_way_are_named_and_untouched(files, capsys, monkeypatch):
    d = files
    for argv in (["run", "conv", "--out", str(d / "a_file")], ["run", "conv", "--out", str(d / "a_file" / "sub")],
                 ["quantize", "conv", "--calibration-size", "4", "--out", str(d / "a_file")],
                 ["export", "conv", "--out", str(d / "a_file")]):
        _usage(capsys, argv, "a_file", "not a folder")
    assert (d / "a_file").read_text() == "in the way\n"
    monkeypatch.setenv("GNAEXP_CACHE", str(d / "a_file"))
    _usage(capsys, ["run", "conv", "--out", str(d / "o")], "(GNAEXP_CACHE) is a file: point GNAEXP_CACHE at a folder")


def test_no_folder_with_files_of_the_user_is_replaced(files, capsys, monkeypatch, tmp_path):
    # A device's measurement brought back into the export pack must survive a second export.
    (files / "pack" / "outputs.npz").write_bytes(b"measured on GNA")
    _usage(capsys, ["export", "conv", "--out", str(files / "pack")], "holds files gnaexp did not write there",
           "outputs.npz")
    assert (files / "pack" / "outputs.npz").read_bytes() == b"measured on GNA"
    (tmp_path / "notes.txt").write_text("mine")
    _usage(capsys, ["run", "conv", "--out", str(tmp_path)], "holds files gnaexp did not write there (notes.txt)")
    monkeypatch.chdir(tmp_path)
    _usage(capsys, ["run", "conv", "--out", "."], "is the current folder or holds it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_failed_record_write_leaves_the_earlier_record_whole(tmp_path, monkeypatch):
    """The IR and the record are published together: a failure half-way keeps the old folder as it was."""
    from gnaexp.core.records import Record

    out = tmp_path / "rec"
    config = experiment.ExperimentConfig(experiment="conv", length=17, backends=["torch", "openvino:CPU"])
    experiment.run(config, out_dir=out)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def failing_save(self, folder):
        (Path(folder) / "record.json").write_text("{half")
        raise OSError(28, "No space left on device", str(Path(folder) / "outputs.npz"))

    monkeypatch.setattr(Record, "save", failing_save)
    with pytest.raises(OSError):
        experiment.run(experiment.ExperimentConfig(experiment="conv", length=19, backends=["torch"]), out_dir=out)
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]  # no staging folder left behind


def test_quantize_publishes_across_filesystems(tmp_path):
    """--out on another filesystem than the temp folder (e.g. /dev/shm) over an earlier result: all new, atomically."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem here")
    import tempfile

    out = Path(tempfile.mkdtemp(dir=shm)) / "q"
    try:
        assert main(["quantize", "conv", "--calibration-size", "4", "--weight-bits", "16", "--out", str(out)]) == 0
        first = json.loads((out / "quantization.json").read_text())
        assert main(["quantize", "conv", "--calibration-size", "4", "--weight-bits", "8", "--out", str(out)]) == 0
        second = json.loads((out / "quantization.json").read_text())
        assert first != second and "8" in json.dumps(second)
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["float.xml", "float.bin", "quantized.xml", "quantized.bin", "quantization.json", MANIFEST, LOCK])
        assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    finally:
        import shutil

        shutil.rmtree(out.parent, ignore_errors=True)


def test_written_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    os.umask(old)
    from gnaexp.core.files import _UMASK

    assert main(["export", "conv", "--out", str(tmp_path / "pack")]) == 0
    for p in (tmp_path / "pack").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~_UMASK, p.name
    assert stat.S_IMODE((tmp_path / "pack").stat().st_mode) == 0o777 & ~_UMASK


@pytest.mark.parametrize("error", [ValueError, KeyError])
def test_a_value_or_key_error_that_is_not_gnaexps_own_is_a_defect_not_a_usage_error(capsys, monkeypatch, error):
    """Only gnaexp's own BadInput means "what you gave is wrong" (exit 2); a bare ValueError or KeyError from
    inside is a defect: exit 1, one line, the traceback saved."""
    from gnaexp.cli import run_commands
    from gnaexp.core.errors import BadInput

    def broken(args):
        raise error("an index went wrong inside")

    monkeypatch.setattr(run_commands, "cmd_devices", broken)
    assert main(["devices"]) == 1
    assert "internal error" in capsys.readouterr().err

    def refused(args):
        raise BadInput("the setting x is wrong; use y")

    monkeypatch.setattr(run_commands, "cmd_devices", refused)
    assert main(["devices"]) == 2
    assert capsys.readouterr().err.strip() == "gnaexp devices: error: the setting x is wrong; use y"


def test_an_internal_error_is_one_line_and_a_saved_traceback(capsys, monkeypatch):
    from gnaexp.cli import run_commands as experiments

    def broken(args):
        raise RuntimeError("something inside broke\nwith detail")

    monkeypatch.setattr(experiments, "cmd_devices", broken)
    assert main(["devices"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "internal error (RuntimeError: something inside broke)" in err
    saved = Path(err.split("the traceback is in ")[1].split(" — ")[0])
    assert "Traceback" in saved.read_text() and "something inside broke" in saved.read_text()


def test_sigterm_stops_a_batch_like_ctrl_c(tmp_path):
    import signal
    import time

    import yaml

    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    runs = [{"notebook": str(notebooks / "conv"), "name": f"s{s}", "parameters": {"length": 17, "seed": s,
                                                                                  "backends": "torch,openvino:CPU"}}
            for s in range(4)]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"runs": runs}))
    out = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "gnaexp", "batch", str(tmp_path / "m.yaml"), "--out", str(out),
                             "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300  # a guard against a hang, not a speed check
        while not list(out.glob("s*.html")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the batch ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in stdout and "run the same command again" in stdout
    for html in out.glob("s*.html"):  # what finished is whole
        assert (out / f"{html.stem}.record" / "record.json").exists()


def test_records_carry_no_absolute_paths(files, tmp_path, capsys):
    d = files
    np.save(tmp_path / "in.npy", np.random.default_rng(1).random((1, 6, 255)).astype(np.float32))
    from gnaexp.backends.imported import write_outputs

    write_outputs(tmp_path / "dev.npz", {"output": np.zeros((1, 4, 127), np.float32)}, {"device": "GNA"})
    out = tmp_path / "rec"
    assert main(["run", "model", "--set", f"model={d / 'pack' / 'model.xml'}", "--set",
                 f"input_file={tmp_path / 'in.npy'}", "--backends", f"openvino:CPU,import:{tmp_path / 'dev.npz'}",
                 "--out", str(out)]) == 0
    text = (out / "record.json").read_text()
    record = json.loads(text)
    assert record["config"]["input_file"] == "in.npy" and record["config"]["model"] == "model.xml"
    assert "import:dev.npz" in record["config"]["backends"]
    assert main(["quantize", "conv", "--calibration-size", "4", "--calibration", str(d / "x.npy"),
                 "--out", str(tmp_path / "q")]) == 0
    assert main(["export", "conv", "--set", f"input_file={tmp_path / 'in.npy'}", "--out", str(tmp_path / "p")]) == 0
    for shared in (text, (tmp_path / "q" / "quantization.json").read_text(),
                   (tmp_path / "p" / "config.json").read_text()):
        assert str(tmp_path) not in shared and str(d) not in shared and str(Path.home()) + "/" not in shared


def test_emulate_refuses_what_run_refuses(files, capsys):
    np.save(files / "bools_x.npy", np.ones((1, 6, 255), bool))
    for argv in (["emulate", str(files / "pack" / "model.xml"), str(files / "bools_x.npy"), "--out",
                  str(files / "y2.npy")],
                 ["run", "conv", "--set", f"input_file={files / 'bools_x.npy'}", "--out", str(files / "r5")]):
        _usage(capsys, argv, "has dtype bool; expected a float array")
    assert not (files / "y2.npy").exists()


def test_diagnose_uses_a_device_backend_from_the_settings(files, tmp_path, capsys):
    """`diagnose` no longer ignores the device in --backends: an import: (or openvino:GNA) output is observed."""
    from gnaexp.backends.imported import write_outputs
    from gnaexp.emulator import emulate

    config = experiment.ExperimentConfig(experiment="concat_conv", scale_factor=2048, length=33)
    model = experiment.build_model(config)
    bad = emulate(model.ir_xml, experiment.make_inputs(config, model), 2048.0, layout="legacy-concat")
    write_outputs(tmp_path / "dev.npz", bad.outputs, {"device": "GNA"})
    sets = ["--set", "scale_factor=2048", "--set", "length=33", "--set", f"backends=torch,import:{tmp_path / 'dev.npz'}"]
    assert main(["diagnose", "concat_conv", *sets, "--json"]) == 0
    observed = next(s for s in json.loads(capsys.readouterr().out)["steps"] if s["step"] == "observed")
    assert observed["source"] == "import:dev.npz (imported)" and observed["hypotheses"][0]["hypothesis"] == "legacy-concat"
    assert main(["diagnose", "concat_conv", "--set", "backends=torch,openvino:GNA"]) in (0, 3)  # 3 without GNA


def test_model_files_that_are_not_irs(files, tmp_path, capsys):
    x = str(files / "x.npy")
    (tmp_path / "nobin.xml").write_bytes((files / "pack" / "model.xml").read_bytes())
    (tmp_path / "broken.xml").write_text("<net><layers")
    (tmp_path / "broken.bin").write_bytes(b"")
    (tmp_path / "other.xml").write_text("<?xml version='1.0'?><foo/>")
    (tmp_path / "other.bin").write_bytes(b"")
    for model, message in (("nobin.xml", "IR weights nobin.bin missing next to nobin.xml"),
                           ("broken.xml", "broken.xml is not well-formed XML"),
                           ("other.xml", "not an OpenVINO IR (its root element is <foo>")):
        for argv in (["emulate", str(tmp_path / model), x, "--out", str(tmp_path / "y.npy")],
                     ["run", "model", "--set", f"model={tmp_path / model}", "--out", str(tmp_path / "r")]):
            err = _usage(capsys, argv, message)
            assert len(err.strip().splitlines()) == 1, err  # no frontend's log ahead of the message


def test_broken_notebook_and_import_files_are_named(files, tmp_path, capsys):
    import yaml

    (tmp_path / "nb.ipynb").write_text("not json")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"runs": [{"notebook": "nb"}]}))
    _usage(capsys, ["batch", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "r")],
           "nb.ipynb is not a notebook (not JSON")
    np.savez(tmp_path / "dev.npz", output=np.zeros((1, 4, 127), np.float32), __meta__=np.array("not json"))
    _usage(capsys, ["run", "conv", "--backends", f"torch,import:{tmp_path / 'dev.npz'}", "--out", str(tmp_path / "o")],
           "dev.npz: its __meta__ entry is not JSON")
    matrix = Path(__file__).resolve().parent.parent / "notebooks" / "forum-matrix.yaml"
    _usage(capsys, ["batch", str(matrix), "--out", str(files / "a_file")], "a_file")


def test_non_finite_observed_outputs_get_no_verdict(files, tmp_path, capsys):
    from gnaexp.backends.imported import write_outputs

    config = experiment.ExperimentConfig(experiment="conv", length=33)
    model = experiment.build_model(config)
    out = experiment.run(experiment.ExperimentConfig(experiment="conv", length=33, backends=["torch"]),
                         model=model).result("torch").outputs["output"].copy()
    out[0, 1, 2], out[0, 2, 3] = np.nan, np.inf
    np.save(tmp_path / "obs.npy", out)
    assert main(["diagnose", "conv", "--set", "length=33", "--observed", str(tmp_path / "obs.npy")]) == 0
    text = capsys.readouterr().out
    assert "[observed] no verdict: the test output holds 2 NaN/Inf value(s), the first at [0, 1, 2]" in text
    assert "nan dB" not in text
    write_outputs(tmp_path / "dev.npz", {"output": out}, {"device": "GNA"})
    record = experiment.run(experiment.ExperimentConfig(experiment="conv", length=33,
                                                        backends=["torch", f"import:{tmp_path / 'dev.npz'}"]))
    verdict = record.diagnosis.verdicts["import:dev.npz (imported)"]
    assert verdict.startswith("no verdict: the test output holds 2 NaN/Inf value(s)")


def test_permission_errors_name_the_path_and_the_fix(tmp_path, capsys, monkeypatch):
    """CI runs as root, where permission bits do not stop a write: the refusal is simulated at the OS call."""
    import tempfile

    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kw):  # noqa: A002 — tempfile's own keyword
        if dir is not None and str(dir).startswith(str(tmp_path / "locked")):
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 255), np.float32))
    assert main(["export", "conv", "--out", str(tmp_path / "pack")]) == 0
    _usage(capsys, ["emulate", str(tmp_path / "pack" / "model.xml"), str(tmp_path / "x.npy"), "--out",
                          str(tmp_path / "locked" / "y.npy")],
                 "Permission denied", str(tmp_path / "locked"), "check its permissions, or choose another location")
    assert not (tmp_path / "locked" / "y.npy").exists()
