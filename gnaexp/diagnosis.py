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


def _fq_sets_input_scale(notes: list[str]) -> bool:
    """Whether the emulator's notes say a FakeQuantize replaced the configured input scale factor."""
    return any("FakeQuantize" in n or "overrid" in n for n in notes)


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
            saturated = [f"{row['layer']} ({row['saturations']} values)" for row in r.info.get("plan") or []
                         if row.get("saturations")]
            fq_scaled = _fq_sets_input_scale(r.info.get("notes") or [])
            if layout == "correct" and saturated:
                fix = ("the FakeQuantize ranges fix the scales here: 8-bit weights or narrower ranges avoid it"
                       if fq_scaled else "lower the input scale factor (see the sweep)")
                verdicts[r.label] = (f"emulated: SQNR {worst.sqnr_db:.1f} dB, cosine {worst.cosine:.6f}, with int16/"
                                     f"int32 saturation in {', '.join(saturated)} — saturation, not rounding, limits "
                                     f"this result: {fix}")
            elif layout == "correct":
                verdicts[r.label] = (f"emulated quantization floor: SQNR {worst.sqnr_db:.1f} dB, cosine "
                                     f"{worst.cosine:.6f} — the best GNA can do here")
            else:
                verdicts[r.label] = f"emulated with layout '{layout}': " + classify(worst, "measured", floor)
        else:
            verdicts[r.label] = classify(worst, r.kind, floor)
    return {"floor_sqnr_db": floor, "verdicts": verdicts}


# --- the ladder -----------------------------------------------------------------------------------------

# Scale factors the ladder probes to see whether an error reacts to the scale (powers of 2 up to int16).
PROBE_SCALE_FACTORS = tuple(float(2 ** k) for k in range(0, 16))


def _emulate_metrics(model_xml: Any, feed: Mapping[str, np.ndarray], ref: np.ndarray, sf: float, precision: str,
                     layout: str) -> tuple[np.ndarray, metrics.Comparison, list[str], dict[str, float]]:
    from gnaexp.emulator import emulate

    em = emulate(model_xml, feed, scale_factors=sf, precision=precision, layout=layout)
    out = next(iter(em.outputs.values()))
    return out, metrics.compare(ref, out), em.notes, em.input_scale_factors


