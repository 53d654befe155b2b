"""Output folders: a command owns only what it wrote (the manifest), publishes all or nothing, and holds the folder
while it writes (the lock). Every command that writes a folder is run against one holding a user's files."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from gnaexp.batch import runner as batch
from gnaexp.batch.matrix import Run
from gnaexp.batch.runner import Outcome, Staged
from gnaexp.cli import main
from gnaexp.core import output_folder
from gnaexp.core.output_folder import LOCK, MANIFEST, publish_folder, shared_folder

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SPEECH = ROOT / "data" / "speech" / "speech_snr20.wav"
SMALL = {"length": 17, "backends": "torch,openvino:CPU"}


def _user_files(folder: Path) -> dict[str, bytes]:
    """A user's things in ``folder``: a git repository, a dot-file, an array and a record.json of their own."""
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / ".env").write_text("TOKEN=secret\n")
    np.save(folder / "measured.npy", np.arange(4, dtype=np.float32))
    (folder / "record.json").write_text('{"mine": true}\n')
    return _snapshot(folder)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _matrix(path: Path, runs: list) -> Path:
    path.write_text(yaml.safe_dump({"runs": runs}, sort_keys=False))
    return path


COMMANDS = {
    "run conv": lambda out, tmp: ["run", "conv", "--set", "length=17", "--backends", "torch,openvino:CPU",
                                  "--out", str(out)],
    "run silero_vad": lambda out, tmp: ["run", "silero_vad", "--set", f"audio={SPEECH}", "--backends",
                                        "openvino:CPU", "--out", str(out)],
    "evaluate silero_vad": lambda out, tmp: ["evaluate", "silero_vad", "--audio", str(SPEECH), "--backends",
                                             "openvino:CPU", "--out", str(out)],
    "export conv": lambda out, tmp: ["export", "conv", "--set", "length=17", "--out", str(out)],
    "quantize conv": lambda out, tmp: ["quantize", "conv", "--calibration-size", "2", "--out", str(out)],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_an_out_holding_a_users_files_and_keeps_them(tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    before = _user_files(out)
    assert main(COMMANDS[command](out, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "holds files gnaexp did not write there" in err and "Traceback" not in err
    assert "running " not in err and "streaming " not in err  # refused before any work
    for name in (".env", ".git", "measured.npy", "record.json"):
        assert name in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == [".env", ".git", "measured.npy", "record.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing staged beside it


def test_a_rerun_replaces_only_its_own_results_and_refuses_a_file_added_since(tmp_path, capsys):
    out = tmp_path / "run"
    argv = COMMANDS["run conv"](out, tmp_path)
    assert main(argv) == 0
    assert set(output_folder.read_manifest(out)) == {"record.json", "inputs.npz", "outputs.npz", "ir"}
    first = json.loads((out / "record.json").read_text())["created"]
    assert main(argv) == 0  # its own results are replaced
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "inputs.npz", "ir", "outputs.npz", "record.json"]
    assert json.loads((out / "record.json").read_text())["created"] >= first
    (out / ".git").mkdir()  # the user starts tracking the folder
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert ".git" in err and "notes.txt" in err
    assert (out / "notes.txt").read_text() == "mine" and (out / ".git").is_dir()


def test_export_owns_only_its_pack_files_not_a_measured_array_left_in_it(tmp_path, capsys):
    pack = tmp_path / "pack"
    assert main(COMMANDS["export conv"](pack, tmp_path)) == 0
    ours = output_folder.read_manifest(pack)
    assert "input.npy" in ours and "model.xml" in ours
    np.save(pack / "measured.npy", np.ones(3, np.float32))  # the user's, with the same kind of name as ours
    capsys.readouterr()
    assert main(COMMANDS["export conv"](pack, tmp_path)) == 2
    assert "measured.npy" in capsys.readouterr().err
    assert np.array_equal(np.load(pack / "measured.npy"), np.ones(3, np.float32))


def test_publish_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    with publish_folder(out) as stage:
        (stage / "a.txt").write_text("first a")
        (stage / "b.txt").write_text("first b")
    with pytest.raises(OSError):
        with publish_folder(out) as stage:
            (stage / "a.txt").write_text("second a")
            raise OSError(28, "No space left on device", str(stage / "b.txt"))  # the second file fails
    assert (out / "a.txt").read_text() == "first a" and (out / "b.txt").read_text() == "first b"
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, MANIFEST, "a.txt", "b.txt"])
    with publish_folder(out) as stage:  # a result with fewer entries: the earlier entries of ours go
        (stage / "c.txt").write_text("third")
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, MANIFEST, "c.txt"])


def test_a_failed_first_publish_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with publish_folder(out) as stage:
            (stage / "a.txt").write_text("x")
            raise RuntimeError("the run failed")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_damaged_manifest_owns_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(COMMANDS["run conv"](out, tmp_path)) == 0
    (out / MANIFEST).write_text("{not json")
    capsys.readouterr()
    assert main(COMMANDS["run conv"](out, tmp_path)) == 2
    assert "record.json" in capsys.readouterr().err
    assert (out / "record.json").is_file()


