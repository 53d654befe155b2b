"""Commands on one experiment: ``devices``, ``run``, ``compare``, ``export``, ``diagnose`` and ``bundle``."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnaexp.cli.common import (EXIT_FAILED, EXIT_OK, EXPERIMENT_HELP, RUN_EXPERIMENT_HELP, UsageError,
                               add_porting_option, add_set_option, import_cluster, make_config, stop_on_signals)
from gnaexp.core.errors import BadInput
from gnaexp.core.gna_settings import format_scale_factors

# Every command imports what it needs when it runs: building the parser (and ``gnaexp --help``) loads no NumPy.
if TYPE_CHECKING:
    from gnaexp.diagnose.results import WhatRan
    from gnaexp.vad.options import VadOptions
    from gnaexp.vad.record import VadRecord

# --- devices -------------------------------------------------------------------------------------------

def cmd_devices(args: argparse.Namespace) -> int:
    import openvino as ov

    from gnaexp.backends.openvino_runner import GNA_MISSING
    from gnaexp.core.environment import capture

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

def _vad_options(sets: list[str], audio: str | None = None) -> tuple[list[Path], VadOptions]:
    """The WAV files and device options of a silero_vad command (``--set`` words, or ``--audio``)."""
    from gnaexp.experiment import parse_sets
    from gnaexp.vad.options import DEVICE_SETTINGS, VadOptions
    from gnaexp.vad.run import wav_files

    settings = parse_sets(sets)
    if audio is not None:
        if "audio" in settings:
            raise BadInput("give the audio once: --audio DIR, or --set audio=DIR")
        settings["audio"] = audio
    unknown = sorted(set(settings) - {"audio", *DEVICE_SETTINGS})
    if unknown or not settings.get("audio"):
        raise BadInput("silero_vad takes --set audio=FILE.wav (or a folder of .wav files), and for gna-emu and "
                         "openvino:GNA scale_factor=N|recommended, state_scale_factor=N, precision=, execution_mode="
                         + (f"; unknown setting(s): {', '.join(unknown)}" if unknown else ""))
    options = VadOptions.from_json({k: settings[k] for k in DEVICE_SETTINGS if k in settings})
    return wav_files(settings["audio"]), options


def _run_vad(args: argparse.Namespace) -> int:
    from gnaexp.backends import parse_backend_list
    from gnaexp.core.files import dumps
    from gnaexp.vad import run as vad_run

    wavs, options = _vad_options(args.set)
    backends = parse_backend_list(args.backends) if args.backends else list(vad_run.DEFAULT_BACKENDS)
    out = Path(args.out) if args.out else Path("runs") / "silero_vad"
    record = vad_run.run(wavs, backends, out, options=options, progress=None if args.json else
                         lambda s: print(f"streaming {s} ...", file=sys.stderr))
    print(dumps(record.to_json()) if args.json else vad_run.table(record) + f"\n\nrecord: {out / 'record.json'}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from gnaexp import experiment
    from gnaexp.core.files import dumps
    from gnaexp.present import summary

    if args.experiment == "silero_vad":
        return _run_vad(args)
    config = make_config(args.experiment, args.set, args.backends, porting=args.porting)
    out = Path(args.out) if args.out else Path("runs") / config.experiment
    record = experiment.run(config, out_dir=out,
                            progress=None if args.json else lambda s: print(f"running {s} ...", file=sys.stderr))
    if args.json:
        print(dumps(record.to_json()))
    else:
        print(summary.table(record))
        print(f"\nrecord: {out / 'record.json'}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    """A dataset: every WAV of a folder through the backends, per-file and aggregate metrics in one record."""
    from gnaexp.backends import parse_backend_list
    from gnaexp.core.files import dumps
    from gnaexp.vad import run as vad_run

    if args.experiment != "silero_vad":
        raise BadInput(f"evaluate takes silero_vad (a dataset of audio files), got {args.experiment!r}; "
                         f"for one input of another experiment use gnaexp run {args.experiment}")
    wavs, options = _vad_options(args.set, args.audio)
    backends = parse_backend_list(args.backends) if args.backends else list(vad_run.DEFAULT_BACKENDS)
    vad_run.check_backends(backends)
    out = Path(args.out) if args.out else Path("runs") / "silero_vad-evaluate"
    if args.dask is not None:
        record = _evaluate_on_cluster(args, wavs, backends, options, out)
        if record is None:
            return EXIT_FAILED
    else:
        record = _evaluate_here(args, wavs, backends, options, out)
    print(dumps(record.to_json()) if args.json else vad_run.table(record) + "\n\n" + vad_run.aggregate_table(record)
          + f"\n\nrecord: {out / 'record.json'}")
    return EXIT_OK


def _evaluate_here(args: argparse.Namespace, wavs: list[Path], backends: list[str], options: VadOptions,
                   out: Path) -> VadRecord:
    from tqdm import tqdm

    from gnaexp.vad import run as vad_run

    with tqdm(total=len(backends), unit="backend", file=sys.stderr, disable=args.json, dynamic_ncols=True) as bar:
        def progress(message: str) -> None:
            bar.set_description(message)
            if " on " in message and (message.startswith(wavs[-1].name) or " file(s) together " in message):
                bar.update(1)
        return vad_run.run(wavs, backends, out, options=options, progress=progress)


def _evaluate_on_cluster(args: argparse.Namespace, wavs: list[Path], backends: list[str], options: VadOptions,
                         out: Path) -> VadRecord | None:
    """The files split across a dask cluster's workers; None when workers died on them (the message said so)."""
    from tqdm import tqdm

    cluster = import_cluster()
    cluster.parse(args.dask)  # a ClusterError is a ValueError: exit 2 with its message
    previous_term = stop_on_signals()
    try:
        with tqdm(total=len(wavs), unit="file", file=sys.stderr, disable=args.json, dynamic_ncols=True) as bar:
            return cluster.evaluate_on_cluster(wavs, backends, out, args.dask, options, progress=bar.update)
    except cluster.WorkerDied as exc:
        print(f"gnaexp evaluate: failed: {exc}", file=sys.stderr)
        return None
    finally:
        signal.signal(signal.SIGTERM, previous_term)


