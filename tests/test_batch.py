"""gnaexp batch: matrix checks, failure isolation, no replacement of good reports, resume, exit codes.

Real papermill runs on small parameters; a run fails for real by asking only for a device that is absent.
"""

import json
from pathlib import Path

import pytest
import yaml

from gnaexp import cli
from gnaexp.batch import matrix, runner as batch
from gnaexp.present import pages

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SMALL = {"length": 17, "backends": "torch,openvino:CPU"}


def _matrix(path: Path, runs: list, defaults: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({"defaults": defaults or {}, "runs": runs}, sort_keys=False))
    return path


def test_failure_isolation_no_replacement_and_resume(tmp_path, capsys, monkeypatch):
    # Hold the library digest still: other work on gnaexp's sources during the test would (rightly) rerun all.
    digest = batch.library_digest()
    monkeypatch.setattr(batch, "library_digest", lambda: digest)
    out = tmp_path / "reports"
    good = {"notebook": str(NOTEBOOKS / "conv"), "name": "good", "parameters": dict(SMALL)}
    bad = {"notebook": str(NOTEBOOKS / "concat"), "name": "bad", "parameters": {"length": 17, "backends": "openvino:NPU"}}
    m = _matrix(tmp_path / "m.yaml", [good, bad])

    # 1. one run raises: it is red in the index with its error, the other completes, exit code 1
    assert cli.main(["batch", str(m), "--out", str(out), "--jobs", "2"]) == 1
    assert (out / "good.html").exists() and (out / "good.ipynb").exists() and (out / "good.record").is_dir()
    assert not (out / "bad.html").exists()
    failed_html = (out / "bad.failed.html").read_text()
    assert "BackendUnavailable" in failed_html  # the executed notebook keeps the failing cell's error
    import sys

    for local in (str(tmp_path), sys.prefix, str(Path.home()) + "/"):  # tracebacks name no local folders
        assert local not in failed_html and local not in (out / "bad.failed.ipynb").read_text()
    index = (out / "index.html").read_text()
    assert "data-batch='failed'" in index and "data-batch='ok'" in index and "BackendUnavailable" in index
    assert "href='good.html'" in index and "href='bad.failed.html'" in index
    assert not (out / batch.STAGING_DIR / "good").exists()
    good_html = (out / "good.html").read_bytes()
    good_mtime = (out / "good.html").stat().st_mtime_ns

    # 2. rerun: the unchanged good run is skipped, the failed one is retried
    capsys.readouterr()
    assert cli.main(["batch", str(m), "--out", str(out), "--jobs", "1"]) == 1
    text = capsys.readouterr()
    assert "good: unchanged, skipped" in text.out
    assert (out / "good.html").stat().st_mtime_ns == good_mtime

    # 3. the good run's next attempt fails: its finished report stays, the failed attempt lands beside it
    good_broken = {**good, "parameters": {"length": 17, "backends": "openvino:NPU"}}
    m2 = _matrix(tmp_path / "m2.yaml", [good_broken])
    assert cli.main(["batch", str(m2), "--out", str(out), "--jobs", "1"]) == 1
    assert (out / "good.html").read_bytes() == good_html
    assert (out / "good.failed.html").exists()
    state = json.loads((out / batch.STATE_DIR / "good.json").read_text())
    assert state["status"] == "failed" and state["last_ok"]

    # 4. --force with the good parameters again: ok, the stale failed attempt is cleared
    assert cli.main(["batch", str(m), "--out", str(out), "--force", "--jobs", "2"]) == 1  # bad still fails
    assert not (out / "good.failed.html").exists()
    assert json.loads((out / batch.STATE_DIR / "good.json").read_text())["status"] == "ok"


def test_changed_notebook_reruns(tmp_path):
    nb = tmp_path / "conv.ipynb"
    nb.write_bytes((NOTEBOOKS / "conv.ipynb").read_bytes())
    m = _matrix(tmp_path / "m.yaml", [{"notebook": "conv", "name": "c", "parameters": dict(SMALL)}])
    runs = matrix.load_matrix(m)
    library = batch.library_digest()
    key = batch.run_key(runs[0], library, False)
    data = json.loads(nb.read_text())
    data["cells"][0]["source"] = ["# changed\n"]
    nb.write_text(json.dumps(data))
    changed = batch.run_key(matrix.load_matrix(m)[0], library, False)
    assert changed != key
    assert batch.run_key(runs[0], library, True) != changed  # --show-code gives another report
    assert batch.run_key(runs[0], "other-library", False) != changed


