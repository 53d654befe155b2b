"""What both ``reproduce.py`` of a support bundle share: reading the bundle, recomputing metrics, judging an OpenVINO
rerun. gnaexp's metrics are used where gnaexp is installed (--plain: NumPy and OpenVINO only).

Not shipped as a file: ``gnaexp.support.device_scripts`` writes the code below the marker line into
``reproduce_record.py`` and ``reproduce_vad.py``, each shipped as one self-contained ``reproduce.py``.
"""
import hashlib, json, math, sys
from pathlib import Path

import numpy as np

from device_common import check_ir, fail, short

# ---- shipped from here ----

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
