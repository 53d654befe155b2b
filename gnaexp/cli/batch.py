"""``gnaexp batch``: a matrix of notebooks into HTML reports and an index (see ``gnaexp.batch.runner``)."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

from gnaexp.batch.matrix import default_matrix, load_matrix, MATRIX_NAME, MatrixError
from gnaexp.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, import_cluster, stop_on_signals, UsageError


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
    p.add_argument("--dask", metavar="ADDRESS|local:N",
                   help="run on a dask.distributed cluster: a scheduler's address (tcp://HOST:PORT), or local:N for "
                        "N worker processes started here for the batch")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from gnaexp.batch.runner import run_batch  # the notebook machinery: loaded by this command only

    matrix = Path(args.matrix) if args.matrix else default_matrix()
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.jobs is not None:
        from gnaexp.core.environment import local_capacity

        most, why = local_capacity()
        if args.jobs > most:
            raise UsageError(f"--jobs {args.jobs}: this machine holds at most {most} notebook run(s) at once ({why}); "
                             f"give --jobs {most} or less, or --dask ADDRESS to use more machines")
    if not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.dask is not None:
        if args.jobs is not None:
            raise UsageError("--jobs sizes the local pool; with --dask the cluster's workers run the notebooks: drop "
                             "--jobs (--dask local:N starts N workers)")
        cluster = import_cluster()  # dask is imported only when asked for

        try:
            cluster.parse(args.dask)
        except cluster.ClusterError as exc:
            raise UsageError(str(exc)) from None
    try:
        runs = load_matrix(matrix)
    except MatrixError as exc:
        raise UsageError(f"bad matrix: {exc}") from None
    out = Path(args.out)
    start = time.perf_counter()
    previous_term = stop_on_signals()
    try:
        if args.dask is not None:
            outcomes = cluster.run_batch_on_cluster(runs, out, args.dask, args.force, args.show_code, args.timeout)
        else:
            outcomes = run_batch(runs, out, args.jobs, args.force, args.show_code, args.timeout)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    failed = [o for o in outcomes if o.status == "failed"]
    done = sum(o.status == "ok" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    print(f"{done} ran, {skipped} unchanged, {len(failed)} failed in {time.perf_counter() - start:.1f} s; "
          f"index: {out / 'index.html'}")
    for o in failed:
        print(f"  failed: {o.name}: {o.error} (see {out / (o.name + '.failed.html')})")
    return EXIT_FAILED if failed else EXIT_OK