def test_offline_html_strips_network_tags():
    page = ('<head><script src="https://cdn.example/require.js"></script>'
            "<script src='http://x/mathjax.js?config=1'> </script><link href=\"https://x/a.css\" rel=stylesheet>"
            "<script>local()</script><img src='data:image/png;base64,AA'/></head>")
    clean = pages.offline_html(page)
    assert "https://" not in clean and "http://" not in clean
    assert "<script>local()</script>" in clean and "data:image/png" in clean


# --- kernels forked from the zygote ----------------------------------------------------------------------------

def test_forked_kernels_are_fresh_and_complete(tmp_path, monkeypatch):
    """Each run's kernel is this environment's python, starts from clean state, sees its cwd and env, and can
    wait for its own subprocesses. It imports nothing to start: every module it has came from the zygote (moved
    out of the collector's reach there, so not among the objects the kernel's collector tracks), but for the
    namespace the shell makes for the notebook."""
    import nbformat
    import papermill

    from gnaexp.batch import forkserver

    if not hasattr(__import__("os"), "fork"):
        pytest.skip("no fork on this platform: kernels start the ordinary way")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("first = True", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os, sys, subprocess\n"
            "if not first:\n    assert 'leftover' not in globals(), 'state leaked from another run'\n"
            "leftover = 1\n"
            "print(sys.executable, os.getcwd(), os.environ.get('GNAEXP_PROBE'))\n"
            "subprocess.run([sys.executable, '-c', 'pass'], check=True)\n"
            "print('gnaexp.present.report' in sys.modules)\n"
            "import gc\nlive = {id(o) for o in gc.get_objects()}\n"
            "print(','.join(sorted(n for n, m in list(sys.modules.items()) if isinstance(m, type(sys))\n"
            "                      and id(m.__dict__) in live)))")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "probe.ipynb"
    nbformat.write(nb, str(src))
    monkeypatch.setenv("GNAEXP_PROBE", "seen")
    monkeypatch.setattr(forkserver, "_ZYGOTE", None)
    forkserver.start_zygote()
    try:
        manager = forkserver.manager_class()
        assert manager is forkserver.ForkKernelManager
        for i, first in enumerate((True, False)):
            out = tmp_path / f"out{i}.ipynb"
            papermill.execute_notebook(str(src), str(out), parameters={"first": first}, kernel_name="python3",
                                       cwd=str(tmp_path), progress_bar=False, kernel_manager_class=manager,
                                       shutdown_kernel="immediate")
            text = "".join(o.get("text", "") for o in nbformat.read(str(out), 4).cells[-1].outputs)
            import sys

            assert text.split()[:3] == [sys.executable, str(tmp_path), "seen"]
            assert text.split()[3] == "True"  # gnaexp came pre-imported
            assert text.split()[4] == "__main__"  # the only module the kernel made itself
    finally:
        forkserver._ZYGOTE.close()


def test_forked_kernels_have_openvino_and_torch_once_a_kernel_imported_it(tmp_path, monkeypatch):
    """The zygote imports OpenVINO before it forks (a kernel runs a model with it), but not torch, which only a
    run that builds a torch reference needs: once a kernel imports torch (a mere look for it does not count), the
    kernels after it find torch imported. What they share stays out of the collector's reach."""
    import os

    import nbformat
    import papermill

    from gnaexp.batch import forkserver

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform: kernels start the ordinary way")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("step = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import gc, importlib.util, sys\n"
            "print('openvino' in sys.modules, 'torch' in sys.modules, gc.get_freeze_count() > 0)\n"
            "importlib.util.find_spec('torch')\n"
            "if step == 1:\n    import torch\n"
            "import numpy as np, openvino as ov\nfrom openvino import opset13 as ops\n"
            "x = ops.parameter([1, 4], ov.Type.f32)\n"
            "run = ov.Core().compile_model(ov.Model([ops.relu(x)], [x]), 'CPU')\n"
            "print(run(np.array([[-1, 2, -3, 4]], np.float32))[0].tolist())")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "probe.ipynb"))
    monkeypatch.setattr(forkserver, "_ZYGOTE", None)
    forkserver.start_zygote()
    seen = []
    try:
        for step in (0, 1, 2):
            out = tmp_path / f"out{step}.ipynb"
            papermill.execute_notebook(str(tmp_path / "probe.ipynb"), str(out), parameters={"step": step},
                                       kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
                                       kernel_manager_class=forkserver.manager_class(), shutdown_kernel="immediate")
            seen.append("".join(o.get("text", "") for o in nbformat.read(str(out), 4).cells[-1].outputs).split("\n"))
    finally:
        forkserver._ZYGOTE.close()
    assert [lines[0] for lines in seen] == ["True False True", "True False True", "True True True"]
    assert all(lines[1] == "[[0.0, 2.0, 0.0, 4.0]]" for lines in seen)


