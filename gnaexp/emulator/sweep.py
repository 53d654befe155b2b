"""Scale-factor sweeps: error vs input scale factor, where saturation starts, and a data-driven choice.

The IR is parsed once (``load_program`` caches it) and only the plan is rebuilt per scale factor, which is
cheap, so a 64-sf × 256-input sweep of the forum conv runs in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp import metrics
from gnaexp.emulator import parallel
from gnaexp.emulator.api import emulate, load_program

INT16_MAX = 32767
DEFAULT_HEADROOM = 0.5  # fraction of int16 full scale reserved: max|x|·sf ≤ (1 − headroom)·32767


def recommended_scale_factor(x: np.ndarray | Mapping[str, np.ndarray], headroom: float = DEFAULT_HEADROOM) -> float:
    """Largest sf with max|x|·sf ≤ (1 − headroom)·32767.

    headroom is the fraction of the int16 range kept free for inputs larger than those seen (default 0.5,
    i.e. 6 dB: inputs may grow to twice the observed peak before they saturate).
    """
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom must be in [0, 1), got {headroom}")
    arrays = x.values() if isinstance(x, Mapping) else [x]
    peak = max(float(np.max(np.abs(np.asarray(a, dtype=np.float64)))) for a in arrays)
    if peak == 0:
        return 1.0
    return float(np.float32((1 - headroom) * INT16_MAX / peak))


@dataclass
class SweepResult:
    scale_factors: list[float]
    cosine: list[float]
    l1: list[float]
    sqnr_db: list[float]
    input_saturations: list[int]
    accumulator_saturations: list[int]
    best_scale_factor: float  # minimises L1
    input_saturation_starts: float | None  # smallest swept sf with any input saturation
    accumulator_saturation_starts: float | None
    recommended_scale_factor: float
    headroom: float
    layout: str
    precision: str
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__, emulated=True)

    def table(self) -> str:
        rows = [f"{'sf':>12} {'cosine':>10} {'L1':>11} {'SQNR dB':>8} {'in sat':>7} {'acc sat':>7}"]
        for i, sf in enumerate(self.scale_factors):
            rows.append(f"{sf:>12g} {self.cosine[i]:>10.6f} {self.l1[i]:>11.4g} {self.sqnr_db[i]:>8.2f} "
                        f"{self.input_saturations[i]:>7d} {self.accumulator_saturations[i]:>7d}")
        def onset(sf: float | None) -> str:
            return f"from sf {sf:g}" if sf is not None else f"none up to sf {max(self.scale_factors):g}"

        rows.append(f"best sf (min L1): {self.best_scale_factor:g}; input saturation {onset(self.input_saturation_starts)}; "
                    f"accumulator saturation {onset(self.accumulator_saturation_starts)}; "
                    f"recommended from the input range (headroom {self.headroom:g}): {self.recommended_scale_factor:g}")
        return "\n".join(rows)


def sweep(
    model: Any,
    inputs: Mapping[str, np.ndarray],
    reference_outputs: Mapping[str, np.ndarray] | np.ndarray,
    scale_factors: Sequence[float],
    precision: str = "i16",
    layout: str = "correct",
    headroom: float = DEFAULT_HEADROOM,
) -> SweepResult:
    """Emulate at every scale factor and compare with the float reference (all outputs flattened together)."""
    prog = load_program(model)  # parsed once for the whole sweep
    if not isinstance(reference_outputs, Mapping):
        reference_outputs = {prog.results[0][0]: reference_outputs}
    names = [n for n, _ in prog.results]
    ref = np.concatenate([np.ravel(np.asarray(reference_outputs[n], dtype=np.float32)) for n in names])
    sfs = [float(s) for s in scale_factors]

    def one(sf: float) -> tuple[float, float, float, int, int]:
        em = emulate(prog, inputs, sf, precision, layout)
        test = np.concatenate([np.ravel(em.outputs[n]) for n in names])
        if test.size != ref.size:
            raise ValueError(f"reference has {ref.size} values, emulated outputs {test.size}: pass references "
                             "for the same inputs (same batch)")
        return (float(metrics.cosine(ref, test)), float(metrics.l1(ref, test)), float(metrics.sqnr_db(ref, test)),
                sum(r["saturations"] for r in em.plan if r["op"] == "Parameter"),
                sum(r["saturations"] for r in em.plan if r.get("bits") == 32))

    # One scale factor per task, on the cores (parallel.run_all: no BLAS thread pool involved).
    rows = parallel.run_all([lambda sf=sf: one(sf) for sf in sfs])
    out = dict(zip(("cos", "l1", "sqnr", "insat", "accsat"), (list(col) for col in zip(*rows))))
    first = lambda xs: next((sfs[i] for i, v in enumerate(xs) if v > 0), None)  # noqa: E731
    return SweepResult(
        scale_factors=sfs, cosine=out["cos"], l1=out["l1"], sqnr_db=out["sqnr"],
        input_saturations=out["insat"], accumulator_saturations=out["accsat"],
        best_scale_factor=sfs[int(np.nanargmin(out["l1"]))],
        input_saturation_starts=first(out["insat"]), accumulator_saturation_starts=first(out["accsat"]),
        recommended_scale_factor=recommended_scale_factor(inputs, headroom), headroom=headroom,
        layout=layout, precision=precision,
    )
