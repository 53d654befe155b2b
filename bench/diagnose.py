"""Diagnosis speed and hit rate: ``ladder()`` on the forum nets with planted defects.

For each net, a device-like output is made by applying one mistake of the hypothesis family to the emulated
output (or by emulating with the mistake: legacy layout, another scale factor), plus noise 80 dB below the
signal; the ladder must name it. Prints the median and worst time of one ladder call (the whole call: floor
sweep, layout paths, the hypothesis family, per-layer table), each call timed on its own after one warm-up,
and the hit rate. Run: python bench/diagnose.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from gnaexp import experiment
from gnaexp.diagnose import ladder
from gnaexp.emulator import emulate

PLANTS = {
    "clean": (lambda g, m, f, sf: g, "as-configured"),
    "channels 1,2,3,0": (lambda g, m, f, sf: g[:, [1, 2, 3, 0]], "channels-rotated-3"),
    "channels permuted": (lambda g, m, f, sf: g[:, [2, 0, 3, 1]], "channels-permuted"),
    "output NCW as NWC": (lambda g, m, f, sf: g.reshape(1, g.shape[2], g.shape[1]).transpose(0, 2, 1),
                          "output-ncw-as-nwc"),
    "one frame late": (lambda g, m, f, sf: np.concatenate([np.zeros_like(g[:, :, :1]), g[:, :, :-1]], 2),
                       "time-shifted-+1"),
    "time reversed": (lambda g, m, f, sf: g[:, :, ::-1], "time-reversed"),
    "device sf 1": (lambda g, m, f, sf: emulate(m.ir_xml, f, 1.0).outputs["output"], "sf-1"),
    "legacy concat": (lambda g, m, f, sf: emulate(m.ir_xml, f, sf, layout="legacy-concat").outputs["output"],
                      "legacy-concat"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed ladder calls per case")
    args = ap.parse_args()
    times, hits, total = [], 0, 0
    for name, seed, kind in (("conv", 1, "uniform01"), ("concat_conv", 2, "normal"), ("concat_conv", 5, "sines")):
        config = experiment.ExperimentConfig(experiment=name, seed=seed, input_kind=kind, scale_factor=2048.0)
        model = experiment.build_model(config)
        feed = experiment.make_inputs(config, model)
        good = emulate(model.ir_xml, feed, 2048.0).outputs["output"]
        ladder.ladder(config, good)  # warm-up: caches, compiled loops
        for plant, (make, expected) in PLANTS.items():
            if expected == "legacy-concat" and name == "conv":
                continue  # no concat before the conv: the path does not apply
            obs = make(good, model, feed, 2048.0)
            rms = float(np.sqrt(np.mean(np.square(obs, dtype=np.float64))))
            obs = (obs + np.random.default_rng(total).normal(0, rms * 1e-4, obs.shape)).astype(np.float32)
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = ladder.ladder(config, obs)
                times.append(time.perf_counter() - t0)
            got = result.observed.explained_by if result.observed else None
            total += 1
            hits += got == expected
            print(f"{name:<12} seed {seed} {kind:<9} {plant:<18} → {got or 'none'}"
                  f"{'' if got == expected else f'   MISSED (expected {expected})'}")
    print(f"\nhit rate: {hits}/{total}")
    print(f"one ladder call (with an observed output): median {statistics.median(times):.3f} s, "
          f"worst {max(times):.3f} s over {len(times)} calls (target ≤ 1.5 s)")


if __name__ == "__main__":
    main()
