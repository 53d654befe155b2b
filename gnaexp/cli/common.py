"""What every command shares: exit codes, the usage error, and reading experiment settings from words."""

from __future__ import annotations

import signal
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXPERIMENT_HELP = "conv | concat | concat_conv | model (with --set model=PATH.xml)"  # what export, diagnose take
RUN_EXPERIMENT_HELP = EXPERIMENT_HELP + " | silero_vad (with --set audio=FILE.wav or a folder of WAV files)"
LAYOUT_HELP = ("correct: what a correct plugin computes; legacy-concat: the documented path of 2022.3/2023.0 "
               "plugins (a conv after a Concat of network inputs reads the NCW buffer as NWC)")


class UsageError(Exception):
    """Bad arguments or input: exit code 2 with the message."""


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> Any:
    """Ctrl-C must stop a command even when started from a shell that ignores SIGINT for background jobs, and
    SIGTERM (a scheduler, `kill`) stops it the same clean way. Returns the SIGTERM handler to put back."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return signal.signal(signal.SIGTERM, _terminate)


def import_cluster() -> Any:
    """``gnaexp.batch.cluster``, or a usage error saying how to install dask where it is absent (it is optional)."""
    try:
        from gnaexp.batch import cluster
    except ImportError as exc:
        raise UsageError(f"--dask needs dask.distributed, which is not installed here ({exc.name}): pip install "
                         "'gnaexp[cluster]' (requirements.txt installs it too)") from None
    return cluster


def make_config(experiment: str, sets: Sequence[str], backends: str | None = None, porting: bool = False) -> Any:
    """ExperimentConfig from CLI words; a bad experiment, key or value → UsageError naming it. ``porting``: the
    --porting flag, the same as --set porting=true."""
    from gnaexp.experiment import ExperimentConfig

    try:
        return ExperimentConfig.from_strings(experiment, list(sets) + (["porting=true"] if porting else []), backends)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc.args[0]) if exc.args else str(exc)) from None


def add_set_option(p: Any) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="experiment parameter, e.g. scale_factor=2048, or one per input: scale_factor=chunk=2048,"
                        "state=1024 (repeatable)")
    p.add_argument("--state", action="append", dest="set", type=lambda pair: f"state={pair}", metavar="IN=OUT",
                   help="stream a stateful model: its state input IN is fed each step from output OUT (repeatable, "
                        "or h=hn,c=cn); --input/input_file then holds the frames as (steps, *shape). The same as "
                        "--set state=IN=OUT")


PORTING_HELP = ("emulate as a porting team runs the model: a reflect Pad at the input / a ReduceMean at the output on "
                "the host, padded or odd-filter convolutions rewritten exactly, a layer norm read as the IR converter "
                "fuses it (the plugin refuses them as exported); the same as --set porting=true")


def add_porting_option(p: Any) -> None:
    p.add_argument("--porting", action="store_true", help=PORTING_HELP)