# --- compare -------------------------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from gnaexp.core import metrics
    from gnaexp.core.files import dumps
    from gnaexp.core.inputs import read_one

    ref, other = read_one(args.ref), read_one(args.other)
    for path, arr in ((args.ref, ref), (args.other, other)):
        if arr.size == 0:
            raise UsageError(f"{path} holds an empty array: there is nothing to compare")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise UsageError(f"{path} holds {arr.dtype} values; compare takes numbers (save outputs as float32)")
    if args.output_scale is not None and not (args.output_scale > 0 and math.isfinite(args.output_scale)):
        raise UsageError(f"--output-scale must be a positive, finite scale factor, got {args.output_scale:g}")
    try:
        comp = metrics.compare(ref, other, output_scale=args.output_scale)
    except ValueError as exc:  # e.g. the shapes differ: name both files
        raise UsageError(f"{Path(args.ref).name} vs {Path(args.other).name}: {exc}") from None
    data = comp.to_json()
    if args.json:
        print(dumps(data))
        return EXIT_OK
    for key, value in data.items():
        print(f"{key:<20} {value}")
    return EXIT_OK


# --- export --------------------------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    from gnaexp.support import export

    if args.experiment == "silero_vad":
        wavs, options = _vad_options(args.set)
        folder = export.export_vad(wavs, options, Path(args.out))
    else:
        folder = export.export(make_config(args.experiment, args.set, "torch"), Path(args.out))
    late = export.unreadable_ops(folder / "model.xml")
    for release, ops in late.items():
        print(f"note: OpenVINO {release} cannot read {', '.join(ops)} in model.xml: measure with a later release "
              "or export the net without them")
    print(f"exported to {folder}:")
    for p in sorted(folder.iterdir()):
        if not p.name.startswith(".gnaexp"):  # the folder's own bookkeeping (manifest, lock)
            print(f"  {p.name}")
    return EXIT_OK


# --- diagnose ------------------------------------------------------------------------------------------

PACK_SETTINGS = ("scale_factor", "precision", "execution_mode")  # device settings an export pack carries


