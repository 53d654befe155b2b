"""The silero_vad experiment: stream audio files through backends and compare the probability tracks.

The first backend is the reference (torch by default). Every other backend's track is compared with it, and
every track with the ground truth where the audio folder has a ``segments.json`` (see data/speech/README.md).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from gnaexp import cache
from gnaexp.backends import check_spec, make_backend
from gnaexp.core import environment, files
from gnaexp.core.excerpt import excerpt
from gnaexp.core.gna_settings import check_execution_mode, check_plugin_release, check_precision, check_scale_factor
from gnaexp.core.output_folder import check_folder, publish_folder
from gnaexp.core.records import VAD_SCHEMA
from gnaexp.emulator.plan_row import PlanRow
from gnaexp.vad import audio as audio_mod, metrics as vad_metrics, stream as vad
from gnaexp.vad.truth import ground_truth
from gnaexp.core.errors import BadInput

DEFAULT_BACKENDS = ("torch", "openvino:CPU", "gna-emu")
SCHEMA = VAD_SCHEMA  # one definition, in records (which reads and checks records of both kinds)
SUPPORTED = ("torch", "openvino", "gna-emu", "import")  # import: tracks.npz of a run on another machine
BATCHED = ("gna-emu",)  # backends whose step takes many streams at once
STATE_SCALE_FACTOR = 1024.0  # h stays in (−1, 1) and c within ±24 on speech: ±32 fits int16 at 1024


def wav_files(source: str | Path) -> list[Path]:
    """The .wav files of a folder (sorted), or the one file named."""
    source = Path(source)
    wavs = sorted(source.glob("*.wav")) if source.is_dir() else [source]
    if not wavs:
        raise BadInput(f"no .wav files in {source}")
    return wavs


def check_backends(backends: Sequence[str]) -> None:
    for spec in backends:
        check_spec(spec)
        if spec.split(":", 1)[0] not in SUPPORTED:
            raise BadInput(f"backend {spec!r} cannot stream silero_vad; use torch, openvino:DEVICE "
                             "(openvino:GNA where the plugin exists), gna-emu and import:TRACKS.npz")
    if backends and backends[0].startswith("import:"):
        raise BadInput("the first backend is the reference and must run here (torch or openvino:CPU); put "
                         "import:TRACKS.npz after it")


def imported_streams(spec: str, paths: Sequence[Path], lengths: Sequence[int]) -> list[vad.Stream]:
    """Probability tracks measured elsewhere: the ``outputs.npz`` of an export pack's measure_on_device.py
    (FILE_STEM/probability, with the state after each chunk in FILE_STEM/next_state, so the state drift is
    compared too), or the ``tracks.npz`` of a ``gnaexp run silero_vad`` on another machine (FILE_STEM/BACKEND: the
    one track per file that is not torch or openvino:CPU; no state)."""
    from gnaexp.core.inputs import read_file

    path = spec.split(":", 1)[1]
    data = read_file(path)
    if not isinstance(data, dict):
        raise BadInput(f"{path}: give the tracks.npz of a silero_vad run (one array per FILE_STEM/BACKEND)")
    out = []
    for wav, n in zip(paths, lengths):
        keys = [f"{wav.stem}/probability"] if f"{wav.stem}/probability" in data else [  # an export pack's, or
            k for k in data if k.startswith(f"{wav.stem}/") and k.split("/", 1)[1] not in ("torch", "openvino:CPU")]
        if len(keys) != 1:
            raise BadInput(f"{path}: expected one track for {wav.name} (key {wav.stem}/BACKEND or "
                             f"{wav.stem}/probability), found {keys or 'none'}; run gnaexp run silero_vad on the "
                             "same files on the other machine")
        p = np.asarray(data[keys[0]], dtype=np.float32).reshape(-1)
        if len(p) != n:
            raise BadInput(f"{path}: track {keys[0]} has {len(p)} chunks, {wav.name} has {n}: not the same audio")
        states = data.get(f"{wav.stem}/next_state")  # an export pack's stream keeps the state after each chunk
        out.append(vad.Stream(p, np.asarray(states, np.float32).reshape(n, 2, -1) if states is not None and
                              np.size(states) == n * 2 * vad.STATE_SHAPE[-1] else
                              np.zeros((0, 2, vad.STATE_SHAPE[-1]), dtype=np.float32)))
    return out


def import_label(spec: str) -> str:
    """An imported track's label: what ran where its file says (an export pack's measure_on_device.py), e.g.
    "import:pack/outputs.npz (CPU f32, OpenVINO 2023.0.2, imported)"."""
    from gnaexp.backends.imported import read_outputs
    from gnaexp.diagnose.measurement import describe

    try:
        _, meta = read_outputs(spec.split(":", 1)[1], "imported tracks")
    except ValueError:
        meta = {}
    if not meta:
        return f"{spec} (imported)"
    ran = describe(meta)
    what = " ".join(str(v) for v in (ran["device"], ran["mode"], ran["precision"]) if v)
    release = str(ran.get("openvino") or "").split("-")[0]
    return f"{spec} ({what}{', OpenVINO ' + release if release else ''}, imported)"


# gna-emu, openvino:GNA (plugin_release: the GNA plugin release the emulator computes as)
DEVICE_SETTINGS = ("scale_factor", "state_scale_factor", "precision", "execution_mode", "plugin_release")


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The device settings of a run, checked as every experiment's are (``gna_settings``) before any audio is
    read: the two scale factors numbers in range (numbers as text are read; scale_factor may be
    "recommended"), precision and execution_mode valid values."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(DEVICE_SETTINGS))
    if unknown:
        raise BadInput(f"unknown silero_vad setting(s) {excerpt(unknown)}; valid: {', '.join(DEVICE_SETTINGS)}")
    for key in ("scale_factor", "state_scale_factor"):
        value = opts.get(key)
        if value is None or (key == "scale_factor" and value == "recommended"):
            continue
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise BadInput(f"{key} must be a number{' or recommended' if key == 'scale_factor' else ''}, "
                                 f"got {excerpt(value)}") from None
        opts[key] = check_scale_factor(value, key)
    if "precision" in opts:
        check_precision(opts["precision"])
    if "execution_mode" in opts:
        check_execution_mode(opts["execution_mode"])
    if "plugin_release" in opts:
        opts["plugin_release"] = check_plugin_release(opts["plugin_release"])
    return {k: v for k, v in opts.items() if v is not None}


def audio_scale_factor(audios: Sequence[np.ndarray]) -> float:
    """The recommended audio scale factor, from the loudest sample of all files (each file's peak: joining the
    files would copy every sample once more)."""
    from gnaexp.emulator.sweep import recommended_scale_factor

    return recommended_scale_factor(np.array([np.max(np.abs(a)) if np.size(a) else 0.0 for a in audios]))


def device_options(options: Mapping[str, Any] | None, audios: Sequence[np.ndarray]) -> dict[str, Any]:
    """Backend options with the two inputs' scale factors: ``scale_factor`` for the audio (a number or
    "recommended": from the loudest sample of all files, as for any input) and ``state_scale_factor``.
    The emulator runs the host parts (reflect pad, mean) and the exact conv rewrites (``porting``)."""
    opts = check_options(options)
    sf = opts.pop("scale_factor", 1.0)
    if sf == "recommended":
        sf = audio_scale_factor(audios)
    opts["scale_factor"] = {"chunk": float(sf), "state": float(opts.pop("state_scale_factor", STATE_SCALE_FACTOR))}
    opts["porting"] = True
    return opts


def _label(backend: str, made: Any) -> str:
    if made.kind != "emulated":
        return backend
    from gnaexp.emulator.porting import emulated_label

    plan = getattr(made, "plan", None)
    return f"{backend} ({emulated_label(plan is not None and any(st.kind == 'host' for st in plan.steps))})"


def run(audio_files: Sequence[str | Path], backends: Sequence[str] = DEFAULT_BACKENDS, out_dir: Path | None = None,
        options: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Stream each file through each backend; return (and write to out_dir/record.json) the record.

    options: device settings (``device_options``: scale_factor, state_scale_factor; precision and
    execution_mode for openvino:GNA). A batched backend streams all files at once."""
    if out_dir is not None:
        check_folder(out_dir, "record folder")  # refused before any audio is read
    loaded, opts, imported = load(audio_files, backends, options)
    with record_folder(out_dir) as stage:
        part = stream_files([sound.samples for _, sound in loaded], streamed(backends), opts, stage / "ir", progress,
                            [path.name for path, _ in loaded])
        return assemble(loaded, backends, [(list(range(len(loaded))), part)], imported, stage)


