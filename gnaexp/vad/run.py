"""The silero_vad experiment: stream audio files through backends and compare the probability tracks.

The first backend is the reference (torch by default). Every other backend's track is compared with it, and
every track with the ground truth where the audio folder has a ``segments.json`` (see data/speech/README.md).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from gnaexp import cache
from gnaexp.backends import check_spec, make_backend
from gnaexp.backends.base import Backend
from gnaexp.core import environment, files
from gnaexp.core.output_folder import check_folder, publish_folder
from gnaexp.core.records import VAD_SCHEMA
from gnaexp.emulator.plan_row import PlanRow
from gnaexp.vad import audio as audio_mod, metrics as vad_metrics, stream as vad
from gnaexp.vad.options import StreamSettings, VadOptions, audio_scale_factor
from gnaexp.vad.record import (BackendAggregate, EmulatorReport, FileResult, StateDrift, TrackRow, TrackScores,
                               VadRecord, aggregate)
from gnaexp.vad.truth import ground_truth
from gnaexp.core.errors import BadInput

DEFAULT_BACKENDS = ("torch", "openvino:CPU", "gna-emu")
SCHEMA = VAD_SCHEMA  # one definition, in records (which reads and checks records of both kinds)
SUPPORTED = ("torch", "openvino", "gna-emu", "import")  # import: tracks.npz of a run on another machine
BATCHED = ("gna-emu",)  # backends whose step takes many streams at once


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
    from gnaexp.diagnose.measurement import describe, openvino_release

    try:
        _, meta = read_outputs(spec.split(":", 1)[1], "imported tracks")
    except ValueError:
        meta = {}
    if not meta:
        return f"{spec} (imported)"
    ran = describe(meta)
    what = " ".join(str(v) for v in (ran.device, ran.mode, ran.precision) if v)
    release = openvino_release(ran.openvino)
    return f"{spec} ({what}{', OpenVINO ' + release if release else ''}, imported)"


def check_options(options: Mapping[str, Any] | VadOptions | None) -> VadOptions:
    """The device settings of a run, checked as every experiment's are (``VadOptions``) before any audio is read."""
    return VadOptions.from_json(options)


def device_options(options: Mapping[str, Any] | VadOptions | None, audios: Sequence[np.ndarray]) -> StreamSettings:
    """What the backends stream with (``VadOptions.resolve``): the audio input's scale factor ("recommended": from
    the loudest sample of all files, as for any input) and the state's, in the emulator's ``GnaSettings``."""
    return check_options(options).resolve(audios)


def _label(backend: str, made: Backend) -> str:
    if made.kind != "emulated":
        return backend
    from gnaexp.emulator.porting import emulated_label

    plan = getattr(made, "plan", None)
    return f"{backend} ({emulated_label(plan is not None and any(st.kind == 'host' for st in plan.steps))})"


def run(audio_files: Sequence[str | Path], backends: Sequence[str] = DEFAULT_BACKENDS, out_dir: Path | None = None,
        options: Mapping[str, Any] | VadOptions | None = None,
        progress: Callable[[str], None] | None = None) -> VadRecord:
    """Stream each file through each backend; return (and write to out_dir/record.json) the record.

    options: device settings (``VadOptions``, or its settings by name: scale_factor, state_scale_factor; precision
    and execution_mode for openvino:GNA; plugin_release). A batched backend streams all files at once."""
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


Loaded = Sequence[tuple[Path, audio_mod.Audio]]  # the run's files, read


