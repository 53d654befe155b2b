"""The wording of the diagnosis ladder's steps (``ladder.py`` computes them, this module words them): the FP32
check, the floor, the scale-factor sensitivity, the layout paths, the observed output against the hypotheses and
the per-layer table. The thresholds they share with the record verdicts live in ``verdicts``; a record's verdicts
are worded there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from gnaexp.core import metrics
from gnaexp.core.floor_sweep import FloorSweep
from gnaexp.diagnose.results import LayerRow, LayoutRow
from gnaexp.diagnose.verdicts import (FLOOR_MARGIN_DB, LAYOUT_DEFECT_SQNR_DB, SATURATION_SHARE, SENSITIVE_SPREAD_DB,
                                      STEADY_DB, USABLE_FLOOR_DB, non_finite_note)

if TYPE_CHECKING:  # the emulator package is imported only where a plan is read (it is slow to import)
    from gnaexp.emulator.plan_row import PlanRow


def sensitivity_verdict(spread_db: float, fakequantize_sets_scale: bool) -> str:
    """The ladder's sensitivity step: quantization error must react to the scale factor, structural error need not."""
    if spread_db > SENSITIVE_SPREAD_DB:
        return (f"the emulated floor moves by {spread_db:.1f} dB across scale factors: the quantization error reacts "
                "to the scale factor as it should")
    return (f"the emulated floor moves by only {spread_db:.1f} dB across scale factors"
            + (" (FakeQuantize ranges fix the scale)" if fakequantize_sets_scale else ""))


def fp32_verdict(ok: bool) -> str:
    """The ladder's first step: OpenVINO CPU FP32 on the IR against torch."""
    return ("OpenVINO CPU FP32 matches torch: the IR is the same net" if ok else
            "OpenVINO CPU FP32 differs from torch: fix the export before looking at any device")


def floor_verdict(sweep: FloorSweep, sf: float, floor: metrics.Comparison, fq_override: bool,
                  headroom: float, per_output: Mapping[str, metrics.Comparison] | None = None) -> str:
    """The ladder's floor step: the emulated floor at ``sf``, the best of the sweep, and the scale factor the
    inputs' range advises (keeping ``headroom`` of int16 free), or why sf has no effect."""
    text = (f"quantization floor at sf {sf:g}: SQNR {floor.sqnr_db:.1f} dB, cosine {floor.cosine:.6f}, L1 "
            f"{floor.l1:.2e} (emulated); best over sf {min(sweep.scale_factors):g}…{max(sweep.scale_factors):g}: "
            f"{sweep.best_sqnr_db:.1f} dB at sf {sweep.best_scale_factor:g}")
    text += (" — the IR's FakeQuantize ranges set the input scale factor, so sf has no effect" if fq_override else
             f"; from these inputs' range (keeping {headroom:.0%} of int16 free) use sf ≈ "
             f"{sweep.recommended_scale_factor:.6g}")
    if per_output:
        text += "; per output: " + ", ".join(f"{name} {c.sqnr_db:.1f} dB" for name, c in per_output.items())
    return text


def layout_verdict(rows: list[LayoutRow]) -> str:
    """The ladder's layout step: what each plugin layout path other than the correct one would give (``rows[1:]``),
    and where its error has a layout defect's signature (far above the floor, unmoved by the scale factor)."""
    parts = []
    for r in rows[1:]:
        if r.same_as_correct:
            parts.append(f"'{r.layout}' computes the same as the correct layout for this net")
            continue
        other_cosine, other_sqnr, other_sf = (float(v if v is not None else math.nan)
                                              for v in (r.cosine_at_other_sf, r.sqnr_at_other_sf, r.other_sf))
        text = (f"'{r.layout}' would give cosine {r.cosine:.3f} (Pearson {r.pearson:.3f}, SQNR "
                f"{r.sqnr_db:.1f} dB) at this sf and cosine {other_cosine:.3f} at sf {other_sf:g}")
        if abs(other_sqnr - r.sqnr_db) < STEADY_DB and r.sqnr_db < LAYOUT_DEFECT_SQNR_DB:
            text += (" — an error far above the floor that does not move with the scale factor: the signature of a "
                     "layout defect, not of quantization")
        parts.append(text)
    return "; ".join(parts) or "no alternative layout applies"


