"""Everything a team needs to measure an experiment on a machine with a real GNA, and bring it back.

The folder holds the IR, the inputs, the torch reference output, the config, and a standalone
``measure_on_device.py`` that runs the IR with OpenVINO's GNA plugin (archive installs 2022.3–2023.3) and
writes ``outputs.npz`` in the format the ``import:`` backend reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path


from gnaexp import experiment, inputs as inputs_mod
from gnaexp.backends import make_backend
from gnaexp.files import atomic_write_bytes, atomic_write_text, dumps, npy_bytes, npz_bytes
from gnaexp.output_folder import publish_folder

MEASURE_SCRIPT = '''"""Run this on the GNA machine: python measure_on_device.py [--mode SW_EXACT|HW|AUTO|SW_FP32] [--sf 2048]

Needs an OpenVINO with the GNA plugin (archive install 2022.3-2023.3). Writes outputs.npz, which
`gnaexp run ... --backends torch,import:outputs.npz` compares with the reference.
"""
import argparse, hashlib, json, platform, sys
import numpy as np
try:
    from openvino.runtime import Core, get_version
except ImportError:
    from openvino import Core, get_version

cfg = json.load(open("config.json"))
ap = argparse.ArgumentParser()
ap.add_argument("--device", default="GNA")
ap.add_argument("--mode", default=cfg.get("execution_mode", "SW_EXACT"))
ap.add_argument("--sf", default=str(cfg.get("scale_factor", 1.0)),
                help="input scale factor for every input, or NAME=SF,NAME=SF (inputs not named get 1.0)")
ap.add_argument("--precision", default=cfg.get("precision", "i16"), help="i16 or i8 (weights)")
ap.add_argument("--out", default="outputs.npz")
ap.add_argument("--show-config", action="store_true", help="print the plugin config and stop")
a = ap.parse_args()
core = Core()
model = core.read_model("model.xml")
names = [p.any_name for p in model.inputs]


def scale_factors(text):
    if "=" not in text:
        return {n: float(text) for n in names}
    given = dict(item.split("=", 1) for item in text.split(","))
    unknown = sorted(set(given) - set(names))
    if unknown:
        sys.exit("--sf names unknown input(s) %s; the inputs are %s" % (unknown, names))
    return {n: float(given.get(n, 1.0)) for n in names}


config = {}
if a.device == "GNA":
    config = {"GNA_DEVICE_MODE": "GNA_" + a.mode.upper().replace("GNA_", ""), "GNA_PRECISION": a.precision.upper()}
    sfs = scale_factors(a.sf)
    config.update({"GNA_SCALE_FACTOR_%d" % i: repr(sfs[n]) for i, n in enumerate(names)})
if a.show_config:
    print(json.dumps(config, sort_keys=True))
    sys.exit(0)
compiled = core.compile_model(model, a.device, config)
with np.load("inputs.npz") as z:
    feed = {n: z[n].astype(np.float32) for n in names}
res = compiled.infer_new_request(feed)
outs = {p.any_name: np.array(res[p], dtype=np.float32) for p in compiled.outputs}
h = hashlib.sha256()
for n in sorted(feed):
    arr = np.ascontiguousarray(feed[n])
    h.update(("%s|%s|%s|" % (n, arr.dtype, arr.shape)).encode()); h.update(arr.tobytes())
meta = {"backend": "openvino:" + a.device, "device": a.device, "plugin_config": config,
        "openvino": get_version(), "devices": core.available_devices, "os": platform.platform(terse=True),
        "python": sys.version.split()[0], "input_fingerprint": h.hexdigest()[:16]}
np.savez(a.out, __meta__=np.array(json.dumps(meta)), **outs)
print("wrote", a.out, {k: v.shape for k, v in outs.items()})
'''


def export(config: experiment.ExperimentConfig, folder: Path) -> Path:
    """Write the export folder whole (staged, then put in place); returns it.

    A folder holding anything an export did not write (e.g. the device's outputs.npz) is refused, not replaced.
    """
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    with publish_folder(folder, "export folder") as stage:
        for src in (model.ir_xml, model.ir_xml.with_suffix(".bin")):
            shutil.copyfile(src, stage / ("model" + src.suffix))
        atomic_write_bytes(stage / "inputs.npz", npz_bytes(feed))
        for name, arr in feed.items():
            atomic_write_bytes(stage / f"{name}.npy", npy_bytes(arr))
        if model.torch_module is not None:
            ref = make_backend("torch").run(model, feed)
            for name, arr in ref.outputs.items():
                atomic_write_bytes(stage / f"reference_{name}.npy", npy_bytes(arr))
        cfg = config.to_record_json()
        cfg["input_fingerprint"] = inputs_mod.fingerprint(feed)
        atomic_write_text(stage / "config.json", dumps(cfg))
        atomic_write_text(stage / "measure_on_device.py", MEASURE_SCRIPT)
    return folder
