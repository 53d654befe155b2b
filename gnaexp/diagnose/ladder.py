"""The diagnosis ladder: run an experiment's checks in order and say, step by step, quantization or defect.

Orchestration only (it builds the model, runs backends, the emulator and one floor sweep); every step's
wording comes from ``ladder_verdicts``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp import experiment
from gnaexp.backends import make_backend
from gnaexp.core import metrics
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.diagnose import hypotheses, layer_error as layers, ladder_verdicts as steps_worded, verdicts as diagnosis
from gnaexp.diagnose.verdicts import FP32_COSINE_MIN
from gnaexp.core.errors import BadInput
from gnaexp.core.floor_sweep import FloorSweep
from gnaexp.diagnose.results import (Diagnosis, FloorStep, Fp32Step, LayoutRow, LayoutsStep, ObservedStep,
                                     OutputFloor, PerLayerStep, SensitivityStep, Step, Thresholds, WhatRan)

# The second scale factor the layout paths are probed at when the sweep's best is the configured one: the forum's
# 2048, or the top of the int16 range when 2048 is the configured one
PROBE_SCALE_FACTORS = (2048.0, 32768.0)


def _emulate(model_xml: Any, feed: Mapping[str, np.ndarray], settings: GnaSettings) -> Any:
    """The emulation of the net with ``settings`` (an ``emulator.api.Emulation``)."""
    from gnaexp.emulator import emulate

    return emulate(model_xml, feed, settings=settings)


def device_backends(backends: list[str]) -> list[str]:
    """The backends whose output is a device's: openvino:GNA, or outputs imported from a device machine."""
    return [b for b in backends if b.upper() == "OPENVINO:GNA" or b.startswith("import:")]


@dataclass
class _Study:
    """What the steps after the floor share: the emulation at the study's sf and the output they study."""

    model_xml: Any
    feed: Mapping[str, np.ndarray]
    gna: GnaSettings
    sf: float
    sweep: FloorSweep
    output_name: str
    ref: np.ndarray
    floor_out: np.ndarray
    floor: metrics.Comparison
    plan: Any
    fq_override: bool  # the IR's FakeQuantize ranges set the input scale factor: sf has no effect


