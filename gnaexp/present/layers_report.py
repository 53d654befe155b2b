"""The per-layer comparison as a report (``gnaexp layers --out DIR`` writes it as ``report.html``; the layers
notebook shows the same sections): the finding first — per backend under test its first diverging layer and its
worst layer, one sentence each — then SQNR along the graph, each network output overlaid, the precision
bisection where one ran, and the table.

The page is one self-contained file: figures are inline PNGs, the style is inline, nothing is fetched, and no
local path is written (layer names, backend specs and file names only).
"""

from __future__ import annotations

import base64
import math
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.diagnose import status
from gnaexp.diagnose.status import Finding
from gnaexp.layers.measured import Measured
from gnaexp.layers.results import LayerComparison, LayerDiff
from gnaexp.present.index_entry import IndexEntry, MetricRow
from gnaexp.present.markup import bold, cell, escape, key_value_rows, number, plain, table

# output layer key → (the reference's values, each backend under test's values by its label)
Outputs = Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]]
FEW_VALUES = 8  # an output this small is shown as its values, not drawn

# Rows the table marks: also written beside the table in a notebook, whose page has no CSS of ours.
ROW_CSS = ("tr.gnaexp-gone td{color:#777;font-style:italic}tr.gnaexp-diverging td{background:#fde0cc!important}"
           "tr.gnaexp-below td{background:#fff3e0!important}")
CSS = ("body{font:14px system-ui,sans-serif;margin:1.5em;max-width:1250px;color:#222}"
       "table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 7px;"
       "vertical-align:top;text-align:left}caption{font-size:12px;color:#555;padding-top:4px}"
       ".small,.gnaexp-note{font-size:12px;color:#555}.gnaexp-finding{border-left:4px solid #888;"
       "padding:2px 12px;margin-bottom:8px;background:#fafafa}.gnaexp-details li{margin:3px 0}"
       "h2{margin-top:1.4em;border-bottom:1px solid #ddd}" + ROW_CSS +
       "figure{margin:0 0 1em 0}figcaption{font-size:12px;color:#555;max-width:1000px}")


def label(backend: str) -> str:
    """A backend as the report names it: the emulator's rows say they are emulated, never measured."""
    return f"{backend} (emulated)" if backend.split(" ")[0] == "gna-emu" else backend


def _db(value: float | None) -> str:
    return number(value, ".1f") + " dB"


def _judged_on(row: LayerDiff) -> tuple[str, float | None]:
    """Which SQNR a layer was judged on: the local one where measured, else the accumulated (a loaded dump)."""
    return ("local", row.local_sqnr_db) if row.local_sqnr_db is not None else ("accumulated", row.sqnr_db)


def first_sentence(result: LayerComparison, backend: str) -> str:
    """The first diverging layer of one backend, in one sentence."""
    threshold = result.threshold_db.get(backend, math.nan)
    name = result.first_diverging.get(backend)
    row = next((r for r in result.rows_of(backend) if r.layer == name), None)
    if row is None:
        compared = [r for r in result.rows_of(backend) if r.status == "compared"]
        if not compared:
            return (f"**{label(backend)}**: no layer could be compared: every one of its "
                    f"{len(result.rows_of(backend))} layers is fused or missing.")
        return (f"**{label(backend)}**: no layer diverges: every one of its {len(compared)} compared layers stays at or "
                f"above the {number(threshold, 'g')} dB threshold.")
    which, value = _judged_on(row)
    also = f" (accumulated {_db(row.sqnr_db)})" if which == "local" else " (no local error: judged on the accumulated)"
    return (f"**{label(backend)}**: first diverging layer {row.layer} ({row.op}): {which} SQNR {_db(value)}, below the "
            f"{number(threshold, 'g')} dB threshold{also}.")


def worst_sentence(result: LayerComparison, backend: str) -> str:
    """The worst layer of one backend, in one sentence."""
    worst = result.worst(backend)
    if worst is None:
        return f"**{label(backend)}**: no worst layer, as none was compared."
    local = (f"local SQNR {_db(worst.local_sqnr_db)}, accumulated {_db(worst.sqnr_db)}"
             if worst.local_sqnr_db is not None else f"accumulated SQNR {_db(worst.sqnr_db)} (no local error measured)")
    return f"**{label(backend)}**: worst layer {worst.layer} ({worst.op}): {local}."


