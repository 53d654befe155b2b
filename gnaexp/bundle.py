"""A vendor-support bundle: one zip with everything needed to see, and rerun, one comparison elsewhere.

From a run folder (``gnaexp run --out``) or a batch run's ``NAME.record`` folder: the HTML report (``NAME.html``
beside a batch record, or any ``.html`` inside the folder), the IR, the inputs, every backend's outputs, the
JSON record (config, environment, plugin settings, metrics, verdicts), the ladder's diagnosis and
``reproduce.py``. Paths inside are relative; nothing absolute is written.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from gnaexp.files import atomic_write_bytes, dumps

REPRODUCE = '''"""Rerun this bundle's comparison: python reproduce.py [--plain] [--json]

Recomputes L1, cosine and SQNR of every backend's stored outputs against the stored reference, reruns the IR
on OpenVINO CPU (FP32) with the stored inputs, and checks both against the figures in record.json. Uses gnaexp
when it is installed; --plain (or no gnaexp) uses only NumPy and OpenVINO. Exit 0 when everything matches.
"""
import json, math, sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PLAIN = "--plain" in sys.argv
if not PLAIN:
    try:
        from gnaexp import metrics as gm
    except ImportError:
        PLAIN = True


def measure(ref, test):
    ref, test = np.asarray(ref, np.float32).ravel(), np.asarray(test, np.float32).ravel()
    if not PLAIN:
        c = gm.compare(ref, test)
        return {"l1": c.l1, "cosine": c.cosine, "sqnr_db": c.sqnr_db}
    r, t = ref.astype(np.float64), test.astype(np.float64)
    noise, signal = float(np.sum((t - r) ** 2)), float(np.sum(r * r))
    sqnr = math.inf if noise == 0 else (-math.inf if signal == 0 else 10 * math.log10(signal / noise))
    den = math.sqrt(float(np.sum(r * r)) * float(np.sum(t * t)))
    return {"l1": float(np.mean(np.abs(t - r))), "cosine": float(np.sum(r * t) / den) if den else math.nan,
            "sqnr_db": sqnr}


def close(a, b):
    if a is None or b is None:
        return False
    if isinstance(a, float) and math.isnan(a) or isinstance(b, float) and math.isnan(b):
        return (isinstance(a, float) and math.isnan(a)) == (isinstance(b, float) and math.isnan(b))
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def number(v):
    return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(v, v) if isinstance(v, str) else v


record = json.loads((HERE / "record.json").read_text(encoding="utf-8"))
inputs = dict(np.load(HERE / "inputs.npz"))
outputs = dict(np.load(HERE / "outputs.npz"))
ref_label = record["reference"]
report, ok = {"metrics": {}, "openvino_cpu": None}, True
for key, arr in sorted(outputs.items()):
    label, _, out_name = key.rpartition("/")
    if label == ref_label:
        continue
    got = measure(outputs[f"{ref_label}/{out_name}"], arr)
    want = (record["metrics"].get(label) or {}).get(out_name) or {}
    same = all(close(got[k], number(want.get(k))) for k in got)
    ok &= same
    report["metrics"][f"{label}/{out_name}"] = dict(got, matches_record=same)
try:
    import openvino as ov
    core = ov.Core()
    model = core.read_model(str(HERE / "ir" / "model.xml"))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})  # never bf16/f16
    feed = {p.any_name: inputs[p.any_name] for p in model.inputs}
    result = compiled(feed)
    first = model.outputs[0].any_name
    cpu = np.asarray(result[compiled.outputs[0]])
    report["openvino_cpu"] = dict(measure(outputs[f"{ref_label}/{first}"], cpu), output=first)
except ImportError:
    report["openvino_cpu"] = "OpenVINO is not installed: the IR was not rerun"
print(json.dumps(report, indent=2, default=str) if "--json" in sys.argv else
      "\\n".join(f"{k}: L1 {v['l1']:.3e}, cosine {v['cosine']:.6f}, SQNR {v['sqnr_db']:.1f} dB"
                 f"{'' if v['matches_record'] else '  (DIFFERS from record.json)'}" for k, v in report["metrics"].items())
      + f"\\nOpenVINO CPU rerun vs stored reference: {report['openvino_cpu']}")
sys.exit(0 if ok else 1)
'''


def _find_report(folder: Path) -> Path | None:
    if folder.suffix == ".record" and folder.with_suffix(".html").is_file():
        return folder.with_suffix(".html")
    found = sorted(folder.glob("*.html"))
    return found[0] if found else None


def make_bundle(folder: str | Path, out: str | Path, diagnosis: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the zip (atomically); returns what went in. folder must hold record.json, ir/, inputs/outputs."""
    folder = Path(folder)
    record_path = folder / "record.json"
    if not record_path.is_file():
        raise FileNotFoundError(f"{folder} holds no record.json: give a folder from gnaexp run --out or a batch "
                                "run's NAME.record folder")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    artifacts = record.get("artifacts") or {}
    members: dict[str, bytes] = {"record.json": record_path.read_bytes()}
    for key in ("inputs", "outputs"):
        path = folder / artifacts.get(key, f"{key}.npz")
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {path.name}: rerun the experiment with gnaexp run --out")
        members[f"{key}.npz"] = path.read_bytes()
    xml = folder / artifacts.get("ir", "ir/model.xml")
    if not xml.is_file() or not xml.with_suffix(".bin").is_file():
        raise FileNotFoundError(f"{folder} has no IR (ir/model.xml and .bin): rerun with gnaexp run --out")
    members["ir/model.xml"], members["ir/model.bin"] = xml.read_bytes(), xml.with_suffix(".bin").read_bytes()
    report = _find_report(folder)
    if report is not None:
        members["report.html"] = report.read_bytes()
    if diagnosis is not None:
        members["diagnosis.json"] = dumps(diagnosis).encode()
    members["reproduce.py"] = REPRODUCE.encode()
    members["README.txt"] = (
        f"gnaexp support bundle: {record.get('experiment')} (reference {record.get('reference')}).\n"
        "report.html: the report; record.json: config, environment, plugin settings, metrics and verdicts;\n"
        "diagnosis.json: the diagnosis ladder; ir/: the model; inputs.npz / outputs.npz: inputs and every\n"
        "backend's outputs (keys 'backend/output'). Figures of 'gna-emu' are emulated, not measured.\n"
        "Rerun the comparison: python reproduce.py (gnaexp optional; --plain uses NumPy + OpenVINO only).\n"
    ).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed stamp: same run → same zip
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            z.writestr(info, data)
    atomic_write_bytes(Path(out), buf.getvalue())
    return {"bundle": str(out), "files": sorted(members), "report": report is not None}