def ladder(config: experiment.ExperimentConfig, observed: np.ndarray | None = None,
           arrays: dict[str, np.ndarray] | None = None,
           measured_on: tuple[str, str | None] | None = None,
           measured_as: WhatRan | None = None) -> Diagnosis:
    """Run the diagnosis ladder for one experiment and return every step with a verdict.

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
    from gnaexp.emulator.sweep import floor_sweep

    model, feed, ref_backend, ref_outputs = experiment.reference_run(config)
    if model.ir_xml is None:  # every model the ladder builds has an IR; a net without one has nothing to emulate
        raise BadInput(f"{config.experiment}: no OpenVINO IR to emulate; give the model as an IR or ONNX file")
    if measured_on is not None:
        check_same_inputs(*measured_on, feed)
    steps: list[Step] = []
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
        steps.append(Fp32Step(steps_worded.fp32_verdict(ok), ok=ok, cosine=c.cosine, l1=c.l1))

    # 2. Floor at the configured scale factor, and the best the scale factor can do (the run's one sweep).
    gna = experiment.gna_settings(config)
    sf = gna.main_scale_factor
    sweep = floor_sweep(model.ir_xml, feed, ref_outputs, gna, LAYOUTS)
    refused = sweep.refused_at_scale_factor
    if refused:  # the study goes on at the best scale factor the emulator accepts, and says so first
        sf = float(sweep.best_scale_factor)
        refused = steps_worded.refused_scale_factor(gna.main_scale_factor, refused, sf)
    # The steps below study one output, each step naming it: the one a device result or the user's observed
    # array is (the first, for an unnamed array), else the worst at this sf (lowest emulated SQNR).
    first = next(iter(ref_outputs))
    em = _emulate(model.ir_xml, feed, gna.at(sf).with_layout("correct"))
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
    study = _Study(model.ir_xml, feed, gna, sf, sweep, output_name, ref_outputs[output_name],
                   em.outputs[output_name], per_output[output_name], em.plan,
                   "fakequantize" in em.input_sf_source.values())
    steps.append(_floor_step(study, em, per_output if len(ref_outputs) > 1 else None))

    # 3. Does the error react to the scale factor? Quantization error must; structural error does not.
    trace = sweep.floor_trace.sqnr_db
    spread = max(trace) - min(trace)
    steps.append(SensitivityStep(steps_worded.sensitivity_verdict(spread, study.fq_override), sqnr_spread_db=spread))

    # 4. Layout paths: what each plugin layout path would output.
    layouts, layout_outputs = _layouts_step(study, LAYOUTS)
    steps.append(layouts)

    # 5. The observed device output against the family of mistakes (hypotheses.py), then per layer.
    per_layer_layout, per_layer_edit, per_layer_label = config.layout, None, None
    if observed is not None:
        step, best = _observed_step(study, observed, observed_from, measured_as, layout_outputs, arrays)
        steps.append(step)
        if best is not None and best.family == "plugin layout":
            per_layer_layout = best.hypothesis
        elif best is not None and best.edit is not None:
            per_layer_edit, per_layer_label = best.edit, best.hypothesis

    # 6. Per layer (emulated; in the layout that explains the observed output, if one does).
    per = layers.per_layer(model.ir_xml, feed, gna.at(sf).with_layout(per_layer_layout), per_layer_edit)
    bad = layers.first_bad_layer(per)
    path = f"correct with {per_layer_label} applied" if per_layer_label else per_layer_layout
    steps.append(PerLayerStep(steps_worded.per_layer_verdict(per, bad, path, observed is not None),
                              layout=per_layer_layout, mistake=per_layer_label, rows=per,
                              first_bad_layer=bad.layer if bad else None))
    if len(ref_outputs) > 1:
        for each in steps:
            each.output = output_name
    return Diagnosis(config.experiment, config.to_json(), ref_backend,
                     refused or diagnosis.scale_factor_cause(sweep), steps)


def _floor_step(study: _Study, em: Any, per_output: Mapping[str, metrics.Comparison] | None) -> FloorStep:
    """The floor at the study's sf (every output's, for a net with several) and what the sweep advises."""
    from gnaexp.emulator.sweep import DEFAULT_HEADROOM

    sweep, floor = study.sweep, study.floor
    return FloorStep(
        steps_worded.floor_verdict(sweep, study.sf, floor, study.fq_override, DEFAULT_HEADROOM, per_output),
        scale_factor=study.sf, input_scale_factors_used=dict(em.input_scale_factors),
        input_sf_source=dict(em.input_sf_source), sqnr_db=floor.sqnr_db, cosine=floor.cosine, l1=floor.l1,
        notes=list(em.notes), best_scale_factor=sweep.best_scale_factor, best_sqnr_db=sweep.best_sqnr_db,
        sweep=sweep, recommended_scale_factor=sweep.recommended_scale_factor,
        outputs=None if per_output is None else
        {name: OutputFloor(c.sqnr_db, c.cosine, c.l1) for name, c in per_output.items()})


def _layouts_step(study: _Study, layouts: Sequence[str]) -> tuple[LayoutsStep, dict[str, np.ndarray]]:
    """What each plugin layout path outputs at the study's sf and at a second one, and those outputs."""
    sweep, floor, sf = study.sweep, study.floor, study.sf
    outputs: dict[str, np.ndarray] = {}
    rows = [LayoutRow("correct", floor.sqnr_db, floor.cosine, floor.pearson)]
    sfs = sweep.scale_factors
    # Probe at the best scale factor too: there quantization error is smallest, so what remains is structural.
    best_sf = sweep.best_scale_factor
    other_sf = best_sf if best_sf != sf else next(s for s in PROBE_SCALE_FACTORS if s != sf)
    for layout in layouts:
        if layout == "correct":
            continue
        out = _emulate(study.model_xml, study.feed, study.gna.at(sf).with_layout(layout)).outputs[study.output_name]
        c = metrics.compare(study.ref, out)
        if other_sf in sfs:
            i = sfs.index(other_sf)
            other_cosine, other_sqnr = sweep.layouts[layout].cosine[i], sweep.layouts[layout].sqnr_db[i]
        else:
            em2 = _emulate(study.model_xml, study.feed, study.gna.at(other_sf).with_layout(layout))
            c2 = metrics.compare(study.ref, em2.outputs[study.output_name])
            other_cosine, other_sqnr = c2.cosine, c2.sqnr_db
        outputs[layout] = out
        rows.append(LayoutRow(layout, c.sqnr_db, c.cosine, c.pearson, other_cosine, other_sqnr, other_sf,
                              bool(np.array_equal(out, study.floor_out))))
    return LayoutsStep(steps_worded.layout_verdict(rows), rows=rows), outputs


