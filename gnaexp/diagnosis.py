"""From metrics to a verdict: is the error quantization (at the floor), or something structural?

The ladder, in the order a careful engineer checks it:
1. FP32 backends (OpenVINO CPU, GNA SW_FP32) must match torch almost exactly — otherwise the export/IR
   is wrong, not the device.
2. The emulator with the correct layout gives the *quantization floor*: the error int16/int8 GNA math
   alone produces for this net, input and scale factor.
3. A device (or imported) output at that floor is as right as GNA can be. Far above it → not explained by
   quantization: check which layout hypothesis (e.g. ``legacy-concat``) reproduces it.
4. An error that does not move with the scale factor is structural (layout/graph), not quantization.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from gnaexp import metrics

# FP32 paths agree with torch to float32 rounding; anything worse means the model itself differs.
FP32_COSINE_MIN = 0.99999
# A device within this many dB of the emulated floor is "at the floor".
FLOOR_MARGIN_DB = 3.0


def classify(comparison: metrics.Comparison, kind: str, floor_sqnr_db: float | None = None) -> str:
    """One line of verdict for one backend's comparison with the reference."""
    sq, cos, r = comparison.sqnr_db, comparison.cosine, comparison.pearson
    if kind == "reference":
        if cos >= FP32_COSINE_MIN:
            return "matches the FP32 reference (float rounding only)"
        return "FP32 backend disagrees with torch: the exported model differs — check the IR before any device"
    if floor_sqnr_db is None or not math.isfinite(floor_sqnr_db):
        if sq >= 40:
            return f"close to the reference (SQNR {sq:.1f} dB)"
        if r < 0.9:
            return f"far from the reference (Pearson {r:.3f}): beyond what int16 quantization usually explains"
        return f"noticeably quantized (SQNR {sq:.1f} dB); compare with the emulated floor"
    gap = floor_sqnr_db - sq
    if gap <= FLOOR_MARGIN_DB:
        return f"at the int16 quantization floor for this scale factor (SQNR {sq:.1f} dB vs floor {floor_sqnr_db:.1f} dB)"
    return (f"{gap:.1f} dB worse than the quantization floor ({floor_sqnr_db:.1f} dB): not explained by "
            "quantization alone — look for a layout or graph defect")


def explain(observed: np.ndarray, hypotheses: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rank hypotheses (e.g. emulator layout modes) by how well each reproduces an observed output.

    Returns one dict per hypothesis, best first: name, SQNR of observed vs hypothesis, Pearson.
    A hypothesis that reproduces a device output far better than the correct-layout floor names the
    mechanism of the defect.
    """
    rows = []
    for name, predicted in hypotheses.items():
        c = metrics.compare(predicted, observed)
        rows.append({"hypothesis": name, "sqnr_db": c.sqnr_db, "pearson": c.pearson, "cosine": c.cosine})
    return sorted(rows, key=lambda row: -row["sqnr_db"] if not math.isnan(row["sqnr_db"]) else math.inf)


def _floor(record: Any) -> float | None:
    """SQNR of the correct-layout emulation, if the record has one."""
    for r in record.results:
        if r.kind == "emulated" and r.settings.get("layout", "correct") == "correct":
            per = record.metrics.get(r.label, {})
            if per:
                return min(c.sqnr_db for c in per.values())
    return None


def diagnose_record(record: Any) -> dict[str, Any]:
    """Verdict per backend, plus the floor used. JSON-ready."""
    floor = _floor(record)
    verdicts = {}
    for r in record.results:
        per = record.metrics.get(r.label)
        if not per:
            continue
        worst = min(per.values(), key=lambda c: c.sqnr_db)
        if r.kind == "emulated":
            layout = r.settings.get("layout", "correct")
            if layout == "correct":
                verdicts[r.label] = (f"emulated quantization floor: SQNR {worst.sqnr_db:.1f} dB, cosine "
                                     f"{worst.cosine:.6f} — the best GNA can do here")
            else:
                verdicts[r.label] = f"emulated with layout '{layout}': " + classify(worst, "measured", floor)
        else:
            verdicts[r.label] = classify(worst, r.kind, floor)
    return {"floor_sqnr_db": floor, "verdicts": verdicts}
