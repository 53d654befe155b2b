"""What the diagnosis notebook shows: the ladder on one experiment and an observed output, in tables and plots.

The observed output is a device's (``observed_file``, e.g. ``outputs.npz`` from ``measure_on_device.py``) or,
where no device is at hand, the emulator's in a chosen plugin layout path: that one is labelled *emulated
device* everywhere it appears.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gnaexp import experiment as experiment_mod, parameters
from gnaexp.diagnose import status
from gnaexp.diagnose.results import Diagnosis, HypothesisScore
from gnaexp.present.index_entry import IndexEntry, MetricRow
from gnaexp.present.markup import cell, escape, table
from gnaexp.present.report import HTML, image

TOP_HYPOTHESES = 10


@dataclass
class DiagnosisRun:
    """The diagnose notebook's result: the ladder's diagnosis of one experiment and what it observed."""

    config: experiment_mod.ExperimentConfig
    observed_label: str
    result: Diagnosis
    record_dir: Path
    arrays: dict[str, np.ndarray]  # what the observed step compared (ladder's ``arrays``)


def run(params: Mapping[str, Any]) -> DiagnosisRun:
    """The notebook's parameters → the ladder with an observed output. Writes into ``record_dir``: diagnosis.json
    and the index entry."""
    from gnaexp.backends.imported import read_observed
    from gnaexp.core.files import dumps
    from gnaexp.core.output_folder import add_file
    from gnaexp.diagnose.ladder import ladder
    from gnaexp.emulator import emulate

    config, observed_file, layout = parameters.diagnose(params)
    model, feed, _, _ = experiment_mod.reference_run(config)  # cached: ladder() asks for the same
    measured_on = None
    if observed_file:
        observed, fingerprint = read_observed(observed_file)
        label, measured_on = "observed (device file)", (Path(observed_file).name, fingerprint)
    else:
        settings = experiment_mod.gna_settings(config).with_layout(layout)
        observed = next(iter(emulate(model.ir_xml, feed, settings=settings).outputs.values()))
        label = f"emulated device (layout {layout})"
    arrays: dict[str, np.ndarray] = {}
    result = ladder(config, observed, arrays, measured_on)
    record_dir = Path(params.get("record_dir") or "diagnose.record")
    add_file(record_dir, "diagnosis.json", dumps(result.to_json()).encode("utf-8"))
    obs, per_layer = result.observed, result.per_layer
    row = MetricRow(label, cosine=obs.cosine if obs else None, sqnr_db=obs.sqnr_db if obs else None)
    headline = [f"**finding**: {result.headline}."] if result.headline else []
    IndexEntry(config.experiment, headline + [f"**{label}**: {obs.verdict if obs else ''}.",
                                              f"**per layer**: {per_layer.verdict if per_layer else ''}."],
               [row], [], status.ladder_finding(result)).save(record_dir)
    return DiagnosisRun(config, label, result, record_dir, arrays)


def verdict(d: DiagnosisRun) -> HTML:
    """Status, the verdict in one sentence and the next step, then one line per step of the ladder."""
    lines = ([f"**finding**: {d.result.headline}"] if d.result.headline else [])
    lines += [f"**{s.NAME}**: {s.verdict}" for s in d.result.steps]
    about = (f"Diagnosis of {d.config.experiment} at sf {d.config.scale_factor:g}; observed: {d.observed_label}; "
             f"GNA figures are emulated (as GNA plugin {d.config.plugin_release}) unless the observed output came "
             "from a device file.")
    return HTML(status.finding_html(status.ladder_finding(d.result), [about], lines) + status.your_model_html())


def _hypotheses(d: DiagnosisRun) -> list[HypothesisScore]:
    return d.result.observed.hypotheses[:TOP_HYPOTHESES] if d.result.observed else []


def hypotheses_table(d: DiagnosisRun) -> HTML:
    rows = [(escape(h.hypothesis), escape(h.family), cell(h.sqnr_db, ".1f"), escape(h.mechanism),
             escape(", ".join(h.aliases))) for h in _hypotheses(d)]
    t = d.result.observed.thresholds if d.result.observed else None
    caption = (f"observed output scored against each hypothesis (SQNR, best first; top {TOP_HYPOTHESES}). Explains "
               f"when within {t.floor_margin_db if t else '?'} dB of the floor (or above "
               f"{t.explain_min_db if t else '?'} dB) and {t.margin_over_next_db if t else '?'} dB better than the "
               "next")
    return HTML(table(("hypothesis", "family", "SQNR dB", "mechanism", "same output as"), rows, "gnaexp-metrics",
                      caption))


def hypotheses_figure(d: DiagnosisRun) -> Any:
    from gnaexp.present import plots

    hyps = _hypotheses(d)
    explained = d.result.observed.explained_by if d.result.observed else None
    best = next((i for i, h in enumerate(hyps) if h.hypothesis == explained), None)
    floor = d.result.floor.sqnr_db if d.result.floor else None
    return image(plots.bars([h.hypothesis for h in hyps], [h.sqnr_db for h in hyps],
                            "SQNR of the observed output against the hypothesis (dB)", "hypothesis scores",
                            threshold=floor, threshold_label="quantization floor", highlight=best))


def overlay_figure(d: DiagnosisRun) -> Any:
    """The observed output and the hypothesis that explains it (or the correct emulation) against the FP32
    reference, channel by channel: where they agree, their dashes lie on each other."""
    from gnaexp.present import plots

    name = (d.result.observed.explained_by if d.result.observed else None) or "as-configured"
    reference = d.arrays.get("reference", d.arrays["expected"])
    return image(plots.overlay(reference, {d.observed_label: d.arrays["observed"], f"hypothesis: {name}":
                                           d.arrays["explained"]},
                               reference_label="FP32 reference" if "reference" in d.arrays else "emulated, correct",
                               title="observed output and the hypothesis that explains it, against FP32"))


def environment(d: DiagnosisRun) -> HTML:
    """What support asks for first: OS, CPU, versions and devices of the machine that ran the diagnosis."""
    from gnaexp.core import environment as env
    from gnaexp.present.markup import key_value_rows

    return HTML(f"<table class='gnaexp-env'>{key_value_rows(env.capture().items())}</table>")


def per_layer_table(d: DiagnosisRun) -> HTML:
    step = d.result.per_layer
    rows = [(escape(r.layer), escape(r.op), cell(r.accumulated_sqnr_db, ".1f"), cell(r.local_sqnr_db, ".1f"),
             cell(r.saturations)) for r in (step.rows if step else [])]
    return HTML(table(("layer", "op", "accumulated SQNR dB", "local SQNR dB", "saturated"), rows, "gnaexp-metrics",
                      f"emulated per layer (layout {escape(step.layout if step else None)}) against OpenVINO CPU FP32 "
                      "tensors; local = the layer fed exact inputs"))


def per_layer_figure(d: DiagnosisRun) -> Any:
    from gnaexp.diagnose.verdicts import USABLE_FLOOR_DB
    from gnaexp.present import plots

    step = d.result.per_layer
    rows = step.rows if step else []
    bad = next((i for i, r in enumerate(rows) if step and r.layer == step.first_bad_layer), None)
    return image(plots.bars([r.layer.split("/")[-1] or r.layer for r in rows],
                            [r.accumulated_sqnr_db for r in rows], "SQNR against FP32 (dB)",
                            f"per-layer SQNR (emulated, layout {step.layout if step else '?'})", threshold=USABLE_FLOOR_DB,
                            threshold_label=f"{USABLE_FLOOR_DB:g} dB", highlight=bad))
