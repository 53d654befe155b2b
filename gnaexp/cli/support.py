"""``gnaexp support MODEL``: every op of a model with what the GNA plugin and the emulator do with it."""

from __future__ import annotations

from typing import Any

from gnaexp.cli.common import EXIT_OK, UsageError


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("support", help="every op of a model: native, rewritten (how), host or refused (why, "
                                       "with the GNA plugin source)")
    p.add_argument("model", help="any model file OpenVINO reads (.xml IR, .onnx, .tflite, .pdmodel, ...)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2,...",
                   help="the shape of a dynamic input (repeatable); NAME may be left out for a single input")
    p.add_argument("--input", help="your inputs (.npy, or .npz with one array per input): their shapes fix the "
                                   "dynamic dimensions")
    p.add_argument("--no-porting", action="store_true",
                   help="report as exported: no host pre/post-processing, no porting rewrites")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_support)


def cmd_support(args: Any) -> int:
    from gnaexp.core.files import dumps
    from gnaexp.core.inputs import read_file
    from gnaexp.emulator.support import model_support, parse_shape

    shapes: dict[str, tuple[int, ...]] = {}
    for text in args.shape:
        name, shape = parse_shape(text)
        if name in shapes:
            raise UsageError(f"--shape given twice for {name or 'the input'!r}: give each input's shape once")
        shapes[name] = shape
    arrays = None
    if args.input:
        raw = read_file(args.input)
        arrays = raw if isinstance(raw, dict) else {"": raw}
    report = model_support(args.model, shapes, porting=not args.no_porting, arrays=arrays)
    print(dumps(report.to_json()) if args.json else report.text())
    return EXIT_OK
