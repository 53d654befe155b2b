"""What the layers notebook shows: a per-layer comparison (``gnaexp.layers``) of a forum net or a model file across
devices and precisions, as ``gnaexp layers`` computes it, in the sections of its report (``layers_report``).

A backend this machine lacks (a device, NNCF) is left out with a visible note; when none is left to compare, the
notebook says so instead of stopping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from gnaexp import experiment, parameters
from gnaexp.diagnose import status
from gnaexp.layers.results import LayerComparison
from gnaexp.present import layers_report
from gnaexp.present.index_entry import IndexEntry
from gnaexp.present.markup import escape
from gnaexp.present.report import HTML

LAYERS_FILE, REPORT_FILE = "layers.json", "report.html"


@dataclass
class LayersRun:
    """The notebook's result: the comparison (None when nothing could be compared), the network outputs'
    values for the overlay, and the notes on backends left out."""

    name: str
    record_dir: Path
    entry: IndexEntry
    result: LayerComparison | None = None
    outputs: layers_report.Outputs = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model_xml: Path | None = None  # the IR the table is of (Model Explorer draws it)
    sections: dict[str, str] = field(default_factory=dict)  # the report's parts, drawn once for page and notebook


def available(backends: Sequence[Any]) -> tuple[list[Any], list[str]]:
    """(the backends that can run here, a note on each one that cannot)."""
    from gnaexp.backends import BackendUnavailable
    from gnaexp.layers import runners

    kept, notes = [], []
    for b in backends:
        try:
            if b.kind in ("openvino", "nncf"):
                runners.check_device(b)
        except (BackendUnavailable, ModuleNotFoundError) as exc:
            notes.append(f"{b.spec} is not available here and was left out ({str(exc).split('. ')[0].rstrip('.')}).")
            continue
        kept.append(b)
    return kept, notes


def run(params: Mapping[str, Any]) -> LayersRun:
    """The notebook's parameters (``globals()``) → the comparison. Writes into ``record_dir``: layers.json, its
    report (report.html) and the index entry."""
    from gnaexp.core.output_folder import add_file
    from gnaexp.layers import compare

    checked = parameters.layers(params)
    config = checked.config
    record_dir = Path(str(params.get("record_dir") or "layers.record"))
    name = Path(config.model).stem if config.model else config.experiment
    kept, notes = available(checked.backends)
    reference = checked.backends[0]
    if not kept or kept[0] is not reference or len(kept) < 2:
        why = (f"the reference {reference.spec} is not available here" if not kept or kept[0] is not reference
               else f"no backend to compare with {reference.spec} is available here")
        found = status.Finding(status.FAILED, f"nothing compared: {why}",
                               "give backends this machine has (gnaexp devices lists its devices), or compare a "
                               "dump made elsewhere with gnaexp layers --load")
        entry = IndexEntry(name, [f"**not run**: {why}."], [], notes, found)
        entry.save(record_dir)
        return LayersRun(name, record_dir, entry, notes=notes)
    model = experiment.build_model(config, torch_module=False)  # it runs no torch backend: the IR is enough
    feed = experiment.make_inputs(config, model)
    result, ref_values, measured = compare.compare(model.require_ir(), feed, kept, checked.threshold,
                                                   experiment.gna_settings(config), model.name, (),
                                                   parameters.layer_calibration(config))
    outputs = layers_report.outputs_of(result, ref_values, measured)
    sections = layers_report.sections(result, outputs)
    add_file(record_dir, LAYERS_FILE, result.dumps().encode("utf-8"))
    add_file(record_dir, REPORT_FILE, layers_report.page(result, outputs, sections).encode("utf-8"))
    entry = layers_report.index_entry(result)
    entry.notes[:0] = notes
    entry.save(record_dir)
    return LayersRun(name, record_dir, entry, result, outputs, notes, model.require_ir(), sections)


def explorer(r: LayersRun, height: int = 640) -> HTML:
    """The table on the model's graph in Model Explorer, served on 127.0.0.1 while this kernel runs: the page inline
    and its link. Without the package (or a table), a note that says what to do."""
    from gnaexp.core.errors import BadInput

    if r.result is None or r.model_xml is None:
        return HTML(_notes_html(["nothing compared, so nothing to show on the graph."]))
    try:
        from gnaexp.present.explorer import require, viewer

        require()
        url = viewer.view(r.record_dir / LAYERS_FILE, r.model_xml)
    except (BadInput, OSError) as exc:
        return HTML(_notes_html([f"Model Explorer is not shown: {exc}"]))
    return HTML(f"<p><a href='{escape(url)}' target='_blank'>Open in Model Explorer</a> (served on 127.0.0.1 while "
                f"this kernel runs; each backend's accumulated and local SQNR per node, red below its threshold)</p>"
                f"<iframe src='{escape(url)}' style='width:100%;height:{int(height)}px;border:1px solid #ccc'>"
                "</iframe>")


def _notes_html(notes: Sequence[str]) -> str:
    return "".join(f"<p class='gnaexp-note'><b>Note:</b> {escape(n)}</p>" for n in notes)


def finding(r: LayersRun) -> HTML:
    """Status, the comparison in one sentence and the next step; per backend its first diverging and worst layer."""
    if r.result is None:
        assert r.entry.finding is not None
        return HTML(status.finding_html(r.entry.finding, r.notes))
    return HTML(layers_report.finding_html(r.result) + _notes_html(r.notes))


def show(r: LayersRun) -> list[HTML]:
    """Everything after the finding, in the report's order: SQNR along the graph, the outputs, the bisection where
    one ran, the table, the environment."""
    if r.result is None:
        return []
    drawn = r.sections or layers_report.sections(r.result, r.outputs)
    parts = [HTML(drawn["plot"]), HTML(drawn["overlay"])]
    if drawn["bisection"]:
        parts.append(HTML(drawn["bisection"]))
    parts += [HTML(f"<style>{layers_report.ROW_CSS}</style>" + drawn["table"]),
              HTML(drawn["environment"]
                   + f"<p class='small'>Files (relative to this report): <code>{escape(r.record_dir.name)}/"
                     f"{LAYERS_FILE}</code>, <code>{escape(r.record_dir.name)}/{REPORT_FILE}</code></p>")]
    return parts
