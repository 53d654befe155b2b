#!/usr/bin/env python3
"""Builds the job list (identical for every tag), runs build/<tag>/oracle, writes out/<tag>.json.

All floating inputs are recorded as float.hex() strings. Scale factors and float-typed plugin
parameters (negative_slope, clamp bounds, FQ input_low/high) are rounded to float32 first,
because the plugin stores/passes them as float; the hex string is that float32's exact double.
"""
import json
import math
import random
import struct
import subprocess
import sys
import time

SEED = 20240611


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def hx(x):
    return float(x).hex()


def loguniform(rng, lo, hi):
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def build_inputs():
    rng = random.Random(SEED)
    fixed_in = [1, 2.5, 16, 100, 1024, 2048, 2049, 4096, 16384, 32768, 131072, 2048 * 16384, 1234567.875]
    rand_in = [f32(loguniform(rng, 1.0, 1e8)) for _ in range(12)]
    in_grid = [f32(v) for v in fixed_in] + rand_in
    assert all(f32(v) == v for v in fixed_in), "fixed grid must be float32-exact"

    id_out = [1, 16, 512, 1024.5, 2048, 2049, 4096, 8192, 16384, 32767]
    pairs = [(i, f32(o)) for i in in_grid for o in id_out]
    rand_pairs = []
    for _ in range(40):
        i = f32(loguniform(rng, 1.0, 1e8))
        o = f32(i * loguniform(rng, 1e-6, 1e5))
        rand_pairs.append((i, o))
    pairs_all = pairs + rand_pairs
    fq_subset = rng.sample(pairs_all, 30)
    act_subset = rng.sample(pairs_all, 60)
    return in_grid, pairs_all, fq_subset, act_subset


OPS = ["Sigmoid", "Tanh", "SoftSign", "Exp", "Log"]
POW_EXPS = [2, 0.5, 3, 1.5, 4, 0.25, -1, -2, 2.5]
PCTS = [1.0, 0.5, 0.25, 0.1, 0.05, 0.015, 0.005, 2.0, 5.0]
ENC_PCTS = [1.0, 0.015, 0.005]
FQ_RANGES = [(-1, 1), (-8, 8), (-0.5, 2), (-16, 16), (-100, 100)]
LRELU = [0.01, 0.1, 0.2]
CLAMPS = [(-1, 1), (-8, 8), (-0.5, 2)]
BEST_START = [2048, 2049, 4096, 1024.5, 16384, 100.7, 32767]


def design_keys():
    keys = [(op, 0.0) for op in OPS] + [("Power", float(e)) for e in POW_EXPS]
    return keys


