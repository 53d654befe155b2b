"""The ``reproduce.py`` of a support bundle: one for a comparison record, one for a silero_vad record.

Standalone scripts like ``measure_on_device.py`` (``gnaexp.support.device_scripts``, whose rules they follow): NumPy and OpenVINO
are enough, gnaexp is used where installed, and a damaged bundle or a disagreement is one line and a non-zero exit.
"""

from __future__ import annotations

from gnaexp.support.device_scripts import SHARED

VAD_IR = "silero_vad"  # a silero_vad record folder's IR: ir/silero_vad.xml and .bin

# The part both reproduce.py scripts share: reading the bundle, recomputing metrics, judging an OpenVINO rerun.
_REPRODUCE_COMMON = r'''
import hashlib, json, math, sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

SCRIPT = "reproduce.py"
HERE = Path(__file__).resolve().parent
ARGS = sys.argv[1:]
PLAIN = "--plain" in ARGS
if not PLAIN:
    try:
        from gnaexp.core import metrics as gm
    except ImportError:
        PLAIN = True
# Two FP32 runs of one IR agree to float rounding, far above this on any CPU; an IR whose error the record shows
# (below this) must show the same error again, within SAME_DB.
FLOAT_ROUNDING_DB = 60.0
SAME_DB = 1.0
RERUN_NOTE = {True: "", False: "  (DIFFERS from record.json)",
              None: "  (record.json has no OpenVINO CPU figure to check it against)"}
''' + SHARED + r'''

def read_record(keys):
    try:
        data = json.loads((HERE / "record.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail("record.json cannot be read (%s): take the bundle again" % exc)
    if not isinstance(data, dict) or any(not isinstance(data.get(k), t) for k, t in keys.items()):
        fail("record.json is damaged (not a gnaexp record with %s): take the bundle again" % ", ".join(keys))
    return data


def read_npz(name):
    try:
        with np.load(str(HERE / name), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa — missing, truncated, a bad CRC, pickled data: all read as damage
        fail("%s cannot be read (%s: %s): take the bundle again" % (name, type(exc).__name__, exc))


def ir_fingerprint(xml):
    """gnaexp.models.ir.fingerprint_ir: the .xml and the .bin."""
    h = hashlib.sha256(xml.read_bytes())
    h.update(xml.with_suffix(".bin").read_bytes())
    return h.hexdigest()[:16]


def measure(ref, test):
    ref, test = np.asarray(ref, np.float32).ravel(), np.asarray(test, np.float32).ravel()
    if ref.shape != test.shape:
        return None
    if not PLAIN:
        c = gm.compare(ref, test)
        return {"l1": c.l1, "cosine": c.cosine, "sqnr_db": c.sqnr_db}
    r, t = ref.astype(np.float64), test.astype(np.float64)
    noise, signal = float(np.sum((t - r) ** 2)), float(np.sum(r * r))
    sqnr = math.inf if noise == 0 else (-math.inf if signal == 0 else 10 * math.log10(signal / noise))
    den = math.sqrt(float(np.sum(r * r)) * float(np.sum(t * t)))
    return {"l1": float(np.mean(np.abs(t - r))), "cosine": float(np.sum(r * t) / den) if den else math.nan,
            "sqnr_db": sqnr}


def number(v):
    return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(v, v) if isinstance(v, str) else v


def close(a, b):
    a, b = number(a), number(b)
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def rerun_agrees(got, recorded):
    """True/False: does a rerun's SQNR against the stored reference agree with the record's? None: nothing recorded."""
    recorded = number(recorded)
    if not isinstance(recorded, (int, float)) or math.isnan(recorded):
        return None
    if got >= FLOAT_ROUNDING_DB and recorded >= FLOAT_ROUNDING_DB:
        return True
    return abs(got - recorded) <= SAME_DB


def compiled_ir(xml):
    """The IR compiled on OpenVINO CPU in FP32 (never bf16/f16), or None without OpenVINO."""
    try:
        import openvino as ov
    except ImportError:
        return None
    check_ir(xml, "ir/" + xml.name, "take the bundle again")
    core = ov.Core()
    try:
        model = core.read_model(str(xml))
        return model, core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    except RuntimeError as exc:
        fail("OpenVINO cannot read or compile ir/%s (%s): take the bundle again" % (xml.name, short(exc)))


def finish(report, problems, lines):
    if "--json" in ARGS:
        report["problems"] = problems
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(lines))
    if problems:
        fail("DIFFERS from record.json: " + "; ".join(problems), 1)
    return 0
'''

