"""Wall time of the default batch matrix several ways, in one go on the same machine.

1. ``batch``: ``gnaexp batch`` (long-lived workers, papermill and nbconvert Python APIs, --jobs = cores)
2. ``dask-local``: ``gnaexp batch --dask local:CORES`` (a dask LocalCluster with a worker per core; runs
   travel back to the client as files), with its ratio to ``batch``
3. ``serial``: a naive loop, ``papermill`` CLI then ``jupyter nbconvert --to html`` CLI per run
4. ``parallel2``: the same loop with 2 runs at a time

Every method starts from an empty output folder and an empty gnaexp cache, so none profits from another's
IRs or cached references. Machines are noisy: compare the ratios of one invocation, not absolute times.
``--synthetic N`` times a matrix of N small runs instead (the conv notebook at N scale factors: one torch
reference, N kernels), e.g. 1000 to see how the pool, the cluster and the index page scale. After each gnaexp
method the index page's size and the time to read and parse it are printed.

    .venv/bin/python bench/batch.py [MATRIX] [--runs N] [--synthetic N] [--methods batch,dask-local,serial,parallel2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "GNAEXP_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}


def _quiet(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")


def bench_batch(matrix: Path, work: Path, jobs: int | None, label: str = "batch", dask: str | None = None) -> float:
    out, cache = work / label, work / f"{label}-cache"
    cmd = [str(BIN / "gnaexp"), "batch", str(matrix), "--out", str(out), "--force"]
    if jobs and not dask:
        cmd += ["--jobs", str(jobs)]
    if dask:
        cmd += ["--dask", dask]
    start = time.perf_counter()
    _quiet(cmd, _env(cache))
    return time.perf_counter() - start


def index_figures(out: Path) -> tuple[int, float, int]:
    """(bytes, seconds to read and parse, rows) of a batch's index page."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        rows = 0

        def handle_starttag(self, tag: str, attrs: list) -> None:
            self.rows += tag == "tr"

    start = time.perf_counter()
    text = (out / "index.html").read_text(encoding="utf-8")
    parser = Rows()
    parser.feed(text)
    parser.close()
    return len(text.encode("utf-8")), time.perf_counter() - start, parser.rows - 1  # less the header row


def synthetic_matrix(work: Path, n: int) -> Path:
    """N small runs: the conv notebook at N input scale factors (one cached torch reference for all)."""
    import yaml

    matrix = work / "synthetic.yaml"
    matrix.write_text(yaml.safe_dump({"runs": [{"notebook": str(ROOT / "notebooks" / "conv"),
                                                "grid": {"scale_factor": [float(1 + i) for i in range(n)]}}]}))
    return matrix


def _naive_one(run: object, out: Path, env: dict[str, str]) -> None:
    nb = out / f"{run.name}.ipynb"  # type: ignore[attr-defined]
    _quiet([str(BIN / "papermill"), str(run.notebook), str(nb), "-k", "python3", "--cwd", str(out),  # type: ignore[attr-defined]
            "-y", json.dumps(run.parameters), "--no-progress-bar"], env)  # type: ignore[attr-defined]
    _quiet([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(nb)], env)


def bench_naive(runs: list, work: Path, label: str, parallel: int) -> float:
    out, cache = work / label, work / f"{label}-cache"
    out.mkdir(parents=True)
    env = _env(cache)
    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda r: _naive_one(r, out, env), runs))
    return time.perf_counter() - start


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from gnaexp.batch import matrix as matrix_mod

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("matrix", nargs="?", default=str(ROOT / "notebooks" / matrix_mod.MATRIX_NAME))
    p.add_argument("--runs", type=int, help="only the first N runs of the matrix")
    p.add_argument("--synthetic", type=int, metavar="N", help="a matrix of N small conv runs instead of MATRIX")
    p.add_argument("--jobs", type=int, help="gnaexp batch --jobs (default: cores)")
    p.add_argument("--methods", default="batch,dask-local,serial,parallel2")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gnaexp-bench-"))
    matrix = synthetic_matrix(work, args.synthetic) if args.synthetic else Path(args.matrix)
    runs = matrix_mod.load_matrix(matrix)[: args.runs]
    if args.runs:  # a matrix with just those runs, beside the notebooks so that names resolve the same way
        import yaml

        matrix = work / "matrix.yaml"
        matrix.write_text(yaml.safe_dump({"runs": [{"notebook": str(r.notebook.with_suffix("")), "name": r.name,
                                                    "parameters": {k: v for k, v in r.parameters.items()
                                                                   if k != "record_dir"}} for r in runs]}))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(f"{len(runs)} runs, {os.cpu_count()} cores, work folder {work}", flush=True)
    times: dict[str, float] = {}
    try:
        for m in methods:
            if m == "batch":
                times[m] = bench_batch(matrix, work, args.jobs)
            elif m == "dask-local":
                times[m] = bench_batch(matrix, work, None, m, f"local:{args.jobs or os.cpu_count() or 1}")
            elif m == "serial":
                times[m] = bench_naive(runs, work, "serial", 1)
            elif m == "parallel2":
                times[m] = bench_naive(runs, work, "parallel2", 2)
            else:
                raise SystemExit(f"unknown method {m!r}; use batch, dask-local, serial, parallel2")
            print(f"{m:<10} {times[m]:7.1f} s  ({times[m] / len(runs):.2f} s/run)", flush=True)
            if m in ("batch", "dask-local"):
                size, parse_s, rows = index_figures(work / m)
                print(f"{'':<10} index.html: {size / 1024:.1f} kB, {rows} rows, read and parsed in "
                      f"{1000 * parse_s:.1f} ms", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if "batch" in times and "dask-local" in times:
        print(f"dask-local takes {times['dask-local'] / times['batch']:.2f}x the time of the local pool (target <= 1.2x)")
    if "batch" in times:
        for m in ("serial", "parallel2"):
            if m in times:
                print(f"gnaexp batch is {times[m] / times['batch']:.2f}x faster than the {m} CLI loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
