"""From a record to a verdict: is the error quantization (at the floor), or something structural?

The one place a record's verdicts are worded, and the thresholds every verdict shares (the ladder's steps are
worded in ``ladder_verdicts``). Pure functions over a Record and its floor sweep (``Record.sweep``, made by
``emulator.sweep.floor_sweep``), reading structured fields only: the record ``gnaexp run`` writes, the notebooks,
the batch index and the CLI all show these words. The ladder that runs experiments to answer the question
lives in ``ladder.py``.

How a verdict is reached, in the order a careful engineer checks it:
1. FP32 backends (OpenVINO CPU, GNA SW_FP32) must match torch almost exactly — otherwise the export/IR is
   wrong, not the device.
2. The emulator with the correct layout gives the *quantization floor*: the error int16 GNA math alone
   produces for this net, input and scale factor; saturation, when the plan counts any, limits it instead.
3. A device (or imported, or other-layout) output at that floor is as right as GNA can be. Far above it, it is
   not explained by quantization; if it also stays put across scale factors, it is structural.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from gnaexp.core import metrics
from gnaexp.core.floor_sweep import FloorSweep
from gnaexp.diagnose.results import RecordVerdicts, WhatRan

# FP32 paths agree with torch to float32 rounding; anything worse means the model itself differs.
FP32_COSINE_MIN = 0.99999
# Saturation limits a result when more than this share of a layer's values clip; a few clipped outliers (an
# input slightly beyond the calibrated range) are named but do not make the floor a saturation verdict.
SATURATION_SHARE = 1e-3
FLOOR_MARGIN_DB = 3.0  # within this many dB of the emulated floor counts as "at the floor"
STEADY_DB = 3.0  # an SQNR that moves less than this across the usable scale factors is "unchanged by sf"
USABLE_FLOOR_DB = 30.0  # scale factors where the floor is at least this are not quantization-bound
SF_CAUSE_DB = 10.0  # another scale factor gaining more than this over a floor below USABLE_FLOOR_DB: sf is the cause
SENSITIVE_SPREAD_DB = 1.0  # a floor that moves more than this across the sweep reacts to the scale factor
LAYOUT_DEFECT_SQNR_DB = 20.0  # a layout path below this SQNR that moves less than STEADY_DB between two scale
# factors has the signature of a layout defect
# An input using less than this share of the int16 range (its scale factor below the one its peak allows) has too
# few levels for a network's decisions to hold.
INPUT_RANGE_CAUSE = 1 / 64


def worst(per_output: Mapping[str, metrics.Comparison]) -> metrics.Comparison:
    """The output with the lowest SQNR (NaN counts as lowest): a verdict speaks for the worst output."""
    return min(per_output.values(), key=lambda c: -math.inf if math.isnan(c.sqnr_db) else c.sqnr_db)


def non_finite_note(c: metrics.Comparison) -> str | None:
    return next((n for n in c.notes if "NaN/Inf" in n), None)


def _bits(record: Any) -> str:
    """The weight width the emulated plan used (int8 only where a layer really took 8-bit weights)."""
    for r in record.results:
        if r.kind == "emulated":
            from gnaexp.emulator.plan_row import Lane

            weightable = [p for p in r.plan_rows() if p.lane is Lane.INT32]
            return "int8-weight" if any(p.precision == "i8" for p in weightable) else "int16"
    return "int8-weight" if record.config.get("precision") == "i8" else "int16"


def _saturated_layers(result: Any, significant: bool) -> list[str]:
    """Layers with clipped values (those past SATURATION_SHARE if ``significant``, the others otherwise)."""
    out = []
    for row in result.plan_rows():
        n, total = row.saturations, row.values
        if n and (n > SATURATION_SHARE * total) == significant:
            out.append(f"{row.layer} ({n} of {total} values)" if total else f"{row.layer} ({n} values)")
    return out


def _fakequantize_sets_input_sf(result: Any) -> bool:
    return "fakequantize" in (result.info.get("input_sf_source") or {}).values()


def _input_sf(record: Any, result: Any) -> str:
    """"sf 2048", or the scale factor a FakeQuantize set in place of the configured one."""
    from gnaexp.core.gna_settings import format_scale_factors

    sf = format_scale_factors(record.config.get("scale_factor", 1.0))
    if _fakequantize_sets_input_sf(result):
        used = ", ".join(f"{v:.6g}" for v in (result.info.get("input_scale_factors_used") or {}).values())
        return f"input sf {used} (set by the IR's FakeQuantize; the configured sf {sf} has no effect)"
    return f"sf {sf}"


def reference_verdict(c: metrics.Comparison) -> str:
    if c.cosine >= FP32_COSINE_MIN:
        return f"matches the FP32 reference (float rounding only; cosine {c.cosine:.6f})"
    return (f"disagrees with the FP32 reference (cosine {c.cosine:.6f}): the exported model differs — fix the IR "
            "before looking at any device")


def _best_hint(sweep: FloorSweep) -> str:
    """The better scale factor where the floor is below usable, the same one the finding advises (the best that
    keeps the input headroom); nothing where the result is already usable."""
    best_sf, best = _best_within_headroom(sweep)
    floor = sweep.floor_sqnr_db
    if (not math.isfinite(floor) or floor < USABLE_FLOOR_DB) and best - floor > FLOOR_MARGIN_DB:
        return (f"; a higher scale factor lowers the error: sf {best_sf:g} gives {best:.1f} dB "
                f"(set scale_factor={best_sf:g})")
    return ""


def scale_factor_cause(sweep: FloorSweep | None) -> str | None:
    """The first line of a finding when the configured scale factor is what limits the result: its emulated floor
    is low and another scale factor of the sweep is far better. None where the scale factor is not the cause."""
    if sweep is None:
        return None
    sf, floor = sweep.scale_factor, sweep.floor_sqnr_db
    best_sf, best = _best_within_headroom(sweep)
    if not math.isfinite(best) or best_sf == sf:
        return None
    if math.isfinite(floor) and (floor >= USABLE_FLOOR_DB or best - floor < SF_CAUSE_DB):
        return None
    # Below the usable floor even at its best, the scale factor is still the first thing to fix; the rest is lost
    # in a layer (the per-layer step names it), and the line says so.
    rest = "" if best >= USABLE_FLOOR_DB else (f"; even there the floor stays below the usable {USABLE_FLOOR_DB:g} dB: "
                                               "the per-layer step names the layer that limits it")
    from gnaexp.core.gna_settings import at_scale_factor, format_scale_factors

    at = f"SQNR {floor:.1f} dB" if math.isfinite(floor) else "no usable output"
    held = sweep.per_input  # one sf per input: the advice changes the swept one and keeps the others
    setting = format_scale_factors(at_scale_factor(dict(held), best_sf) if held else best_sf)
    return (f"the scale factor is the cause: at sf {sf:g} the emulated GNA floor is {at}, at sf {best_sf:g} it is "
            f"{best:.1f} dB — set scale_factor={setting}{rest}")


def _best_within_headroom(sweep: FloorSweep) -> tuple[float, float]:
    """(sf, SQNR) to advise: the best of the sweep among the scale factors that keep the recommended headroom for
    inputs larger than these (the best overall where none does)."""
    trace = sweep.floor_trace.sqnr_db
    limit = sweep.recommended_scale_factor
    if trace and limit:
        kept = [(s, v) for s, v in zip(sweep.scale_factors, trace) if s <= limit and math.isfinite(v)]
        if kept:
            return max(kept, key=lambda p: p[1])
    return sweep.best_scale_factor, sweep.best_sqnr_db


def input_range_cause(used_sf: float, recommended_sf: float, what: str = "the input") -> str | None:
    """The first line of a finding when an input's scale factor leaves it far too few int16 levels (a streaming
    net's decisions, where no floor sweep ran). None where the scale factor is not the cause."""
    if not (used_sf > 0 and recommended_sf > 0) or used_sf >= recommended_sf * INPUT_RANGE_CAUSE:
        return None
    return (f"the scale factor is the cause: at sf {used_sf:g} {what} uses {100 * used_sf / recommended_sf:.2g} % of "
            f"the int16 range its peak allows — set scale_factor=recommended ({recommended_sf:.6g}, from the peak "
            "with 6 dB headroom)")


