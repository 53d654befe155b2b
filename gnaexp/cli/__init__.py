"""The ``gnaexp`` command. Exit codes: 0 ok, 1 a run failed, 2 bad usage or input, 3 backend unavailable.

One module per group of commands; each adds its subparsers. The library never imports from here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from gnaexp.cli.common import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, UsageError

__all__ = ["main", "build_parser", "UsageError", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_UNAVAILABLE"]


def build_parser() -> argparse.ArgumentParser:
    from gnaexp import __version__
    from gnaexp.cli import batch, emulator, experiments, quantize

    parser = argparse.ArgumentParser(
        prog="gnaexp", description="Is the GNA output right, and if not, is it quantization or a defect?")
    parser.add_argument("--version", action="version", version=f"gnaexp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (experiments, emulator, quantize, batch):
        module.add_parsers(sub)
    return parser


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
