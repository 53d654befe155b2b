"""Run this on the GNA machine: python measure_on_device.py [--mode SW_EXACT|HW|AUTO|SW_FP32] [--sf 2048]

Needs an OpenVINO with the GNA plugin (archive install 2022.3-2023.3). Reads the pack it lies in (from any
folder) and writes outputs.npz into it (or --out FILE), which `gnaexp diagnose --export-dir PACK` and
`gnaexp run ... --backends torch,import:outputs.npz` compare with the reference.
"""
import argparse, json, math, os, platform, sys, tempfile
from pathlib import Path

import numpy as np

from device_common import check_ir, fail, input_fingerprint, run_main, short

# ---- shipped from here ----

SCRIPT = "measure_on_device.py"
HERE = Path(__file__).resolve().parent
# gnaexp.core.gna_settings's EXECUTION_MODES (GNA_DEVICE_MODE without "GNA_") and PRECISIONS (a test holds them equal)
MODES = ("AUTO", "HW", "HW_WITH_SW_FBACK", "SW_EXACT", "SW_FP32")
PRECISIONS = ("i16", "i8")


def pack_file(name):
    path = HERE / name
    if not path.is_file():
        fail("%s is missing beside %s (in %s): copy the whole export pack" % (name, SCRIPT, HERE.name))
    return path