def result_status(record: Any, result: Any) -> str | None:
    """The status of one backend's result (``status.STATUSES``), by the same tests as ``result_verdict``; None for
    a result without metrics."""
    per = record.metrics.get(result.label)
    if not per:
        return None
    c = worst(per)
    if non_finite_note(c):
        return "defect"
    if result.kind == "reference":
        return "matches" if c.cosine >= FP32_COSINE_MIN else "defect"
    measured = _measured(result, c)
    if measured:
        return measured[1]
    usable = "matches" if c.sqnr_db >= USABLE_FLOOR_DB else "quantization-limited"
    sweep = record.sweep
    layout = result.settings.get("layout", "correct") if result.kind == "emulated" else None
    if layout == "correct":
        return "quantization-limited" if _saturated_layers(result, significant=True) else usable
    if sweep is None or sweep.floor_sqnr_db - c.sqnr_db <= FLOOR_MARGIN_DB:
        return usable
    trace = sweep.layouts.get(layout) if layout else None
    if trace is None:
        return "defect"  # far below the floor, and no emulated path to say whether the scale factor would help
    floor_trace = sweep.floor_trace.sqnr_db
    steady = [v for v, f in zip(trace.sqnr_db, floor_trace) if math.isfinite(f) and f >= USABLE_FLOOR_DB]
    if steady and _spread(steady) < STEADY_DB and sweep.best_sqnr_db - max(trace.sqnr_db) > FLOOR_MARGIN_DB:
        return "defect"
    return "quantization-limited"