def _observed_step(study: _Study, observed: np.ndarray, source: str | None, measured_as: WhatRan | None,
                   layout_outputs: dict[str, np.ndarray], arrays: dict[str, np.ndarray] | None
                   ) -> tuple[ObservedStep, Any]:
    """The observed output scored against the family of mistakes; (the step, the explaining row or None)."""
    floor_out, floor, sf, sweep = study.floor_out, study.floor, study.sf, study.sweep
    observed, transposed = hypotheses.transposed_back(np.asarray(observed, dtype=np.float32), floor_out)
    if observed.shape != floor_out.shape:  # bad input, not a verdict
        raise BadInput(steps_worded.shape_mismatch(observed.shape, floor_out.shape))
    obs = metrics.compare(study.ref, observed)
    no_verdict = steps_worded.non_finite_verdict(obs)
    if no_verdict:
        return ObservedStep(no_verdict, source=source), None
    safe_sf: float | None = sweep.input_saturation_sf
    safe_sf = 2.0 ** math.floor(math.log2(safe_sf)) if safe_sf is not None and math.isfinite(safe_sf) \
        and safe_sf >= 1 else None
    rows = hypotheses.run_family(study.model_xml, study.feed, floor_out, observed, study.gna.at(sf), layout_outputs,
                                 sweep.scale_factors)
    explained = steps_worded.explains(rows, floor.sqnr_db, obs.sqnr_db)
    verdict = steps_worded.hypothesis_verdict(rows, explained, floor.sqnr_db, sf,
                                           steps_worded.saturation_fact(study.plan, sf, safe_sf), obs.sqnr_db)
    if transposed:
        verdict = f"{transposed}; {verdict}"
    judged = diagnosis.measured_verdict(measured_as, obs) \
        if measured_as and measured_as.klass in ("fp32", "reduced-float") else None
    if judged:  # not a GNA integer result: the hypotheses of GNA mistakes do not apply
        verdict, explained = judged[0], (None, "")
    elif measured_as and measured_as.device:
        verdict = f"{diagnosis.measured_where(measured_as, with_precision=True)}: {verdict}"
    best = explained[0]
    if arrays is not None:
        arrays.update(expected=floor_out, observed=observed, reference=np.asarray(study.ref),
                      explained=best.output if best else floor_out)
    thresholds = Thresholds(steps_worded.EXPLAIN_MIN_DB, diagnosis.FLOOR_MARGIN_DB, steps_worded.EXPLAIN_MARGIN_DB)
    step = ObservedStep(verdict, source=source, sqnr_db=obs.sqnr_db, cosine=obs.cosine, pearson=obs.pearson,
                        explained_by=best.hypothesis if best else None, thresholds=thresholds,
                        hypotheses=hypotheses.public(rows), measured_as=measured_as,
                        measured_status=judged[1] if judged else None)
    return step, best


def format_ladder(result: Diagnosis) -> str:
    lines = [f"diagnosis of {result.experiment} (reference {result.reference}; GNA figures are emulated)"]
    if result.headline:
        lines.append(f"→ {result.headline}")
    for i, step in enumerate(result.steps, 1):
        which = f" (output {step.output})" if step.output else ""
        lines.append(f"{i}. [{step.NAME}]{which} {step.verdict}")
    return "\n".join(lines)
