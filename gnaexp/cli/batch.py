"""``gnaexp batch``: a matrix of notebooks into HTML reports and an index (see ``gnaexp.batch``)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from gnaexp.batch import run_batch
from gnaexp.matrix import MATRIX_NAME, MatrixError, default_matrix, load_matrix


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "batch", help="run a matrix of notebooks with papermill into HTML reports and reports/index.html")
    p.add_argument("matrix", nargs="?", help=f"YAML matrix file (default: notebooks/{MATRIX_NAME})")
    p.add_argument("--jobs", "-j", type=int, default=None, help="parallel runs (default: number of cores)")
    p.add_argument("--force", action="store_true", help="rerun runs that are unchanged and done")
    p.add_argument("--out", default="reports", help="output folder (default: reports/)")
    p.add_argument("--show-code", action="store_true", help="include code cells in the HTML reports")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds a run may take before it is stopped and marked 'timed out' (default 600)")
    p.set_defaults(func=cmd_batch)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_batch(args: argparse.Namespace) -> int:
    matrix = Path(args.matrix) if args.matrix else default_matrix()
    if args.jobs is not None and args.jobs < 1:
        print("gnaexp batch: error: --jobs must be at least 1", file=sys.stderr)
        return 2
    if not args.timeout > 0:
        print("gnaexp batch: error: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        runs = load_matrix(matrix)
    except MatrixError as exc:
        print(f"gnaexp batch: bad matrix: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    start = time.perf_counter()
    # Ctrl-C must stop the batch even when started from a shell that ignores SIGINT for background jobs, and
    # SIGTERM (a scheduler, `kill`) stops it the same clean way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        outcomes = run_batch(runs, out, args.jobs, args.force, args.show_code, args.timeout)
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    failed = [o for o in outcomes if o.status == "failed"]
    done = sum(o.status == "ok" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    print(f"{done} ran, {skipped} unchanged, {len(failed)} failed in {time.perf_counter() - start:.1f} s; "
          f"index: {out / 'index.html'}")
    for o in failed:
        print(f"  failed: {o.name}: {o.error} (see {out / (o.name + '.failed.html')})")
    return 1 if failed else 0