REPRODUCE = r'''"""Rerun this bundle's comparison: python reproduce.py [--plain] [--json]

Checks that inputs.npz and the IR are the ones the record was made with (their fingerprints), recomputes L1,
cosine and SQNR of every backend's stored outputs against the stored reference, reruns the IR on OpenVINO CPU
(FP32) with the stored inputs, and checks all of it against record.json. Uses gnaexp when it is installed; --plain
(or no gnaexp) uses only NumPy and OpenVINO. Exit 0 when everything matches, 1 when something differs (one line
says what), 2 when the bundle is damaged.
"""''' + _REPRODUCE_COMMON + r'''

def main():
    record = read_record({"reference": str, "metrics": dict, "input_fingerprint": str, "model_fingerprint": str})
    inputs, outputs = read_npz("inputs.npz"), read_npz("outputs.npz")
    xml = HERE / "ir" / "model.xml"
    if not xml.is_file() or not xml.with_suffix(".bin").is_file():
        fail("ir/model.xml or ir/model.bin is missing: take the bundle again")
    ref_label, problems = record["reference"], []
    if input_fingerprint(inputs) != record["input_fingerprint"]:
        problems.append("inputs.npz is not the input the record was made with (fingerprint %s, record.json says %s)"
                        % (input_fingerprint(inputs), record["input_fingerprint"]))
    if record["model_fingerprint"] and ir_fingerprint(xml) != record["model_fingerprint"]:
        problems.append("ir/ is not the IR the record was made with (fingerprint %s, record.json says %s)"
                        % (ir_fingerprint(xml), record["model_fingerprint"]))
    report = {"metrics": {}, "openvino_cpu": None}
    lines = []
    for label, per in sorted(record["metrics"].items()):
        for out_name, want in sorted((per if isinstance(per, dict) else {}).items()):
            key, ref_key = "%s/%s" % (label, out_name), "%s/%s" % (ref_label, out_name)
            if key not in outputs or ref_key not in outputs:
                problems.append("outputs.npz has no %s (record.json has figures for it)"
                                % (key if key not in outputs else ref_key))
                continue
            got = measure(outputs[ref_key], outputs[key])
            same = got is not None and isinstance(want, dict) and all(close(got[k], want.get(k)) for k in got)
            if not same:
                problems.append("%s: the metrics of the stored outputs are not record.json's" % key)
            report["metrics"][key] = dict(got or {}, matches_record=same)
            if got:
                lines.append("%s: L1 %.3e, cosine %.6f, SQNR %.1f dB%s" % (
                    key, got["l1"], got["cosine"], got["sqnr_db"], "" if same else "  (DIFFERS from record.json)"))
    made = compiled_ir(xml)
    if made is None:
        report["openvino_cpu"] = "OpenVINO is not installed: the IR was not rerun"
    else:
        model, compiled = made
        missing = [p.any_name for p in model.inputs if p.any_name not in inputs]
        if missing:
            problems.append("inputs.npz has no input %s of the IR" % missing)
        else:
            feed = {p.any_name: inputs[p.any_name] for p in model.inputs}
            if all(feed[p.any_name].ndim == len(p.get_shape()) + 1 for p in model.inputs):
                # a streamed run stores every step's inputs (states as the reference fed them): one inference each,
                # memory layers (ReadValue/Assign) set to the state the reference read at that step
                request, steps = compiled.create_infer_request(), []
                for t in range(len(next(iter(feed.values())))):
                    for state in request.query_state():
                        stored = inputs.get("memory:" + state.name)
                        if stored is not None:
                            state.state.data[...] = stored[t]
                    result = request.infer({k: v[t] for k, v in feed.items()})
                    steps.append({out: np.array(r) for out, r in result.items()})
                result = {out: np.stack([r[out] for r in steps]) for out in compiled.outputs}
            else:
                result = compiled(feed)
            report["openvino_cpu"] = {}
            for port, out in zip(model.outputs, compiled.outputs):
                name = port.any_name
                stored = outputs.get("%s/%s" % (ref_label, name))
                got = measure(stored, np.asarray(result[out])) if stored is not None else None
                if got is None:
                    problems.append("the OpenVINO CPU rerun's %s does not match the stored reference's shape" % name)
                    continue
                # the record's figure for OpenVINO CPU; a CPU reference is its own figure (identical)
                recorded = math.inf if ref_label == "openvino:CPU" else \
                    ((record["metrics"].get("openvino:CPU") or {}).get(name) or {}).get("sqnr_db")
                agrees = rerun_agrees(got["sqnr_db"], recorded)
                if agrees is False:
                    problems.append("the OpenVINO CPU rerun of ir/ gives SQNR %.1f dB on %s against the stored "
                                    "reference; record.json says %.1f dB" % (got["sqnr_db"], name, number(recorded)))
                report["openvino_cpu"][name] = dict(got, matches_record=agrees)
                lines.append("OpenVINO CPU rerun vs stored reference, %s: SQNR %.1f dB%s"
                             % (name, got["sqnr_db"], RERUN_NOTE[agrees]))
    if made is None:
        lines.append(report["openvino_cpu"])
    return finish(report, problems, lines)


if __name__ == "__main__":
    run_main(main)
'''

REPRODUCE_VAD = r'''"""Check this silero_vad bundle: python reproduce.py [--audio FOLDER] [--plain] [--json]

Recomputes every backend's metrics against the reference from the stored probability tracks (tracks.npz) and
checks them against record.json. The audio is not in the bundle: with --audio FOLDER (holding the record's WAV
files) the IR in ir/ is also streamed on OpenVINO CPU (FP32) over each file, and its track checked against the
stored reference track and the record. Uses gnaexp when it is installed (any WAV it reads); --plain (or no gnaexp)
uses only NumPy, OpenVINO and 16-bit mono WAVs at the record's rate. Exit 0 when everything matches, 1 when
something differs (one line says what), 2 when the bundle or an option is wrong.
"""''' + _REPRODUCE_COMMON + r'''
import wave

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
'''
