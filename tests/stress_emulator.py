"""Stress the emulator the way the test suite and batch workers use it, in a process of its own.

Run as a script: ``python tests/stress_emulator.py ROUNDS``. Before the emulator runs, the process does what the
hang needed around it: torch's and OpenVINO's thread pools have run, the process has forked, and other processes
keep both cores busy. Each round then emulates a batch large enough for multi-threaded BLAS, forks again, and runs
torch and OpenVINO again. Prints "ok ROUNDS" at the end; on a hang, faulthandler prints every thread's stack after
``--dump-after`` seconds and the process exits 3, so the caller gets the evidence rather than a silent wait.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _busy_processes(n: int) -> list[subprocess.Popen]:
    # Separate processes, so that the load competes for the cores and not for this process's GIL.
    return [subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<600: pass"])
            for _ in range(n)]


def _fork_and_reap() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("rounds", type=int)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--load", type=int, default=2, help="busy processes beside this one")
    ap.add_argument("--dump-after", type=float, default=120.0)
    args = ap.parse_args()

    import openvino as ov
    import torch

    from gnaexp.emulator import emulate
    from gnaexp.models import forum_nets as nets, ir

    faulthandler.dump_traceback_later(args.dump_after, exit=True)  # exit code 1 with every thread's stack
    module, shape = nets.build_net("conv", nets.NetSpec(), seed=0)
    load = _busy_processes(args.load)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            xml = ir.save(ir.convert_torch(module, shape), Path(tmp) / "conv.xml")
            compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            rng = np.random.default_rng(0)
            x = rng.random((args.batch,) + shape, dtype=np.float32)
            first = None
            for i in range(args.rounds):
                with torch.no_grad():
                    module(torch.from_numpy(x[:8, 0]))
                compiled({0: x[0]})
                if i % 2 == 0:
                    _fork_and_reap()
                time.sleep(float(rng.random()) * 0.25)  # long enough, at times, for BLAS workers to go to sleep
                for sf in (1.0, 64.0, 4096.0):  # batches of one chunk, as in a sweep
                    emulate(str(xml), {"input": x[:256]}, sf)
                out = emulate(str(xml), {"input": x}, 2048.0 if i % 3 else 1.0).outputs["output"]
                if i % 3 and first is None:
                    first = out
                elif i % 3:
                    assert np.array_equal(out, first), "same inputs and sf gave different outputs"
    finally:
        for p in load:
            p.kill()
            p.wait()
    faulthandler.cancel_dump_traceback_later()
    print(f"ok {args.rounds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
