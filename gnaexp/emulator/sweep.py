"""Scale-factor sweeps: error vs input scale factor, where saturation starts, and a data-driven choice.

The IR is parsed once (``load_program`` caches it) and only the plan is rebuilt per scale factor, which is
cheap, so a 64-sf × 256-input sweep of the forum conv runs in well under a second.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.core import metrics
from gnaexp.core.floor_sweep import FloorSweep, LayoutTrace
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.emulator import parallel, releases
from gnaexp.emulator.api import emulate, load_program
from gnaexp.emulator.int_ranges import INT16_MAX
from gnaexp.emulator.plan_row import Lane
from gnaexp.core.errors import BadInput

DEFAULT_HEADROOM = 0.5  # fraction of int16 full scale reserved: max|x|·sf ≤ (1 − headroom)·32767


def _peak(x: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> float:
    arrays = x.values() if isinstance(x, Mapping) else [x] if isinstance(x, np.ndarray) else list(x)
    return max(float(np.max(np.abs(np.asarray(a, dtype=np.float64)))) for a in arrays)


def input_saturation_onset(x: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> float:
    """Scale factor above which the largest input magnitude leaves the int16 input range (inf for all zeros)."""
    peak = _peak(x)
    return math.inf if peak == 0 else INT16_MAX / peak


def best_index(sqnr_db: Sequence[float]) -> int:
    """The one definition of the best scale factor: highest SQNR against the reference (first if tied)."""
    values = np.asarray(sqnr_db, dtype=np.float64)
    finite = np.where(np.isnan(values), -np.inf, values)
    return int(np.argmax(finite))


def recommended_scale_factor(x: np.ndarray | Mapping[str, np.ndarray], headroom: float = DEFAULT_HEADROOM) -> float:
    """Largest sf with max|x|·sf ≤ (1 − headroom)·32767.

    headroom is the fraction of the int16 range kept free for inputs larger than those seen (default 0.5,
    i.e. 6 dB: inputs may grow to twice the observed peak before they saturate).
    """
    if not 0 <= headroom < 1:
        raise BadInput(f"headroom must be in [0, 1), got {headroom}")
    peak = _peak(x)
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
    best_scale_factor: float  # highest SQNR (best_index)
    input_saturation_starts: float | None  # smallest swept sf with any input saturation
    accumulator_saturation_starts: float | None
    recommended_scale_factor: float
    headroom: float
    layout: str
    precision: str
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # per sf: why the emulator refuses it ("" where it runs)
    worst_output: list[str] = field(default_factory=list)  # per sf, with several outputs: whose figures the row holds
    plugin_release: str = releases.DEFAULT_RELEASE  # the GNA plugin release the emulator computed as

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__, emulated=True)

    def table(self) -> str:
        worst = bool(self.worst_output)
        rows = [f"{'sf':>12} {'cosine':>10} {'L1':>11} {'SQNR dB':>8} {'in sat':>7} {'acc sat':>7}"
                + ("  worst output" if worst else "")]
        for i, sf in enumerate(self.scale_factors):
            if self.refused and self.refused[i]:
                rows.append(f"{sf:>12g} refused: {self.refused[i]}")
                continue
            rows.append(f"{sf:>12g} {self.cosine[i]:>10.6f} {self.l1[i]:>11.4g} {self.sqnr_db[i]:>8.2f} "
                        f"{self.input_saturations[i]:>7d} {self.accumulator_saturations[i]:>7d}"
                        + (f"  {self.worst_output[i]}" if worst else ""))
        def onset(sf: float | None) -> str:
            return f"from sf {sf:g}" if sf is not None else f"none up to sf {max(self.scale_factors):g}"

        rows.append(f"best sf (highest SQNR): {self.best_scale_factor:g}; input saturation {onset(self.input_saturation_starts)}; "
                    f"accumulator saturation {onset(self.accumulator_saturation_starts)}; "
                    f"recommended from the input range (headroom {self.headroom:g}): {self.recommended_scale_factor:g}")
        return "\n".join(rows)


def sweep(
    model: Any,
    inputs: Mapping[str, np.ndarray],
    reference_outputs: Mapping[str, np.ndarray] | np.ndarray,
    scale_factors: Sequence[float],
    settings: GnaSettings = GnaSettings(),
    headroom: float = DEFAULT_HEADROOM,
) -> SweepResult:
    """Emulate at every scale factor and compare with the float reference. With several outputs each row holds
    the worst output's figures (lowest SQNR; ``worst_output`` names it): flattened together, a large output would
    hide a small one's error.

    The swept scale factor replaces ``settings``' main one: with one per input, the first input's; the others
    are held."""
    per_input, precision, layout = settings.per_input, settings.precision, settings.layout
    prog = load_program(model, inputs, settings.porting)  # parsed once for the sweep (a dynamic model: reshaped to the inputs)
    if not isinstance(reference_outputs, Mapping):
        reference_outputs = {prog.results[0][0]: reference_outputs}
    names = [n for n, _ in prog.results]
    refs = {n: np.ravel(np.asarray(reference_outputs[n], dtype=np.float32)) for n in names}
    ref_size = sum(r.size for r in refs.values())
    sfs = [float(s) for s in scale_factors]

    def worst(em: Any) -> tuple[float, float, float, str]:
        per = []
        for n in names:
            test = np.ravel(em.outputs[n])
            if test.size != refs[n].size:
                return math.nan, math.nan, math.nan, n
            per.append((float(metrics.sqnr_db(refs[n], test)), float(metrics.cosine(refs[n], test)),
                        float(metrics.l1(refs[n], test)), n))
        return min(per, key=lambda row: (row[0], row[1]))

    def one(sf: float) -> tuple[float, float, float, int, int, str, int, str]:
        try:
            em = emulate(prog, inputs, settings=settings.at(sf))
        except ValueError as exc:  # refused at this sf, as the plugin would: a row that says why; the rest goes on
            return math.nan, math.nan, math.nan, 0, 0, str(exc).splitlines()[0] if str(exc) else repr(exc), 0, ""
        sqnr, cos, l1, output = worst(em)
        return (cos, l1, sqnr, sum(r.saturations for r in em.plan if r.op == "Parameter"),
                sum(r.saturations for r in em.plan if r.lane is Lane.INT32), "",
                sum(np.size(em.outputs[n]) for n in names), output)

    # One scale factor per task, on the cores (parallel.run_all: no BLAS thread pool involved).
    rows = parallel.run_all([functools.partial(one, sf) for sf in sfs])
    out = dict(zip(("cos", "l1", "sqnr", "insat", "accsat", "refused", "size", "worst"),
                   (list(col) for col in zip(*rows))))
    if any(size not in (0, ref_size) for size in out["size"]):
        raise BadInput(f"reference has {ref_size} values, emulated outputs {max(out['size'])}: pass references "
                         "for the same inputs (same batch)")
    if all(out["refused"]):
        raise BadInput(f"the emulator refuses every scale factor swept ({sfs[0]:g}: {out['refused'][0]})")
    first = lambda xs: next((sfs[i] for i, v in enumerate(xs) if v > 0), None)  # noqa: E731
    return SweepResult(
        scale_factors=sfs, cosine=out["cos"], l1=out["l1"], sqnr_db=out["sqnr"],
        input_saturations=out["insat"], accumulator_saturations=out["accsat"],
        best_scale_factor=sfs[best_index(out["sqnr"])],
        input_saturation_starts=first(out["insat"]), accumulator_saturation_starts=first(out["accsat"]),
        recommended_scale_factor=recommended_scale_factor(_swept_inputs(inputs, per_input), headroom),
        headroom=headroom,
        layout=layout, precision=precision, refused=out["refused"], plugin_release=settings.plugin_release,
        worst_output=out["worst"] if len(names) > 1 else [],
        notes=[f"sf swept on input {next(iter(per_input))!r}; held: "
               + ", ".join(f"{k} at sf {v:g}" for k, v in list(per_input.items())[1:])] if per_input else [],
    )


def _swept_inputs(inputs: Mapping[str, np.ndarray], per_input: Mapping[str, float] | None) -> Mapping[str, np.ndarray]:
    """The inputs whose range sets the recommended sf: the swept one of a per-input set (where the inputs name it)."""
    main = next(iter(per_input)) if per_input else None
    return {main: inputs[main]} if main is not None and main in inputs else inputs


# Scale factors a run's floor sweep probes: powers of two up to the int16 range (plus the configured one).
FLOOR_SCALE_FACTORS = tuple(float(2 ** k) for k in range(16))


def floor_sweep(model: Any, inputs: Mapping[str, np.ndarray], reference_outputs: Mapping[str, np.ndarray],
                settings: GnaSettings, layouts: Sequence[str] = ("correct",),
                scale_factors: Sequence[float] = FLOOR_SCALE_FACTORS) -> FloorSweep:
    """The emulated quantization floor of one run: what verdicts, plots and the index all read.

    The correct layout (the floor) and any other layout asked for, at every sweep scale factor plus the
    configured one; the floor at the configured sf, the best sf (``best_index``) and where inputs saturate.
    Per-input scale factors (name → sf): the first input's is swept and the others' held.
    """
    per_input, precision = settings.per_input, settings.precision
    sf = settings.main_scale_factor
    sfs = sorted({float(s) for s in scale_factors} | {sf})
    layouts = ["correct"] + [lay for lay in layouts if lay != "correct"]
    series = {}
    for layout in layouts:
        res = sweep(model, inputs, reference_outputs, sfs, settings.with_layout(layout))
        series[layout] = LayoutTrace(res.sqnr_db, res.cosine, res.l1, res.input_saturations,
                                     res.accumulator_saturations, res.refused)
        if layout == "correct":
            floor = res
    at = sfs.index(sf)
    best = best_index(floor.sqnr_db)
    recommended = floor.recommended_scale_factor
    recommended_note = ""
    if recommended not in sfs:
        try:
            emulate(load_program(model, inputs, settings.porting), inputs,
                    settings=settings.at(recommended).with_layout("correct"))
        except ValueError as exc:  # never advise a scale factor the emulator refuses
            recommended_note = (f"the emulator refuses sf {recommended:g} from the input range ({exc}); "
                                f"the best accepted sf {sfs[best]:g} is advised instead")
            recommended = sfs[best]
    elif floor.refused[sfs.index(recommended)]:
        recommended = sfs[best]
    return FloorSweep(sfs, sf, precision, settings.plugin_release, series, floor.sqnr_db[at], floor.cosine[at],
                      sfs[best], floor.sqnr_db[best], input_saturation_onset(_swept_inputs(inputs, per_input)),
                      recommended, floor.refused[at], recommended_note, per_input or None)