def ladder(config: Any, observed: np.ndarray | None = None) -> dict[str, Any]:
    """Run the diagnosis ladder for one experiment and return every step with a verdict. JSON-ready.

    observed: a device output for the same inputs (e.g. from a GNA machine via ``gnaexp export``); without it
    the ladder still gives the floor and what each layout hypothesis would look like.
    """
    from gnaexp import experiment
    from gnaexp.backends import make_backend

    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    ref_backend = "torch" if model.torch_module is not None else "openvino:CPU"
    ref = next(iter(make_backend(ref_backend).run(model, feed).outputs.values()))
    steps: list[dict[str, Any]] = []

    # 1. FP32 path: OpenVINO CPU on the (float) IR must match torch.
    if ref_backend == "torch" and config.ir == "default":
        cpu = next(iter(make_backend("openvino:CPU").run(model, feed).outputs.values()))
        c = metrics.compare(ref, cpu)
        ok = c.cosine >= FP32_COSINE_MIN
        steps.append({"step": "fp32", "ok": ok, "cosine": c.cosine, "l1": c.l1,
                      "verdict": "OpenVINO CPU FP32 matches torch: the IR is the same net" if ok else
                      "OpenVINO CPU FP32 differs from torch: fix the export before looking at any device"})

    # 2. Floor at the configured scale factor, and the best the scale factor can do.
    sf = float(config.scale_factor)
    floor_out, floor, notes, used_sf = _emulate_metrics(model.ir_xml, feed, ref, sf, config.precision, "correct")
    sweep = []
    for probe in PROBE_SCALE_FACTORS:
        _, c, _, _ = _emulate_metrics(model.ir_xml, feed, ref, probe, config.precision, "correct")
        sweep.append({"scale_factor": probe, "sqnr_db": c.sqnr_db, "cosine": c.cosine, "l1": c.l1})
    best = max(sweep, key=lambda r: r["sqnr_db"])
    fq_override = _fq_sets_input_scale(notes)
    from gnaexp.emulator.sweep import DEFAULT_HEADROOM, recommended_scale_factor

    recommended = recommended_scale_factor(feed)
    steps.append({"step": "floor", "scale_factor": sf, "input_scale_factors_used": used_sf,
                  "sqnr_db": floor.sqnr_db, "cosine": floor.cosine, "l1": floor.l1, "notes": notes,
                  "best_scale_factor": best["scale_factor"], "best_sqnr_db": best["sqnr_db"], "sweep": sweep,
                  "recommended_scale_factor": recommended,
                  "verdict": (f"quantization floor at sf {sf:g}: SQNR {floor.sqnr_db:.1f} dB, cosine "
                              f"{floor.cosine:.6f}, L1 {floor.l1:.2e} (emulated); best over sf 1…32768: "
                              f"{best['sqnr_db']:.1f} dB at sf {best['scale_factor']:g}")
                  + (" — the IR's FakeQuantize ranges set the input scale factor, so sf has no effect"
                     if fq_override else
                     f"; from these inputs' range (keeping {DEFAULT_HEADROOM:.0%} of int16 free) use sf ≈ "
                     f"{recommended:.6g}")})

    # 3. Does the error react to the scale factor? Quantization error must; structural error does not.
    spread = max(r["sqnr_db"] for r in sweep) - min(r["sqnr_db"] for r in sweep)
    steps.append({"step": "sensitivity", "sqnr_spread_db": spread,
                  "verdict": (f"the emulated floor moves by {spread:.1f} dB across scale factors: "
                              "the quantization error reacts to the scale factor as it should")
                  if spread > 1 else (f"the emulated floor moves by only {spread:.1f} dB across scale factors"
                                      + (" (FakeQuantize ranges fix the scale)" if fq_override else ""))})

    # 4. Layout hypotheses: what each plugin path would output.
    hypotheses: dict[str, np.ndarray] = {"correct": floor_out}
    rows = [{"layout": "correct", "sqnr_db": floor.sqnr_db, "cosine": floor.cosine, "pearson": floor.pearson}]
    from gnaexp.emulator import LAYOUTS

    for layout in LAYOUTS:
        if layout == "correct":
            continue
        out, c, _, _ = _emulate_metrics(model.ir_xml, feed, ref, sf, config.precision, layout)
        # Probe at the best scale factor: there quantization error is smallest, so what remains is structural.
        other_sf = best["scale_factor"] if best["scale_factor"] != sf else 2048.0 if sf != 2048.0 else 32768.0
        _, c2, _, _ = _emulate_metrics(model.ir_xml, feed, ref, other_sf, config.precision, layout)
        hypotheses[layout] = out
        same = bool(np.array_equal(out, floor_out))
        rows.append({"layout": layout, "sqnr_db": c.sqnr_db, "cosine": c.cosine, "pearson": c.pearson,
                     "cosine_at_other_sf": c2.cosine, "sqnr_at_other_sf": c2.sqnr_db, "other_sf": other_sf,
                     "same_as_correct": same})
    steps.append({"step": "layouts", "rows": rows, "verdict": _layout_verdict(rows)})

    # 5. The observed device output against the floor and the hypotheses.
    if observed is not None:
        obs = metrics.compare(ref, observed)
        ranked = explain(observed, hypotheses)
        best_h = ranked[0]
        verdict = classify(obs, "measured", floor.sqnr_db)
        if best_h["hypothesis"] != "correct" and best_h["sqnr_db"] > 20:
            verdict += (f"; the observed output is reproduced by layout '{best_h['hypothesis']}' "
                        f"(SQNR {best_h['sqnr_db']:.1f} dB against it): a layout defect, not quantization")
        steps.append({"step": "observed", "sqnr_db": obs.sqnr_db, "cosine": obs.cosine, "pearson": obs.pearson,
                      "hypotheses": ranked, "verdict": verdict})
    return {"experiment": config.experiment, "config": config.to_json(), "reference": ref_backend,
            "emulated": True, "steps": steps}


def _layout_verdict(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows[1:]:
        if r["same_as_correct"]:
            parts.append(f"'{r['layout']}' computes the same as the correct layout for this net")
        else:
            moved = abs(r["sqnr_at_other_sf"] - r["sqnr_db"])
            text = (f"'{r['layout']}' would give cosine {r['cosine']:.3f} (Pearson {r['pearson']:.3f}, SQNR "
                    f"{r['sqnr_db']:.1f} dB) at this sf and cosine {r['cosine_at_other_sf']:.3f} at sf "
                    f"{r['other_sf']:g}")
            if moved < 3 and r["sqnr_db"] < 20:
                text += (" — an error far above the floor that does not move with the scale factor: the signature "
                         "of a layout defect, not of quantization")
            parts.append(text)
    return "; ".join(parts) or "no alternative layout applies"


def format_ladder(result: Mapping[str, Any]) -> str:
    lines = [f"diagnosis of {result['experiment']} (reference {result['reference']}; GNA figures are emulated)"]
    for i, step in enumerate(result["steps"], 1):
        lines.append(f"{i}. [{step['step']}] {step['verdict']}")
    return "\n".join(lines)


def add_diagnose_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("diagnose", help="the ladder: FP32 check, quantization floor, sf sensitivity, "
                                                "layout hypotheses (and an observed device output, if given)")
    p.add_argument("experiment", help="conv | concat | concat_conv | model")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--observed", help="device output for the same inputs (.npy, or an .npz from measure_on_device.py)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_diagnose)


def _cmd_diagnose(args: Any) -> int:
    import json

    from gnaexp.cli import _load_array, make_config
    from gnaexp.records import dumps

    config = make_config(args.experiment, args.set)
    observed = _load_array(args.observed) if args.observed else None
    result = ladder(config, observed)
    print(dumps(result) if args.json else format_ladder(result))
    return 0