def finding_lines(result: LayerComparison) -> list[str]:
    """Per backend under test: the first diverging layer, then the worst layer (Markdown-bold labels)."""
    return [line for b in result.backends for line in (first_sentence(result, b), worst_sentence(result, b))]


def _non_finite_output(result: LayerComparison, backend: str) -> LayerDiff | None:
    return next((r for r in result.rows_of(backend) if r.is_output and r.status == "compared"
                 and (r.sqnr_db is None or math.isnan(r.sqnr_db))), None)


def finding(result: LayerComparison) -> Finding:
    """The status, the comparison in one sentence and the next step: a backend whose output holds NaN/Inf is a
    defect; a layer below its precision's threshold is quantization-limited (the precision is the cause)."""
    broken = [b for b in result.backends if _non_finite_output(result, b) is not None]
    diverging = [b for b in result.backends if result.first_diverging.get(b)]
    holding = [b for b in result.backends if b not in diverging and b not in broken]
    if broken:
        row = _non_finite_output(result, broken[0])
        return Finding(status.DEFECT, f"{label(broken[0])}: output {row.layer if row else ''} holds values that are "
                       "not finite (NaN or Inf)", "find the first layer whose values are not finite in the table "
                       "and check the device's precision for it")
    if not diverging:
        worst = ", ".join(f"{label(b)} (" + (f"worst layer {_db(_judged_on(w)[1])}" if (w := result.worst(b))
                                             else "nothing compared: every layer fused or missing") + ")"
                          for b in result.backends)
        return Finding(status.MATCHES, f"every backend stays above its threshold at every layer: {worst}",
                       "nothing to change: each layer's error is within its precision's floor")
    parts = []
    for b in diverging:
        name = result.first_diverging[b]
        row = next(r for r in result.rows_of(b) if r.layer == name)
        which, value = _judged_on(row)
        parts.append(f"{label(b)} diverges first at {name} ({which} SQNR {_db(value)}, threshold "
                     f"{number(result.threshold_db.get(b), 'g')} dB)")
    sentence = "; ".join(parts)
    if holding:
        sentence += f"; {' and '.join(label(b) for b in holding)} stay{'s' if len(holding) == 1 else ''} above " \
                    f"{'its' if len(holding) == 1 else 'their'} threshold at every layer"
    return Finding(status.LIMITED, sentence, _next_step(result, diverging[0]))


def _next_step(result: LayerComparison, backend: str) -> str:
    layer = result.first_diverging[backend]
    if result.to_json().get("bisection"):
        return f"keep the layers the precision bisection below lists at {result.reference}'s precision, starting with {layer}"
    if backend.startswith("gna-emu"):
        return (f"its local error at {layer} is the GNA's own: find the scale factor (or layout) that lifts it with "
                "gnaexp diagnose, then compare again")
    return (f"keep {layer} at {result.reference}'s precision (NNCF's ignored_scope for int8, OpenVINO's per-node "
            "precision for bf16/f16) and compare again")


def index_entry(result: LayerComparison) -> IndexEntry:
    """What the batch index shows of a per-layer run: the finding, the sentences, each backend's network outputs."""
    rows = [MetricRow(label(r.backend), cosine=r.cosine, sqnr_db=r.sqnr_db, output=r.layer, max_abs_error=r.max_abs,
                      kind="emulated" if r.backend.startswith("gna-emu") else
                      "imported" if r.backend.endswith("(loaded)") else "measured")
            for r in result.rows if r.is_output and r.status == "compared"]
    notes = [f"{label(b)}: {n}" for b, ns in result.notes.items() for n in ns]
    return IndexEntry(result.model or "layers", finding_lines(result), rows, notes, finding(result))


# --- the sections ----------------------------------------------------------------------------------------------

