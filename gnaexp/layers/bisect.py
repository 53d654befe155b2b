"""Precision bisection: the smallest set of layers that, kept at the reference precision, brings the network
outputs above a target SQNR — as Polygraphy's ``debug precision`` does for TensorRT.

Greedy, then pruned: layers are added one at a time, worst local SQNR first (the layer that adds the most error
on its own), until the lowest output SQNR reaches the target; then each layer but the last added is taken out
again, and stays out if the target still holds. Every configuration run is a step of the result. How a layer is
kept depends on the backend (``gnaexp.layers.keepers``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnaexp.core import metrics
from gnaexp.core.errors import BadInput
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.layers.backends import LayerBackend
from gnaexp.layers.measured import Measured
from gnaexp.layers.results import BisectStep, Bisection, LayerComparison, LayerDiff

# [I] The default target on the outputs: 10 dB above the backend's per-layer floor (backends.FLOOR_DB: f16 60,
# bf16 40, int8 30, gna-emu 40 dB). The floor is what one layer adds by its precision's rounding alone; a network
# output 10 dB above it keeps its error a tenth of that layer's in power, whatever the layers added up to.
MARGIN_DB = 10.0
MAX_STEPS = 64  # configurations run at most per backend (each one quantizes or compiles the whole model again)


def default_target(backend: LayerBackend) -> float:
    return backend.floor_db() + MARGIN_DB


def check_target(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise BadInput(f"--target-sqnr must be a positive, finite number of dB (the output SQNR to reach), got "
                       f"{value}; e.g. --target-sqnr 40")
    return value


def ranked(rows: Sequence[LayerDiff], allowed: Callable[[LayerDiff], bool]) -> list[str]:
    """The layers worth keeping: worst local SQNR first (topological order among equals), then the allowed layers
    with no finite local error in topological order (an exact layer alone may still feed a quantizer the backend
    put before its consumer). A layer fused into the next compared one takes that one's error (a convolution's
    bias Add carries its value)."""
    scored: list[tuple[float, int, str]] = []
    rest: list[str] = []
    for i, r in enumerate(rows):
        if not allowed(r) or r.status not in ("compared", "fused"):
            continue
        carrier = r if r.status == "compared" else next((n for n in rows[i + 1:] if n.status == "compared"), None)
        value = None if carrier is None else carrier.local_sqnr_db
        if value is not None and math.isfinite(value):
            scored.append((value, i, r.layer))
        else:
            rest.append(r.layer)
    return [name for _, _, name in sorted(scored)] + rest


def output_sqnr(reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> float:
    """The lowest SQNR over the network outputs (NaN where an output is missing or of another size)."""
    values = []
    for key, ref in reference.items():
        got = outputs.get(key)
        if got is None or got.size != ref.size:
            return math.nan
        values.append(metrics.sqnr_db(ref, got.reshape(ref.shape)))
    return min(values) if values else math.nan


def search(candidates: Sequence[str], evaluate: Callable[[tuple[str, ...]], float], target: float,
           limit: int = MAX_STEPS) -> tuple[list[BisectStep], list[str], bool]:
    """(every step, the layers kept, whether the target was reached). Nothing kept first, then every candidate
    (the target out of reach if even that stays below it), then greedy over ``candidates`` in order, then pruned.
    ``evaluate(kept)``: the lowest output SQNR with those layers kept."""
    steps: list[BisectStep] = []

    def run(kept: Sequence[str], phase: str) -> bool:
        value = evaluate(tuple(kept))
        steps.append(BisectStep(list(kept), value, phase))
        return value >= target  # NaN never reaches it

    if run([], "start"):
        return steps, [], True
    if not candidates or not run(candidates, "all"):
        return steps, list(candidates), False
    kept: list[str] = []
    for name in candidates:
        if len(steps) >= limit:  # the last step that reached the target: every candidate kept
            return steps, list(candidates), True
        kept.append(name)
        if run(kept, "add"):
            break
    for name in kept[:-1]:  # the last one added is needed: the step before it was below the target
        if len(steps) >= limit:
            break
        trial = [k for k in kept if k != name]
        if run(trial, "prune"):
            kept = trial
    return steps, kept, True


def bisect_backend(backend: LayerBackend, rows: Sequence[LayerDiff], reference: Mapping[str, np.ndarray],
                   float_xml: Path, feed: Mapping[str, np.ndarray], target: float, settings: GnaSettings,
                   calibration: Mapping[str, Any]) -> Bisection:
    from gnaexp.layers.keepers import keeper_for

    keeper = keeper_for(backend, float_xml, feed, settings, calibration)
    result = Bisection(target, keeper.how, notes=list(keeper.notes))
    if keeper.run is None:
        return result
    run = keeper.run
    candidates = ranked(rows, keeper.allowed)
    seen: dict[tuple[str, ...], dict[str, np.ndarray]] = {}

    def outputs(kept: tuple[str, ...]) -> dict[str, np.ndarray]:
        if kept not in seen:
            seen[kept] = run(kept)
        return seen[kept]
    result.steps, result.kept, result.reached = search(candidates, lambda kept: output_sqnr(reference, outputs(kept)),
                                                       target)
    everything = seen.get(tuple(candidates))
    if keeper.check_honoured and everything is not None:
        plain = seen[()]
        result.honoured = any(k not in everything or not np.array_equal(plain[k], everything[k]) for k in plain)
        if not result.honoured:
            who = ("this OpenVINO does not read the precision mark" if keeper.refused
                   else f"{backend.device} does not honour OpenVINO's precision marks")
            result.notes.append(f"{who}: with every one of the {len(candidates)} candidate layers marked f32 the "
                                f"outputs are bit for bit the same as unmarked; nothing can be kept at f32 this way")
            return result
    if keeper.refused:
        result.notes.append(f"OpenVINO did not take the mark on {len(keeper.refused)} layer(s) "
                            f"({', '.join(sorted(keeper.refused)[:3])}): they ran at {backend.precision} in every step")
    if not result.reached and not candidates:
        result.notes.append(f"the target {target:g} dB is out of reach: no layer of this model can be kept this way; "
                            f"the lowest output stays at {result.steps[-1].output_sqnr_db:.1f} dB")
    elif not result.reached:
        result.notes.append(f"the target {target:g} dB is out of reach: even with every one of the "
                            f"{len(candidates)} candidate layers kept the lowest output is at "
                            f"{result.steps[-1].output_sqnr_db:.1f} dB")
    return result


def bisect_all(result: LayerComparison, reference: Measured, float_xml: Path, feed: Mapping[str, np.ndarray],
               backends: Sequence[LayerBackend], target: float | None, settings: GnaSettings,
               calibration: Mapping[str, Any]) -> dict[str, Bisection]:
    """A bisection per backend under test run here (a loaded dump has no device to run again)."""
    outputs = {r.layer for r in result.rows if r.is_output}
    ref_outputs = {k: v for k, v in reference.values.items() if k in outputs}
    for label in result.backends[len(backends) - 1:]:
        result.notes.setdefault(label, []).append("no bisection: it needs the device, to run again with layers kept")
    return {b.spec: bisect_backend(b, result.rows_of(b.spec), ref_outputs, float_xml, feed,
                                   default_target(b) if target is None else target, settings, calibration)
            for b in backends[1:]}