HOLD = textwrap.dedent("""
    import sys, time
    from gnaexp.core.output_folder import shared_folder
    with shared_folder(sys.argv[1], ["x"]):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_second_command_on_a_folder_in_use_is_refused_naming_the_process(tmp_path, capsys):
    out = tmp_path / "reports"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        m = _matrix(tmp_path / "m.yaml", [{"notebook": str(NOTEBOOKS / "conv"), "name": "a", "parameters": SMALL}])
        assert main(["batch", str(m), "--out", str(out), "--jobs", "1"]) == 2
        err = capsys.readouterr().err
        assert f"is in use by process {holder.pid}" in err and "Traceback" not in err
        assert main(["run", "conv", "--set", "length=17", "--backends", "torch", "--out", str(out)]) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, MANIFEST])  # the batch wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # the OS released the killed holder's lock: the folder is free again
    with shared_folder(out, ["x"]):
        pass


def test_batch_claims_its_names_and_leaves_the_users_other_files(tmp_path, capsys, monkeypatch):
    digest = batch.library_digest()
    monkeypatch.setattr(batch, "library_digest", lambda: digest)
    out = tmp_path / "reports"
    out.mkdir()
    (out / "README.md").write_text("our reports\n")
    (out / ".git").mkdir()
    (out / "a.html").write_text("my own page")  # where the run named a would publish its report
    m = _matrix(tmp_path / "m.yaml", [{"notebook": str(NOTEBOOKS / "conv"), "name": "a", "parameters": SMALL}])
    assert main(["batch", str(m), "--out", str(out), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "a.html" in err and "did not write" in err
    assert (out / "a.html").read_text() == "my own page"
    (out / "a.html").unlink()
    assert main(["batch", str(m), "--out", str(out), "--jobs", "1"]) == 0
    assert (out / "README.md").read_text() == "our reports\n" and (out / ".git").is_dir()
    assert (out / "a.html").is_file() and "a.html" in output_folder.read_manifest(out)

    # An index that cannot be written ends the batch with the OS error, and no zygote is left behind.
    (out / "index.html").unlink()
    (out / "index.html").mkdir()
    private_tmp = tmp_path / "tmp"  # this batch's temporary folders alone, whatever else runs on the machine
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    capsys.readouterr()
    assert main(["batch", str(m), "--out", str(out), "--jobs", "1", "--force"]) == 2
    err = capsys.readouterr().err
    assert "index.html" in err and "Pool is still running" not in err and "Traceback" not in err
    assert not list(private_tmp.glob("gnaexp-zygote-*"))


def test_a_cut_short_notebook_is_not_published_as_the_failed_attempt(tmp_path):
    out, stage = tmp_path / "out", tmp_path / "out" / batch.STAGING_DIR / "r"
    stage.mkdir(parents=True)
    (stage / "r.ipynb").write_bytes(b"")  # the disk filled while papermill wrote it
    (stage / "r.html").write_text("<html>half")
    run = Run(name="r", notebook=NOTEBOOKS / "conv.ipynb", parameters={})
    outcome = batch.finish_run(run, stage, out, Staged("No space left on device", 1.0))
    assert isinstance(outcome, Outcome) and outcome.status == "failed"
    assert not (out / "r.failed.ipynb").exists() and (out / "r.failed.html").exists()


def test_a_killed_publisher_leaves_nothing_a_later_run_takes_for_the_users(tmp_path):
    out = tmp_path / "out"
    with publish_folder(out) as stage:
        (stage / "a.txt").write_text("a")
    os.mkdir(out / f"{output_folder.STAGE_PREFIX}dead")  # what a killed command leaves
    (out / f"{output_folder.STAGE_PREFIX}dead" / "half.txt").write_text("h")
    with publish_folder(out) as stage:
        (stage / "b.txt").write_text("b")
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, MANIFEST, "b.txt"])


def test_a_notebook_rerun_into_its_record_folder_keeps_working(tmp_path):
    """A notebook publishes its record, then adds its index entry beside it: the next run owns both."""
    from gnaexp.core.records import INDEX_ENTRY_FILE
    from gnaexp.present.index_entry import IndexEntry

    rec = tmp_path / "conv.record"
    for attempt in range(2):
        assert main(COMMANDS["run conv"](rec, tmp_path)) == 0
        IndexEntry("conv", [f"attempt {attempt}"]).save(rec)
    assert INDEX_ENTRY_FILE in output_folder.read_manifest(rec)
    assert json.loads((rec / INDEX_ENTRY_FILE).read_text())["verdict"] == ["attempt 1"]
    with pytest.raises(ValueError, match="holds a notes.json gnaexp did not write"):
        (rec / "notes.json").write_text("{}")
        output_folder.add_file(rec, "notes.json", b"{}")
