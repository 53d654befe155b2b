"""The models notebook's report: one model (a corpus key of ``model_catalog`` or a user's model file) through the
run engine, shown as the finding first, then the support table, per-output metrics, the emulated scale-factor
sweep and the per-layer table. A model the emulator refuses shows its support table and the refusal, no crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp import experiment, parameters
from gnaexp.models import catalog as model_catalog
from gnaexp.core.records import Record
from gnaexp.present import report
from gnaexp.present.index_entry import IndexEntry, MetricRow
from gnaexp.present.markup import cell, escape, table


def _config(namespace: Mapping[str, Any]) -> experiment.ExperimentConfig:
    """The checked settings; a corpus key becomes its fetched file, with the recipe's inputs unless the user
    gave an input file."""
    model, config = parameters.models(namespace)
    if model in model_catalog.CORPUS:
        settings: dict[str, Any] = {"model": str(model_catalog.fetch(model))}
        if not config.input_file:
            settings["input_file"] = str(model_catalog.example_input_file(model, config.seed, bool(config.state)))
        config = config.with_settings(settings)
    return config


def _verdict(found: Any, lines: list[str], notes: Sequence[str] = ()) -> report.HTML:
    from gnaexp.diagnose import status

    notes_html = "".join(f"<p class='gnaexp-note'><b>Note:</b> {escape(n)}</p>" for n in notes)
    return report.HTML(status.finding_html(found, (), lines) + notes_html + status.your_model_html())


def _support(support: Any) -> report.HTML:
    rows = [(escape(r["status"]), escape(r["op"]), escape(r["name"]), escape(r["how"]),
             escape(r.get("source", ""))) for r in support.rows if r["status"] != "folded"]
    porting = ", with porting" if support.porting else ""
    caption = (f"{escape(support.model)}: every op on GNA (plugin rules of OpenVINO 2023.1.0{porting}) as the "
               f"emulator reads it · {escape(support.verdict())} · summary: "
               + escape(", ".join(f"{n} {s}" for s, n in support.counts().items())))
    notes = "".join(f"<p class='gnaexp-note'><b>Note:</b> {escape(n)}</p>" for n in support.notes)
    return report.HTML("<h3>Support</h3>" + table(("status", "op", "layer", "how", "plugin source"), rows,
                                                     "gnaexp-support", caption) + notes)


def _metrics(rows: list[MetricRow], reference: str) -> report.HTML:
    body = [(escape(r.backend), escape(r.output), escape(r.kind), cell(r.cosine, ".6f"),
             cell(r.sqnr_db, ".1f"), cell(r.l1, ".3e"), cell(r.max_abs_error, ".3e")) for r in rows]
    caption = f"reference: {escape(reference)} · emulated = GNA integer emulator, not a device"
    return report.HTML("<h3>Metrics per output</h3>" + table(
        ("backend", "output", "kind", "cosine", "SQNR dB", "L1", "max |err|"), body, "gnaexp-metrics", caption))


def _layers(config: experiment.ExperimentConfig) -> report.HTML:
    from gnaexp.diagnose import layer_error as layers

    model = experiment.build_model(config)
    rows = layers.per_layer(model.require_ir(), experiment.make_inputs(config, model), experiment.gna_settings(config))
    first = layers.first_bad_layer(rows)
    body = [(escape(r.layer), escape(r.op), cell(r.out_sf, ".6g"), cell(r.accumulated_sqnr_db, ".1f"),
             cell(r.local_sqnr_db, ".1f"), cell(r.saturations, "d")) for r in rows]
    caption = ("emulated GNA integer pipeline against OpenVINO CPU FP32, per layer · first layer below the usable "
               f"floor: {escape(first.layer) if first else 'none'}")
    return report.HTML("<h3>Per layer (emulated)</h3>" + table(
        ("layer", "op", "out sf", "accumulated SQNR dB", "local SQNR dB", "saturations"), body, "gnaexp-layers",
        caption))


@dataclass
class ModelRun:
    """The models notebook's result: the support table of the user's model and, where the emulator runs it, its
    record; ``entry``: what the index shows (the finding and the verdict lines)."""

    config: experiment.ExperimentConfig
    record_dir: Path
    support: Any  # emulator.support.SupportReport
    entry: IndexEntry
    record: Record | None = None  # None where the emulator refused the model (``entry`` says why)


def run(params: Mapping[str, Any]) -> ModelRun:
    """The notebook's parameters (``globals()``) → the support table and the run. Writes into ``record_dir``: the
    record (IR, inputs, outputs) and the index entry."""
    from gnaexp.diagnose import status, verdicts as diagnosis
    from gnaexp.present import summary

    config = _config(params)
    record_dir = Path(str(params.get("record_dir") or "models.record"))
    arrays = dict(np.load(config.input_file)) if config.input_file else None
    support = _support_report(config, arrays)
    try:
        record = experiment.run(config, out_dir=record_dir)
    except ValueError as exc:  # the support table says which ops block the emulator, and why
        what = "refused" if support.refused() else "not run"  # e.g. an input file that does not fit the model
        lines = [f"**{what}**: the GNA emulator cannot run {Path(config.model).name}: {exc}",
                 f"**support**: {support.verdict()}"]
        found = status.Finding(status.REFUSED if support.refused() else status.FAILED, f"{support.verdict()}",
                               "see the support table: each refused op says why and what a porting team does "
                               "(--porting runs the exact rewrites)" if support.refused() else str(exc))
        entry = IndexEntry("model", lines, [], [], found)
        entry.save(record_dir)
        return ModelRun(config, record_dir, support, entry)
    lines = diagnosis.verdict_lines(record) + [f"**support**: {support.verdict()}"]
    entry = IndexEntry("model", lines, summary.rows(record), list(record.model_info.get("notes", [])),
                       status.record_finding(record))
    entry.save(record_dir)
    return ModelRun(config, record_dir, support, entry, record)


def show(m: ModelRun) -> list[Any]:
    """Everything the models notebook displays, in order: the finding, the support table and, where the model
    ran, its metrics, the scale-factor sweep and the per-layer table."""
    found = m.entry.finding
    if m.record is None:
        return [_verdict(found, m.entry.verdict), _support(m.support)]
    run_ = report.NotebookRun(report.Setting(m.config, str(m.record_dir)), m.record, m.record_dir)
    parts = [_verdict(found, m.entry.verdict, m.entry.notes), _support(m.support),
             _metrics(m.entry.rows, m.record.reference), report.sweep_plot(run_)]
    try:
        parts.append(_layers(m.config))
    except ValueError as exc:
        parts.append(report.Markdown(f"*No per-layer table: {exc}*"))
    return parts


def _support_report(config: experiment.ExperimentConfig, arrays: Mapping[str, Any] | None) -> Any:
    from gnaexp.emulator.support import model_support

    return model_support(config.model, porting=config.porting, arrays=arrays)
