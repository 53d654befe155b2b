"""What an experiment notebook shows, as library calls: setting, metrics table, plots, verdict, provenance.

Notebooks stay thin: each cell calls one function here and displays what it returns. Everything returned is a
plain object with ``_repr_html_``/``_repr_markdown_`` or a PNG ``IPython.display.Image``, so the executed
notebook and its HTML export carry text, tables and inline images only (readable offline).
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from gnaexp import experiment as experiment_mod
from gnaexp.backends import BackendResult, BackendUnavailable, ModelBundle, make_backend
from gnaexp.experiment import ExperimentConfig
from gnaexp.records import Record, atomic_write_text, dumps

# Scale factors the sweep plot probes (powers of two up to the int16 range).
SWEEP_SCALE_FACTORS = tuple(float(2 ** k) for k in range(16))
FLOOR_MARGIN_DB = 3.0  # within this of the emulated floor counts as "at the floor"
STEADY_DB = 3.0  # an SQNR that moves less than this across the usable scale factors is "unchanged by sf"
USABLE_FLOOR_DB = 30.0  # scale factors where the correct-layout floor is at least this are not quantization-bound
NOTEBOOK_KEYS = ("record_dir",)  # parameters a notebook has besides ExperimentConfig's fields
SUMMARY_FILE = "summary.json"


# --- setting and backends ----------------------------------------------------------------------------------

@dataclass
class Setting:
    """An experiment's config as the notebook's parameters gave it, plus where its record goes."""

    config: ExperimentConfig
    record_dir: str
    notes: list[str] = field(default_factory=list)  # backends dropped or substituted, and why
    requested_backends: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        rows = {k: v for k, v in self.config.to_json().items() if v not in ("", None)}
        rows["backends"] = ", ".join(self.config.backends)
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td style='text-align:left'>"
                       f"{html.escape(str(v))}</td></tr>" for k, v in rows.items())
        notes = "".join(f"<p class='gnaexp-note'><b>Note:</b> {html.escape(n)}</p>" for n in self.notes)
        return f"<table class='gnaexp-setting'>{body}</table>{notes}"


def setting_from(namespace: Mapping[str, Any]) -> Setting:
    """The Setting from a notebook's parameter variables (pass ``globals()``); backends checked here.

    Backends that cannot run here are dropped with a visible note; asking for GNA without its plugin brings
    in the emulator instead, labelled as such.
    """
    keys = set(ExperimentConfig.keys())
    values = {k: namespace[k] for k in keys if k in namespace}
    if isinstance(values.get("backends"), str):
        values["backends"] = [s.strip() for s in values["backends"].split(",") if s.strip()]
    requested = list(values.get("backends") or experiment_mod.DEFAULT_BACKENDS)
    config = ExperimentConfig().with_settings({**values, "backends": requested})
    kept, notes = available_backends(config)
    config = config.with_settings({"backends": kept})
    return Setting(config, str(namespace.get("record_dir") or f"{config.experiment}.record"), notes, requested)


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
    if wants_gna and "gna-emu" not in kept and _emulator_available():
        kept.append("gna-emu")
        notes.append("GNA is absent on this machine: the GNA integer emulator (gna-emu) runs instead; its "
                     "results are labelled 'emulated', not measured.")
    if not kept:
        raise BackendUnavailable(f"none of the backends {config.backends} can run here; use torch,openvino:CPU")
    return kept, notes


def _emulator_available() -> bool:
    try:
        make_backend("gna-emu").check_available()
    except (BackendUnavailable, ModuleNotFoundError):
        return False
    return True


# --- running, with a cached torch reference ------------------------------------------------------------------

@dataclass
class NotebookRun:
    setting: Setting
    record: Record
    model: ModelBundle
    record_dir: Path
    _sweep: dict[str, Any] | None = None

    @property
    def reference(self) -> BackendResult:
        return experiment_mod.reference_of(self.record.results)

    def sweep(self) -> dict[str, Any]:
        """Emulated SQNR against the reference over the scale factors (correct layout and the run's layout)."""
        if self._sweep is None:
            self._sweep = emulated_sweep(self.setting.config, self.model, self.record.inputs,
                                         self.reference.outputs)
        return self._sweep


def _reference_key(config: ExperimentConfig) -> str | None:
    """Cache key of the torch reference output and IR, or None where it cannot be cached safely."""
    if config.experiment == "model" or config.ir != "default" or config.input_file:
        return None
    net = {k: getattr(config, k) for k in ("experiment", "in_channels", "copies", "conv_in_channels",
                                           "out_channels", "kernel", "stride", "length", "seed", "input_kind",
                                           "amplitude")}
    # Versions and the sources that build nets, inputs and IRs are part of the key: any of them may change
    # the reference.
    net["versions"] = [_version("torch"), _version("openvino"), _version("gnaexp")]
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(json.dumps(net, sort_keys=True).encode())
    for name in ("nets.py", "inputs.py", "ir.py", "experiment.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:20]


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:  # e.g. gnaexp run from a source tree without installing
        return "none"


def _load_cached_reference(folder: Path) -> tuple[ModelBundle, BackendResult, str] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        with np.load(folder / "reference.npz", allow_pickle=False) as z:
            outputs = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        return None
    if not (folder / "model.bin").exists():
        return None
    bundle = ModelBundle(name=meta["name"], ir_xml=folder / "model.xml", input_names=meta["input_names"],
                         output_names=meta["output_names"],
                         input_shapes={k: tuple(v) for k, v in meta["input_shapes"].items()})
    info = dict(meta["info"], cached=True)
    return bundle, BackendResult("torch", "reference", outputs, {}, info, 0.0), meta["input_fingerprint"]


def _store_cached_reference(folder: Path, model: ModelBundle, ref: BackendResult, input_fingerprint: str) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        shutil.copyfile(model.ir_xml, tmp / "model.xml")
        shutil.copyfile(Path(model.ir_xml).with_suffix(".bin"), tmp / "model.bin")
        np.savez(tmp / "reference.npz", **ref.outputs)
        meta = {"name": model.name, "input_names": model.input_names, "output_names": model.output_names,
                "input_shapes": {k: list(v) for k, v in model.input_shapes.items()}, "info": ref.info,
                "input_fingerprint": input_fingerprint}
        (tmp / "meta.json").write_text(dumps(meta), encoding="utf-8")
        os.replace(tmp, folder)  # another process may have won the race: then its copy stays
    except OSError:
        pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def run(setting: Setting, use_cache: bool = True) -> NotebookRun:
    """Run the setting's backends and save the record (with its IR) under ``setting.record_dir``.

    The torch reference output and the IR are cached per net, seed and input settings, so that a later run of
    the same net does not need torch at all (importing it costs seconds per kernel in a batch).
    """
    config, out_dir = setting.config, Path(setting.record_dir)
    key = _reference_key(config) if use_cache and "torch" in config.backends else None
    folder = experiment_mod.cache_dir() / "reference" / key if key else None
    cached = _load_cached_reference(folder) if folder else None
    if cached is None:
        model = experiment_mod.build_model(config)
        record = experiment_mod.run(config, model=model)
        if folder is not None:
            _store_cached_reference(folder, model, record.result("torch"), record.input_fingerprint)
    else:
        model, torch_result, fingerprint = cached
        record = _run_with_reference(config, model, torch_result, fingerprint)
    experiment_mod.save_with_ir(record, model, out_dir)
    return NotebookRun(setting, record, model, out_dir)


def _run_with_reference(config: ExperimentConfig, model: ModelBundle, torch_result: BackendResult,
                        fingerprint: str) -> Record:
    """``experiment.run`` with the torch result taken from the cache; the record is the same."""
    import datetime as dt
    import time

    from gnaexp import diagnosis, environment, inputs as inputs_mod

    start = time.perf_counter()
    experiment_mod.check_backends(config)
    feed = experiment_mod.make_inputs(config, model)
    if inputs_mod.fingerprint(feed) != fingerprint:
        raise RuntimeError("cached torch reference belongs to other inputs; clear the cache folder "
                           f"{experiment_mod.cache_dir() / 'reference'}")
    options = experiment_mod.backend_options(config)
    results = [torch_result if spec == "torch" else make_backend(spec, options).run(model, feed)
               for spec in config.backends]
    ref = experiment_mod.reference_of(results)
    record = Record(
        experiment=config.experiment, config=config.to_json(), reference=ref.label, results=results,
        metrics=experiment_mod.compare_results(ref, results), inputs=feed, input_fingerprint=fingerprint,
        model_fingerprint=experiment_mod._model_fingerprint(model), environment=environment.capture(),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    record.model_info = dict(model.info)
    record.diagnosis = diagnosis.diagnose_record(record)
    record.duration_s = time.perf_counter() - start
    return record


# --- sweep and verdict ------------------------------------------------------------------------------------------

def emulated_sweep(config: ExperimentConfig, model: ModelBundle, feed: Mapping[str, np.ndarray],
                   reference: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """SQNR and cosine of the emulator against the reference at every sweep scale factor, per layout."""
    from gnaexp import metrics
    from gnaexp.emulator import emulate

    ref = next(iter(reference.values()))
    layouts = ["correct"] + ([config.layout] if config.layout != "correct" else [])
    series: dict[str, dict[str, list[float]]] = {}
    for layout in layouts:
        sq, cos = [], []
        for sf in SWEEP_SCALE_FACTORS:
            em = emulate(model.ir_xml, feed, scale_factors=sf, precision=config.precision, layout=layout)
            c = metrics.compare(ref, next(iter(em.outputs.values())))
            sq.append(c.sqnr_db)
            cos.append(c.cosine)
        series[layout] = {"sqnr_db": sq, "cosine": cos}
    from gnaexp.plots import saturation_onset

    return {"scale_factors": list(SWEEP_SCALE_FACTORS), "layouts": series, "precision": config.precision,
            "saturation_sf": saturation_onset(list(feed.values())), "scale_factor": float(config.scale_factor)}


def _at(sweep: Mapping[str, Any], layout: str, sf: float, metric: str = "sqnr_db") -> float:
    sfs = sweep["scale_factors"]
    i = min(range(len(sfs)), key=lambda j: abs(math.log(sfs[j]) - math.log(sf)))
    return sweep["layouts"][layout][metric][i]


def verdict_lines(run_: NotebookRun) -> list[str]:
    """One sentence per compared backend: at the int16 floor, or above it and why."""
    record, config = run_.record, run_.setting.config
    sweep = run_.sweep() if _can_emulate() and run_.model.ir_xml is not None else None
    sf = float(config.scale_factor)
    bits = "int8" if config.precision == "i8" else "int16"
    lines = []
    for r in record.results:
        per = record.metrics.get(r.label)
        if not per:
            continue
        worst = min(per.values(), key=lambda c: c.sqnr_db)
        name = f"**{r.label}**"
        if r.kind == "reference":
            ok = worst.cosine >= 0.99999
            lines.append(f"{name}: {'matches the FP32 reference (float rounding only)' if ok else 'disagrees with the FP32 reference: the exported model differs — fix the IR first'}"
                         f" (cosine {worst.cosine:.6f}).")
            continue
        if sweep is None:
            lines.append(f"{name}: SQNR {worst.sqnr_db:.1f} dB, cosine {worst.cosine:.4f} (no emulated floor "
                         "to compare with here).")
            continue
        lines.append(f"{name}: {_verdict_text(r, worst, sweep, config, bits)}.")
    return lines


def _verdict_text(r: BackendResult, worst: Any, sweep: Mapping[str, Any], config: ExperimentConfig,
                  bits: str) -> str:
    sf = float(config.scale_factor)
    floor_trace = sweep["layouts"]["correct"]["sqnr_db"]
    floor = _at(sweep, "correct", sf)
    best_i = int(np.nanargmax(floor_trace))
    best_sf, best_floor = sweep["scale_factors"][best_i], floor_trace[best_i]
    layout = r.settings.get("layout", config.layout) if r.emulated else None
    hint = (f"; the floor itself is quantization-limited here — sf {best_sf:g} would give {best_floor:.1f} dB"
            if best_floor - floor > FLOOR_MARGIN_DB else "")
    if r.emulated and layout == "correct":
        return (f"the emulated {bits} quantization floor for sf {sf:g}: SQNR {worst.sqnr_db:.1f} dB, cosine "
                f"{worst.cosine:.6f}{hint}")
    tag = " (emulated, layout " + str(layout) + ")" if r.emulated else ""
    gap = floor - worst.sqnr_db
    if gap <= FLOOR_MARGIN_DB:
        return (f"error at the {bits} floor for sf {sf:g}{tag}: SQNR {worst.sqnr_db:.1f} dB vs floor {floor:.1f} dB, "
                f"cosine {worst.cosine:.6f} — quantization only{hint}")
    text = f"far above the {bits} floor for sf {sf:g}{tag}: SQNR {worst.sqnr_db:.1f} dB vs floor {floor:.1f} dB"
    trace = sweep["layouts"].get(layout) if r.emulated else None
    if trace is None:
        return text + " → not explained by quantization alone; compare the layout hypotheses (gnaexp diagnose)"
    # Judge the reaction to sf where quantization no longer dominates the floor (its SQNR is high there).
    usable = [v for v, f in zip(trace["sqnr_db"], floor_trace) if math.isfinite(f) and f >= USABLE_FLOOR_DB]
    best = max(trace["sqnr_db"])
    if usable and _spread(usable) < STEADY_DB and best_floor - best > FLOOR_MARGIN_DB:
        return (text + f", and unchanged by the scale factor (best {best:.1f} dB over all sf, floor up to "
                f"{best_floor:.1f} dB) → not quantization: a structural (layout/graph) defect")
    return text + " → the error reacts to the scale factor: try the sf the sweep marks best"


def _spread(values: Iterable[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) - min(finite) if finite else 0.0


def _can_emulate() -> bool:
    try:
        import gnaexp.emulator  # noqa: F401
    except ImportError:
        return False
    return True


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


def _cell(v: Any, spec: str) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return "+inf" if v > 0 else ("-inf" if v < 0 else "nan")
    return format(v, spec) if isinstance(v, (int, float)) else html.escape(str(v))


def metrics_table(run_: NotebookRun) -> HTML:
    """Every backend against the reference, the forum's own figure beside the GNA-like rows."""
    from gnaexp import summary

    head = ("backend", "kind", "L1", "cosine", "Pearson", "SQNR dB", "max |err|", "forum L1", "forum cosine")
    rows = []
    for r in summary.rows(run_.record):
        kind = r["kind"] + (" ⚠" if r["kind"] == "emulated" else "")
        cells = (html.escape(r["backend"]), kind, _cell(r["l1"], ".3e"), _cell(r["cosine"], ".6f"),
                 _cell(r["pearson"], ".6f"), _cell(r["sqnr_db"], ".1f"), _cell(r["max_abs_error"], ".3e"),
                 _cell(r["forum_l1"], ""), _cell(r["forum_cosine"], ".4g"))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    for spec, err in run_.record.errors.items():
        rows.append(f"<tr><td>{html.escape(spec)}</td><td colspan='8'>did not run: {html.escape(err)}</td></tr>")
    caption = (f"reference: {html.escape(run_.record.reference)} · forum figures are the forum team's GNA "
               "measurements (about), shown beside GNA-like rows · ⚠ emulated = GNA integer emulator, not a device")
    return HTML("<table class='gnaexp-metrics'><caption style='caption-side:bottom;text-align:left'>"
                f"{caption}</caption><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>")


def _outputs(run_: NotebookRun, name: str | None = None) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    ref = run_.reference
    name = name or next(iter(ref.outputs))
    others = {r.label: r.outputs[name] for r in run_.record.results if r is not ref and name in r.outputs}
    return ref.label, ref.outputs[name], others


def image(fig: Any) -> Any:
    """A figure as an inline PNG display object (embedded as data: in exported HTML)."""
    from IPython.display import Image

    from gnaexp import plots

    return Image(data=plots.to_png(fig), format="png")


def overlay_figure(run_: NotebookRun, channels: list[int] | None = None) -> Any:
    from gnaexp import plots

    ref_label, ref, others = _outputs(run_)
    return plots.overlay(ref, others, channels=channels, reference_label=ref_label,
                         title=f"{run_.record.experiment}: output per channel (error = backend − {ref_label})")


def scatter_figure(run_: NotebookRun) -> Any:
    from gnaexp import plots

    ref_label, ref, others = _outputs(run_)
    return plots.scatter(ref, others, reference_label=ref_label)


def histogram_figure(run_: NotebookRun) -> Any:
    from gnaexp import plots

    _, ref, others = _outputs(run_)
    return plots.error_histogram(ref, others)


def sweep_figure(run_: NotebookRun) -> Any:
    from gnaexp import plots

    sw = run_.sweep()
    values = {f"emulated, layout {k}": v["sqnr_db"] for k, v in sw["layouts"].items()}
    return plots.sweep(sw["scale_factors"], values, metric="SQNR vs reference (dB)",
                       saturation_sf=sw["saturation_sf"], current_sf=sw["scale_factor"],
                       title=f"emulated {sw['precision']} SQNR vs input scale factor")


class Markdown(_Display):
    def _repr_markdown_(self) -> str:
        return self.text


def verdict(run_: NotebookRun) -> Markdown:
    """The verdict in words, also saved to the record folder's summary for the batch index."""
    lines = verdict_lines(run_)
    save_summary(run_, lines)
    return Markdown("<div class='gnaexp-verdict'>\n\n**Verdict**\n\n" + "\n".join(f"- {l}" for l in lines)
                    + "\n\n</div>")


def save_summary(run_: NotebookRun, lines: list[str]) -> Path:
    """Key metrics and verdict beside the record, for the batch index page."""
    from gnaexp import summary

    data = {"experiment": run_.record.experiment, "notes": run_.setting.notes, "verdict": lines,
            "rows": summary.rows(run_.record)}
    return atomic_write_text(run_.record_dir / SUMMARY_FILE, dumps(data))


def _relative(path: Path | str) -> str:
    """A path relative to the working folder; never an absolute path (reports are shared)."""
    p = Path(path)
    try:
        return Path(os.path.relpath(p.resolve(), Path.cwd().resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return p.name


def provenance(run_: NotebookRun) -> HTML:
    """Environment, parameters, plugin configs and relative paths of the IR, inputs and outputs."""
    rec = run_.record
    env = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td style='text-align:left'>"
                  f"{html.escape(str(v))}</td></tr>" for k, v in rec.environment.items())
    paths = {"record": run_.record_dir / "record.json"}
    paths.update({k: run_.record_dir / v for k, v in rec.artifacts.items()})
    files = "".join(f"<li>{html.escape(k)}: <code>{html.escape(_relative(v))}</code></li>" for k, v in paths.items())
    backends = "".join(
        f"<li><b>{html.escape(r.label)}</b> ({r.kind}): <code>{html.escape(json.dumps(_scrub(r.settings)))}</code>"
        + (f" plugin config <code>{html.escape(json.dumps(r.info.get('plugin_config')))}</code>"
           if r.info.get("plugin_config") else "") + "</li>" for r in rec.results)
    params = html.escape(json.dumps(_scrub(rec.config), indent=1))
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