@contextmanager
def record_folder(out_dir: Path | None) -> Iterator[Path]:
    """Where a run writes its IR, tracks and record: a staging folder published whole into ``out_dir`` when the
    run succeeded (an ``out_dir`` holding files of the user's is refused before any work), or a temporary folder
    that goes with the run when there is no ``out_dir``."""
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="gnaexp-vad-") as tmp:
            yield Path(tmp)
    else:
        with publish_folder(out_dir, "record folder") as stage:
            yield stage


def streamed(backends: Sequence[str]) -> list[str]:
    """The backends that run here (not tracks imported from elsewhere)."""
    return [b for b in backends if not b.startswith("import:")]


def load(audio_files: Sequence[str | Path], backends: Sequence[str],
         options: dict[str, Any] | None) -> tuple[list[tuple[Path, Any]], dict[str, Any], dict[str, list[vad.Stream]]]:
    """Everything checked before any streaming: the backends, the ground truth, the audio (bad audio fails here),
    the device options over all files (a "recommended" scale factor comes from the loudest sample of all of them, also
    when a cluster streams them in parts) and the imported tracks (a wrong file fails here)."""
    check_backends(backends)
    check_options(options)
    ground_truth([Path(f) for f in audio_files])  # a bad segments.json fails here, not after the streaming
    loaded = [(Path(f), audio_mod.load_wav(f)) for f in audio_files]
    opts = device_options(options, [sound.samples for _, sound in loaded])
    lengths = [-(-len(sound.samples) // vad.CHUNK) for _, sound in loaded]  # vad.chunks' count, no copy
    imported = {b: imported_streams(b, [p for p, _ in loaded], lengths) for b in backends if b.startswith("import:")}
    return loaded, opts, imported


def stream_files(audios: Sequence[np.ndarray], backends: Sequence[str], opts: dict[str, Any], ir_dir: Path,
                 progress: Callable[[str], None] | None = None, names: Sequence[str] = ()) -> dict[str, Any]:
    """Stream signals through backends (none imported) with resolved ``opts``: the tracks, the seconds each
    backend took, and what the record says of each backend. A run streams all its files in one part; a cluster
    streams a share of the files per task, and ``assemble`` joins the parts."""
    cache.vad_ir(Path(ir_dir))  # converted once, then copied
    # torch's tracks depend on the signals alone: after the first run on these files they come from the cache,
    # and torch is not even imported.
    torch_key = cache.vad_reference_key(audios) if "torch" in backends else None
    torch_cached = cache.load_vad_streams(torch_key) if torch_key else None
    model = vad.model_bundle(Path(ir_dir), with_torch=torch_key is not None and torch_cached is None)
    made = {b: make_backend(b, opts) for b in backends}
    steppers = {b: m.stepper(model) for b, m in made.items()  # absent devices fail here, once
                if not (b == "torch" and torch_cached)}
    names = list(names) or [f"file {i + 1}" for i in range(len(audios))]
    streams: dict[str, list[vad.Stream]] = {}
    seconds: dict[str, float] = {}
    for b in backends:
        start = time.perf_counter()
        if b == "torch" and torch_cached:
            streams[b], seconds[b] = torch_cached  # the seconds torch took when it streamed these signals
            continue
        if b.split(":", 1)[0] in BATCHED:
            if progress:
                progress(f"{len(audios)} file(s) together on {b}")
            streams[b] = vad.stream_batch(steppers[b], list(audios))
        else:
            streams[b] = []
            for name, samples in zip(names, audios):
                if progress:
                    progress(f"{name} on {b}")
                streams[b].append(vad.stream(steppers[b], samples))
        seconds[b] = time.perf_counter() - start
    if torch_key and not torch_cached:
        cache.store_vad_streams(torch_key, streams["torch"], seconds["torch"])
    emulator = {}
    for b, m in made.items():
        if m.kind == "emulated" and getattr(m, "plan", None) is not None:
            from gnaexp.emulator.api import load_program
            from gnaexp.emulator.porting import support_report

            emulator[b] = {"support": support_report(load_program(str(model.ir_xml)), porting=True),
                           "plan": [_plan_row(row, {}) for row in m.plan.summary()],
                           "notes": list(m.plan.notes), "input_scale_factors": dict(m.plan.input_sf),
                           "saturations": dict(m.saturations)}
    return {"streams": streams, "seconds": seconds, "kinds": {b: m.kind for b, m in made.items()},
            "labels": {b: _label(b, m) for b, m in made.items()},
            "device_settings": {b: dict(m.settings(), **({"tracks": "cached"} if b == "torch" and torch_cached
                                                        else {})) for b, m in made.items()},
            "emulator": emulator}


def assemble(loaded: Sequence[tuple[Path, Any]], backends: Sequence[str], parts: Sequence[tuple[list[int], dict]],
             imported: dict[str, list[vad.Stream]], out_dir: Path | None = None) -> dict[str, Any]:
    """The record of a run from its streamed parts (each: the indices of its files in ``loaded`` and what
    ``stream_files`` returned for them) and the imported tracks; written to out_dir when given. Per-file
    numbers do not depend on how the files were split; backend seconds and saturations are summed."""
    first = parts[0][1]
    streams: dict[str, list[Any]] = {b: list(tracks) for b, tracks in imported.items()}
    times: dict[str, float] = {b: 0.0 for b in imported}
    for b in streamed(backends):
        streams[b] = [None] * len(loaded)
        times[b] = 0.0
        for indices, part in parts:
            for i, track in zip(indices, part["streams"][b]):
                streams[b][i] = track
            times[b] += part["seconds"][b]
    kinds = {b: first["kinds"].get(b, "imported") for b in backends}
    record: dict[str, Any] = {"schema": SCHEMA, "experiment": "silero_vad", "backends": list(backends),
                              "reference": backends[0],
                              "labels": {b: first["labels"].get(b) or import_label(b) for b in backends},
                              "device_settings": {b: first["device_settings"].get(b, {"file": b[7:]})
                                                  for b in backends},
                              "chunk_samples": vad.CHUNK, "context_samples": vad.CONTEXT,
                              "sample_rate": vad.SAMPLE_RATE, "files": [], "notes": [],
                              "environment": environment.capture()}
    total_chunks = sum(len(s.probability) for s in streams[backends[0]])
    tracks: dict[str, np.ndarray] = {}
    truths = ground_truth([path for path, _ in loaded])
    for i, (path, sound) in enumerate(loaded):
        record["notes"].extend(sound.notes)
        truth = truths[i]
        ref = streams[backends[0]][i]
        rows = {}
        for b in backends:
            mine = streams[b][i]
            tracks[f"{path.stem}/{b}"] = mine.probability
            row = vad_metrics.compare_tracks(ref.probability, mine.probability, truth,
                                             (f"the {record['labels'][backends[0]]} track",
                                              f"the {record['labels'][b]} track"))
            row.update(kind=kinds[b], label=record["labels"][b],
                       ms_per_chunk=None if b.startswith("import:") else 1000 * times[b] / max(1, total_chunks),
                       state_drift=vad_metrics.state_drift(ref.state, mine.state)
                       if b != backends[0] and len(mine.state) and "non_finite" not in row else None,
                       verdict=vad_metrics.verdict(row))
            rows[b] = row
        record["files"].append({"file": path.name, "seconds": sound.seconds, "source_rate": sound.source_rate,
                                "truth": [list(t) for t in truth] if truth else None, "backends": rows})
    record["seconds"] = times
    for b, emu in first["emulator"].items():
        saturations: dict[str, int] = {}
        for _, part in parts:
            for layer, n in part["emulator"][b]["saturations"].items():
                saturations[layer] = saturations.get(layer, 0) + n
        record.setdefault("emulator", {})[b] = {
            "support": emu["support"],
            "plan": [{**row, "saturations": int(saturations.get(row["layer"], 0))} for row in emu["plan"]],
            "notes": emu["notes"], "input_scale_factors": emu["input_scale_factors"]}
    record["aggregate"] = aggregate(record)
    # the audio scale factor the files' peak allows, for the finding when a configured one is far below it
    record["recommended_scale_factor"] = audio_scale_factor([s.samples for _, s in loaded])
    if out_dir is not None:  # a staging folder (record_folder), published whole
        files.atomic_write_bytes(Path(out_dir) / "tracks.npz", files.npz_bytes(tracks))
        files.atomic_write_text(Path(out_dir) / "record.json", files.dumps(record))
    return record


def aggregate(record: dict[str, Any]) -> dict[str, Any]:
    """Per backend over all files: chunks, decision agreement, flips, pooled segment precision/recall (against the
    reference's segments and the ground truth), worst probability error and lowest state SQNR. Files whose
    tracks hold NaN/Inf are not scored: they are listed (``not_scored``), and with no file left there is no
    score at all, only ``non_finite``."""
    out = {}
    for b in record["backends"]:
        all_rows = [f["backends"][b] for f in record["files"]]
        rows = [r for r in all_rows if "non_finite" not in r]
        not_scored = [f["file"] for f in record["files"] if "non_finite" in f["backends"][b]]
        if not rows:
            out[b] = {"label": record["labels"][b], "kind": all_rows[0]["kind"], "files": len(all_rows),
                      "chunks": sum(r["chunks"] for r in all_rows), "not_scored": not_scored,
                      "non_finite": "; ".join(f"{f['file']}: {f['backends'][b]['non_finite']}"
                                              for f in record["files"])}
            continue
        chunks = sum(r["chunks"] for r in rows)
        flips = sum(r["flips"] for r in rows)
        agg: dict[str, Any] = {
            "label": record["labels"][b], "kind": rows[0]["kind"], "files": len(rows), "chunks": chunks,
            "agreement": 1.0 - flips / chunks if chunks else 1.0, "flips": flips,
            "flips_near_boundary": sum(r["flips_near_boundary"] for r in rows),
            "hysteresis_flips": sum(r["hysteresis_flips"] for r in rows),
            "max_abs_dp": max(r["max_abs_dp"] for r in rows),
            "mean_abs_dp": sum(r["mean_abs_dp"] * r["chunks"] for r in rows) / chunks if chunks else 0.0,
            "mean_cosine": float(np.mean([r["cosine"] for r in rows])),
            "lowest_sqnr_db": float(np.min([r["sqnr_db"] for r in rows])),
            "not_scored": not_scored,
        }
        for key in ("segments_vs_reference", "segments_vs_truth", "segments_vs_truth_loose"):
            parts = [r[key] for r in rows if r.get(key)]
            if parts:
                found, true, matched = (sum(p[k] for p in parts) for k in ("found", "true", "matched"))
                agg[key] = {"found": found, "true": true, "matched": matched,
                            "precision": matched / found if found else (1.0 if not true else 0.0), "recall": matched / true if true else 1.0}
        drifts = [r["state_drift"] for r in rows if r.get("state_drift")]
        agg["lowest_state_sqnr_db"] = min(min(min(d["h"]), min(d["c"])) for d in drifts) if drifts else None
        out[b] = agg
    return out


def _plan_row(row: PlanRow, saturations: dict[str, int]) -> dict[str, Any]:
    """A plan row as the stream record keeps it: the PWL's segment count instead of its table, the saturations of
    the whole stream (summed by ``run`` over the files) and no per-run value count."""
    out = {k: v for k, v in row.to_json().items() if k not in ("pwl", "values")}
    if row.extras.pwl is not None:
        out["pwl_segments"] = len(row.extras.pwl["segments"])
    out["saturations"] = int(saturations.get(row.layer, 0))
    return out


AGREEMENT_OK = 0.99  # below this share of identical decisions, a backend's decisions do not hold


def finding(record: dict[str, Any]) -> str | None:
    """When a GNA backend's decisions do not hold and its audio scale factor leaves the input too few levels: the
    scale factor is the cause, and the one to use (from the audio's peak)."""
    from gnaexp.diagnose.verdicts import input_range_cause

    recommended = record.get("recommended_scale_factor")
    for b, agg in record["aggregate"].items():
        used = (record["device_settings"].get(b, {}).get("scale_factors") or {})
        used = used.get("chunk") if isinstance(used, dict) else used
        if b == record["reference"] or not recommended or not isinstance(used, (int, float)):
            continue
        if agg.get("agreement", 1.0) < AGREEMENT_OK:
            cause = input_range_cause(float(used), float(recommended), "the audio")
            if cause:
                return cause
    return None


def saturation_lines(record: dict[str, Any]) -> list[str]:
    """Where the emulated stream saturated, layer by layer, and why there: values past an inserted identity's
    int16 range (an output or state read at its scale factor), inputs past a PWL's design domain (the plugin
    designs x² on ±16, eˣ up to 4.5: pwl_approximation.hpp), or an int32/int16 range."""
    lines = []
    for b, emu in (record.get("emulator") or {}).items():
        for row in emu["plan"]:
            n = int(row.get("saturations") or 0)
            if not n:
                continue
            where = f"{record['labels'].get(b, b)}: layer {row['layer']!r} ({row['op']})"
            if row.get("domain"):
                lo, hi = row["domain"]
                lines.append(f"{where}: {n} inputs outside [{lo:g}, {hi:g}], the range the plugin designs this "
                             "PWL on, give the value at its end")
            elif str(row["op"]).startswith("Identity") and row.get("out_sf"):
                lines.append(f"{where}: {n} values beyond ±{32767 / float(row['out_sf']):.4g} (int16 at the "
                             f"identity's sf {float(row['out_sf']):g}, the plugin's choice without statistics) clip")
            else:
                lines.append(f"{where}: {n} values saturated")
    return lines


def aggregate_table(record: dict[str, Any]) -> str:
    lines = [f"all {len(record['files'])} file(s), against {record['reference']}:"]
    cause = finding(record)
    if cause:
        lines.insert(0, f"→ {cause}")
    for b, a in record["aggregate"].items():
        lines.append(f"  {a['label']}: {aggregate_verdict(a)}")
    return "\n".join(lines)


def aggregate_verdict(a: dict[str, Any]) -> str:
    """One backend's aggregate in words: the decision sentence of ``vad_metrics.verdict``, then the worst
    probability error, the segments against the ground truth and the lowest state SQNR."""
    if "non_finite" in a:
        return vad_metrics.verdict(a)
    truth = a.get("segments_vs_truth_loose")
    skipped = a.get("not_scored") or []
    return (vad_metrics.verdict(a) + f"; worst max|Δp| {a['max_abs_dp']:.3g}"
            + (f"; segments vs truth P/R {truth['precision']:.2f}/{truth['recall']:.2f}" if truth else "")
            + (f"; lowest state SQNR {a['lowest_state_sqnr_db']:.1f} dB"
               if a.get("lowest_state_sqnr_db") is not None else "")
            + (f"; not scored (NaN/Inf tracks): {', '.join(skipped)}" if skipped else ""))


def table(record: dict[str, Any]) -> str:
    cause = finding(record)
    lines = [f"→ {cause}"] if cause else []
    for f in record["files"]:
        lines.append(f"{f['file']} ({f['seconds']:.1f} s)")
        for b, r in f["backends"].items():
            if "non_finite" in r:
                lines.append(f"  {r.get('label', b):<14} {r['verdict']}")
                continue
            t1, t8 = r.get("segments_vs_truth"), r.get("segments_vs_truth_loose")
            vs_truth = (f"  segments vs truth P/R {t1['precision']:.2f}/{t1['recall']:.2f} (±1 chunk), "
                        f"{t8['precision']:.2f}/{t8['recall']:.2f} (±{vad_metrics.TRUTH_TOLERANCE_CHUNKS})"
                        if t1 else "")
            lines.append(f"  {r.get('label', b):<14} max|Δp| {r['max_abs_dp']:.2e}  cosine {r['cosine']:.6f}  "
                         + (f"{r['ms_per_chunk']:.2f} ms/chunk" if r["ms_per_chunk"] is not None else "measured elsewhere")
                         + vs_truth)
            if b != record["reference"]:
                lines.append(f"    {r['verdict']}")
    return "\n".join(lines + record["notes"])