def read_config():
    try:
        cfg = json.loads(pack_file("config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail("config.json cannot be read (%s): export the pack again with gnaexp export" % exc)
    if not isinstance(cfg, dict):
        fail("config.json is not the pack's config (a JSON object): export the pack again with gnaexp export")
    return cfg


def arguments(cfg):
    ap = argparse.ArgumentParser(prog=SCRIPT, description="Measure the pack's IR on a GNA and write outputs.npz.")
    ap.add_argument("--device", default="GNA", help="GNA (default), or CPU to try the pack without a GNA")
    ap.add_argument("--mode", default=str(cfg.get("execution_mode", "SW_EXACT")), help=" | ".join(MODES))
    sf = cfg.get("scale_factor", 1.0)  # one number, or one per input (NAME=SF,...)
    ap.add_argument("--sf", default=",".join("%s=%r" % kv for kv in sf.items()) if isinstance(sf, dict) else str(sf),
                    help="input scale factor for every input, or NAME=SF,NAME=SF (inputs not named get 1.0)")
    ap.add_argument("--precision", default=str(cfg.get("precision", "i16")),
                    help=" or ".join(PRECISIONS) + " (weights)")
    ap.add_argument("--out", default=str(HERE / "outputs.npz"),
                    help="where to write (default: outputs.npz in the pack)")
    ap.add_argument("--show-config", action="store_true", help="print the plugin config and stop")
    return ap.parse_args()


def parse_sf(text):
    """{NAME: sf} (None: every input), or the problem in words."""
    try:
        if "=" not in text:
            given = {None: float(text)}
        else:
            given = {}
            for item in text.split(","):
                name, value = item.split("=", 1)
                given[name.strip()] = float(value)
    except ValueError:
        return "--sf %r is not a scale factor: give a number (e.g. 2048) or NAME=SF,NAME=SF" % text
    bad = [v for v in given.values() if not (v > 0 and math.isfinite(v))]
    if bad:
        return "--sf %r: a scale factor must be a positive, finite number" % text
    return given


def check(a):
    """The options' values, checked before OpenVINO is touched; exit 2 naming every wrong one and the valid values."""
    problems = []
    mode = a.mode.upper()
    mode = mode[4:] if mode.startswith("GNA_") else mode
    if mode not in MODES:
        problems.append("--mode %s is not one of %s" % (a.mode, ", ".join(MODES)))
    if a.precision.lower() not in PRECISIONS:
        problems.append("--precision %s is not one of %s" % (a.precision, ", ".join(PRECISIONS)))
    sf = parse_sf(a.sf)
    if isinstance(sf, str):
        problems.append(sf)
    if problems:
        fail("; ".join(problems))
    return mode, a.precision.lower(), sf


def scale_factors(given, names):
    if None in given:
        return {n: given[None] for n in names}
    unknown = sorted(set(given) - set(names))
    if unknown:
        fail("--sf names unknown input(s) %s; the inputs are %s" % (unknown, names))
    return {n: given.get(n, 1.0) for n in names}


def run_stream(compiled, names, data, stream):
    """Each sequence of the pack step by step, every state output fed to its state input (the pairs in config.json);
    memory layers (ReadValue/Assign) keep their state in the request, reset at each sequence. Outputs per step,
    stacked: OUTPUT, or SEQUENCE/OUTPUT when the pack holds several sequences."""
    pairs, request, outs = stream["state"], compiled.create_infer_request(), {}
    for seq in stream["sequences"]:
        prefix = seq + "/" if seq else ""
        missing = [prefix + n for n in names if prefix + n not in data]
        if missing:
            fail("inputs.npz lacks %s: export the pack again with gnaexp export" % ", ".join(missing))
        state = {n: data[prefix + n] for n in pairs}
        frames = {n: data[prefix + n] for n in names if n not in pairs}
        for s in request.query_state():
            s.reset()
        steps = {}
        for t in range(len(next(iter(frames.values())))):
            feed = dict((n, f[t]) for n, f in frames.items())
            feed.update(state)
            res = request.infer(feed)
            now = {p.any_name: np.array(res[p], dtype=np.float32) for p in compiled.outputs}
            for k, v in now.items():
                steps.setdefault(k, []).append(v)
            state = {n: now[o].reshape(state[n].shape) for n, o in pairs.items()}
        outs.update({prefix + k: np.stack(v) for k, v in steps.items()})
    return outs


def main():
    cfg = read_config()
    a = arguments(cfg)
    mode, precision, sf = check(a)
    try:
        try:
            from openvino.runtime import Core, get_version  # 2022.3 - 2023.x
        except ImportError:
            from openvino import Core, get_version
    except ImportError:
        fail("OpenVINO is not importable here: run this with the Python of an OpenVINO 2022.3-2023.3 archive "
             "install (the releases with the GNA plugin; no PyPI wheel has it)", 1)
    check_ir(pack_file("model.xml"), "model.xml", "export the pack again with gnaexp export")
    core = Core()
    try:
        model = core.read_model(str(pack_file("model.xml")))
    except RuntimeError as exc:
        fail("OpenVINO cannot read model.xml (%s): export the pack again with gnaexp export" % short(exc))
    names = [p.any_name for p in model.inputs]
    config = {}
    if a.device == "GNA":
        config = {"GNA_DEVICE_MODE": "GNA_" + mode, "GNA_PRECISION": precision.upper()}
        sfs = scale_factors(sf, names)
        config.update({"GNA_SCALE_FACTOR_%d" % i: repr(sfs[n]) for i, n in enumerate(names)})
    elif a.device == "CPU":
        # CPU's default precision is bf16 on CPUs that have it: held to FP32, the pack must run in FP32
        config = {"INFERENCE_PRECISION_HINT": "f32"}
    if a.show_config:
        print(json.dumps(config, sort_keys=True))
        return 0
    stream = cfg.get("stream")
    try:
        with np.load(str(pack_file("inputs.npz")), allow_pickle=False) as z:
            feed = {k: z[k].astype(np.float32) for k in z.files} if stream else \
                {n: z[n].astype(np.float32) for n in names}
    except KeyError as exc:
        fail("inputs.npz has no input %s: export the pack again with gnaexp export" % exc)
    except Exception as exc:  # noqa — a truncated or edited archive, pickled data
        fail("inputs.npz cannot be read (%s: %s): export the pack again with gnaexp export" % (type(exc).__name__, exc))
    try:
        compiled = core.compile_model(model, a.device, config)
    except RuntimeError as exc:
        fail("OpenVINO %s cannot run the model on %s (%s); devices here: %s. Run this on the GNA machine, with the "
             "GNA plugin (OpenVINO 2022.3-2023.3), or pass --device CPU to try the pack"
             % (get_version(), a.device, short(exc), ", ".join(core.available_devices)), 1)
    if stream:
        outs = run_stream(compiled, names, feed, stream)
    else:
        res = compiled.infer_new_request(feed)
        outs = {p.any_name: np.array(res[p], dtype=np.float32) for p in compiled.outputs}
    try:  # what actually ran, as the device reports it (not every release or device has the property)
        ran = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        ran = next((short for long, short in (("bfloat16", "bf16"), ("bf16", "bf16"), ("float16", "f16"),
                                              ("f16", "f16"), ("float32", "f32"), ("f32", "f32")) if long in ran), ran)
    except Exception:  # noqa — older APIs raise their own types
        ran = None
    meta = {"backend": "openvino:" + a.device, "device": a.device, "plugin_config": config,
            "execution_mode": ("GNA_" + mode) if a.device == "GNA" else None,
            "precision": precision.upper() if a.device == "GNA" else (ran or config.get("INFERENCE_PRECISION_HINT")),
            "openvino": get_version(), "devices": core.available_devices, "os": platform.platform(terse=True),
            "python": sys.version.split()[0], "input_fingerprint": input_fingerprint(feed),
            "streamed": {"state": stream["state"], "sequences": stream["sequences"]} if stream else None}
    out = Path(a.out)
    fd, tmp = tempfile.mkstemp(prefix="." + out.name + ".", suffix=".tmp", dir=str(out.parent.resolve()))
    try:  # written whole, then renamed: an interrupted run leaves the previous outputs.npz as it was
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **outs)
        os.replace(tmp, str(out))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print("wrote", out, {k: v.shape for k, v in outs.items()})
    return 0


if __name__ == "__main__":
    run_main(main)