def refused_scale_factor(sf: float, reason: str, used_sf: float) -> str:
    """The first line of a study whose configured scale factor the emulator refuses (as the plugin would)."""
    return (f"the scale factor is the cause: the GNA plugin would refuse sf {sf:g} ({reason}) — the steps below use "
            f"sf {used_sf:g}, the best it accepts; set scale_factor={used_sf:g}")


# --- the observed output against the hypotheses (``hypotheses.score`` ranks them) ----------------------------

# A device that follows the rules differs from the emulation by rounding noise at most, i.e. no more than the
# quantization error itself: a hypothesis reproduces an observed output when the observed output sits within
# FLOOR_MARGIN_DB of the floor against it (or above EXPLAIN_MIN_DB when the floor is higher), and it is *the*
# explanation when it also beats every other distinct hypothesis by EXPLAIN_MARGIN_DB (error amplitude halved).
# Measured on the planted tests (tests/test_hypotheses.py): a planted mistake scores ≥ 60 dB against its own
# hypothesis and ≤ 35 dB against the next one on the forum nets, so both thresholds sit well inside the gap.
EXPLAIN_MIN_DB = 40.0
EXPLAIN_MARGIN_DB = 6.0


def explains(rows: list[Any], floor_sqnr_db: float, observed_sqnr_db: float | None = None) -> tuple[Any | None, str]:
    """(the explaining row or None, why). rows: ``hypotheses.score`` output, best first.

    observed_sqnr_db: the observed output against FP32. At or above the floor there is no defect to explain,
    whichever hypothesis happens to score best (an FP32 output matches the highest-sf emulation best).
    """
    if not rows:
        return None, "no hypothesis has the observed output's shape"
    floor = floor_sqnr_db if math.isfinite(floor_sqnr_db) else EXPLAIN_MIN_DB
    configured = next((r for r in rows if r.hypothesis == "as-configured"), None)
    if observed_sqnr_db is not None and configured is not None and observed_sqnr_db >= floor - FLOOR_MARGIN_DB:
        return configured, "the observed output is at or above the quantization floor"
    need = min(floor - FLOOR_MARGIN_DB, EXPLAIN_MIN_DB)
    best = rows[0]
    if not best.sqnr_db >= need:
        return None, f"the best hypothesis reaches {best.sqnr_db:.1f} dB, below the {need:.1f} dB needed"
    if configured is not None and configured is not best and configured.sqnr_db >= need and \
            best.sqnr_db - configured.sqnr_db < EXPLAIN_MARGIN_DB:
        return configured, "the configured computation reproduces the output as well as any mistake"
    runner = rows[1] if len(rows) > 1 else None
    if runner is not None and best.sqnr_db - runner.sqnr_db < EXPLAIN_MARGIN_DB:
        return None, (f"'{best.hypothesis}' ({best.sqnr_db:.1f} dB) and '{runner.hypothesis}' "
                      f"({runner.sqnr_db:.1f} dB) reproduce it about equally")
    return best, "reproduces the output and beats every other hypothesis by at least " \
                 f"{EXPLAIN_MARGIN_DB:g} dB"