def _spread(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) - min(finite) if finite else 0.0


def measured_where(ran: WhatRan, with_precision: bool = False) -> str:
    """What ran, as a verdict opens: "a GNA measurement (GNA_SW_EXACT[, i16]) on OpenVINO 2023.0.2"."""
    mode = (f" ({ran.mode}" + (f", {ran.precision}" if with_precision else "") + ")") if ran.mode else ""
    return f"a {ran.device} measurement{mode}" + (f" on OpenVINO {ran.openvino}" if ran.openvino else "")


def measured_verdict(ran: WhatRan | None, c: metrics.Comparison,
                     versus: Mapping[str, Any] | None = None) -> tuple[str, str] | None:
    """(verdict, status) of a measurement judged by what ran (``measurement.what_ran``): FP32 held to FP32, reduced
    float said to be neither, a GNA integer result identical to the emulation at its settings (``versus``:
    ``measurement.against_emulation``); None where the general verdict applies."""
    if not ran or ran.klass == "unknown":
        return None
    where = measured_where(ran)
    if ran.klass == "fp32":
        if c.cosine >= FP32_COSINE_MIN:
            return (f"{where} in FP32: matches the FP32 reference (cosine {c.cosine:.6f}) — held to FP32, not to a "
                    "GNA floor", "matches")
        return (f"{where} in FP32 that differs from the FP32 reference (cosine {c.cosine:.6f}, SQNR {c.sqnr_db:.1f} "
                "dB): the IR or that runtime differs — settle that before any GNA question", "defect")
    if ran.klass == "reduced-float":
        return (f"{where} in {ran.precision}, neither FP32 nor GNA: SQNR {c.sqnr_db:.1f} dB is {ran.precision} "
                "rounding, not a GNA figure — measure again in f32 (measure_on_device.py forces it off GNA) or on "
                "the GNA", "quantization-limited")
    versus = versus or {}
    if versus.get("identical"):
        sfs = ", ".join(f"{k} {v:g}" for k, v in versus["scale_factors"].items())
        return (f"{where}: identical to the emulation at the same settings (sf {sfs}, {versus['precision']}) — "
                f"quantization only; SQNR {c.sqnr_db:.1f} dB against FP32 is the int16 result of these settings",
                "matches" if c.sqnr_db >= USABLE_FLOOR_DB else "quantization-limited")
    return None


