"""HTML pages: executed notebooks exported for sharing (offline-readable, no local paths), and the batch index.

A report must read the same without a network: nbconvert's lab template links MathJax and require.js from a
CDN, which text, tables and inline images do not need, so those tags are dropped. Absolute local paths carry
user and machine names; they are replaced by short marks before export.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from gnaexp.core.files import atomic_write_bytes, atomic_write_text
from gnaexp.present.index_entry import IndexEntry
from gnaexp.present.markup import bold, cell, escape

_EXPORTER: Any = None
_WARM = False


def _exporter(show_code: bool) -> Any:
    global _EXPORTER
    from nbconvert import HTMLExporter

    if _EXPORTER is None:
        _EXPORTER = HTMLExporter(template_name="lab")
    _EXPORTER.exclude_input = not show_code
    _EXPORTER.exclude_input_prompt = True
    _EXPORTER.exclude_output_prompt = True
    return _EXPORTER


def warm_up() -> None:
    """Export a small notebook once, so that the exporter's templates and filters are compiled before the first
    report (about 0.3 s of CPU), in a process that exports many (or forks processes that do): once a process."""
    global _WARM
    if _WARM:
        return
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# warm-up"),
        nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output(
            "execute_result", {"text/plain": "1", "text/html": "<b>1</b>"}, execution_count=1)])])
    _exporter(False).from_notebook_node(nb, resources={"metadata": {"name": "warm-up"}})
    _WARM = True


_NETWORK_TAGS = (re.compile(r"<script\b[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.I),
                 re.compile(r"<link\b[^>]*\bhref=[\"']https?://[^>]*>", re.I))


def offline_html(text: str) -> str:
    """Drop tags that fetch scripts or stylesheets from the network (MathJax, require.js): text, tables and
    inline images do not need them, and a report must read the same offline."""
    for pattern in _NETWORK_TAGS:
        text = pattern.sub("", text)
    return text


def hide_local_paths(text: str, *folders: Path, files: Iterable[str] = ()) -> str:
    """Replace absolute local paths (which carry user and machine names) by short marks: ``files`` (a run's path
    parameters) by their names, the given folders by ".", this Python environment by <python>, gnaexp's source
    tree by <gnaexp>, the home folder by ~. Also in JSON text (a notebook), where a backslash is doubled."""
    marks = []
    for f in files:
        given = str(f).rstrip("/\\")
        for form in {given, str(Path(given).expanduser()), os.path.realpath(Path(given).expanduser())}:
            marks.append((form, Path(form).name))
    marks += [(str(Path(f).resolve()), ".") for f in folders]
    marks += [(str(Path(sys.prefix).resolve()), "<python>"), (str(Path(__file__).resolve().parents[2]), "<gnaexp>"),
              (str(Path.home()), "~")]
    for path, mark in sorted(marks, key=lambda m: -len(m[0])):
        if len(path) > 1:  # as written, in JSON, and in Python source inside JSON (backslashes doubled)
            for form in dict.fromkeys((path, json.dumps(path)[1:-1], json.dumps(repr(path)[1:-1])[1:-1])):
                text = text.replace(form, mark)
    return text


def export_html(nb_path: Path, html_path: Path, show_code: bool = False, title: str = "") -> int:
    """Self-contained HTML of an executed notebook (lab template, code hidden unless asked). Returns its size."""
    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    nb.metadata.pop("widgets", None)  # live widget state needs a CDN script; notebooks show a static snapshot
    body, _ = _exporter(show_code).from_notebook_node(nb, resources={"metadata": {"name": title or nb_path.stem}})
    data = offline_html(body).encode("utf-8")
    atomic_write_bytes(html_path, data)
    return len(data)


_CSS = ("body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left}"
        ".err{color:#a00;font-family:monospace;white-space:pre-wrap}.small{font-size:12px;color:#555}"
        "td.num{text-align:right;white-space:nowrap}details summary{cursor:pointer;color:#555}")


def _entry(out: Path, name: str) -> IndexEntry | None:
    return IndexEntry.load(out / f"{name}.record")


def _run_status(batch_status: str, entry: IndexEntry | None) -> str:
    """The status shown for a run: the verdict engine's (``status``), or the batch's when the run did not finish."""
    from gnaexp.diagnose import status

    if batch_status == "failed":
        return status.FAILED
    if batch_status != "ok":
        return "pending"
    return entry.finding.status if entry is not None and entry.finding is not None else "ran"


def _metrics_cells(entry: IndexEntry | None) -> tuple[str, str, str]:
    """(our key metrics, the forum team's measured figure, the verdict) from a run's index entry."""
    if entry is None:
        return "", "–", ""
    ours, forum = [], []
    for row in entry.rows:
        label = escape(row.backend)
        ours.append(f"{label}: cos {cell(row.cosine, '.4f')}, SQNR {cell(row.sqnr_db, '.1f')} dB")
        if row.forum_cosine is not None:
            # the forum's figure is the forum team's own GNA measurement: never labelled with our (emulated) backend
            where = label.replace(" (emulated)", "") if "IR sf" in label else "GNA"
            forum.append(f"{where}: cos {escape(str(row.forum_cosine))}, L1 "
                         f"{escape(str(row.forum_l1 if row.forum_l1 is not None else '-'))}")
    found = entry.finding
    verdict = ""
    if found:
        verdict = f"{escape(found.verdict)}<div class='small'><b>Next:</b> {escape(found.next_step)}</div>"
    lines = "<br>".join(bold(v) for v in entry.verdict)
    if lines:
        verdict += f"<details><summary>every verdict</summary>{lines}</details>" if found else lines
    return "<br>".join(ours), "<br>".join(dict.fromkeys(forum)) or "–", verdict


def _forum_grid(entries: list[tuple[Any, IndexEntry | None, str]]) -> str:
    """The forum's table re-drawn: experiment × scale factor × layout, each cell the run's status."""
    from gnaexp.core import forum
    from gnaexp.core.gna_settings import FORUM_NETS
    from gnaexp.diagnose import status

    cells: dict[tuple[str, float, str], tuple[str, Any, IndexEntry | None]] = {}
    for run, entry, st in entries:
        net, params = run.notebook.stem, run.shown_parameters
        if net in FORUM_NETS and "scale_factor" in params:
            try:
                key = (net, float(params["scale_factor"]), str(params.get("layout", "correct")))
            except (TypeError, ValueError):
                continue
            cells[key] = (st, run, entry)
    if not cells:
        return ""
    sfs = sorted({k[1] for k in cells})
    layouts = ["correct", "legacy-concat"]
    head = "".join(f"<th>sf {sf:g}, {lay}</th>" for sf in sfs for lay in layouts) + "".join(
        f"<th>forum GNA, sf {sf:g} (measured)</th>" for sf in sfs)
    body = []
    for net in FORUM_NETS:
        if not any(k[0] == net for k in cells):
            continue
        row = []
        for sf in sfs:
            for lay in layouts:
                got = cells.get((net, sf, lay))
                if got is None:
                    row.append("<td class='small'>same as correct: no Concat feeds a convolution</td>"
                               if lay != "correct" and net != "concat_conv" else "<td>–</td>")
                    continue
                st, run, entry = got
                cos = next((r.cosine for r in (entry.rows if entry else []) if r.kind == "emulated"), None)
                row.append(f"<td>{status.badge(st)} <a href='{escape(run.name)}.html'>report</a>"
                           f"<div class='small'>emulated cos {cell(cos, '.4f')}</div></td>")
        for sf in sfs:
            fig = forum.lookup(net, sf)
            row.append(f"<td>{f'cos {fig.cosine}, L1 {escape(str(fig.l1))}' if fig else '–'}</td>")
        body.append(f"<tr><th>{escape(net)}</th>{''.join(row)}</tr>")
    return ("<h2>The forum's table, re-drawn</h2><table><tr><th>net</th>" + head + "</tr>" + "".join(body)
            + "</table>")


def write_index(entries: Iterable[tuple[Any, dict[str, Any]]], out: Path) -> Path:
    """index.html: a summary (status counts, legend, the forum's table re-drawn), then one row per run with its
    status, the finding and next step, key metrics, the forum's measured figure and links."""
    from gnaexp.diagnose import status

    shown = []
    for run, st in entries:
        batch_status = st.get("status", "pending") if st.get("key") in (run.key, None) or not run.key else "pending"
        entry = _entry(out, run.name) if batch_status == "ok" else None
        shown.append((run, entry, _run_status(batch_status, entry), st))
    rows = []
    for run, entry, run_status, st in shown:
        batch_status = "failed" if run_status == status.FAILED else "pending" if run_status == "pending" else "ok"
        links = []
        for suffix, text in ((".html", "report"), (".ipynb", "notebook"), (".record/record.json", "record"),
                             (".record/diagnosis.json", "diagnosis"), (".record/layers.json", "per-layer table"),
                             (".failed.html", "failed attempt")):
            if (out / f"{run.name}{suffix}").exists():
                links.append(f"<a href='{escape(run.name + suffix)}'>{text}</a>")
        if not (out / f"{run.name}.record" / "record.json").exists() and (out / f"{run.name}.record").is_dir():
            links.append(f"<a href='{escape(run.name)}.record/'>records</a>")  # a study's folder of records
        ours, forum_fig, verdict = _metrics_cells(entry)
        params = ", ".join(f"{k}={v}" for k, v in run.shown_parameters.items())
        err = f"<div class='err'>{escape(st.get('error', ''))}</div>" if run_status == status.FAILED else ""
        if run_status == status.FAILED and st.get("last_ok"):
            err += f"<div class='small'>last good report: {escape(st['last_ok'])}</div>"
        rows.append(f"<tr class='gnaexp-run' data-batch='{escape(batch_status)}' data-status='{escape(run_status)}'>"
                    f"<td>{status.badge(run_status)}</td>"
                    f"<td><b>{escape(run.name)}</b><div class='small'>{escape(run.notebook.name)}: {escape(params)}"
                    f"</div>{err}</td><td>{verdict}</td><td>{ours}</td><td>{forum_fig}</td>"
                    f"<td class='num'>{cell(st.get('duration_s', ''), '.1f')} s</td><td>{' · '.join(links)}</td></tr>")
    counts = {s: sum(1 for _, _, shown_status, _ in shown if shown_status == s)
              for s in status.SEVERITY + ("ran", "pending")}
    summary = " ".join(f"{status.badge(s)} {n}" for s, n in counts.items() if n)
    legend = "".join(f"<tr><td>{status.badge(s)}</td><td>{escape(status.MEANING[s])}</td></tr>"
                     for s in status.SEVERITY)
    grid = _forum_grid([(r, e, x) for r, e, x, _ in shown])
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gnaexp batch</title><style>{_CSS}</style>"
            f"</head><body><h1>gnaexp batch</h1><p class='gnaexp-summary'>{len(shown)} runs: {summary} · updated "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}</p><details open><summary>What the statuses mean</summary>"
            f"<table class='gnaexp-legend'>{legend}</table></details>{grid}<h2>Runs</h2>"
            "<p class='small'>GNA figures marked <i>(emulated)</i> come from the GNA integer emulator, not a device; "
            "the forum column is the forum team's own GNA measurement for that setting.</p><table class='gnaexp-runs'>"
            "<tr><th>status</th><th>run</th><th>finding and next step</th><th>ours (vs the FP32 reference)</th>"
            "<th>forum GNA (measured)</th><th>duration</th><th>files</th></tr>" + "".join(rows)
            + "</table></body></html>")
    return atomic_write_text(out / "index.html", page)
