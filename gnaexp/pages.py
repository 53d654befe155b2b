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

from gnaexp.files import atomic_write_bytes, atomic_write_text, dumps
from gnaexp.output_folder import add_file
from gnaexp.markup import bold, cell, escape
from gnaexp.records import INDEX_ENTRY_FILE

_EXPORTER: Any = None


def _exporter(show_code: bool) -> Any:
    global _EXPORTER
    from nbconvert import HTMLExporter

    if _EXPORTER is None:
        _EXPORTER = HTMLExporter(template_name="lab")
    _EXPORTER.exclude_input = not show_code
    _EXPORTER.exclude_input_prompt = True
    _EXPORTER.exclude_output_prompt = True
    return _EXPORTER


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
    marks += [(str(Path(sys.prefix).resolve()), "<python>"), (str(Path(__file__).resolve().parent.parent), "<gnaexp>"),
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


_CSS = ("body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 7px;vertical-align:top;text-align:left}tr.ok td:first-child{background:#c8f0c8}"
        "tr.failed td:first-child{background:#f6b8b8}tr.pending td:first-child{background:#eee}"
        ".err{color:#a00;font-family:monospace;white-space:pre-wrap}.small{font-size:12px;color:#555}")


def write_index_entry(record_dir: Path, experiment: str, verdict: list[str], rows: list[dict[str, Any]],
                      notes: list[str] | None = None) -> Path:
    """The one writer of index entries (every notebook's, whatever it shows)."""
    data = {"experiment": experiment, "notes": notes or [], "verdict": verdict, "rows": rows}
    return add_file(record_dir, INDEX_ENTRY_FILE, dumps(data).encode("utf-8"))


def _metrics_cell(out: Path, name: str) -> tuple[str, str, str]:
    """(our key metrics, the forum's figure, the verdict) from the run's index entry."""
    try:
        data = json.loads((out / f"{name}.record" / INDEX_ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", "", ""
    ours, forum = [], []
    for row in data.get("rows", []):  # summaries come from several notebooks: every key is optional
        label = escape(str(row.get("backend", "?")))
        ours.append(f"{label}: cos {cell(row.get('cosine'), '.4f')}, SQNR {cell(row.get('sqnr_db'), '.1f')} dB, "
                    f"L1 {cell(row.get('l1'), '.1e')}")
        if row.get("forum_cosine") is not None:
            forum.append(f"{label}: cos {row['forum_cosine']}, L1 {escape(str(row.get('forum_l1', '-')))}")
    verdict = "<br>".join(bold(v) for v in data.get("verdict", []))
    return "<br>".join(ours), "<br>".join(forum) or "–", verdict


def write_index(entries: Iterable[tuple[Any, dict[str, Any]]], out: Path) -> Path:
    """index.html: one row per run with status, duration, key metrics, the forum's figure, verdict and links."""
    rows = []
    entries = list(entries)
    for run, st in entries:
        status = st.get("status", "pending") if st.get("key") in (run.key, None) or not run.key else "pending"
        links = []
        for suffix, text in ((".html", "report"), (".ipynb", "notebook"), (".record/record.json", "record"),
                             (".failed.html", "failed attempt")):
            if (out / f"{run.name}{suffix}").exists():
                links.append(f"<a href='{escape(run.name + suffix)}'>{text}</a>")
        ours, forum, verdict = _metrics_cell(out, run.name) if status == "ok" else ("", "", "")
        params = ", ".join(f"{k}={v}" for k, v in run.shown_parameters.items())
        err = f"<div class='err'>{escape(st.get('error', ''))}</div>" if status == "failed" else ""
        if status == "failed" and st.get("last_ok"):
            err += f"<div class='small'>last good report: {escape(st['last_ok'])}</div>"
        rows.append(f"<tr class='{status}'><td>{status}</td><td><b>{escape(run.name)}</b><div class='small'>"
                    f"{escape(run.notebook.name)}: {escape(params)}</div>{err}</td>"
                    f"<td>{cell(st.get('duration_s', ''), '.1f')} s</td><td>{ours}</td><td>{forum}</td>"
                    f"<td>{verdict}</td><td>{' · '.join(links)}</td></tr>")
    ok = sum("class='ok'" in r for r in rows)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gnaexp batch</title><style>{_CSS}</style>"
            f"</head><body><h1>gnaexp batch</h1><p>{ok} of {len(entries)} runs ok · updated "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} · GNA figures marked <i>(emulated)</i> come from the GNA "
            "integer emulator, not a device · forum: the forum team's own GNA figure for that setting</p><table>"
            "<tr><th>status</th><th>run</th><th>duration</th><th>ours (vs torch)</th><th>forum</th><th>verdict</th>"
            "<th>files</th></tr>" + "".join(rows) + "</table></body></html>")
    return atomic_write_text(out / "index.html", page)
