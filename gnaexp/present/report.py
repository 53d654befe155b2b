"""What an experiment notebook shows, as library calls: setting, metrics table, plots, verdict, provenance.

Notebooks stay thin: each cell calls one function here and displays what it returns. Everything returned is a
plain object with ``_repr_html_``/``_repr_markdown_`` or a PNG ``IPython.display.Image``, so the executed
notebook and its HTML export carry text, tables and inline images only (readable offline).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gnaexp import experiment as experiment_mod
from gnaexp.backends import BackendResult, BackendUnavailable, make_backend, parse_backend_list
from gnaexp.core.records import Record
from gnaexp.experiment import ExperimentConfig
from gnaexp.present.index_entry import IndexEntry
from gnaexp.present.markup import cell, escape, key_value_rows, table
from gnaexp.core.errors import BadInput



NNCF_SETTINGS = ("activation_bits", "weight_bits", "calibration_size", "calibration_seed", "calibration_file")

# --- setting and backends ----------------------------------------------------------------------------------

@dataclass
class Setting:
    """An experiment's config as the notebook's parameters gave it, plus where its record goes."""

    config: ExperimentConfig
    record_dir: str
    notes: list[str] = field(default_factory=list)  # backends dropped or substituted, and why

    def _repr_html_(self) -> str:
        quantized = self.config.ir != experiment_mod.IR_FLOAT
        rows = {k: v for k, v in self.config.to_json().items()
                if v not in ("", None) and (quantized or k not in NNCF_SETTINGS)}
        rows["backends"] = ", ".join(self.config.backends)
        body = key_value_rows(rows.items())
        notes = "".join(f"<p class='gnaexp-note'><b>Note:</b> {escape(n)}</p>" for n in self.notes)
        return f"<table class='gnaexp-setting'>{body}</table>{notes}"


def setting_from(namespace: Mapping[str, Any], experiment: str | None = None) -> Setting:
    """The Setting from a notebook's parameter variables (pass ``globals()``); backends checked here.

    ``experiment``: the net a notebook is about (conv.ipynb runs conv); a parameter asking for another one is
    refused rather than silently running a different net. Backends that cannot run here are dropped with a
    visible note; asking for GNA without its plugin brings in the emulator instead, labelled as such.
    """
    asked = namespace.get("experiment")
    if experiment is not None and asked not in (None, experiment):
        raise BadInput(f"this notebook runs the {experiment!r} experiment, not {asked!r}: open {asked}.ipynb "
                         "(or the explorer) instead")
    keys = set(ExperimentConfig.keys())
    values = {k: namespace[k] for k in keys if k in namespace}
    if experiment is not None:
        values["experiment"] = experiment
    if isinstance(values.get("backends"), str):
        values["backends"] = parse_backend_list(values["backends"])
    requested = list(values.get("backends") or experiment_mod.DEFAULT_BACKENDS)
    config = ExperimentConfig().with_settings({**values, "backends": requested})
    kept, notes = available_backends(config)
    config = config.with_settings({"backends": kept})
    return Setting(config, str(namespace.get("record_dir") or f"{config.experiment}.record"), notes)


def available_backends(config: ExperimentConfig) -> tuple[list[str], list[str]]:
    """(backends that can run here, notes on the ones that cannot)."""
    kept, notes = [], []
    options = experiment_mod.backend_options(config)
    wants_gna = False
    for spec in config.backends:
        try:
            make_backend(spec, options).check_available()
        except (BackendUnavailable, ModuleNotFoundError) as exc:
            wants_gna = wants_gna or spec.upper().endswith(":GNA")
            first = str(exc).split(". ")[0].rstrip(".")
            notes.append(f"{spec} is not available here and was left out ({first}).")
            continue
        kept.append(spec)
    if wants_gna and "gna-emu" not in kept:
        kept.append("gna-emu")
        notes.append("GNA is absent on this machine: the GNA integer emulator (gna-emu) runs instead; its "
                     "results are labelled 'emulated', not measured.")
    if not kept:
        raise BackendUnavailable(f"none of the backends {config.backends} can run here; use torch,openvino:CPU")
    return kept, notes


# --- running --------------------------------------------------------------------------------------------------

@dataclass
class NotebookRun:
    setting: Setting
    record: Record
    record_dir: Path

    @property
    def reference(self) -> BackendResult:
        return experiment_mod.reference_of(self.record.results)


def run_setting(setting: Setting, use_cache: bool = True) -> NotebookRun:
    """``experiment.run`` for a notebook: the record (with its IR) saved under ``setting.record_dir``.

    The torch reference output and the IR are cached per net, seed and input settings, so that a later run of
    the same net does not need torch at all (importing it costs seconds per kernel in a batch).
    """
    out_dir = Path(setting.record_dir)
    record = experiment_mod.run(setting.config, out_dir=out_dir, use_cache=use_cache)
    return NotebookRun(setting, record, out_dir)


def run(params: Mapping[str, Any], experiment: str | None = None) -> NotebookRun:
    """A net's notebook: its parameters (``globals()``) → the run. Writes into ``record_dir``: the record (IR,
    inputs, outputs) and the index entry."""
    run_ = run_setting(setting_from(params, experiment))
    index_entry(run_).save(run_.record_dir)
    return run_


def index_entry(run_: NotebookRun) -> IndexEntry:
    """Key metrics, verdict lines and the finding of a run, for the batch index page."""
    from gnaexp.diagnose import status, verdicts as diagnosis
    from gnaexp.present import summary

    return IndexEntry(run_.record.experiment, diagnosis.verdict_lines(run_.record), summary.rows(run_.record),
                      run_.setting.notes, status.record_finding(run_.record))


# --- what the notebook displays ----------------------------------------------------------------------------------

class _Display:
    """Minimal rich-display object (IPython is not needed to build one); subclasses pick the MIME type."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class HTML(_Display):
    def _repr_html_(self) -> str:
        return self.text


