"""CLI subcommands of the emulator: ``gnaexp emulate`` and ``gnaexp sweep``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _atomic_write(path: str | Path, write: Callable[[Any], None], binary: bool = True) -> Path:
    """Write through a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def parse_scale_factors(text: str) -> float | dict[str, float]:
    """"2048" → 2048.0; "a=2048,b=512" → per-input mapping."""
    try:
        if "=" not in text:
            return float(text)
        out = {}
        for part in text.split(","):
            k, _, v = part.partition("=")
            out[k.strip()] = float(v)
        return out
    except ValueError:
        raise ValueError(f"--scale-factor takes a number or name=number,...; got {text!r}") from None


def _load_inputs(path: str) -> Any:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input file not found: {p}")
    if p.suffix == ".npz":
        with np.load(p) as z:
            return {k: z[k] for k in z.files}
    if p.suffix == ".npy":
        return np.load(p)
    raise ValueError(f"inputs must be .npy (one input) or .npz (name → array), got {p.name}")


def cmd_emulate(args: argparse.Namespace) -> int:
    from gnaexp.emulator import emulate, load_program

    prog = load_program(args.model)
    raw = _load_inputs(args.inputs)
    if not isinstance(raw, dict):
        if len(prog.params) != 1:
            raise ValueError(f"the model has {len(prog.params)} inputs: pass an .npz with one array per input "
                             f"named {[p[1][0] for p in prog.params]}")
        raw = {prog.params[0][1][0]: raw}
    em = emulate(prog, raw, parse_scale_factors(args.scale_factor), args.precision, args.layout,
                 keep_ints=bool(args.ints))
    out = Path(args.out)
    if out.suffix == ".npz":
        _atomic_write(out, lambda fh: np.savez(fh, **em.outputs))
    else:
        if len(em.outputs) != 1:
            raise ValueError(f"the model has {len(em.outputs)} outputs: give --out a .npz path")
        arr = next(iter(em.outputs.values()))
        _atomic_write(out, lambda fh: np.save(fh, arr))
    if args.plan:
        _atomic_write(args.plan, lambda fh: json.dump(em.to_json(), fh, indent=2), binary=False)
    if args.ints:
        _atomic_write(args.ints, lambda fh: np.savez(fh, **{k.replace("/", "|"): v for k, v in em.ints.items()}))
    print(f"emulated ({em.rules_version}, layout {args.layout}); input sf used: {em.input_scale_factors}")
    for note in em.notes:
        print(f"note: {note}")
    print(f"wrote {out}")
    return 0

LAYOUT_HELP = ("correct: what a correct plugin computes; legacy-concat: the documented path of 2022.3/2023.0 "
               "plugins (a conv after a Concat of network inputs reads the NCW buffer as NWC)")


def add_emulate_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("emulate", help="run an IR through the GNA integer emulator (results are emulated)")
    p.add_argument("model", help="OpenVINO IR .xml")
    p.add_argument("inputs", help=".npy (one input; optional leading batch axis) or .npz (name → array)")
    p.add_argument("--scale-factor", default="1.0", help="input scale factor, or name=sf,... (default 1.0, "
                   "the plugin's default)")
    p.add_argument("--precision", choices=("i16", "i8"), default="i16", help="weight precision (default i16)")
    p.add_argument("--layout", choices=("correct", "legacy-concat"), default="correct", help=LAYOUT_HELP)
    p.add_argument("--out", required=True, help="outputs: .npy (one output) or .npz")
    p.add_argument("--plan", help="write the quantization plan as JSON")
    p.add_argument("--ints", help="write every layer's integer output as .npz")
    p.set_defaults(func=cmd_emulate)


def sweep_experiment(experiment: str, scale_factors: list[float], layout: str = "correct",
                     sets: list[str] | None = None) -> Any:
    """Sweep a named experiment: its IR and inputs from the experiment machinery, torch (or CPU) as reference."""
    from gnaexp.backends import make_backend
    from gnaexp.cli import make_config
    from gnaexp.emulator.sweep import sweep
    from gnaexp.experiment import build_model, make_inputs

    config = make_config(experiment, sets or [])
    bundle = build_model(config)
    inputs = make_inputs(config, bundle)
    ref_backend = make_backend("torch" if bundle.torch_module is not None else "openvino:CPU")
    ref = ref_backend.run(bundle, inputs).outputs
    return sweep(bundle.ir_xml, inputs, ref, scale_factors, config.precision, layout)


def cmd_sweep(args: argparse.Namespace) -> int:
    try:
        sfs = [float(s) for s in args.scale_factors.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--scale-factors takes comma-separated numbers, got {args.scale_factors!r}") from None
    if not sfs:
        raise ValueError("--scale-factors is empty")
    res = sweep_experiment(args.experiment, sfs, args.layout, args.set)
    if args.json:
        json.dump(res.to_json(), sys.stdout, indent=2)
        print()
    else:
        print(f"{args.experiment}: emulated, layout {args.layout}")
        print(res.table())
    return 0


def add_sweep_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("sweep", help="error vs input scale factor through the emulator")
    p.add_argument("experiment", help="conv | concat | concat_conv | model")
    p.add_argument("--scale-factors", default="1,2,4,8,16,32,64,128,256,512,1024,2048,4096,8192,16384,32768",
                   help="comma-separated input scale factors to try (default: powers of 2 from 1 to 32768)")
    p.add_argument("--layout", choices=("correct", "legacy-concat"), default="correct", help=LAYOUT_HELP)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="experiment setting")
    p.add_argument("--json", action="store_true", help="print the sweep as JSON")
    p.set_defaults(func=cmd_sweep)