def make_jobs():
    in_grid, pairs, fq_subset, act_subset = build_inputs()
    jobs = []  # (section, record-inputs dict, command line)
    for op, e in design_keys():
        for p in PCTS:
            rec = {"op": op, "allowed_err_pct": hx(p)}
            if op == "Power":
                rec.update(exponent=hx(e), scale=hx(1.0), shift=hx(0.0))
            jobs.append(("designs", rec, f"design {op} {hx(e)} {hx(p)}"))
    for op, e in design_keys():
        for p in ENC_PCTS:
            for i in in_grid:
                outs = ["powsf", f32(512), f32(16384)] if op == "Power" else [f32(2048)]
                for o in outs:
                    rec = {"op": op, "allowed_err_pct": hx(p), "in_sf": hx(i)}
                    if op == "Power":
                        rec.update(exponent=hx(e), scale=hx(1.0), shift=hx(0.0))
                    if o == "powsf":
                        rec["out_sf_rule"] = "plugin getActivationScale(Power)"
                    else:
                        rec["out_sf"] = hx(o)
                    jobs.append(("encoded", rec, f"encode {op} {hx(e)} {hx(p)} {hx(i)} {o if o == 'powsf' else hx(o)}"))
    for i, o in pairs:
        jobs.append(("identity", {"in_sf": hx(i), "out_sf": hx(o)}, f"identity {hx(i)} {hx(o)}"))
    for i, o in fq_subset:
        for lo, hi in FQ_RANGES:
            lo32, hi32 = f32(lo), f32(hi)
            jobs.append(("identity", {"in_sf": hx(i), "out_sf": hx(o), "input_low": hx(lo32), "input_high": hx(hi32)},
                         f"identity {hx(i)} {hx(o)} {hx(lo32)} {hx(hi32)}"))
    for i, o in pairs:
        jobs.append(("relu", {"type": "kActRelu", "in_sf": hx(i), "out_sf": hx(o), "negative_slope": hx(0.0)},
                     f"act relu {hx(i)} {hx(o)} 0 0"))
        for ns in LRELU:
            n32 = f32(ns)
            jobs.append(("relu", {"type": "kActLeakyRelu", "in_sf": hx(i), "out_sf": hx(o), "negative_slope": hx(n32)},
                         f"act lrelu {hx(i)} {hx(o)} {hx(n32)} 0"))
    for i, o in act_subset:
        for lo, hi in CLAMPS:
            lo32, hi32 = f32(lo), f32(hi)
            jobs.append(("clamp", {"type": "kActKaldiLstmClipping", "in_sf": hx(i), "out_sf": hx(o),
                                   "low": hx(lo32), "high": hx(hi32)},
                         f"act clamp {hx(i)} {hx(o)} {hx(lo32)} {hx(hi32)}"))
        jobs.append(("abs", {"type": "kActAbs", "in_sf": hx(i), "out_sf": hx(o)}, f"act abs {hx(i)} {hx(o)} 0 0"))
        jobs.append(("sign", {"type": "kActSign", "in_sf": hx(i), "out_sf": hx(o)}, f"act sign {hx(i)} {hx(o)} 0 0"))
    for i, o in fq_subset:
        for lo, hi in FQ_RANGES:
            lo32, hi32 = f32(lo), f32(hi)
            jobs.append(("fake_quantize", {"type": "kActFakeQuantize", "in_sf": hx(i), "out_sf": hx(o),
                                           "input_low": hx(lo32), "input_high": hx(hi32)},
                         f"act fq {hx(i)} {hx(o)} 0 0 {hx(lo32)} {hx(hi32)}"))
    for i in in_grid:
        for s in BEST_START:
            s32 = f32(s)
            jobs.append(("best_output_sf", {"in_sf": hx(i), "start_sf": hx(s32)}, f"bestsf {hx(i)} {hx(s32)}"))
    for op, e in design_keys():
        if op != "Power":
            continue
        for i in in_grid:
            jobs.append(("power_out_sf", {"exponent": hx(e), "scale": hx(1.0), "shift": hx(0.0), "in_sf": hx(i)},
                         f"powsf {hx(i)} {hx(e)}"))
    return jobs


def parse_segs(toks):
    return [[int(v) for v in t.split(",")] for t in toks]


def fh(s):
    return float.fromhex(s).hex()


def parse(section, line):
    if line.startswith("exc "):
        return {"exception": line[4:]}
    if line == "nopwl":
        return {"result": "no pwl"}
    if line == "design-unavailable":
        return {"result": "design unavailable"}
    assert line.startswith("ok"), line
    body = line[3:]
    if section == "designs":
        err, rest = body.split(" ", 1)
        m, b, a = rest.split(";")
        return {"err_pct": fh(err), "m": [fh(v) for v in m.split(",")], "b": [fh(v) for v in b.split(",")],
                "alpha": [fh(v) for v in a.split(",")]}
    toks = body.split()
    if section == "encoded":
        return {"out_sf_used": fh(toks[0]), "segments": parse_segs(toks[1:])}
    if section == "identity":
        xl, xu, yl, yu, ymin, ymax = (int(t) for t in toks[:6])
        return {"border_values": {"x_lower": xl, "x_upper": xu, "y_lower": yl, "y_upper": yu,
                                  "y_min": ymin, "y_max": ymax}, "segments": parse_segs(toks[6:])}
    if section in ("best_output_sf", "power_out_sf"):
        return {"sf": fh(toks[0])}
    return {"segments": parse_segs(toks)}


def main():
    root = sys.argv[1]
    tags = sys.argv[2:]
    jobs = make_jobs()
    stdin = "".join(j[2] + "\n" for j in jobs)
    for tag in tags:
        t0 = time.time()
        r = subprocess.run([f"{root}/build/{tag}/oracle"], input=stdin, capture_output=True, text=True, check=True)
        lines = r.stdout.split("\n")
        assert len(lines) >= len(jobs), (len(lines), len(jobs))
        doc = {"tag": tag, "generator": "tools/plugin_oracle/build.sh (extract.py + generate.py)", "seed": SEED,
               "notes": "hex strings are Python float.hex(); scale factors and float plugin params are float32 values"
                        " given as their exact double; GNA segments are [xBase(int32 incl. 2 index bits), yBase, slope]"}
        for (section, rec, _), line in zip(jobs, lines):
            out = dict(rec)
            out.update(parse(section, line))
            doc.setdefault(section, []).append(out)
        with open(f"{root}/out/{tag}.json", "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        print(f"[{tag}] {len(jobs)} jobs in {time.time() - t0:.1f}s -> out/{tag}.json")


if __name__ == "__main__":
    main()