class Markdown(_Display):
    def _repr_markdown_(self) -> str:
        return self.text


def metrics_table(run_: NotebookRun) -> HTML:
    """Every backend against the reference, the forum's own figure beside the GNA-like rows."""
    from gnaexp.present import summary

    head = ("backend", "kind", "L1", "cosine", "Pearson", "SQNR dB", "max |err|", "forum L1", "forum cosine")
    rows = []
    for r in summary.rows(run_.record):
        kind = r.kind + (" ⚠" if r.kind == "emulated" else "")
        rows.append((escape(r.backend), escape(kind), cell(r.l1, ".3e"), cell(r.cosine, ".6f"),
                     cell(r.pearson, ".6f"), cell(r.sqnr_db, ".1f"), cell(r.max_abs_error, ".3e"),
                     cell(r.forum_l1), cell(r.forum_cosine, ".4g")))
    caption = (f"reference: {escape(run_.record.reference)} · forum figures are the forum team's GNA "
               "measurements (about), shown beside GNA-like rows · ⚠ emulated = GNA integer emulator, not a device")
    return HTML(table(head, rows, "gnaexp-metrics", caption))


def _outputs(run_: NotebookRun, name: str | None = None) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    ref = run_.reference
    name = name or next(iter(ref.outputs))
    others = {r.label: r.outputs[name] for r in run_.record.results if r is not ref and name in r.outputs}
    return ref.label, ref.outputs[name], others


def image(fig: Any) -> Any:
    """A figure as an inline PNG display object (embedded as data: in exported HTML), rendered at HIDPI × its
    display size and shown at its display size: sharp, never stretched."""
    from IPython.display import Image

    from gnaexp.present import plots

    width, _ = plots.display_size(fig)
    return Image(data=plots.to_png(fig), format="png", width=width)


def overlay_figure(run_: NotebookRun, channels: list[int] | None = None,
                   size: tuple[float, float] | None = None) -> Any:
    from gnaexp.present import plots

    ref_label, ref, others = _outputs(run_)
    return plots.overlay(ref, others, channels=channels, reference_label=ref_label, size=size,
                         title=f"{run_.record.experiment}: output per channel (error = backend − {ref_label})")


def scatter_figure(run_: NotebookRun) -> Any:
    from gnaexp.present import plots

    ref_label, ref, others = _outputs(run_)
    return plots.scatter(ref, others, reference_label=ref_label)


def histogram_figure(run_: NotebookRun) -> Any:
    from gnaexp.present import plots

    _, ref, others = _outputs(run_)
    return plots.error_histogram(ref, others)


