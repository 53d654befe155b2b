"""Check this silero_vad bundle: python reproduce.py [--audio FOLDER] [--plain] [--json]

Recomputes every backend's metrics against the reference from the stored probability tracks (tracks.npz) and
checks them against record.json. The audio is not in the bundle: with --audio FOLDER (holding the record's WAV
files) the IR in ir/ is also streamed on OpenVINO CPU (FP32) over each file, and its track checked against the
stored reference track and the record. Uses gnaexp when it is installed (any WAV it reads); --plain (or no gnaexp)
uses only NumPy, OpenVINO and 16-bit mono WAVs at the record's rate. Exit 0 when everything matches, 1 when
something differs (one line says what), 2 when the bundle or an option is wrong.
"""
import math
import wave
from pathlib import Path

import numpy as np

from device_common import fail, run_main
from reproduce_common import (ARGS, HERE, PLAIN, RERUN_NOTE, close, compiled_ir, finish, measure, number, read_npz,
                              read_record, rerun_agrees)

# ---- shipped from here ----

KEYS = ("l1", "cosine", "sqnr_db", "max_abs_dp", "chunks", "flips", "agreement")


def compare(ref, p):
    if not PLAIN:
        from gnaexp.vad.metrics import compare_tracks
        row = compare_tracks(ref, p)
        return {k: row[k] for k in KEYS}
    ref, p = np.asarray(ref, np.float32), np.asarray(p, np.float32)
    flips = int(np.sum((ref >= 0.5) != (p >= 0.5)))
    out = measure(ref, p)
    out.update(max_abs_dp=float(np.max(np.abs(p - ref))) if len(p) else 0.0, chunks=int(len(p)), flips=flips,
               agreement=1.0 - flips / len(p) if len(p) else 1.0)
    return out


def read_wav(path, rate):
    if not PLAIN:
        from gnaexp.vad import audio
        return audio.load_wav(path).samples
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != rate:
                fail("%s is not a 16-bit mono WAV at %d Hz: install gnaexp to read it, or convert it"
                     % (path.name, rate))
            data = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        fail("%s cannot be read as a WAV (%s)" % (path.name, exc))
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def stream(compiled, samples, chunk, context, state_shape):
    """gnaexp.vad.stream.stream on the IR: each step reads a chunk and the previous `context` samples, carrying the state."""
    steps = -(-len(samples) // chunk)
    padded = np.zeros(context + steps * chunk, np.float32)
    padded[context:context + len(samples)] = samples
    state = np.zeros(state_shape, np.float32)
    probs = []
    for i in range(steps):
        out = compiled({"chunk": padded[None, i * chunk:i * chunk + chunk + context], "state": state})
        probs.append(float(np.asarray(out[compiled.output("probability")]).reshape(-1)[0]))
        state = np.asarray(out[compiled.output("next_state")], np.float32).reshape(state_shape)
    return np.asarray(probs, np.float32)


def main():
    audio_dir = None
    if "--audio" in ARGS:
        i = ARGS.index("--audio")
        if i + 1 >= len(ARGS) or not Path(ARGS[i + 1]).is_dir():
            fail("--audio takes the folder that holds the record's WAV files")
        audio_dir = Path(ARGS[i + 1])
    record = read_record({"reference": str, "backends": list, "files": list})
    tracks = read_npz("tracks.npz")
    ref, problems, lines = record["reference"], [], []
    report = {"files": {}, "openvino_cpu": None}
    files = [f for f in record["files"] if isinstance(f, dict) and isinstance(f.get("file"), str)
             and isinstance(f.get("backends"), dict)]
    if len(files) != len(record["files"]):
        fail("record.json is damaged (a file entry without 'file' and 'backends'): take the bundle again")
    for f in files:
        stem = Path(f["file"]).stem
        lines.append(f["file"])
        for b, row in f["backends"].items():
            key, ref_key = "%s/%s" % (stem, b), "%s/%s" % (stem, ref)
            if key not in tracks or ref_key not in tracks:
                problems.append("tracks.npz has no %s (record.json has figures for it)"
                                % (key if key not in tracks else ref_key))
                continue
            if tracks[key].shape != tracks[ref_key].shape:
                problems.append("tracks.npz: %s and %s differ in length" % (key, ref_key))
                continue
            got = compare(tracks[ref_key], tracks[key])
            same = isinstance(row, dict) and all(close(got[k], row.get(k)) for k in KEYS if got[k] is not None)
            if not same:
                problems.append("%s: the metrics of the stored track are not record.json's" % key)
            report["files"][key] = dict(got, matches_record=same)
            lines.append("  %s: max|dp| %.2e, cosine %.6f, %d flip(s)%s" % (b, got["max_abs_dp"], got["cosine"],
                         got["flips"], "" if same else "  (DIFFERS from record.json)"))
    xml = HERE / "ir" / "silero_vad.xml"
    made = compiled_ir(xml) if audio_dir is not None else None
    if audio_dir is None:
        lines.append("the IR was not rerun: the audio is not in the bundle (pass --audio FOLDER with the record's "
                     "files)")
    elif made is None:
        lines.append("OpenVINO is not installed: the IR was not rerun")
    else:
        compiled = made[1]
        report["openvino_cpu"] = {}
        shape = (2, 1, 128)
        for f in files:
            wav = audio_dir / f["file"]
            if not wav.is_file():
                fail("%s has no %s: give the folder that holds the record's WAV files" % (audio_dir.name, f["file"]))
            track = stream(compiled, read_wav(wav, int(record.get("sample_rate", 16000))),
                           int(record.get("chunk_samples", 512)), int(record.get("context_samples", 64)), shape)
            stored = tracks.get("%s/%s" % (Path(f["file"]).stem, ref))
            got = measure(stored, track) if stored is not None else None
            if got is None:
                problems.append("%s: the rerun has %d chunks, the stored reference %s: not the same audio"
                                % (f["file"], len(track), "none" if stored is None else len(stored)))
                continue
            recorded = math.inf if ref == "openvino:CPU" else (f["backends"].get("openvino:CPU") or {}).get("sqnr_db")
            agrees = rerun_agrees(got["sqnr_db"], recorded)
            if agrees is False:
                problems.append("the OpenVINO CPU rerun of ir/ on %s gives SQNR %.1f dB against the stored reference; "
                                "record.json says %.1f dB" % (f["file"], got["sqnr_db"], number(recorded)))
            report["openvino_cpu"][f["file"]] = dict(got, matches_record=agrees)
            lines.append("OpenVINO CPU rerun vs stored reference, %s: SQNR %.1f dB%s"
                         % (f["file"], got["sqnr_db"], RERUN_NOTE[agrees]))
    return finish(report, problems, lines)


if __name__ == "__main__":
    run_main(main)
