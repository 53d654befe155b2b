"""The ``gnaexp`` command. Exit codes: 0 ok, 1 a run failed, 2 bad usage or input, 3 backend unavailable."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments or input: exit code 2 with the message."""


def _parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def make_config(experiment: str, sets: Sequence[str], backends: str | None = None) -> Any:
    """ExperimentConfig from CLI words; unknown experiment or key → UsageError listing the valid ones."""
    from gnaexp.experiment import EXPERIMENTS, ExperimentConfig

    if experiment not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}")
    settings: dict[str, Any] = _parse_sets(sets)
    if backends:
        settings["backends"] = backends
    try:
        return ExperimentConfig().with_settings({"experiment": experiment, **settings})
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc.args[0]) if exc.args else str(exc)) from None


# --- devices -------------------------------------------------------------------------------------------

def cmd_devices(args: argparse.Namespace) -> int:
    import openvino as ov

    from gnaexp.backends.openvino_runner import GNA_MISSING
    from gnaexp.environment import capture

    env = capture()
    devices = env.get("openvino_devices", {})
    gna = "GNA" in devices
    info = {"openvino": ov.__version__, "devices": devices, "gna_usable": gna,
            "gna_reason": "GNA plugin present" if gna else GNA_MISSING.format(version=ov.__version__,
                                                                            devices=", ".join(devices)),
            "emulator": "gna-emu (always available; results are labelled emulated)"}
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"OpenVINO {info['openvino']}")
    for d, name in devices.items():
        print(f"  {d:<6} {name}")
    print(f"GNA usable: {'yes' if gna else 'no'}")
    if not gna:
        print(f"  why: {info['gna_reason']}")
    return EXIT_OK


# --- run -----------------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from gnaexp import experiment, summary

    config = make_config(args.experiment, args.set, args.backends)
    out = Path(args.out) if args.out else Path("runs") / config.experiment
    record = experiment.run(config, out_dir=out,
                            progress=None if args.json else lambda s: print(f"running {s} ...", file=sys.stderr))
    if args.json:
        print(json.dumps(record.to_json(), indent=2, default=str))
    else:
        print(summary.table(record))
        print(f"\nrecord: {out / 'record.json'}")
    return EXIT_OK


# --- compare -------------------------------------------------------------------------------------------

def _load_array(path: str) -> Any:
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path} does not exist")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: v for k, v in z.items() if not k.startswith("__")}
        if len(arrays) != 1:
            raise UsageError(f"{path} holds {len(arrays)} arrays {sorted(arrays)}; compare takes one array per file")
        return next(iter(arrays.values()))
    if p.suffix != ".npy":
        raise UsageError(f"{path}: compare takes .npy (or a one-array .npz) files")
    return np.load(p, allow_pickle=False)


def cmd_compare(args: argparse.Namespace) -> int:
    from gnaexp import metrics
    from gnaexp.records import dumps

    ref, other = _load_array(args.ref), _load_array(args.other)
    try:
        comp = metrics.compare(ref, other, output_scale=args.output_scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = comp.to_json()
    if args.json:
        print(dumps(data))
        return EXIT_OK
    for key, value in data.items():
        print(f"{key:<20} {value}")
    return EXIT_OK


# --- export --------------------------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    from gnaexp import export

    config = make_config(args.experiment, args.set, "torch")
    folder = export.export(config, Path(args.out))
    print(f"exported to {folder}:")
    for p in sorted(folder.iterdir()):
        print(f"  {p.name}")
    return EXIT_OK


# --- diagnose ------------------------------------------------------------------------------------------

def cmd_diagnose(args: argparse.Namespace) -> int:
    from gnaexp.ladder import format_ladder, ladder
    from gnaexp.records import dumps

    config = make_config(args.experiment, args.set)
    observed = _load_array(args.observed) if args.observed else None
    result = ladder(config, observed)
    print(dumps(result) if args.json else format_ladder(result))
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from gnaexp import __version__

    parser = argparse.ArgumentParser(
        prog="gnaexp", description="Is the GNA output right, and if not, is it quantization or a defect?")
    parser.add_argument("--version", action="version", version=f"gnaexp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("devices", help="OpenVINO version, devices, and whether GNA is usable")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_devices)

    exp_help = "conv | concat | concat_conv | model (with --set model=PATH.xml)"
    p = sub.add_parser("run", help="run one experiment through its backends and print metrics vs the reference")
    p.add_argument("experiment", help=exp_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="experiment parameter, e.g. scale_factor=2048 (repeatable)")
    p.add_argument("--backends", help="comma list, e.g. torch,openvino:CPU,gna-emu")
    p.add_argument("--out", help="folder for record.json and arrays (default runs/EXPERIMENT)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="all metrics between two arrays (.npy)")
    p.add_argument("ref", help="reference array (.npy)")
    p.add_argument("other", help="array to compare (.npy)")
    p.add_argument("--output-scale", type=float, help="output scale factor, to report error in LSBs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="IR, inputs and torch reference output, to measure on a GNA machine")
    p.add_argument("experiment", help=exp_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="folder to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("diagnose", help="the ladder: FP32 check, quantization floor, sf sensitivity, "
                                        "layout hypotheses (and an observed device output, if given)")
    p.add_argument("experiment", help=exp_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--observed", help="device output for the same inputs (.npy, or an .npz from measure_on_device.py)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diagnose)

    for module, adders in _PLUGGED:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not (exc.name and (module + ".").startswith(exc.name + ".")):  # a missing dependency must not hide a command
                raise
            continue
        for adder in adders:
            getattr(mod, adder)(sub)
    return parser


# Commands that live beside the code they drive (each module registers its own subparser).
_PLUGGED: list[tuple[str, list[str]]] = [
    ("gnaexp.emulator.commands", ["add_emulate_parser", "add_sweep_parser"]),
    ("gnaexp.batch", ["add_batch_parser"]),
    ("gnaexp.quantization", ["add_quantize_parser"]),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from gnaexp.backends import BackendUnavailable

    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as exc:
        print(f"gnaexp {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackendUnavailable as exc:
        print(f"gnaexp {args.command}: backend unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"gnaexp {args.command}: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"gnaexp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