def finding_html(result: LayerComparison) -> str:
    found = finding(result)
    about = (f"Per-layer comparison of {result.model or 'the model'} against {result.reference}; the first diverging "
             "layer is the first (in the graph's order) whose local SQNR — the error the layer adds itself, fed the "
             "reference's inputs — is below its backend's threshold. Figures of gna-emu are emulated (the GNA "
             "integer emulator), not measured.")
    return status.finding_html(found, [about], finding_lines(result))


def _img(png: bytes, width: int, alt: str) -> str:
    return (f"<img src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}' width='{width}' "
            f"style='max-width:100%;height:auto' alt='{escape(alt)}'>")


def plot_html(result: LayerComparison) -> str:
    from gnaexp.present import layer_plots

    if not result.backends or not result.rows:
        return "<p class='gnaexp-note'>No layer to plot.</p>"
    labels = {b: label(b) for b in result.backends}
    png, width = layer_plots.as_png(layer_plots.sqnr_along_graph(result, labels=labels))
    first = "; ".join(f"{label(b)}: {result.first_diverging.get(b) or 'none'}" for b in result.backends)
    return (f"<figure class='gnaexp-layer-plot'>{_img(png, width, 'SQNR per layer; first diverging: ' + first)}"
            "<figcaption>Accumulated SQNR (the whole net ran on the backend; its tensor of the same name compared) and "
            "local SQNR (the layer alone, fed the reference's inputs) per layer, in the reference's topological "
            "order; the dotted line is the backend's threshold, the vertical line its first diverging layer. × marks a "
            "layer the backend fused away (or lacks); ▲ an exact match (+inf dB).</figcaption></figure>")


def overlay_html(result: LayerComparison, outputs: Outputs | None) -> str:
    from gnaexp.present import layer_plots

    if not outputs:
        return ("<p class='gnaexp-note'>No output values with this table (a layers.json alone holds the numbers, not "
                "the tensors): run gnaexp layers --out again to draw them.</p>")
    parts = []
    for key, (ref, tested) in outputs.items():
        shown = {label(b): v for b, v in tested.items()}
        if np.size(ref) <= FEW_VALUES:  # a score or a mean: its values say more than a line of one point
            rows = [[escape(f"{result.reference} (reference)")] + [cell(float(v), ".6g") for v in np.ravel(ref)]]
            rows += [[escape(b)] + [cell(float(x), ".6g") for x in np.ravel(v)] for b, v in shown.items()]
            parts.append(table(["backend"] + [f"value {i}" for i in range(np.size(ref))], rows, "gnaexp-output-values",
                               f"output {escape(key)}: every value"))
            continue
        png, width = layer_plots.as_png(layer_plots.output_overlay(key, result.reference, ref, shown))
        parts.append(f"<figure class='gnaexp-overlay'>{_img(png, width, f'output {key}: reference and backends')}"
                     f"<figcaption>Output {escape(key)}: {escape(result.reference)} (black) and each backend under "
                     "test, channel by channel; the error (backend − reference) under each.</figcaption></figure>")
    return "".join(parts)


def table_html(result: LayerComparison) -> str:
    """One table per backend under test: every reference layer in topological order (fused, missing and inserted
    layers as such), the first diverging layer and the layers below the threshold marked."""
    parts = []
    head = ("#", "layer", "op", "accumulated SQNR dB", "local SQNR dB", "cosine", "max |err|", "status")
    for b in result.backends:
        threshold = result.threshold_db.get(b, math.nan)
        first = result.first_diverging.get(b)
        by_local = any(r.local_sqnr_db is not None for r in result.rows_of(b))  # as compare judged it
        rows, classes = [], []
        for i, r in enumerate(result.rows_of(b)):
            judged = r.local_sqnr_db if by_local else r.sqnr_db
            below = r.status == "compared" and judged is not None and judged < threshold
            state = "first diverging" if r.layer == first else r.status + (" (output)" if r.is_output else "")
            rows.append((str(i) if r.status != "inserted" else "+", escape(r.layer), escape(r.op),
                         cell(r.sqnr_db, ".1f"), cell(r.local_sqnr_db, ".1f"), cell(r.cosine, ".6f"),
                         cell(r.max_abs, ".3g"), escape(state)))
            classes.append("gnaexp-gone" if r.status != "compared" else "gnaexp-diverging" if r.layer == first
                           else "gnaexp-below" if below else "")
        counts = ", ".join(f"{n} {s}" for s in ("fused", "missing", "inserted")
                           if (n := sum(r.status == s for r in result.rows_of(b))))
        caption = (f"threshold {number(threshold, 'g')} dB on the local SQNR · – : not measured"
                   + (f" · {counts}" if counts else "") + " · fused: merged into another layer by the backend; "
                   "missing: no tensor of that name; inserted (+): a layer only the backend's model has")
        notes = "".join(f"<p class='gnaexp-note'><b>Note:</b> {escape(n)}</p>" for n in result.notes.get(b, []))
        parts.append(f"<h3>{escape(label(b))} against {escape(result.reference)}</h3>"
                     + table(head, rows, "gnaexp-layers", escape(caption), classes) + notes)
    return "".join(parts)


