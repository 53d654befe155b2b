"""The diagnosis ladder: run an experiment's checks in order and say, step by step, quantization or defect.

Orchestration only (it builds the model, runs backends, the emulator and one floor sweep); every verdict's
wording of a backend result comes from ``diagnosis``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from gnaexp import experiment
from gnaexp.backends import make_backend
from gnaexp.core import metrics
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.diagnose import hypotheses, layer_error as layers, verdicts as diagnosis
from gnaexp.diagnose.verdicts import FP32_COSINE_MIN
from gnaexp.core.errors import BadInput

# The second scale factor the layout paths are probed at when the sweep's best is the configured one: the forum's
# 2048, or the top of the int16 range when 2048 is the configured one
PROBE_SCALE_FACTORS = (2048.0, 32768.0)


def _emulate(model_xml: Any, feed: Mapping[str, np.ndarray], ref: np.ndarray, settings: GnaSettings,
             output: str | None = None) -> tuple[np.ndarray, metrics.Comparison, Any]:
    """The emulated ``output`` (the first one where None) with ``settings``, compared with ``ref``."""
    from gnaexp.emulator import emulate

    em = emulate(model_xml, feed, settings=settings)
    out = em.outputs[output] if output in em.outputs else next(iter(em.outputs.values()))
    return out, metrics.compare(ref, out), em


def device_backends(backends: list[str]) -> list[str]:
    """The backends whose output is a device's: openvino:GNA, or outputs imported from a device machine."""
    return [b for b in backends if b.upper() == "OPENVINO:GNA" or b.startswith("import:")]


