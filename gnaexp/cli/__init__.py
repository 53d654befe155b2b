"""The ``gnaexp`` command. Exit codes: 0 ok, 1 a run failed, 2 bad usage or input, 3 backend unavailable.

One module per group of commands; each adds its subparsers. The library never imports from here.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from gnaexp.core.errors import BadInput
from gnaexp.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, UsageError

__all__ = ["main", "build_parser", "UsageError", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_UNAVAILABLE"]


def build_parser() -> argparse.ArgumentParser:
    from gnaexp import __version__
    from gnaexp.cli import batch, emulator, layers, quantize, run_commands, support

    parser = argparse.ArgumentParser(
        prog="gnaexp", description="Is the GNA output right, and if not, is it quantization or a defect?")
    parser.add_argument("--version", action="version", version=f"gnaexp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (run_commands, emulator, quantize, layers, batch, support):
        module.add_parsers(sub)
    return parser


# What to do about an OS error, by errno: the message names the path and this fix.
_OS_FIXES = {
    errno.EACCES: "check its permissions, or choose another location",
    errno.EPERM: "check its permissions, or choose another location",
    errno.EROFS: "the filesystem is read-only: choose a writable location",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.EISDIR: "it is a folder: give a file",
    errno.ENOSPC: "the disk is full: free some space or choose another location",
    errno.ENOENT: "it does not exist: check the path",
    errno.EEXIST: "something is in the way: remove it or choose another location",
    errno.EXDEV: "it lies on another filesystem than its staging folder: choose a location on one filesystem",
}


def _os_error_message(exc: OSError) -> str:
    path = exc.filename if exc.filename is not None else ""
    fix = _OS_FIXES.get(exc.errno or 0, "check the path")
    return f"{exc.strerror or exc}: {path}; {fix}" if path else f"{exc.strerror or exc}; {fix}"


def _save_traceback(command: str) -> str:
    """Write the current traceback to a file (gnaexp's cache folder, else the temp folder); return its path."""
    import tempfile
    import time
    import traceback

    from gnaexp.cache import cache_dir

    text = f"gnaexp {command}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n" + traceback.format_exc()
    try:
        folders = [cache_dir() / "errors"]
    except (OSError, ValueError):  # no usable cache folder: the temp folder still takes it
        folders = []
    for folder in (*folders, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, path = tempfile.mkstemp(prefix="gnaexp-error-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return path
        except OSError:
            continue
    return "(could not be saved)"


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # model readers probe TensorFlow; its log is noise here
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from gnaexp.backends import BackendUnavailable

    func: Callable[[argparse.Namespace], int] = args.func
    name = f"gnaexp {args.command}"
    try:
        return func(args)
    except UsageError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackendUnavailable as exc:
        print(f"{name}: backend unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except BadInput as exc:  # gnaexp's own: what the user gave (a ValueError or KeyError from elsewhere is a defect)
        print(f"{name}: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as exc:
        message = exc.args[0] if len(exc.args) == 1 else _os_error_message(exc)
        print(f"{name}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{name}: error: {_os_error_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 — never a raw traceback for a user: one line and where the rest is
        path = _save_traceback(args.command)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{name}: internal error ({type(exc).__name__}{': ' + first if first else ''}); the traceback is "
              f"in {path} — please include it in a report", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
