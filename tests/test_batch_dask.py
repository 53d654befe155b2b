"""gnaexp batch and evaluate --dask on a real dask.distributed cluster on 127.0.0.1: reports, index and states as
the local pool writes them, resume, failure isolation, a worker killed mid-run, Ctrl-C, bad --dask values, and
evaluate's numbers equal to a run here.

The module's cluster: a scheduler in this process and two single-threaded worker processes (with nannies, so a
killed worker comes back), one retry for a run whose worker died, as ``--dask local:N`` sets it.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import psutil
import pytest
import yaml
from distributed import Client, LocalCluster

from processes import interrupt

from gnaexp import cli
from gnaexp.batch import cluster as cluster_mod, runner as batch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SPEECH = ROOT / "data" / "speech"
SMALL = {"length": 17, "backends": "torch,openvino:CPU"}


def _staged(out: Path) -> list[Path]:
    """Whatever is left in the output folder's staging area (nothing, once a batch has ended)."""
    stage = out / batch.STAGING_DIR
    return list(stage.iterdir()) if stage.exists() else []


def _matrix(path: Path, runs: list) -> Path:
    path.write_text(yaml.safe_dump({"runs": runs}, sort_keys=False))
    return path


def _gated_notebook(folder: Path) -> Path:
    """A run that waits while its gate file exists (at most ``limit`` s), then writes its record folder."""
    import nbformat

    params = nbformat.v4.new_code_cell("gate = ''\nlimit = 120.0\nrecord_dir = 'run.record'")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[
        params,
        nbformat.v4.new_code_cell("import os, time\nt0 = time.time()\n"
                                  "while gate and os.path.exists(gate) and time.time() - t0 < limit:\n"
                                  "    time.sleep(0.1)"),
        nbformat.v4.new_code_cell("os.makedirs(record_dir, exist_ok=True)\n"
                                  "open(os.path.join(record_dir, 'done.txt'), 'w').write('done')\nprint('finished')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = folder / "gated.ipynb"
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("dask-workers")
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.scheduler.worker-saturation": 1.0}):
        c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                         local_directory=str(scratch), silence_logs=logging.ERROR)
    c.scratch = scratch
    try:
        yield c
    finally:
        c.close()


def _worker_state() -> tuple:
    import os as _os

    from gnaexp.batch import forkserver as _forkserver, runner as _batch

    return _os.environ.get("JUPYTER_PATH", ""), _batch._prepared, _forkserver._ZYGOTE is not None


def test_batch_on_a_cluster_publishes_isolates_failures_and_resumes(cluster, tmp_path, capsys):
    out = tmp_path / "reports"
    runs = [{"notebook": str(NOTEBOOKS / "conv"), "name": f"conv{s}", "parameters": {**SMALL, "seed": s}}
            for s in (0, 1)]
    runs += [{"notebook": str(NOTEBOOKS / "concat"), "name": "cat", "parameters": dict(SMALL)},
             {"notebook": str(NOTEBOOKS / "concat"), "name": "bad",
              "parameters": {"length": 17, "backends": "openvino:NPU"}}]
    m = _matrix(tmp_path / "m.yaml", runs)
    address = cluster.scheduler_address

    # 1. every run is a task; the failing one is red, the others are published whole
    assert cli.main(["batch", str(m), "--out", str(out), "--dask", address]) == 1
    text = capsys.readouterr().out
    assert "on 2 dask worker(s)" in text and "3 ran, 0 unchanged, 1 failed" in text
    for name in ("conv0", "conv1", "cat"):
        assert (out / f"{name}.html").is_file() and (out / f"{name}.ipynb").is_file()
        assert (out / f"{name}.record" / "record.json").is_file()
        state = json.loads((out / batch.STATE_DIR / f"{name}.json").read_text())
        assert state["status"] == "ok" and state["html_bytes"] == (out / f"{name}.html").stat().st_size
    assert not (out / "bad.html").exists() and "BackendUnavailable" in (out / "bad.failed.html").read_text()
    for page in (out / "bad.failed.html", out / "bad.failed.ipynb", out / "conv0.ipynb"):
        content = page.read_text()
        for local in (str(tmp_path), str(cluster.scratch), sys.prefix, str(Path.home()) + "/"):
            assert local not in content, (page.name, local)  # neither this machine's nor a worker's folders
    index = (out / "index.html").read_text()
    assert index.count("data-batch='ok'") == 3 and index.count("data-batch='failed'") == 1 and "BackendUnavailable" in index
    assert "href='conv1.html'" in index and "href='bad.failed.html'" in index
    assert not _staged(out)  # nothing half-published left behind
    # each worker prepared its kernels once: this environment's kernelspec and a zygote
    with Client(address) as client:
        states = client.run(_worker_state)
    assert len(states) == 2
    for jupyter_path, prepared, zygote in states.values():
        assert str(Path(sys.prefix) / "share" / "jupyter") in jupyter_path.split(os.pathsep)
        assert prepared and zygote == hasattr(os, "fork")

    # 2. the same batch again: the finished runs are skipped, the failed one is retried
    mtime = (out / "conv0.html").stat().st_mtime_ns
    assert cli.main(["batch", str(m), "--out", str(out), "--dask", address]) == 1
    text = capsys.readouterr().out
    assert all(f"{n}: unchanged, skipped" in text for n in ("conv0", "conv1", "cat"))
    assert "0 ran, 3 unchanged, 1 failed" in text and (out / "conv0.html").stat().st_mtime_ns == mtime

    # 3. a finished report's next attempt fails: the report stays, the failed attempt lands beside it
    good_html = (out / "cat.html").read_bytes()
    m2 = _matrix(tmp_path / "m2.yaml", [{**runs[2], "parameters": {"length": 17, "backends": "openvino:NPU"}}])
    assert cli.main(["batch", str(m2), "--out", str(out), "--dask", address]) == 1
    assert (out / "cat.html").read_bytes() == good_html and (out / "cat.failed.html").is_file()
    assert json.loads((out / batch.STATE_DIR / "cat.json").read_text())["last_ok"]


def _working_on(run: str, scratch: Path) -> list[psutil.Process]:
    """The processes working in ``run``'s staging folder on a worker: its kernel, and the worker process itself
    while papermill runs (it changes folder)."""
    return [p for p in psutil.process_iter(["cwd"])
            if (p.info.get("cwd") or "").startswith(str(scratch)) and Path(p.info["cwd"]).name == run]


def _kill_worker_running(run: str, client: Client, scratch: Path, deadline: float) -> int:
    """SIGKILL the worker process that executes ``run``, once its kernel is up; returns its pid."""
    while time.monotonic() < deadline:
        workers = set(client.run(os.getpid, on_error="ignore").values())
        procs = _working_on(run, scratch)
        owner = next((p.pid for p in procs if p.pid in workers), None)
        if owner is not None and any(p.pid not in workers for p in procs):
            os.kill(owner, signal.SIGKILL)
            return owner
        time.sleep(0.2)
    raise AssertionError(f"no worker ran {run} in time")


def test_a_worker_killed_mid_run_retries_the_run_once_then_marks_it_red(cluster, tmp_path):
    _gated_notebook(tmp_path)
    gates = {name: tmp_path / f"{name}.gate" for name in ("victim", "doomed")}
    for gate in gates.values():
        gate.touch()
    m = _matrix(tmp_path / "m.yaml", [{"notebook": "gated", "name": n, "parameters": {"gate": str(g)}}
                                      for n, g in gates.items()])
    out = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "gnaexp", "batch", str(m), "--out", str(out), "--dask",
                             cluster.scheduler_address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = Client(cluster.scheduler_address)
    try:
        deadline = time.monotonic() + 180  # a guard against a hang, not a speed check
        # the victim's worker dies mid-run; its retry finds the gate open and finishes
        _kill_worker_running("victim", client, cluster.scratch, deadline)
        gates["victim"].unlink()
        while not (out / "victim.html").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        # the doomed run's worker dies on the first attempt and on the retry
        killed = [_kill_worker_running("doomed", client, cluster.scratch, deadline)]
        killed.append(_kill_worker_running("doomed", client, cluster.scratch, deadline))
        stdout, stderr = proc.communicate(timeout=120)
        client.wait_for_workers(2, timeout=60)  # the nannies bring both workers back for the other tests
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    assert killed[0] != killed[1]  # the retry ran in another worker process
    assert stdout.count("✓ victim: ok") == 1 and (out / "victim.record" / "done.txt").is_file()
    assert not list(out.glob("victim.failed.*"))
    doomed = json.loads((out / batch.STATE_DIR / "doomed.json").read_text())
    assert doomed["status"] == "failed" and "worker died" in doomed["error"] and "2 attempt(s)" in doomed["error"]
    assert not list(out.glob("doomed*"))  # no partial report of a dead attempt, not even a failed one
    index = (out / "index.html").read_text()
    assert "data-batch='failed'" in index and "worker died" in index and "data-batch='ok'" in index
    assert not _staged(out)
    # the dead workers' kernels go with them (each watches its parent)
    deadline = time.monotonic() + 30
    while (_working_on("doomed", cluster.scratch) or _working_on("victim", cluster.scratch)) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _working_on("doomed", cluster.scratch) and not _working_on("victim", cluster.scratch)


def test_ctrl_c_cancels_the_runs_on_a_cluster_and_stops_their_kernels(cluster, tmp_path):
    """The cluster outlives the batch: Ctrl-C cancels the runs not started and stops the kernels of those running,
    so the workers are free again at once."""
    _gated_notebook(tmp_path)
    gate = tmp_path / "gate"
    gate.touch()
    m = _matrix(tmp_path / "m.yaml", [{"notebook": "gated", "name": f"held{i}", "parameters": {"gate": str(gate),
                                                                                              "limit": 100.0 + i}}
                                      for i in range(4)])
    out = tmp_path / "reports"
    proc = subprocess.Popen([sys.executable, "-m", "gnaexp", "batch", str(m), "--out", str(out), "--dask",
                             cluster.scheduler_address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a speed check
        while len([p for i in range(4) for p in _working_on(f"held{i}", cluster.scratch)]) < 4 \
                and time.monotonic() < deadline:  # two runs going: two workers and two kernels there
            time.sleep(0.2)
        with Client(cluster.scheduler_address) as client:
            workers = client.run(os.getpid)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted: 0 run(s) done" in stdout
    deadline = time.monotonic() + 30
    while any(_working_on(f"held{i}", cluster.scratch) for i in range(4)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_working_on(f"held{i}", cluster.scratch) for i in range(4))  # long before their 100 s
    with Client(cluster.scheduler_address) as client:
        assert client.run(os.getpid) == workers  # the same workers, alive and idle
        assert not any(client.processing().values())
    assert not list(out.glob("held*")) and not _staged(out)


def _working_in(folder: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cwd"]):
        if (proc.info.get("cwd") or "").startswith(str(folder)) and proc.pid != os.getpid():
            found.append(proc.pid)
    return found


def test_local_cluster_from_the_cli_stops_on_ctrl_c_and_resumes(tmp_path):
    _gated_notebook(tmp_path)
    gate = tmp_path / "gate"
    gate.touch()
    runs = [{"notebook": "gated", "name": f"quick{i}", "parameters": {"limit": float(i)}} for i in (1, 2)]
    runs += [{"notebook": "gated", "name": f"slow{i}", "parameters": {"gate": str(gate), "limit": 120.0 + i}}
             for i in (1, 2)]
    m = _matrix(tmp_path / "m.yaml", runs)
    out = tmp_path / "reports"
    cmd = [sys.executable, "-m", "gnaexp", "batch", str(m), "--out", str(out), "--dask", "local:2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 180  # a guard against a hang, not a speed check
    while len(list(out.glob("quick*.html"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    while len(_working_in(out)) < 2 and time.monotonic() < deadline:  # both slow runs' kernels are up
        time.sleep(0.2)
    started = psutil.Process(proc.pid).children(recursive=True)
    running = proc.poll() is None
    stdout, stderr = interrupt(proc)
    assert running and len(started) >= 4  # two nannied workers and their kernel zygotes at least
    assert proc.returncode == 130, stderr
    assert "interrupted: 2 run(s) done" in stdout and "run the same command again" in stdout
    deadline = time.monotonic() + 30  # the cluster's workers and the kernels go
    while (any(p.is_running() for p in started) or _working_in(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not _working_in(tmp_path)
    assert sorted(p.name for p in out.glob("*.html")) == ["index.html", "quick1.html", "quick2.html"]
    assert not list(out.glob("slow*")) and not (out / batch.STAGING_DIR / "dask").exists()

    gate.unlink()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "quick1: unchanged, skipped" in rerun.stdout and "2 ran, 2 unchanged, 0 failed" in rerun.stdout
    assert (out / "slow2.record" / "done.txt").is_file()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("value,words", [
    ("local:0", "at least 1 (e.g. --dask local:4)"),
    ("local:x", "at least 1"),
    ("local", "at least 1"),
    ("head.example", "neither a scheduler address (tcp://HOST:PORT"),
    ("http://head:8786", "neither a scheduler address"),
    ("tcp://head:99999", "neither a scheduler address"),
    ("closed", "cannot reach a dask scheduler at tcp://127.0.0.1:"),
])
def test_bad_dask_values_exit_2_with_the_fix(tmp_path, capsys, value, words):
    if value == "closed":
        value = f"127.0.0.1:{_closed_port()}"
    m = _matrix(tmp_path / "m.yaml", [{"notebook": str(NOTEBOOKS / "conv"), "parameters": dict(SMALL)}])
    assert cli.main(["batch", str(m), "--out", str(tmp_path / "r"), "--dask", value]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    if "cannot reach" in words:
        assert "dask scheduler" in err and "--dask local:N" in err  # the message names the fixes
    assert cli.main(["evaluate", "silero_vad", "--audio", str(SPEECH), "--out", str(tmp_path / "e"),
                     "--dask", value]) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "e").exists()


def test_a_scheduler_without_fit_workers_exits_2(tmp_path, capsys, monkeypatch):
    """No workers, then a worker whose gnaexp sources differ from this machine's: each is named, nothing runs."""
    import shutil

    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT_S", 2)
    m = _matrix(tmp_path / "m.yaml", [{"notebook": str(NOTEBOOKS / "conv"), "parameters": dict(SMALL)}])
    out = tmp_path / "r"
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as empty:
        assert cli.main(["batch", str(m), "--out", str(out), "--dask", empty.scheduler_address]) == 2
        assert "has no workers; start them on each machine with `dask worker" in capsys.readouterr().err
        assert not out.exists()
        other = tmp_path / "other"
        shutil.copytree(ROOT / "gnaexp", other / "gnaexp", ignore=shutil.ignore_patterns("__pycache__"))
        with open(other / "gnaexp" / "pages.py", "a") as f:
            f.write("# another version\n")
        worker = subprocess.Popen([str(Path(sys.executable).with_name("dask")), "worker", empty.scheduler_address,
                                   "--nthreads", "1", "--no-dashboard", "--no-nanny"],
                                  env={**os.environ, "PYTHONPATH": str(other)}, cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT_S", 60)  # time for the worker to come up
            assert cli.main(["batch", str(m), "--out", str(out), "--dask", empty.scheduler_address]) == 2
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    err = capsys.readouterr().err
    assert "run other gnaexp sources than this machine; install the same gnaexp version" in err
    assert not out.exists()


def test_dask_with_jobs_exits_2(tmp_path, capsys):
    m = _matrix(tmp_path / "m.yaml", [{"notebook": str(NOTEBOOKS / "conv"), "parameters": dict(SMALL)}])
    assert cli.main(["batch", str(m), "--out", str(tmp_path / "r"), "--dask", "local:2", "--jobs", "2"]) == 2
    assert "drop --jobs" in capsys.readouterr().err and not (tmp_path / "r").exists()


def _comparable(record: dict) -> dict:
    """A record without what depends on the machine and the clock."""
    record = json.loads(json.dumps(record))
    for key in ("environment", "seconds"):
        record.pop(key)
    # where torch's tracks came from (streamed, or the cache a share of the files hit) is provenance, not a result
    record["device_settings"].get("torch", {}).pop("tracks", None)
    for f in record["files"]:
        for row in f["backends"].values():
            row.pop("ms_per_chunk")
    return record


def test_evaluate_on_a_cluster_equals_a_run_here(cluster, tmp_path, capsys):
    args = ["evaluate", "silero_vad", "--audio", str(SPEECH), "--backends", "torch,gna-emu",
            "--set", "scale_factor=recommended", "--json"]
    assert cli.main(args + ["--out", str(tmp_path / "here")]) == 0
    assert cli.main(args + ["--out", str(tmp_path / "there"), "--dask", cluster.scheduler_address]) == 0
    capsys.readouterr()
    here = json.loads((tmp_path / "here" / "record.json").read_text())
    there = json.loads((tmp_path / "there" / "record.json").read_text())
    assert len(there["files"]) == 3 and there["emulator"]["gna-emu"]["plan"]
    assert _comparable(there) == _comparable(here)  # per-file rows, aggregate, plan with its saturations
    assert there["aggregate"] == here["aggregate"]
    a, b = np.load(tmp_path / "here" / "tracks.npz"), np.load(tmp_path / "there" / "tracks.npz")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    # files are split into shares of about equal audio, at most one per worker thread
    lengths = [10, 30, 20]
    assert cluster_mod.shares(lengths, 2) == [[1], [0, 2]] and cluster_mod.shares(lengths, 5) == [[1], [2], [0]]


def test_ctrl_c_while_a_run_is_published_takes_effect_once_it_is_counted():
    """Ctrl-C that comes in while a finished run is published and counted (cluster._execute) raises only after
    the block: the run is in the report's count; outside the block Ctrl-C raises at once, as before."""
    counted = []
    with pytest.raises(KeyboardInterrupt):
        with cluster_mod._ctrl_c_after():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal is handled here, by the block's handler
            counted.append("quick2")
    assert counted == ["quick2"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
