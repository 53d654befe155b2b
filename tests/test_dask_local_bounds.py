"""``--dask local:N`` starts no more workers than the machine holds, and Ctrl-C stops a command at every stage,
also while the local cluster's workers start (it was ignored then: the batch ran on to the end, exit 0)."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from processes import interrupt

from gnaexp import cli
from gnaexp.batch import cluster
from gnaexp.core import environment

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "data" / "speech"


def _notebook(folder: Path) -> Path:
    import nbformat

    params = nbformat.v4.new_code_cell("record_dir = 'run.record'")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[
        params, nbformat.v4.new_code_cell("import os\nos.makedirs(record_dir, exist_ok=True)\nprint('finished')")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = folder / "quick.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_local_n_is_bounded_by_the_machine(tmp_path, capsys):
    most, why = environment.local_capacity()
    assert 1 <= most <= (os.cpu_count() or 1) and "core(s)" in why and "GiB of memory" in why
    assert cluster.parse(f"local:{most}") == ("local", most)
    _notebook(tmp_path)
    m = tmp_path / "m.yaml"
    m.write_text(yaml.safe_dump({"runs": [{"notebook": "quick"}]}))
    for n in (most + 1, 1000, 10 ** 40):
        assert cli.main(["batch", str(m), "--out", str(tmp_path / "r"), "--dask", f"local:{n}"]) == 2
        err = capsys.readouterr().err
        assert re.search(rf"this machine holds at most {most} worker process\(es\) \({re.escape(why)}\); give "
                         rf"local:{most} or less, or a scheduler's address", err), err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert cli.main(["evaluate", "silero_vad", "--audio", str(SPEECH), "--out", str(tmp_path / "e"),
                         "--dask", f"local:{n}"]) == 2
        assert f"at most {most} worker process(es)" in capsys.readouterr().err
        assert cli.main(["batch", str(m), "--out", str(tmp_path / "r"), "--jobs", str(n)]) == 2
        err = capsys.readouterr().err
        assert f"--jobs {n}: this machine holds at most {most} notebook run(s) at once" in err, err
        assert not (tmp_path / "r").exists()
    assert not (tmp_path / "r").exists() and not (tmp_path / "e").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT")
def test_ctrl_c_while_the_local_workers_start_stops_the_batch(tmp_path):
    _notebook(tmp_path)
    m = tmp_path / "m.yaml"
    m.write_text(yaml.safe_dump({"runs": [{"notebook": "quick", "name": f"q{i}"} for i in (1, 2)]}))
    out = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "gnaexp", "batch", str(m), "--out", str(out), "--dask", "local:1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=tmp_path)
    started: list[psutil.Process] = []
    deadline = time.monotonic() + 120  # a guard against a hang, not a speed check
    while not started and proc.poll() is None and time.monotonic() < deadline:
        started = psutil.Process(proc.pid).children(recursive=True)  # the first process of the cluster's start
        time.sleep(0.02)
    running = bool(started) and proc.poll() is None
    stdout, stderr = interrupt(proc)
    assert running
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted: 0 run(s) done" in stdout and "Traceback" not in stderr
    assert not list(out.glob("*.html")) and not list(out.glob("*.ipynb"))
    deadline = time.monotonic() + 30  # the workers go with the command
    while time.monotonic() < deadline and any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started):
        time.sleep(0.2)
    assert not [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
