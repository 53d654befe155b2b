"""The emulator's parallel execution: no BLAS thread pool, same numbers on any thread count, never a silent hang."""

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from gnaexp.models import forum_nets as nets, ir
import conv_reference as conv_ref
from gnaexp.emulator import conv as cv, emulate, parallel
from gnaexp.emulator.graph import CHUNK, SPLIT_MIN

ROOT = Path(__file__).resolve().parent.parent


def _blas_threads() -> list[int]:
    """Threads of NumPy's own BLAS (the one the emulator calls; other libraries may bring BLAS builds of their own)."""
    return [lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas" and "numpy" in lib["filepath"]]


def test_blas_is_single_threaded_inside_and_restored_after():
    before = _blas_threads()
    assert before, "numpy's BLAS is visible to threadpoolctl"
    with parallel.single_threaded_blas():
        assert _blas_threads() == [1] * len(before)
        with parallel.single_threaded_blas():  # re-entrant
            assert _blas_threads() == [1] * len(before)
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


def test_run_all_keeps_order_uses_threads_and_raises_the_first_error():
    seen: set[str] = set()

    def task(i):
        seen.add(threading.current_thread().name)
        with parallel.single_threaded_blas():
            return i * i, _blas_threads()

    results = parallel.run_all([lambda i=i: task(i) for i in range(40)], threads=2)
    assert [r[0] for r in results] == [i * i for i in range(40)]
    assert all(set(r[1]) == {1} for r in results)  # BLAS stays at one thread inside every task
    assert len(seen) == 2  # the caller and one helper thread

    def boom():
        raise ValueError("task failed")

    with pytest.raises(ValueError, match="task failed"):
        parallel.run_all([lambda: 1, boom, lambda: 2], threads=2)
    nested = parallel.run_all([lambda: parallel.run_all([lambda: 1, lambda: 2], threads=2)] * 3, threads=2)
    assert nested == [[1, 2]] * 3  # a task's own run_all runs inline


def _helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gnaexp-emulator")]


def test_helper_threads_serve_the_next_call_and_end_when_idle(monkeypatch):
    """Consecutive calls (a stream's steps) share one helper; it ends IDLE_SECONDS after the last call, and a
    call after that starts another."""
    monkeypatch.setattr(parallel, "IDLE_SECONDS", 0.3)
    time.sleep(parallel.IDLE_SECONDS + 1.5)  # helpers of earlier calls (at the old idle time) have ended

    def name():
        time.sleep(0.01)  # long enough for the helper to take a task
        return threading.current_thread().name

    names = set()
    for _ in range(20):
        names |= set(parallel.run_all([name] * 4, threads=2))
    helpers = _helpers()
    assert len(helpers) == 1 and names == {"MainThread", helpers[0].name}  # the same helper every call
    helpers[0].join(timeout=5)
    assert not helpers[0].is_alive() and not _helpers()
    assert len(set(parallel.run_all([name] * 4, threads=2))) == 2


def test_a_forked_child_starts_without_the_parents_helpers():
    """After fork() the child has no helper thread but the module's state said so: it starts its own."""
    import os

    parallel.run_all([lambda: 1] * 2, threads=2)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's helper does not exist here
        ok = parallel.run_all([lambda: (time.sleep(0.01), threading.current_thread().name)[1]] * 8, threads=2)
        os.write(write, b"ok" if len(set(ok)) == 2 else b"no")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok" and status == 0


@pytest.fixture(scope="module")
def conv_ir(tmp_path_factory):
    module, shape = nets.build_net("conv", nets.NetSpec(), seed=0)
    return ir.save(ir.convert_torch(module, shape), tmp_path_factory.mktemp("ir") / "conv.xml"), shape


@pytest.mark.parametrize("n", [2 * CHUNK + 37, 3 * SPLIT_MIN + 1])  # chunks, the last one short; a step of N streams
@pytest.mark.parametrize("sf", [1.0, 2048.0])
def test_batch_split_across_threads_is_bit_exact(conv_ir, monkeypatch, sf, n):
    """Chunks on several threads give the same bits as one chunk at a time, and as the int64 reference."""
    path, shape = conv_ir
    x = np.random.default_rng(5).random((n,) + shape, dtype=np.float32) * 4 - 2
    threaded = emulate(str(path), {"input": x}, sf, keep_ints=True)
    monkeypatch.setattr(parallel, "available_cores", lambda: 1)
    serial = emulate(str(path), {"input": x}, sf, keep_ints=True)
    assert np.array_equal(threaded.outputs["output"], serial.outputs["output"])
    assert [r.saturations for r in threaded.plan] == [r.saturations for r in serial.plan]
    for layer, ints in threaded.ints.items():  # every layer's integers, not only the output
        assert np.array_equal(ints, serial.ints[layer]), layer


def test_conv_primitive_exact_on_threads():
    """The primitive called from two threads at once equals the int64 reference."""
    rng = np.random.default_rng(9)
    cases = []
    for c, width, k, s, f, xmax in ((6, 255, 3, 2, 4, 2048), (4, 64, 5, 1, 8, 30000), (3, 40, 2, 2, 4, 7)):
        x = rng.integers(-xmax, xmax + 1, size=(300, c, width)).astype(np.float64)
        w = rng.integers(-16384, 16385, size=(f, c, k)).astype(np.float64)
        b = rng.integers(-(2**20), 2**20, size=f).astype(np.float64)
        geo = cv.geometry(c, width, k, s, f)
        cases.append((x, w, b, s, geo, xmax))

    def one(case):
        x, w, b, s, geo, xmax = case
        got, sat = cv.conv1d(x, cv.interleave_filters(w, geo.nfc), b, geo)
        ref, ref_sat = conv_ref.conv1d_ncw_reference(x, w, b, s)
        return np.array_equal(got, ref) and sat == ref_sat

    assert all(parallel.run_all([lambda c=c: one(c) for c in cases * 4], threads=2))


def test_stress_no_hang_after_torch_openvino_and_fork_under_load():
    """The reproduction: emulator GEMMs after torch and OpenVINO ran, after forks, with both cores loaded.

    Bounded: 40 rounds in a child process that dumps every thread's stack and exits if it has not finished
    in 240 s (a hang, not slowness: the rounds take a few seconds when nothing is stuck).
    """
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "stress_emulator.py"), "40", "--dump-after", "240"],
                          capture_output=True, text=True, timeout=290, cwd=str(ROOT))
    assert proc.returncode == 0, f"stress run stopped (hang?):\n{proc.stdout}\n{proc.stderr[-6000:]}"
    assert "ok 40" in proc.stdout


def test_pytest_timeout_dumps_every_thread_and_fails(tmp_path):
    """The suite's per-test timeout (pyproject.toml) ends a hung test with the stacks of all threads."""
    (tmp_path / "test_hangs.py").write_text(textwrap.dedent("""
        import threading, time

        def spin_forever_in_helper():
            time.sleep(120)

        def test_hangs():
            threading.Thread(target=spin_forever_in_helper, name="helper", daemon=True).start()
            time.sleep(120)
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", str(ROOT / "pyproject.toml"),
                           "--rootdir", str(tmp_path), "-o", "timeout=3", str(tmp_path / "test_hangs.py")],
                          capture_output=True, text=True, timeout=100, cwd=str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Timeout" in out
    assert "Stack of helper" in out and "spin_forever_in_helper" in out  # other threads' stacks too
    assert "Stack of MainThread" in out