def _measured(result: Any, c: metrics.Comparison) -> tuple[str, str] | None:
    """``measured_verdict`` of a backend result, from what its info says ran."""
    if result.kind not in ("measured", "imported"):
        return None
    ran = result.info.get("what_ran")
    return measured_verdict(WhatRan.from_json(ran) if ran else None, c, result.info.get("against_emulation"))


def _emulation_gap(result: Any) -> str:
    """What a GNA integer measurement that differs from the emulation at its own settings adds to its verdict."""
    versus = result.info.get("against_emulation") or {}
    if versus.get("refused"):
        return f"; the emulator refuses its settings ({versus['refused']})"
    gaps = [p["sqnr_db"] for p in (versus.get("outputs") or {}).values() if not p["identical"]]
    if not gaps:
        return ""
    return (f"; it differs from the emulation at the same settings (SQNR {min(gaps):.1f} dB between them): the "
            "emulator and this plugin release differ on this net — send the bundle (gnaexp bundle)")


def result_verdict(record: Any, result: Any) -> str | None:
    """One sentence for one backend's result against the reference (None for the reference itself)."""
    per = record.metrics.get(result.label)
    if not per:
        return None
    c = worst(per)
    bad = non_finite_note(c)
    if bad:
        return f"no verdict: the {bad}"
    if result.kind == "reference":
        return reference_verdict(c)
    measured = _measured(result, c)
    if measured:
        return measured[0]
    return _general_verdict(record, result, c) + _emulation_gap(result)


def _general_verdict(record: Any, result: Any, c: metrics.Comparison) -> str:
    sweep = record.sweep
    layout = result.settings.get("layout", "correct") if result.kind == "emulated" else None
    bits = _bits(record)
    if layout == "correct":
        saturated = _saturated_layers(result, significant=True)
        if saturated:
            fix = ("the FakeQuantize ranges fix the scales here: 8-bit weights or narrower ranges avoid it"
                   if _fakequantize_sets_input_sf(result) else "lower the input scale factor (see the sweep)")
            return (f"emulated: SQNR {c.sqnr_db:.1f} dB, cosine {c.cosine:.6f}, with int16/int32 saturation in "
                    f"{', '.join(saturated)} — saturation, not rounding, limits this result: {fix}")
        clipped = _saturated_layers(result, significant=False)
        return (f"the emulated {bits} quantization floor for {_input_sf(record, result)}: SQNR {c.sqnr_db:.1f} dB, cosine "
                f"{c.cosine:.6f}" + (_best_hint(sweep) if sweep else "")
                + (f"; a few values clip in {', '.join(clipped)}, too few to matter" if clipped else ""))
    if sweep is None:
        return f"SQNR {c.sqnr_db:.1f} dB, cosine {c.cosine:.6f} (no emulated floor to compare with here)"
    sf, floor = sweep.scale_factor, sweep.floor_sqnr_db
    tag = f" (emulated, layout {layout})" if layout else ""
    gap = floor - c.sqnr_db
    if gap <= FLOOR_MARGIN_DB:
        return (f"error at the {bits} floor for sf {sf:g}{tag}: SQNR {c.sqnr_db:.1f} dB vs floor {floor:.1f} dB, "
                f"cosine {c.cosine:.6f} — quantization only{_best_hint(sweep)}")
    text = f"SQNR {c.sqnr_db:.1f} dB, far below the {bits} floor for sf {sf:g}{tag} ({floor:.1f} dB)"
    trace = sweep.layouts.get(layout) if layout else None
    if trace is None:
        return text + " → not explained by quantization alone; compare the layout hypotheses (gnaexp diagnose)"
    # Judge the reaction to sf where quantization no longer dominates the floor (its SQNR is high there).
    floor_trace = sweep.floor_trace.sqnr_db
    usable = [v for v, f in zip(trace.sqnr_db, floor_trace) if math.isfinite(f) and f >= USABLE_FLOOR_DB]
    best = max(trace.sqnr_db)
    if usable and _spread(usable) < STEADY_DB and sweep.best_sqnr_db - best > FLOOR_MARGIN_DB:
        return (text + f", and unchanged by the scale factor (best {best:.1f} dB over all sf, floor up to "
                f"{sweep.best_sqnr_db:.1f} dB) → not quantization: a structural (layout/graph) defect")
    return text + " → the error reacts to the scale factor: try the sf the sweep marks best"


