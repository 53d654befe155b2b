"""The silero_vad experiment: stream audio files through backends and compare the probability tracks.

The first backend is the reference (torch by default). Every other backend's track is compared with it, and
every track with the ground truth where the audio folder has a ``segments.json`` (see data/speech/README.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gnaexp import audio as audio_mod
from gnaexp import environment, files, vad, vad_metrics
from gnaexp.backends import make_backend

DEFAULT_BACKENDS = ("torch", "openvino:CPU")
SCHEMA = "gnaexp.vad-record/1"
SUPPORTED = ("torch", "openvino")  # backends that can stream this net today


def _truth(path: Path) -> list[tuple[int, int]] | None:
    seg_file = path.parent / "segments.json"
    if not seg_file.is_file():
        return None
    entry = json.loads(seg_file.read_text()).get(path.name)
    if not entry:
        return None
    return vad_metrics.seconds_to_chunks(entry["speech"], vad.CHUNK / vad.SAMPLE_RATE)


def check_backends(backends: Sequence[str]) -> None:
    for spec in backends:
        if spec.split(":", 1)[0] not in SUPPORTED:
            raise ValueError(f"backend {spec!r} cannot stream silero_vad yet; use torch and openvino:DEVICE "
                             "(openvino:GNA where the plugin exists)")


def run(audio_files: Sequence[str | Path], backends: Sequence[str] = DEFAULT_BACKENDS, out_dir: Path | None = None,
        options: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Stream each file through each backend; return (and write to out_dir/record.json) the record.

    options: device settings for ``make_backend`` (scale_factor, precision, execution_mode for openvino:GNA)."""
    check_backends(backends)
    loaded = [(Path(f), audio_mod.load_wav(f)) for f in audio_files]  # bad audio fails before any work
    work = Path(out_dir) if out_dir else Path(".")
    model = vad.model_bundle(work / "ir")
    made = {b: make_backend(b, options) for b in backends}
    steppers = {b: m.stepper(model) for b, m in made.items()}  # absent devices fail here, once
    kinds = {b: m.kind for b, m in made.items()}
    record: dict[str, Any] = {"schema": SCHEMA, "experiment": "silero_vad", "backends": list(backends),
                              "reference": backends[0], "device_settings": {b: m.settings() for b, m in made.items()}, "chunk_samples": vad.CHUNK, "context_samples": vad.CONTEXT,
                              "sample_rate": vad.SAMPLE_RATE, "files": [], "notes": [],
                              "environment": environment.capture()}
    tracks: dict[str, np.ndarray] = {}
    for path, sound in loaded:
        record["notes"].extend(sound.notes)
        truth = _truth(path)
        streams, times = {}, {}
        for b in backends:
            if progress:
                progress(f"{path.name} on {b}")
            start = time.perf_counter()
            streams[b] = vad.stream(steppers[b], sound.samples)
            times[b] = time.perf_counter() - start
            tracks[f"{path.stem}/{b}"] = streams[b].probability
        ref = streams[backends[0]]
        rows = {}
        for b in backends:
            row = vad_metrics.compare_tracks(ref.probability, streams[b].probability, truth)
            row.update(kind=kinds[b], seconds=times[b], ms_per_chunk=1000 * times[b] / max(1, row["chunks"]),
                       state_drift=vad_metrics.state_drift(ref.state, streams[b].state) if b != backends[0] else None,
                       verdict=vad_metrics.verdict(row))
            rows[b] = row
        record["files"].append({"file": path.name, "seconds": sound.seconds, "source_rate": sound.source_rate,
                                "truth": [list(t) for t in truth] if truth else None, "backends": rows})
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files.atomic_write_bytes(out / "tracks.npz", files.npz_bytes(tracks))
        files.atomic_write_text(out / "record.json", files.dumps(record))
    return record


def table(record: dict[str, Any]) -> str:
    lines = []
    for f in record["files"]:
        lines.append(f"{f['file']} ({f['seconds']:.1f} s)")
        for b, r in f["backends"].items():
            t1, t8 = r.get("segments_vs_truth"), r.get("segments_vs_truth_loose")
            vs_truth = (f"  segments vs truth P/R {t1['precision']:.2f}/{t1['recall']:.2f} (±1 chunk), "
                        f"{t8['precision']:.2f}/{t8['recall']:.2f} (±{vad_metrics.TRUTH_TOLERANCE_CHUNKS})"
                        if t1 else "")
            lines.append(f"  {b:<14} max|Δp| {r['max_abs_dp']:.2e}  cosine {r['cosine']:.6f}  "
                         f"{r['ms_per_chunk']:.2f} ms/chunk{vs_truth}")
            if b != record["reference"]:
                lines.append(f"    {r['verdict']}")
    return "\n".join(lines + record["notes"])
