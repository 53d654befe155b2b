"""A plan's steps reuse the memory the previous step freed (emulator/heap.py) instead of faulting it in again."""

import subprocess
import sys
import textwrap

import pytest

from gnaexp.emulator import heap

CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import openvino as ov, openvino.opset13 as ops
    from gnaexp.core.gna_settings import GnaSettings
    from gnaexp.emulator import heap
    from gnaexp.emulator.api import load_program
    from gnaexp.emulator.graph import build_plan
    if sys.argv[1] == "without":
        heap._done = False  # as a process whose C library has no mallopt
    from gnaexp.emulator import native_gemm
    native_gemm.LANES = None  # the float64 product's work arrays, as a processor without int16 multiply-adds
    rng = np.random.default_rng(0)
    x = ops.parameter([1, 1, 1, 1024], np.float32, name="x")
    w = ops.constant(rng.normal(size=(64, 1, 1, 64)).astype(np.float32) * 0.05)
    ov.save_model(ov.Model([ops.relu(ops.convolution(x, w, [1, 16], [0, 0], [0, 0], [1, 1]))], [x]), sys.argv[2])
    prog = load_program(sys.argv[2])
    plan = build_plan(prog, {k: tuple(s) for k, _, s in prog.params}, GnaSettings())
    feeds = {prog.params[0][0]: rng.normal(size=(400, 1, 1, 1024)).astype(np.float32)}
    for _ in range(3):
        plan.run(feeds)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        plan.run(feeds)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
""")


def _faults_per_run(tmp_path, how: str) -> float:
    done = subprocess.run([sys.executable, "-c", CHILD, how, str(tmp_path / f"{how}.xml")], capture_output=True,
                          text=True, check=True)
    return float(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_repeated_runs_of_a_plan_reuse_their_work_arrays_instead_of_faulting_them_in(tmp_path):
    assert heap.keep_freed_memory() and heap.keep_freed_memory()  # glibc took it; the second call is a no-op
    without, kept = _faults_per_run(tmp_path, "without"), _faults_per_run(tmp_path, "with")
    # 400 samples × 64 filters × 61 positions of float64 sums (~12 MB of work arrays a run): glibc returned them
    # to the system after each run and faulted them in again (~2,000 page faults a run, 4 KiB each)
    assert without > 500
    assert kept < without / 20