def diagnose_record(record: Any) -> RecordVerdicts:
    """Verdict per backend label, plus the floor it was judged against; stored in the record."""
    verdicts = {}
    for r in record.results:
        v = result_verdict(record, r)
        if v is not None:
            verdicts[r.label] = v
    floor = record.sweep.floor_sqnr_db if record.sweep else None
    return RecordVerdicts(verdicts, floor)


def verdict_lines(record: Any) -> list[str]:
    """The record's verdicts as Markdown lines ("**label**: text."), the form notebooks and the index show."""
    verdicts = record.diagnosis.verdicts or diagnose_record(record).verdicts
    lines = [f"**{label}**: {text}." for label, text in verdicts.items()]
    cause = record_finding(record)
    return ([f"**finding**: {cause}."] if cause else []) + lines


def record_finding(record: Any) -> str | None:
    """The finding that leads a record's verdicts: the scale factor as the cause, where a GNA-like result ran."""
    return scale_factor_cause(record.sweep) if any(r.kind != "reference" for r in record.results) else None


# --- the POT study (default vs NNCF-quantized IR) ------------------------------------------------------------

def _find(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def study_verdict_lines(rows: list[dict[str, Any]], experiments: list[str], scale_factors: list[float]) -> list[str]:
    """The POT study (default vs NNCF-quantized IR, side by side) in words; every GNA figure there is emulated.

    rows: ``pot.Study.rows`` (one per net, IR, sf, layout and backend, with metrics and plan facts).
    """
    lines = []
    for name in experiments:
        pot_rows = _find(rows, experiment=name, ir="nncf", kind="emulated", layout="correct")
        if not pot_rows:
            continue
        same = len({round(r["cosine"], 12) for r in pot_rows}) == 1
        used = pot_rows[0]["input_sf_used"]
        low_sf = min(scale_factors)
        default_low = _find(rows, experiment=name, ir="default", kind="emulated", layout="correct",
                            scale_factor=low_sf)
        text = (f"**{name}**: the quantized IR's FakeQuantize range sets the input scale factor to {used:.6g}, so the "
                f"configured sf changes nothing ({'identical' if same else 'different'} results at sf "
                f"{', '.join(f'{s:g}' for s in scale_factors)}); emulated cosine {pot_rows[0]['cosine']:.6f}, "
                f"L1 {pot_rows[0]['l1']:.2e}")
        if default_low:
            text += f" against {default_low[0]['cosine']:.6f} / {default_low[0]['l1']:.2e} for the default IR at sf {low_sf:g}"
        acc, total = pot_rows[0]["accumulator_saturations"], pot_rows[0]["accumulator_values"]
        if acc > SATURATION_SHARE * total:
            text += (f"; {acc} of {total} accumulator values saturate int32 (16-bit weights × 16-bit inputs at full "
                     "scale, and no output statistics to shrink the weight scale); quantize with the output "
                     "FakeQuantize (gnaexp quantize's default) or weight_bits=8")
        lines.append(text + ".")
        legacy = _find(rows, experiment=name, ir="nncf", kind="emulated", layout="legacy-concat")
        if legacy and not math.isclose(legacy[0]["cosine"], pot_rows[0]["cosine"], abs_tol=1e-9):
            lines.append(f"**{name}** with the legacy concat layout stays at cosine {legacy[0]['cosine']:.3f} with the "
                         "quantized IR too, at every scale factor: quantization settings cannot repair a layout "
                         "defect — the forum's POT result for concat+conv (0.60).")
    return lines