def _diagnose_target(args: argparse.Namespace) -> tuple[Any, str | None]:
    """(config, observed file) from an experiment, --model/--input, or --export-dir."""
    chosen = [w for w, v in (("an experiment", args.experiment), ("--model", args.model),
                             ("--export-dir", args.export_dir)) if v]
    if len(chosen) != 1:
        raise UsageError("diagnose takes one of: an experiment name, --model MODEL.xml [--input IN.npz], or "
                         f"--export-dir PACK (got {', '.join(chosen) or 'none'})")
    if args.input and not args.model:
        raise UsageError("--input goes with --model (an export pack brings its own inputs.npz)")
    observed = args.observed
    if args.experiment:
        return make_config(args.experiment, args.set, porting=args.porting), observed
    if args.model:
        sets = [f"model={args.model}"] + ([f"input_file={args.input}"] if args.input else [])
        return make_config("model", sets + list(args.set), porting=args.porting), observed
    pack = Path(args.export_dir)
    for name in ("model.xml", "inputs.npz", "config.json"):
        if not (pack / name).is_file():
            raise UsageError(f"{pack} is not an export pack: {name} is missing (make one with gnaexp export)")
    try:
        saved = json.loads((pack / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{pack / 'config.json'} is not readable JSON ({exc}); export the pack again") from None
    sets = [f"model={pack / 'model.xml'}", f"input_file={pack / 'inputs.npz'}"]
    sets += [f"{k}={format_scale_factors(saved[k]) if isinstance(saved[k], dict) else saved[k]}"
             for k in PACK_SETTINGS if k in saved]
    if observed is None:
        if not (pack / "outputs.npz").is_file():
            raise UsageError(f"{pack} has no outputs.npz: run measure_on_device.py there on the GNA machine and copy "
                             "outputs.npz back into the pack, or pass --observed FILE")
        observed = str(pack / "outputs.npz")
    return make_config("model", sets + list(args.set), porting=args.porting), observed


def observed_metadata(path: str) -> WhatRan | None:
    """What ran to produce an observed .npz (its measure_on_device.py metadata), or None for a bare array."""
    from gnaexp.backends.imported import read_outputs
    from gnaexp.diagnose.measurement import describe

    if not str(path).endswith(".npz"):
        return None
    _, meta = read_outputs(path, "observed output")
    return describe(meta) if meta else None


def cmd_diagnose(args: argparse.Namespace) -> int:
    from gnaexp.backends.imported import read_observed
    from gnaexp.core.files import dumps
    from gnaexp.diagnose.ladder import format_ladder, ladder

    config, observed_file = _diagnose_target(args)
    observed, measured_on, measured_as = None, None, None
    if observed_file:
        observed, fingerprint = read_observed(observed_file)
        measured_on = (Path(observed_file).name, fingerprint)
        measured_as = observed_metadata(observed_file)
    result = ladder(config, observed, measured_on=measured_on, measured_as=measured_as)
    print(dumps(result.to_json()) if args.json else format_ladder(result))
    return EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    from gnaexp.core.files import check_writable_file
    from gnaexp.support import bundle, bundle_diagnosis

    out = check_writable_file(args.out, (".zip",), "--out")
    plan = bundle.plan(args.folder)  # the record and every file that goes in, checked before any work
    diagnosis = None
    if plan.vad:
        print("no diagnosis ladder for silero_vad: its record holds the per-file verdicts", file=sys.stderr)
    elif plan.layers_only:
        print("no diagnosis ladder for a per-layer comparison alone: its table is the account", file=sys.stderr)
    elif not args.no_diagnosis:
        print("diagnosing ...", file=sys.stderr)
        diagnosis = bundle_diagnosis.diagnose(plan, args.porting)
    info = bundle.make_bundle(plan, out, diagnosis)
    print(f"wrote {out} ({len(info['files'])} files{'' if info['report'] else '; no HTML report found'})")
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("devices", help="OpenVINO version, devices, and whether GNA is usable")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("run", help="run one experiment through its backends and print metrics vs the reference")
    p.add_argument("experiment", help=RUN_EXPERIMENT_HELP)
    add_set_option(p)
    add_porting_option(p)
    p.add_argument("--backends", help="comma list, e.g. torch,openvino:CPU,gna-emu (default for model=FILE: "
                                      "openvino:CPU,gna-emu)")
    p.add_argument("--out", help="folder for record.json and arrays (default runs/EXPERIMENT)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("evaluate", help="a dataset: silero_vad over every .wav of a folder, per-file and aggregate "
                                        "metrics in one record")
    p.add_argument("experiment", help="silero_vad")
    p.add_argument("--audio", required=True, help="a folder of 16 kHz mono .wav files (or one file)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="scale_factor=N|recommended, state_scale_factor=N, precision=, execution_mode=")
    p.add_argument("--backends", help="comma list, default torch,openvino:CPU,gna-emu")
    p.add_argument("--out", help="folder for record.json and tracks.npz (default runs/silero_vad-evaluate)")
    p.add_argument("--dask", metavar="ADDRESS|local:N",
                   help="split the files across a dask.distributed cluster: a scheduler's address (tcp://HOST:PORT), "
                        "or local:N for N worker processes started here")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="all metrics between two arrays (.npy)")
    p.add_argument("ref", help="reference array (.npy)")
    p.add_argument("other", help="array to compare (.npy)")
    p.add_argument("--output-scale", type=float, help="output scale factor, to report error in LSBs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="IR, inputs and torch reference output, to measure on a GNA machine (a "
                                      "streaming net: its frames, state pairs and a script that streams them)")
    p.add_argument("experiment", help=EXPERIMENT_HELP + " | silero_vad (with --set audio=FILE.wav)")
    add_set_option(p)
    p.add_argument("--out", required=True, help="folder to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("diagnose", help="the ladder: FP32 check, quantization floor, sf sensitivity, layout paths, "
                                        "per-layer error, and which mistake explains an observed device output")
    p.add_argument("experiment", nargs="?", help=EXPERIMENT_HELP + " (or use --model / --export-dir)")
    p.add_argument("--model", help="your own model (.xml IR or .onnx) instead of an experiment")
    p.add_argument("--input", help="inputs for --model (.npy for one input, .npz keyed by input name)")
    p.add_argument("--export-dir", help="an export pack (gnaexp export) with the device's outputs.npz in it")
    add_set_option(p)
    add_porting_option(p)
    p.add_argument("--observed", help="device output for the same inputs (.npy, or an .npz from measure_on_device.py)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("bundle", help="one zip for vendor support: report, IR, inputs, outputs, record, diagnosis "
                                      "and reproduce.py")
    p.add_argument("folder", help="a run folder (gnaexp run --out) or a batch run's NAME.record folder")
    p.add_argument("--out", required=True, help="the .zip to write")
    p.add_argument("--no-diagnosis", action="store_true", help="leave out the diagnosis ladder (faster)")
    add_porting_option(p)
    p.set_defaults(func=cmd_bundle)