def hypothesis_verdict(rows: list[Any], explained: tuple[Any | None, str],
                       floor_sqnr_db: float, scale_factor: float, saturation: str | None = None,
                       observed_sqnr_db: float | None = None) -> str:
    """One sentence naming the mechanism behind an observed output.

    rows: ``hypotheses.score``, best first; explained: what ``explains`` made of them; saturation: the plan's
    saturation fact at the configured sf (``saturation_fact``), if any; observed_sqnr_db: against FP32.
    """
    row, why = explained
    if row is None:
        tried = len(rows) + sum(len(r.aliases) for r in rows)
        best = rows[0] if rows else None
        return ("none of these: no hypothesis reproduces the observed output "
                + (f"(best '{best.hypothesis}' at {best.sqnr_db:.1f} dB; floor {floor_sqnr_db:.1f} dB; "
                   f"{tried} tried) — {why}. The defect is outside the tested family (output/input layout, "
                   "channel order, time shift, plugin layout path, scale factor)" if best else f"— {why}"))
    also = f" (same output as {', '.join(row.aliases)})" if row.aliases else ""
    if row.hypothesis == "as-configured":
        if observed_sqnr_db is not None and observed_sqnr_db > floor_sqnr_db + FLOOR_MARGIN_DB:
            text = (f"no defect: the observed output is closer to FP32 (SQNR {observed_sqnr_db:.1f} dB) than the "
                    f"emulated int16 floor at sf {scale_factor:g} ({floor_sqnr_db:.1f} dB) — an FP32 path, or a "
                    "device that did not use the configured scale factor"
                    + (f" (it matches '{rows[0].hypothesis}' best)" if rows[0].hypothesis != "as-configured"
                       else ""))
        else:
            text = (f"no defect: the observed output matches the emulated GNA computation at sf {scale_factor:g} "
                    f"(SQNR {row.sqnr_db:.1f} dB against it, {observed_sqnr_db if observed_sqnr_db is not None else math.nan:.1f} dB "
                    f"against FP32; quantization floor {floor_sqnr_db:.1f} dB)")
        return text + (f"; but {saturation}" if saturation else "")
    return f"{row.mechanism}{also} — SQNR {row.sqnr_db:.1f} dB against this hypothesis, {why}"


def non_finite_verdict(c: metrics.Comparison) -> str | None:
    """"no verdict: …" when an output holds NaN/Inf (no hypothesis can be scored then), else None."""
    bad = non_finite_note(c)
    return f"no verdict: the {bad}" if bad else None


def shape_mismatch(observed: tuple[int, ...], expected: tuple[int, ...]) -> str:
    return (f"the observed output has shape {observed}, the model's output {expected} (not a transpose of it): "
            "pass the device output for the same inputs and model")


def per_layer_verdict(rows: list[LayerRow], bad: LayerRow | None, layout: str, observed: bool) -> str:
    """Where the error appears, from the emulated per-layer table (``layers.per_layer``)."""
    head = (f"emulated per layer, layout {layout}" + ("; a device returns only the network output, so this is "
                                                     "the emulation's account, not a measurement per layer"
                                                     if observed else ""))
    if bad is None:
        worst_row = min(rows, key=lambda r: r.accumulated_sqnr_db if math.isfinite(r.accumulated_sqnr_db)
                        else math.inf, default=None)
        return (f"{head}: every layer stays above {USABLE_FLOOR_DB:g} dB SQNR against FP32"
                + (f" (lowest {worst_row.accumulated_sqnr_db:.1f} dB at {worst_row.layer})" if worst_row else ""))
    local = bad.local_sqnr_db
    alone = (f"; fed exact inputs it still gives {local:.1f} dB, so this layer itself produces the error"
             if math.isfinite(local) and local < USABLE_FLOOR_DB else
             f"; fed exact inputs it gives {local:.1f} dB, so the error comes from above it"
             if math.isfinite(local) else "")
    return (f"{head}: the error appears at {bad.layer} ({bad.op}), SQNR {bad.accumulated_sqnr_db:.1f} dB "
            f"against FP32{alone}")


def saturation_fact(plan: Sequence[PlanRow], scale_factor: float, safe_sf: float | None) -> str | None:
    """The plan's significant saturation at the configured sf, in words with the fix; None when there is none."""
    from gnaexp.emulator.plan_row import Lane

    for row in plan:
        n, total = row.saturations, row.values
        if not n or n <= SATURATION_SHARE * total:
            continue
        share = f"{100 * n / total:.1f} % of values clipped" if total else f"{n} values clipped"
        if row.op == "Parameter":
            fix = f"; use sf ≤ {safe_sf:g}" if safe_sf else ""
            return f"input {row.layer!r} saturates int16 at sf {scale_factor:g}: {share}{fix}"
        return (f"{row.layer} saturates its {'int32 accumulator' if row.lane is Lane.INT32 else 'int16 output'} "
                f"at sf {scale_factor:g}: {share}; lower the scale factor")
    return None