def sweep_figure(run_: NotebookRun) -> Any:
    """The record's emulated floor sweep (the one the verdicts read): SQNR per layout against the scale factor.

    None when the run has no sweep (no result needed a floor, or the emulator cannot run the model).
    """
    from gnaexp.present import plots

    sw = run_.record.sweep
    if sw is None:
        return None
    values = {f"emulated, layout {k}": v.sqnr_db for k, v in sw.layouts.items()}
    return plots.sweep(sw.scale_factors, values, metric="SQNR vs reference (dB)",
                       saturation_sf=sw.input_saturation_sf, current_sf=sw.scale_factor,
                       title=f"emulated {sw.precision} SQNR vs input scale factor")


def sweep_plot(run_: NotebookRun) -> Any:
    """The sweep figure as an inline image, or a note saying why there is none."""
    fig = sweep_figure(run_)
    if fig is None:
        why = run_.record.sweep_error or "every backend here is an FP32 reference, so no floor is needed"
        return Markdown(f"*No emulated scale-factor sweep for this run: {why}.*")
    return image(fig)


def finding(run_: NotebookRun) -> HTML:
    """The report's first screen: status, the verdict in one sentence and the next step (``status``), then every
    backend's verdict (``diagnosis``) and where the forum's own figure differs, why."""
    from gnaexp.diagnose import status, verdicts as diagnosis

    found = status.record_finding(run_.record)
    lines = diagnosis.verdict_lines(run_.record)
    return HTML(status.finding_html(found, _forum_notes(run_.record), lines) + status.your_model_html())


def _forum_notes(record: Record) -> list[str]:
    """Where the forum team's measured GNA figure differs from this run's emulated one, what that means."""
    from gnaexp.present import summary

    notes = []
    for row in summary.rows(record):
        if row.forum_cosine is None or row.kind != "emulated" or row.cosine is None or not np.isfinite(row.cosine):
            continue
        gap = abs(row.cosine - row.forum_cosine)
        if gap > 0.05:
            layout = record.config.get("layout", "correct")
            notes.append(f"The forum team measured cosine {row.forum_cosine} on their GNA here; this run "
                         f"({row.backend}, layout {layout}) computes {row.cosine:.4f}. A gap that large is not "
                         "quantization: " + ("the legacy-concat layout (layout=legacy-concat) reproduces the forum's "
                                             "figure — open that row, or the diagnose notebook, for the mechanism"
                                             if layout == "correct" else
                                             "compare the layout paths in the diagnose notebook"))
            break
    return notes


def _relative(path: Path | str) -> str:
    """A path relative to the working folder; never an absolute path (reports are shared)."""
    p = Path(path)
    try:
        return Path(os.path.relpath(p.resolve(), Path.cwd().resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return p.name


def environment_rows(environment: Mapping[str, Any]) -> str:
    """Table rows (HTML) of an environment block: OS, CPU, versions, devices."""
    return key_value_rows(environment.items())


def provenance(run_: NotebookRun) -> HTML:
    """Environment, parameters, plugin configs and relative paths of the IR, inputs and outputs."""
    rec = run_.record
    env = environment_rows(rec.environment)
    paths = {"record": run_.record_dir / "record.json"}
    paths.update({k: run_.record_dir / v for k, v in rec.artifacts.items()})
    files = "".join(f"<li>{escape(k)}: <code>{escape(_relative(v))}</code></li>" for k, v in paths.items())
    backends = "".join(
        f"<li><b>{escape(r.label)}</b> ({r.kind}): <code>{escape(json.dumps(_scrub(r.settings)))}</code>"
        + (f" plugin config <code>{escape(json.dumps(r.info.get('plugin_config')))}</code>"
           if r.info.get("plugin_config") else "") + "</li>" for r in rec.results)
    params = escape(json.dumps(_scrub(rec.config), indent=1))
    return HTML(f"<h4>Environment</h4><table class='gnaexp-env'>{env}</table><h4>Backends</h4><ul>{backends}</ul>"
                f"<h4>Parameters</h4><pre>{params}</pre><h4>Files (relative to this report)</h4><ul>{files}</ul>"
                f"<p>Input fingerprint <code>{rec.input_fingerprint}</code>, model fingerprint "
                f"<code>{rec.model_fingerprint}</code>, seed {rec.config.get('seed')}.</p>")


def _scrub(obj: Any) -> Any:
    """Absolute paths (which carry user names) become their file names."""
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    if isinstance(obj, str) and (os.path.isabs(obj) or obj.startswith("~")):
        return Path(obj).name
    return obj
