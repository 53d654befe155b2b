"""The emulator's commands: ``gnaexp emulate`` (an IR on your inputs) and ``gnaexp sweep`` (error vs scale factor)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gnaexp.cli.common import add_porting_option, add_set_option, EXIT_OK, LAYOUT_HELP, make_config, UsageError
from gnaexp.core import gna_settings
from gnaexp.core.gna_settings import DEFAULT_PLUGIN_RELEASE, GnaSettings, LAYOUTS, PLUGIN_RELEASES, PRECISIONS


def parse_scale_factors(text: str) -> float | dict[str, float]:
    """"2048" → 2048.0; "a=2048,b=512" → per-input mapping (``gna_settings.parse_scale_factors``, as --set reads)."""
    try:
        return gna_settings.parse_scale_factors(text, "--scale-factor")
    except ValueError as exc:
        raise UsageError(f"{exc}; --scale-factor takes a number or name=number,...") from None


def cmd_emulate(args: argparse.Namespace) -> int:
    from gnaexp.core.files import check_writable_file, dumps, npy_bytes, npz_bytes, staged_files
    from gnaexp.core.inputs import read_file
    from gnaexp.emulator import emulate, load_program
    from gnaexp.emulator.api import prepare_inputs

    settings = GnaSettings(parse_scale_factors(args.scale_factor), args.precision, args.layout, args.porting,
                           args.plugin_release)  # checked before any work
    # Every destination is checked before any work, and all are written together or not at all.
    out = check_writable_file(args.out, (".npy", ".npz"), "--out")
    plan = check_writable_file(args.plan, (".json",), "--plan") if args.plan else None
    ints = check_writable_file(args.ints, (".npz",), "--ints") if args.ints else None
    if len({p.resolve() for p in (out, plan, ints) if p}) < len([p for p in (out, plan, ints) if p]):
        raise UsageError("--out, --plan and --ints must be different files")
    raw = read_file(args.inputs)
    # dynamic dims: from the inputs
    prog = load_program(args.model, raw if isinstance(raw, dict) else {"": raw}, args.porting)
    if not isinstance(raw, dict):
        if len(prog.params) != 1:
            raise UsageError(f"the model has {len(prog.params)} inputs: pass an .npz with one array per input "
                             f"named {[p[1][0] for p in prog.params]}")
        raw = {prog.params[0][1][0]: raw}
    try:
        prepare_inputs(prog, raw)  # an input that does not fit the model is the input file's problem: name it
    except ValueError as exc:
        raise UsageError(f"{Path(args.inputs).name}: {exc}") from None
    em = emulate(prog, raw, keep_ints=bool(ints), settings=settings)
    if out.suffix == ".npy" and len(em.outputs) != 1:
        raise UsageError(f"the model has {len(em.outputs)} outputs: give --out a .npz path")
    with staged_files() as stage:
        stage(out, npz_bytes(em.outputs) if out.suffix == ".npz" else npy_bytes(next(iter(em.outputs.values()))))
        if plan:
            stage(plan, dumps(em.to_json()).encode("utf-8"))
        if ints:
            stage(ints, npz_bytes({k.replace("/", "|"): v for k, v in em.ints.items()}))
    from gnaexp.emulator.plan_row import Lane
    from gnaexp.emulator.porting import emulated_label

    host = any(r.lane is Lane.HOST for r in em.plan)  # host steps compute in float, outside the GNA part
    print(f"{emulated_label(host)} ({em.rules_version}, as GNA plugin {em.plugin_release}, layout {args.layout}); "
          "input sf used: "
          f"{em.input_scale_factors}")
    for note in em.notes:
        print(f"note: {note}")
    print(f"wrote {out}")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    from gnaexp import experiment
    from gnaexp.core.files import dumps

    try:
        sfs = [float(s) for s in args.scale_factors.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--scale-factors takes comma-separated numbers, got {args.scale_factors!r}") from None
    if not sfs:
        raise UsageError("--scale-factors is empty")
    res = experiment.sweep(make_config(args.experiment, args.set, porting=args.porting), sfs, args.layout)
    if args.json:
        print(dumps(res.to_json()))  # NaN/inf as strings: valid JSON
    else:
        print(f"{args.experiment}: emulated, layout {args.layout}")
        print(res.table())
        for note in res.notes:
            print(f"note: {note}")
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("emulate", help="run an IR through the GNA integer emulator (results are emulated)")
    p.add_argument("model", help="OpenVINO IR .xml")
    p.add_argument("inputs", help=".npy (one input; optional leading batch axis) or .npz (name → array)")
    p.add_argument("--scale-factor", default="1.0", help="input scale factor, or name=sf,... (default 1.0, "
                   "the plugin's default)")
    p.add_argument("--precision", choices=PRECISIONS, default="i16", help="weight precision (default i16)")
    p.add_argument("--layout", choices=LAYOUTS, default="correct", help=LAYOUT_HELP)
    p.add_argument("--plugin-release", default=DEFAULT_PLUGIN_RELEASE,
                   help=f"the GNA plugin release to compute as: {', '.join(PLUGIN_RELEASES)} (default "
                   f"{DEFAULT_PLUGIN_RELEASE}; they round PWL tables and int8 weights differently)")
    add_porting_option(p)
    p.add_argument("--out", required=True, help="outputs: .npy (one output) or .npz")
    p.add_argument("--plan", help="write the quantization plan as JSON")
    p.add_argument("--ints", help="write every layer's integer output as .npz")
    p.set_defaults(func=cmd_emulate)

    p = sub.add_parser("sweep", help="error vs input scale factor through the emulator")
    p.add_argument("experiment", help="conv | concat | concat_conv | model")
    p.add_argument("--scale-factors", default="1,2,4,8,16,32,64,128,256,512,1024,2048,4096,8192,16384,32768",
                   help="comma-separated input scale factors to try (default: powers of 2 from 1 to 32768)")
    p.add_argument("--layout", choices=LAYOUTS, default="correct", help=LAYOUT_HELP)
    add_set_option(p)
    add_porting_option(p)
    p.add_argument("--json", action="store_true", help="print the sweep as JSON")
    p.set_defaults(func=cmd_sweep)