def ladder(config: experiment.ExperimentConfig, observed: np.ndarray | None = None,
           arrays: dict[str, np.ndarray] | None = None,
           measured_on: tuple[str, str | None] | None = None,
           measured_as: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the diagnosis ladder for one experiment and return every step with a verdict. JSON-ready.

    observed: a device output for the same inputs (e.g. from a GNA machine via ``gnaexp export``). Without it,
    a device backend among the config's backends (``openvino:GNA`` where the plugin exists, or ``import:FILE``)
    is run and its output observed; with neither, the ladder still gives the floor and what each layout
    hypothesis would look like. arrays, if given, receives the outputs the observed step compared (keys
    "expected", "observed" and "explained": the explaining hypothesis's output, else the expected one), for
    plots. measured_on: (the observed output's file name, the fingerprint of the inputs it was measured on, or
    None where the file does not say); outputs of other inputs are refused, as are an imported device's.
    measured_as: what ran to produce the observed output (``measurement.what_ran`` of its file's metadata): an FP32
    or reduced-float measurement is judged as such, not against GNA hypotheses.
    """
    from gnaexp.backends.imported import check_same_inputs
    from gnaexp.emulator import LAYOUTS
    from gnaexp.emulator.sweep import DEFAULT_HEADROOM, floor_sweep

    model, feed, ref_backend, ref_outputs = experiment.reference_run(config)
    if measured_on is not None:
        check_same_inputs(*measured_on, feed)
    steps: list[dict[str, Any]] = []
    observed_from = "given" if observed is not None else None
    device = next(iter(device_backends(config.backends)), None)
    device_result = None
    if observed is None and device is not None:
        device_result = make_backend(device, experiment.backend_options(config)).run(model, feed)  # absent: exit 3
        check_same_inputs(device, device_result.info.get("source_meta", {}).get("input_fingerprint"), feed)

    # 1. FP32 path: OpenVINO CPU on the (float) IR must match torch.
    if ref_backend == "torch" and config.ir == "default":
        first = next(iter(ref_outputs))
        cpu = next(iter(make_backend("openvino:CPU").run(model, feed).outputs.values()))
        c = metrics.compare(ref_outputs[first], cpu)
        ok = c.cosine >= FP32_COSINE_MIN
        steps.append({"step": "fp32", "ok": ok, "cosine": c.cosine, "l1": c.l1,
                      "verdict": "OpenVINO CPU FP32 matches torch: the IR is the same net" if ok else
                      "OpenVINO CPU FP32 differs from torch: fix the export before looking at any device"})

    # 2. Floor at the configured scale factor, and the best the scale factor can do (the run's one sweep).
    gna = experiment.gna_settings(config)
    sf = gna.main_scale_factor
    sweep = floor_sweep(model.ir_xml, feed, ref_outputs, gna, LAYOUTS)
    refused = sweep.refused_at_scale_factor
    if refused:  # the study goes on at the best scale factor the emulator accepts, and says so first
        sf = float(sweep.best_scale_factor)
        refused = diagnosis.refused_scale_factor(gna.main_scale_factor, refused, sf)
    # The steps below study one output, each step naming it: the one a device result or the user's observed
    # array is (the first, for an unnamed array), else the worst at this sf (lowest emulated SQNR).
    first = next(iter(ref_outputs))
    floor_out, floor, em = _emulate(model.ir_xml, feed, ref_outputs[first], gna.at(sf).with_layout("correct"),
                                    first)
    per_output = {name: metrics.compare(ref_outputs[name], em.outputs[name]) for name in ref_outputs
                  if name in em.outputs}
    if device_result is not None:
        output_name = next((n for n in ref_outputs if n in device_result.outputs), first)
        observed = device_result.outputs.get(output_name, next(iter(device_result.outputs.values())))
        observed_from = device_result.label
        from gnaexp.diagnose.measurement import what_ran

        measured_as = what_ran(device_result)
    else:
        output_name = first if observed is not None else min(per_output, key=lambda n: per_output[n].sqnr_db)
    ref = ref_outputs[output_name]
    floor_out, floor = em.outputs[output_name], per_output[output_name]
    about = {"output": output_name} if len(ref_outputs) > 1 else {}
    fq_override = "fakequantize" in em.input_sf_source.values()
    best_sf, best_sqnr = sweep.best_scale_factor, sweep.best_sqnr_db
    recommended = sweep.recommended_scale_factor
    steps.append({"step": "floor", "scale_factor": sf, "input_scale_factors_used": em.input_scale_factors,
                  "input_sf_source": em.input_sf_source,
                  "sqnr_db": floor.sqnr_db, "cosine": floor.cosine, "l1": floor.l1, "notes": em.notes,
                  "best_scale_factor": best_sf, "best_sqnr_db": best_sqnr, "sweep": sweep.to_json(),
                  "recommended_scale_factor": recommended,
                  "verdict": (f"quantization floor at sf {sf:g}: SQNR {floor.sqnr_db:.1f} dB, cosine "
                              f"{floor.cosine:.6f}, L1 {floor.l1:.2e} (emulated); best over sf "
                              f"{min(sweep.scale_factors):g}…{max(sweep.scale_factors):g}: "
                              f"{best_sqnr:.1f} dB at sf {best_sf:g}")
                  + (" — the IR's FakeQuantize ranges set the input scale factor, so sf has no effect"
                     if fq_override else
                     f"; from these inputs' range (keeping {DEFAULT_HEADROOM:.0%} of int16 free) use sf ≈ "
                     f"{recommended:.6g}")})
    if len(ref_outputs) > 1:  # the floor of every output, each named, at the same emulation
        steps[-1]["outputs"] = {name: {"sqnr_db": c.sqnr_db, "cosine": c.cosine, "l1": c.l1}
                                for name, c in per_output.items()}
        steps[-1]["verdict"] += "; per output: " + ", ".join(f"{name} {c.sqnr_db:.1f} dB"
                                                            for name, c in per_output.items())

    # 3. Does the error react to the scale factor? Quantization error must; structural error does not.
    trace = sweep.floor_trace.sqnr_db
    spread = max(trace) - min(trace)
    steps.append({"step": "sensitivity", "sqnr_spread_db": spread,
                  "verdict": diagnosis.sensitivity_verdict(spread, bool(fq_override))})

    # 4. Layout paths: what each plugin path would output.
    layout_outputs: dict[str, np.ndarray] = {}
    rows = [{"layout": "correct", "sqnr_db": floor.sqnr_db, "cosine": floor.cosine, "pearson": floor.pearson}]
    sfs = sweep.scale_factors
    # Probe at the best scale factor too: there quantization error is smallest, so what remains is structural.
    other_sf = best_sf if best_sf != sf else next(s for s in PROBE_SCALE_FACTORS if s != sf)
    for layout in LAYOUTS:
        if layout == "correct":
            continue
        out, c, _ = _emulate(model.ir_xml, feed, ref, gna.at(sf).with_layout(layout), output_name)
        if other_sf in sfs:
            i = sfs.index(other_sf)
            other = {"cosine": sweep.layouts[layout].cosine[i], "sqnr_db": sweep.layouts[layout].sqnr_db[i]}
        else:
            _, c2, _ = _emulate(model.ir_xml, feed, ref, gna.at(other_sf).with_layout(layout), output_name)
            other = {"cosine": c2.cosine, "sqnr_db": c2.sqnr_db}
        layout_outputs[layout] = out
        rows.append({"layout": layout, "sqnr_db": c.sqnr_db, "cosine": c.cosine, "pearson": c.pearson,
                     "cosine_at_other_sf": other["cosine"], "sqnr_at_other_sf": other["sqnr_db"],
                     "other_sf": other_sf, "same_as_correct": bool(np.array_equal(out, floor_out))})
    steps.append({"step": "layouts", "rows": rows, "verdict": diagnosis.layout_verdict(rows)})

    # 5. The observed device output against the family of mistakes (hypotheses.py), then per layer.
    per_layer_layout, per_layer_edit, per_layer_label = config.layout, None, None
    if observed is not None:
        observed, transposed = hypotheses.transposed_back(np.asarray(observed, dtype=np.float32), floor_out)
        if observed.shape != floor_out.shape:  # bad input, not a verdict
            raise BadInput(diagnosis.shape_mismatch(observed.shape, floor_out.shape))
        obs = metrics.compare(ref, observed)
        no_verdict = diagnosis.non_finite_verdict(obs)
        if no_verdict:
            steps.append({"step": "observed", "source": observed_from, "hypotheses": [], "verdict": no_verdict})
        else:
            safe_sf = sweep.input_saturation_sf
            safe_sf = 2.0 ** math.floor(math.log2(safe_sf)) if math.isfinite(safe_sf) and safe_sf >= 1 else None
            rows = hypotheses.run_family(model.ir_xml, feed, floor_out, observed, gna.at(sf), layout_outputs,
                                         sweep.scale_factors)
            explained = diagnosis.explains(rows, floor.sqnr_db, obs.sqnr_db)
            verdict = diagnosis.hypothesis_verdict(rows, explained, floor.sqnr_db, sf,
                                                   diagnosis.saturation_fact(em.plan, sf, safe_sf), obs.sqnr_db)
            if transposed:
                verdict = f"{transposed}; {verdict}"
            judged = diagnosis.measured_verdict(measured_as, obs) \
                if measured_as and measured_as["class"] in ("fp32", "reduced-float") else None
            if judged:  # not a GNA integer result: the hypotheses of GNA mistakes do not apply
                verdict, explained = judged[0], (None, "")
            elif measured_as and measured_as.get("device"):
                verdict = (f"a {measured_as['device']} measurement"
                           + (f" ({measured_as['mode']}, {measured_as['precision']})"
                              if measured_as.get("mode") else "")
                           + (f" on OpenVINO {measured_as['openvino']}" if measured_as.get("openvino") else "")
                           + f": {verdict}")
            best = explained[0]
            if best is not None and best.family == "plugin layout":
                per_layer_layout = best.hypothesis
            elif best is not None and best.edit is not None:
                per_layer_edit, per_layer_label = best.edit, best.hypothesis
            if arrays is not None:
                arrays.update(expected=floor_out, observed=observed, reference=np.asarray(ref),
                              explained=best.output if best else floor_out)
            steps.append({"step": "observed", "source": observed_from, "sqnr_db": obs.sqnr_db, "cosine": obs.cosine,
                          "pearson": obs.pearson, "explained_by": best.hypothesis if best else None,
                          "thresholds": {"explain_min_db": diagnosis.EXPLAIN_MIN_DB,
                                         "floor_margin_db": diagnosis.FLOOR_MARGIN_DB,
                                         "margin_over_next_db": diagnosis.EXPLAIN_MARGIN_DB},
                          "hypotheses": hypotheses.public(rows), "verdict": verdict,
                          **({"measured_as": measured_as, "measured_status": judged[1]} if judged else
                             {"measured_as": measured_as} if measured_as else {})})

    # 6. Per layer (emulated; in the layout that explains the observed output, if one does).
    per = layers.per_layer(model.ir_xml, feed, gna.at(sf).with_layout(per_layer_layout), per_layer_edit)
    bad = layers.first_bad_layer(per)
    path = f"correct with {per_layer_label} applied" if per_layer_label else per_layer_layout
    steps.append({"step": "per-layer", "layout": per_layer_layout, "mistake": per_layer_label, "rows": per,
                  "first_bad_layer": bad["layer"] if bad else None,
                  "verdict": diagnosis.per_layer_verdict(per, bad, path, observed is not None)})
    steps = [{**about, **step} for step in steps]
    return {"experiment": config.experiment, "config": config.to_json(), "reference": ref_backend,
            "emulated": True, "headline": refused or diagnosis.scale_factor_cause(sweep), "steps": steps}


def format_ladder(result: Mapping[str, Any]) -> str:
    lines = [f"diagnosis of {result['experiment']} (reference {result['reference']}; GNA figures are emulated)"]
    if result.get("headline"):
        lines.append(f"→ {result['headline']}")
    for i, step in enumerate(result["steps"], 1):
        which = f" (output {step['output']})" if step.get("output") else ""
        lines.append(f"{i}. [{step['step']}]{which} {step['verdict']}")
    return "\n".join(lines)