def test_a_forked_kernels_blas_threads_sleep_after_work_and_a_users_setting_is_kept(tmp_path, monkeypatch):
    """OpenBLAS's threads, started anew in each kernel, would busy-wait about 0.1 s of CPU after every threaded
    product, taken from the kernel beside it: the zygote has them sleep at once, unless the user set it."""
    import os

    import nbformat
    import papermill

    from gnaexp.batch import forkserver

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform: kernels start the ordinary way")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import time, numpy as np\na = np.ones((500, 500))\nb = a @ a\n"
        "start = time.process_time()\ntime.sleep(0.4)\nprint(time.process_time() - start)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "probe.ipynb"))
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    monkeypatch.setattr(forkserver, "_ZYGOTE", None)
    zygote = forkserver.start_zygote()
    try:
        papermill.execute_notebook(str(tmp_path / "probe.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   cwd=str(tmp_path), progress_bar=False, shutdown_kernel="immediate",
                                   kernel_manager_class=forkserver.manager_class())
        outputs = nbformat.read(str(tmp_path / "out.ipynb"), 4).cells[0].outputs
        idle_cpu = float("".join(o.get("text", "") for o in outputs))
        assert idle_cpu < 0.04  # CPU spent while the kernel slept after the product: no thread spinning
    finally:
        zygote.close()
    if not os.path.isdir("/proc"):
        return
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "9")
    zygote = forkserver.new_zygote()
    try:
        environ = open(f"/proc/{zygote.proc.pid}/environ", "rb").read().split(b"\0")
        assert b"OPENBLAS_THREAD_TIMEOUT=9" in environ
    finally:
        zygote.close()


def _exporter_state(_: int) -> tuple[bool, bool]:
    import sys

    from gnaexp.present import pages

    return pages._WARM, "papermill" in sys.modules


def test_pool_workers_start_with_papermill_and_the_html_exporter_ready():
    """The workers are forked from one process that imported papermill and compiled the exporter's templates: none
    of them does it again (about 0.4 s of CPU each at the batch's start)."""
    context = batch._context()
    if context.get_start_method() != "forkserver":
        pytest.skip("no fork on this platform: each worker prepares itself")
    with context.Pool(2) as pool:
        assert pool.map(_exporter_state, range(4)) == [(True, True)] * 4


def test_the_pool_workers_share_one_zygote_that_ends_with_the_batch(tmp_path):
    """Every run's kernel is forked by the one zygote the batch started (its imports are done once, not once per
    worker), and that zygote and its socket are gone when the batch returns."""
    import os

    import nbformat

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform: kernels start the ordinary way")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("i = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os, time\ntime.sleep(0.3)\n"
            "try:  # the zygote's socket: the last word of its command line\n"
            "    sock = open(f'/proc/{os.getppid()}/cmdline').read().split('\\0')[-2]\n"
            "except OSError:\n    sock = '-'\n"
            "print('parent', os.getppid(), os.getpid(), sock)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "probe.ipynb"))
    m = _matrix(tmp_path / "m.yaml", [{"notebook": str(tmp_path / "probe"), "grid": {"i": [1, 2, 3, 4]}}])
    out = tmp_path / "out"
    outcomes = batch.run_batch(matrix.load_matrix(m), out, jobs=2, echo=lambda *a: None)
    assert [o.status for o in outcomes] == ["ok"] * 4
    parents, kernels, sockets = set(), set(), set()
    for o in outcomes:
        text = "".join(x.get("text", "") for x in nbformat.read(str(out / f"{o.name}.ipynb"), 4).cells[-1].outputs)
        _, parent, kernel, sock = text.split()
        parents.add(int(parent))
        kernels.add(int(kernel))
        sockets.add(sock)
    assert len(kernels) == 4 and len(parents) == 1 and len(sockets) == 1  # four fresh kernels, one zygote
    zygote = parents.pop()
    assert zygote != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(zygote, 0)
    sock = sockets.pop()  # this batch's own (another batch on the machine has its own zygote and socket)
    if sock != "-":
        assert os.path.basename(os.path.dirname(sock)).startswith("gnaexp-zygote-")
        assert not os.path.exists(os.path.dirname(sock))


