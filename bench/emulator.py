"""Emulator speed: the forum conv on 10,000 inputs through gna-emu and through OpenVINO CPU FP32.

OpenVINO is compiled once with the IR reshaped to batch 10,000 and timed on one infer() of the whole batch
(its fastest path, so the ratio is not flattered); the emulator gets the same batch as (10000, 1, 6, 255).
Both are timed after one warm-up run, first each in a loop of its own (the honest figure, printed first), then
alternating OpenVINO and emulator runs so that both see the same machine load; the best of ``--repeat`` runs
and, for the alternating runs, the median of the per-pair ratios are reported. Also times a 64-sf × 256-input
scale-factor sweep. Run: python bench/emulator.py

Design (why the emulator cannot hang, and how it uses both cores): OpenBLAS's own thread pool lost a wake-up
under load (the calling thread spun in ``inner_thread`` while the pool's workers slept), so the emulator never
enters a library thread pool. Its hot loops, input quantization and the convolution primitive, are compiled
(numba, ``gnaexp/emulator/native.py``), run wholly in the calling thread and release the GIL; the remaining
NumPy/BLAS work (fully connected layers) runs with every BLAS limited to one thread (threadpoolctl). The cores
are used by ``gnaexp/emulator/parallel.py``: a batch is cut into chunks of ``graph.CHUNK`` samples and a sweep
into one task per scale factor, run on plain Python threads started for the call and joined before it returns;
nothing persists to be inherited half-dead across ``fork()``. The convolution sums in float64, exact for int16
operands whatever the order (every partial sum < 2^41); tests compare it with an int64 reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def side_by_side(a, b, repeat: int) -> tuple[float, float, float]:
    """Time a and b alternately after a warm-up: (best a, best b, median of the per-pair ratios b/a)."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return min(ta), min(tb), float(np.median(np.array(tb) / np.array(ta)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--scale-factor", type=float, default=2048.0)
    args = ap.parse_args()

    import openvino as ov

    from gnaexp.emulator import emulate
    from gnaexp.emulator.sweep import sweep
    from gnaexp.models import forum_nets as nets, ir

    module, shape = nets.build_net("conv", nets.NetSpec(), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        xml = ir.save(ir.convert_torch(module, shape), Path(tmp) / "conv.xml")
        x = np.random.default_rng(0).random((args.n,) + shape, dtype=np.float32)

        core = ov.Core()
        m = core.read_model(str(xml))
        m.reshape({m.inputs[0]: [args.n] + list(shape[1:])})
        compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        req = compiled.create_infer_request()
        xb = np.ascontiguousarray(x[:, 0])
        feeds = {"input": x}
        alone_ov = best_of(lambda: req.infer({0: xb}), args.repeat)
        alone_emu = best_of(lambda: emulate(str(xml), feeds, args.scale_factor), args.repeat)
        t_ov, t_emu, ratio = side_by_side(lambda: req.infer({0: xb}),
                                          lambda: emulate(str(xml), feeds, args.scale_factor), args.repeat)
        ov_out = req.get_output_tensor(0).data.copy()
        em = emulate(str(xml), feeds, args.scale_factor)
        a, b = em.outputs["output"][:, 0].ravel().astype(np.float64), ov_out.ravel().astype(np.float64)
        cos = float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))

        sfs = list(np.geomspace(1, 2**20, 64))
        xs = x[:256]
        ref = {"output": ov_out[:256][:, None]}
        t_sweep = best_of(lambda: sweep(str(xml), {"input": xs}, ref, sfs), max(1, args.repeat // 2))

    print(f"forum conv, {args.n} inputs, sf {args.scale_factor:g}")
    print(f"each timed alone (best of {args.repeat}):")
    print(f"  OpenVINO CPU FP32 (batch {args.n}, one infer): {alone_ov * 1000:8.1f} ms")
    print(f"  gna-emu (emulated, same batch):               {alone_emu * 1000:8.1f} ms")
    print(f"  ratio emulator / OpenVINO:                    {alone_emu / alone_ov:8.2f}")
    print(f"timed alternately (best of {args.repeat} each):")
    print(f"  OpenVINO CPU FP32 (batch {args.n}, one infer): {t_ov * 1000:8.1f} ms")
    print(f"  gna-emu (emulated, same batch):               {t_emu * 1000:8.1f} ms")
    print(f"  ratio emulator / OpenVINO (best / best):      {t_emu / t_ov:8.2f}")
    print(f"  ratio emulator / OpenVINO (median of pairs):  {ratio:8.2f}")
    print(f"  cosine emulator vs OpenVINO CPU:              {cos:.6f}")
    print(f"sweep 64 sf x 256 inputs:                       {t_sweep * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