def _json_html(value: Any) -> str:
    """A JSON value as HTML: a list of mappings as a table (one row per item), a mapping as key/value rows (nested
    values drawn the same way), anything else as text."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = list(dict.fromkeys(k for v in value for k in v))
        return table(keys, [[_json_html(v.get(k)) if isinstance(v.get(k), (dict, list)) else cell(v.get(k), ".4g")
                             for k in keys] for v in value], "gnaexp-bisection")
    if isinstance(value, dict):
        body = "".join(f"<tr><th>{escape(k)}</th><td>{_json_html(v)}</td></tr>" for k, v in value.items())
        return f"<table class='gnaexp-bisection'>{body}</table>"
    return cell(value, ".4g") if isinstance(value, float) else escape(plain(value))


def bisection_html(result: LayerComparison) -> str:
    """The precision bisection, where one ran: each step as the comparison records it."""
    data = result.to_json().get("bisection")
    if not data:
        return ""
    return ("<h2>Precision bisection</h2><p class='small'>Each step of the search for the smallest set of layers "
            "that, kept at the reference's precision, brings the output above the target.</p>" + _json_html(data))


def environment_html(result: LayerComparison) -> str:
    what = {"model": result.model, "reference": result.reference, "backends": ", ".join(result.backends),
            "input fingerprint": result.input_fingerprint}
    return (f"<table class='gnaexp-env'>{key_value_rows(what.items())}"
            f"{key_value_rows(result.environment.items())}</table>")


def sections(result: LayerComparison, outputs: Outputs | None = None) -> dict[str, str]:
    """The report's parts after the finding, each drawn once (its figures are most of a report's time): the page
    and the notebook show the same ones."""
    return {"plot": "<h2>SQNR along the graph</h2>" + plot_html(result),
            "overlay": "<h2>Network outputs</h2>" + overlay_html(result, outputs),
            "bisection": bisection_html(result),
            "table": "<h2>Per layer</h2>" + table_html(result),
            "environment": "<h2>Environment</h2>" + environment_html(result)}


def page(result: LayerComparison, outputs: Outputs | None = None, parts: dict[str, str] | None = None) -> str:
    """The whole report: one self-contained HTML page (``parts``: its ``sections``, when already drawn)."""
    title = f"gnaexp layers: {result.model or 'model'} against {result.reference}"
    parts = parts if parts is not None else sections(result, outputs)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>" + finding_html(result)
            + "".join(parts.values()) + "</body></html>")


def outputs_of(result: LayerComparison, reference: Measured, measured: Sequence[Measured]) -> dict[
        str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The network outputs' values for the overlay: per output layer the reference's, and each tested backend's
    where it has a tensor of the same size."""
    keys = list(dict.fromkeys(r.layer for r in result.rows if r.is_output))
    found: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for key in keys:
        ref = reference.values.get(key)
        if ref is None:
            continue
        tested = {m.label: np.asarray(m.values[key]).reshape(ref.shape) for m in measured
                  if key in m.values and np.size(m.values[key]) == ref.size}
        found[key] = (np.asarray(ref), tested)
    return found


def write(path: Any, result: LayerComparison, outputs: Outputs | None = None) -> Any:
    """The report, written atomically."""
    from pathlib import Path

    from gnaexp.core.files import atomic_write_text

    return atomic_write_text(Path(path), page(result, outputs))