def test_hide_local_paths():
    import sys

    base = Path("/data/alice/project/reports")
    text = f"{base}/.staging/x/a.txt {sys.prefix}/lib/site.py {Path.home()}/notes {Path(batch.__file__).parent}/batch.py"
    hidden = batch.hide_local_paths(text, base / ".staging" / "x", base)
    assert hidden == "./a.txt <python>/lib/site.py ~/notes <gnaexp>/gnaexp/batch/batch.py"


def test_ctrl_c_stops_cleanly_and_the_next_batch_finishes(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, while a batch is between runs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    runs = [{"notebook": str(NOTEBOOKS / "conv"), "name": f"seed{s}", "parameters": {**SMALL, "seed": s}}
            for s in range(4)]
    m = _matrix(tmp_path / "m.yaml", runs)
    out = tmp_path / "reports"
    cmd = [sys.executable, "-m", "gnaexp", "batch", str(m), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a guard against a hang, not a speed check
        while not list(out.glob("seed*.html")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the batch ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    # No kernel outlives the interrupted batch (each watches its parent and exits within its 1 s poll).
    deadline = time.monotonic() + 30
    while _processes_working_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_working_in(tmp_path)
    assert "interrupted" in stdout and "run the same command again" in stdout
    done = sorted(p.stem for p in out.glob("seed*.html"))
    assert 1 <= len(done) < 4
    for name in done:  # what finished is whole; nothing half-written sits beside it
        assert (out / f"{name}.ipynb").exists() and (out / f"{name}.record").is_dir()
    assert not list(out.glob("*.failed.*"))
    assert "seed" in (out / "index.html").read_text()

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    for name in done:
        assert f"{name}: unchanged, skipped" in rerun.stdout
    assert sorted(p.stem for p in out.glob("seed*.html")) == [f"seed{s}" for s in range(4)]
    assert f"{4 - len(done)} ran, {len(done)} unchanged, 0 failed" in rerun.stdout


def _processes_working_in(folder: Path) -> list[int]:
    """Pids whose working directory lies under folder (Linux /proc; empty elsewhere)."""
    import os

    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(folder)) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def test_run_timeout_marks_the_run_and_the_batch_goes_on(tmp_path, capsys):
    """--timeout bounds a whole run (several cells); the timed-out run is red in the index, the others finish."""
    import nbformat

    params = nbformat.v4.new_code_cell("seconds = 0.0\nsteps = 1")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[
        params,
        # Each cell stays below the timeout; only the run as a whole exceeds it.
        *[nbformat.v4.new_code_cell("import time\ntime.sleep(seconds / steps)") for _ in range(3)],
        nbformat.v4.new_code_cell("print('finished')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "sleepy.ipynb")
    m = _matrix(tmp_path / "m.yaml", [
        {"notebook": "sleepy", "name": "slow", "parameters": {"seconds": 60.0, "steps": 3}},
        {"notebook": "sleepy", "name": "quick", "parameters": {"seconds": 0.0}},
    ])
    out = tmp_path / "reports"
    assert cli.main(["batch", str(m), "--out", str(out), "--jobs", "1", "--timeout", "6"]) == 1
    text = capsys.readouterr().out
    assert "slow: timed out after 6 s" in text
    assert (out / "quick.html").exists() and not (out / "slow.html").exists()
    index = (out / "index.html").read_text()
    assert "timed out after 6 s" in index and "data-batch='failed'" in index and "data-batch='ok'" in index
    assert json.loads((out / batch.STATE_DIR / "slow.json").read_text())["error"] == "timed out after 6 s"


@pytest.mark.parametrize("value", ["0", "-3", "nan"])
def test_bad_timeout_exits_2(tmp_path, capsys, value):
    m = _matrix(tmp_path / "m.yaml", [{"notebook": str(NOTEBOOKS / "conv"), "parameters": dict(SMALL)}])
    assert cli.main(["batch", str(m), "--out", str(tmp_path / "r"), "--timeout", value]) == 2
    assert "--timeout must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