def load(audio_files: Sequence[str | Path], backends: Sequence[str], options: Mapping[str, Any] | VadOptions | None
         ) -> tuple[list[tuple[Path, audio_mod.Audio]], StreamSettings, dict[str, list[vad.Stream]]]:
    """Everything checked before any streaming: the backends, the ground truth, the audio (bad audio fails here),
    the device options over all files (a "recommended" scale factor comes from the loudest sample of all of them, also
    when a cluster streams them in parts) and the imported tracks (a wrong file fails here)."""
    check_backends(backends)
    given = check_options(options)
    ground_truth([Path(f) for f in audio_files])  # a bad segments.json fails here, not after the streaming
    loaded = [(Path(f), audio_mod.load_wav(f)) for f in audio_files]
    opts = given.resolve([sound.samples for _, sound in loaded])
    lengths = [-(-len(sound.samples) // vad.CHUNK) for _, sound in loaded]  # vad.chunks' count, no copy
    imported = {b: imported_streams(b, [p for p, _ in loaded], lengths) for b in backends if b.startswith("import:")}
    return loaded, opts, imported


@dataclass
class StreamedPart:
    """What ``stream_files`` gives for a share of the files: per backend the tracks, the seconds it took, its
    kind, label and settings, and the emulator's report with the values each layer saturated in this share."""

    streams: dict[str, list[vad.Stream]]
    seconds: dict[str, float]
    kinds: dict[str, str]
    labels: dict[str, str]
    device_settings: dict[str, dict[str, Any]]
    emulator: dict[str, EmulatorReport]
    saturations: dict[str, dict[str, int]]  # per emulated backend, per layer


def stream_files(audios: Sequence[np.ndarray], backends: Sequence[str], opts: StreamSettings, ir_dir: Path,
                 progress: Callable[[str], None] | None = None, names: Sequence[str] = ()) -> StreamedPart:
    """Stream signals through backends (none imported) with resolved ``opts``: the tracks, the seconds each
    backend took, and what the record says of each backend. A run streams all its files in one part; a cluster
    streams a share of the files per task, and ``assemble`` joins the parts."""
    cache.vad_ir(Path(ir_dir))  # converted once, then copied
    # torch's tracks depend on the signals alone: after the first run on these files they come from the cache,
    # and torch is not even imported.
    torch_key = cache.vad_reference_key(audios) if "torch" in backends else None
    torch_cached = cache.load_vad_streams(torch_key) if torch_key else None
    model = vad.model_bundle(Path(ir_dir), with_torch=torch_key is not None and torch_cached is None)
    made = {b: make_backend(b, opts.backend_options()) for b in backends}
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
    emulator, saturations = {}, {}
    for b, m in made.items():
        plan = getattr(m, "plan", None)
        if m.kind == "emulated" and plan is not None:
            from gnaexp.emulator.api import load_program
            from gnaexp.emulator.porting import support_report

            emulator[b] = EmulatorReport(support_report(load_program(str(model.ir_xml)), porting=True),
                                         [_plan_row(row, {}) for row in plan.summary()], list(plan.notes),
                                         dict(plan.input_sf))
            saturations[b] = dict(getattr(m, "saturations", {}))
    return StreamedPart(streams, seconds, {b: m.kind for b, m in made.items()},
                        {b: _label(b, m) for b, m in made.items()},
                        {b: dict(m.settings(), **({"tracks": "cached"} if b == "torch" and torch_cached else {}))
                         for b, m in made.items()}, emulator, saturations)


def assemble(loaded: Loaded, backends: Sequence[str], parts: Sequence[tuple[list[int], StreamedPart]],
             imported: dict[str, list[vad.Stream]], out_dir: Path | None = None) -> VadRecord:
    """The record of a run from its streamed parts (each: the indices of its files in ``loaded`` and what
    ``stream_files`` returned for them) and the imported tracks; written to out_dir when given. Per-file
    numbers do not depend on how the files were split; backend seconds and saturations are summed."""
    first = parts[0][1]
    streams: dict[str, list[vad.Stream]] = {b: list(tracks) for b, tracks in imported.items()}
    times: dict[str, float] = {b: 0.0 for b in imported}
    for b in streamed(backends):
        joined: list[vad.Stream | None] = [None] * len(loaded)
        times[b] = 0.0
        for indices, part in parts:
            for i, track in zip(indices, part.streams[b]):
                joined[i] = track
            times[b] += part.seconds[b]
        streams[b] = [track for track in joined if track is not None]
        if len(streams[b]) != len(loaded):
            raise AssertionError(f"{len(loaded) - len(streams[b])} file(s) were streamed in no part on {b}")
    kinds = {b: first.kinds.get(b, "imported") for b in backends}
    labels = {b: first.labels.get(b) or import_label(b) for b in backends}
    notes: list[str] = []
    results = []
    total_chunks = sum(len(s.probability) for s in streams[backends[0]])
    tracks: dict[str, np.ndarray] = {}
    truths = ground_truth([path for path, _ in loaded])
    for i, (path, sound) in enumerate(loaded):
        notes.extend(sound.notes)
        truth = truths[i]
        ref = streams[backends[0]][i]
        rows = {}
        for b in backends:
            mine = streams[b][i]
            tracks[f"{path.stem}/{b}"] = mine.probability
            row = vad_metrics.compare_tracks(ref.probability, mine.probability, truth,
                                             (f"the {labels[backends[0]]} track", f"the {labels[b]} track"))
            scored = "non_finite" not in row
            rows[b] = TrackRow(
                row["chunks"], kinds[b], labels[b],
                None if b.startswith("import:") else 1000 * times[b] / max(1, total_chunks),
                StateDrift(**vad_metrics.state_drift(ref.state, mine.state))
                if b != backends[0] and len(mine.state) and scored else None,
                vad_metrics.verdict(row), TrackScores.from_json(row) if scored else None, row.get("non_finite"))
        results.append(FileResult(path.name, sound.seconds, sound.source_rate, truth or None, rows))
    emulator = {}
    for b, emu in first.emulator.items():
        saturations: dict[str, int] = {}
        for _, part in parts:
            for layer, n in part.saturations[b].items():
                saturations[layer] = saturations.get(layer, 0) + n
        emulator[b] = EmulatorReport(
            emu.support, [{**row, "saturations": int(saturations.get(row["layer"], 0))} for row in emu.plan],
            emu.notes, emu.input_scale_factors)
    record = VadRecord(list(backends), backends[0], labels, {b: first.device_settings.get(b, {"file": b[7:]})
                                                             for b in backends},
                       results, notes, environment.capture(), times, aggregate(backends, labels, results), emulator,
                       # the audio scale factor the files' peak allows, for the finding when a configured one is
                       # far below it
                       audio_scale_factor([s.samples for _, s in loaded]))
    if out_dir is not None:  # a staging folder (record_folder), published whole
        files.atomic_write_bytes(Path(out_dir) / "tracks.npz", files.npz_bytes(tracks))
        files.atomic_write_text(Path(out_dir) / "record.json", files.dumps(record.to_json()))
    return record


def _plan_row(row: PlanRow, saturations: dict[str, int]) -> dict[str, Any]:
    """A plan row as the stream record keeps it: the PWL's segment count instead of its table, the saturations of
    the whole stream (summed by ``run`` over the files) and no per-run value count."""
    out = {k: v for k, v in row.to_json().items() if k not in ("pwl", "values")}
    if row.extras.pwl is not None:
        out["pwl_segments"] = len(row.extras.pwl["segments"])
    out["saturations"] = int(saturations.get(row.layer, 0))
    return out


AGREEMENT_OK = 0.99  # below this share of identical decisions, a backend's decisions do not hold


def finding(record: VadRecord) -> str | None:
    """When a GNA backend's decisions do not hold and its audio scale factor leaves the input too few levels: the
    scale factor is the cause, and the one to use (from the audio's peak)."""
    from gnaexp.diagnose.verdicts import input_range_cause

    recommended = record.recommended_scale_factor
    for b, agg in record.aggregate.items():
        used = record.scale_factor_of(b)
        if b == record.reference or not recommended or used is None:
            continue
        if agg.agreement < AGREEMENT_OK:
            cause = input_range_cause(used, float(recommended), "the audio")
            if cause:
                return cause
    return None


def saturation_lines(record: VadRecord) -> list[str]:
    """Where the emulated stream saturated, layer by layer, and why there: values past an inserted identity's
    int16 range (an output or state read at its scale factor), inputs past a PWL's design domain (the plugin
    designs x² on ±16, eˣ up to 4.5: pwl_approximation.hpp), or an int32/int16 range."""
    lines = []
    for b, emu in record.emulator.items():
        for row in emu.plan:
            n = int(row.get("saturations") or 0)
            if not n:
                continue
            where = f"{record.labels.get(b, b)}: layer {row['layer']!r} ({row['op']})"
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


def aggregate_table(record: VadRecord) -> str:
    lines = [f"all {len(record.files)} file(s), against {record.reference}:"]
    cause = finding(record)
    if cause:
        lines.insert(0, f"→ {cause}")
    for a in record.aggregate.values():
        lines.append(f"  {a.label}: {aggregate_verdict(a)}")
    return "\n".join(lines)


def aggregate_verdict(a: BackendAggregate) -> str:
    """One backend's aggregate in words: the decision sentence of ``vad_metrics.verdict``, then the worst
    probability error, the segments against the ground truth and the lowest state SQNR."""
    s = a.scores
    if s is None:
        return vad_metrics.not_scored_verdict(a.non_finite)
    truth = s.segments_vs_truth_loose
    skipped = a.not_scored
    return (vad_metrics.decisions_verdict(a.chunks, s.flips, s.flips_near_boundary, s.agreement)
            + f"; worst max|Δp| {s.max_abs_dp:.3g}"
            + (f"; segments vs truth P/R {truth.precision:.2f}/{truth.recall:.2f}" if truth else "")
            + (f"; lowest state SQNR {s.lowest_state_sqnr_db:.1f} dB" if s.lowest_state_sqnr_db is not None else "")
            + (f"; not scored (NaN/Inf tracks): {', '.join(skipped)}" if skipped else ""))


def table(record: VadRecord) -> str:
    cause = finding(record)
    lines = [f"→ {cause}"] if cause else []
    for f in record.files:
        lines.append(f"{f.file} ({f.seconds:.1f} s)")
        for b, r in f.backends.items():
            s = r.scores
            if s is None:
                lines.append(f"  {r.label or b:<14} {r.verdict}")
                continue
            t1, t8 = s.segments_vs_truth, s.segments_vs_truth_loose
            vs_truth = (f"  segments vs truth P/R {t1.precision:.2f}/{t1.recall:.2f} (±1 chunk), "
                        f"{t8.precision:.2f}/{t8.recall:.2f} (±{vad_metrics.TRUTH_TOLERANCE_CHUNKS})"
                        if t1 and t8 else "")
            lines.append(f"  {r.label or b:<14} max|Δp| {s.max_abs_dp:.2e}  cosine {s.cosine:.6f}  "
                         + (f"{r.ms_per_chunk:.2f} ms/chunk" if r.ms_per_chunk is not None else "measured elsewhere")
                         + vs_truth)
            if b != record.reference:
                lines.append(f"    {r.verdict}")
    return "\n".join(lines + record.notes)
