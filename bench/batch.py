"""Wall time of the default batch matrix several ways, in one go on the same machine, against its targets.

1. ``batch``: ``gnaexp batch`` (long-lived workers, kernels forked from one pre-warmed zygote, --jobs = cores),
   twice over: *cold* (an empty gnaexp cache and output folder: the IRs, torch references, NNCF IRs and Silero
   tracks are all built) and then *warm*, in its own loop of ``--repeat`` batches: the same command again, as a
   user re-running the matrix runs it, into a new output folder each time, with the gnaexp cache the cold batch
   filled. Each warm batch is a whole command: its process start, its worker pool and its zygote are timed.
   The warm figure per run is the target (<= 0.6 s); it is printed first, with the median of the loop.
2. ``serial``: a naive loop, ``papermill`` CLI then ``jupyter nbconvert --to html`` CLI per run, with the same
   filled cache (so both sides do the same work); the warm batch must be >= 8x faster.
3. ``parallel2``: the same loop with 2 runs at a time.
4. ``dask-local``: ``gnaexp batch --dask local:CORES`` (cold, its own cache), with its ratio to the cold batch.

After the warm loop: where a warm run's time goes (means over the runs of the last warm batch, from its
executed notebooks and run states: kernel start, the experiment cell, figure cells, other cells, HTML export,
and the batch's start-up outside the runs), and the index page's size and the time to read and parse it.
Machines are noisy and often shared: compare the ratios of one invocation, not absolute times.
``--synthetic N`` times a matrix of N small runs instead (the conv notebook at N scale factors: one torch
reference, N kernels), e.g. 1000 to see how the pool, the cluster and the index page scale.

    python bench/batch.py [MATRIX] [--runs N] [--repeat 3] [--synthetic N] [--methods batch,serial,parallel2,dask-local]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_S_PER_RUN, TARGET_RATIO = 0.6, 8.0


def _env(cache: Path) -> dict[str, str]:
    # This checkout's gnaexp, in the commands and in every kernel they start.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "GNAEXP_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}


def _quiet(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")


def bench_batch(matrix: Path, out: Path, cache: Path, jobs: int | None, dask: str | None = None) -> float:
    cmd = [sys.executable, "-m", "gnaexp", "batch", str(matrix), "--out", str(out), "--force"]
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


def run_profile(out: Path, wall: float, jobs: int) -> list[tuple[str, float]]:
    """Where a batch's time went, per run on average: from each executed notebook's papermill timings (kernel
    start = papermill's start to the first cell's; cells by what they show) and each run's state (HTML export);
    the start-up is the wall time the runs' own durations, spread over the jobs, leave."""
    parts: dict[str, float] = dict.fromkeys(("kernel start", "experiment cell", "figure cells", "other cells",
                                             "kernel stop, notebook write", "HTML export"), 0.0)
    durations = 0.0
    states = sorted((out / ".runs").glob("*.json"))
    for state_file in states:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        nb = json.loads((out / f"{state['name']}.ipynb").read_text(encoding="utf-8"))
        meta = nb["metadata"]["papermill"]
        code = [c for c in nb["cells"] if c["cell_type"] == "code" and c["metadata"].get("papermill", {}).get("start_time")]
        when = [(datetime.fromisoformat(c["metadata"]["papermill"]["start_time"]),
                 datetime.fromisoformat(c["metadata"]["papermill"]["end_time"])) for c in code]
        parts["kernel start"] += (when[0][0] - datetime.fromisoformat(meta["start_time"])).total_seconds()
        parts["kernel stop, notebook write"] += (datetime.fromisoformat(meta["end_time"]) - when[-1][1]).total_seconds()
        tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])
                  or "injected-parameters" in c["metadata"].get("tags", [])]
        first_work = next((c for c in code if c not in tagged), None)
        for c in code:
            took = c["metadata"]["papermill"]["duration"] or 0.0
            figure = any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
            kind = "figure cells" if figure else "experiment cell" if c is first_work else "other cells"
            parts[kind] += took
        parts["HTML export"] += state.get("export_s", 0.0)
        durations += state.get("duration_s", 0.0)
    n = max(len(states), 1)
    rows = [(k, v / n) for k, v in parts.items()]
    rows.append(("batch start-up and index, outside the runs (wall)", max(wall - durations / jobs, 0.0) / n))
    return rows


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


def bench_naive(runs: list, out: Path, cache: Path, parallel: int) -> float:
    out.mkdir(parents=True)
    env = _env(cache)
    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda r: _naive_one(r, out, env), runs))
    return time.perf_counter() - start


def _line(label: str, seconds: float, runs: int, note: str = "") -> str:
    return f"{label:<11} {seconds:7.1f} s  ({seconds / runs:.2f} s/run){'  ' + note if note else ''}"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from gnaexp.batch import matrix as matrix_mod

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("matrix", nargs="?", default=str(ROOT / "notebooks" / matrix_mod.MATRIX_NAME))
    p.add_argument("--runs", type=int, help="only the first N runs of the matrix")
    p.add_argument("--synthetic", type=int, metavar="N", help="a matrix of N small conv runs instead of MATRIX")
    p.add_argument("--jobs", type=int, help="gnaexp batch --jobs (default: cores)")
    p.add_argument("--repeat", type=int, default=3, help="warm batches timed (default 3; the median is reported)")
    p.add_argument("--methods", default="batch,serial", help="of batch, serial, parallel2, dask-local")
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
    unknown = set(methods) - {"batch", "serial", "parallel2", "dask-local"}
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(sorted(unknown))}; use batch, serial, parallel2, dask-local")
    n, jobs = len(runs), args.jobs or os.cpu_count() or 1
    print(f"{n} runs, {os.cpu_count()} cores, work folder {work}", flush=True)
    cache = work / "cache"  # the batch's: filled by the cold batch, then shared by the warm ones and the loops
    times: dict[str, float] = {}
    try:
        if "batch" in methods:
            times["cold"] = bench_batch(matrix, work / "cold", cache, args.jobs)
            warm = [bench_batch(matrix, work / f"warm{i}", cache, args.jobs) for i in range(max(args.repeat, 1))]
            times["warm"] = statistics.median(warm)
            last = work / f"warm{len(warm) - 1}"
            print("warm = the same gnaexp batch again into a new output folder, the gnaexp cache filled; each a "
                  "whole command (process, workers, zygote)")
            print(_line("batch warm", times["warm"], n, f"median of {len(warm)}: "
                        f"{', '.join(f'{w:.1f}' for w in warm)} s (target <= {TARGET_S_PER_RUN} s/run)"))
            print(_line("batch cold", times["cold"], n, "empty gnaexp cache: IRs, references, NNCF IRs built"),
                  flush=True)
            print("a warm run, on average (s):")
            for label, seconds in run_profile(last, times["warm"], min(jobs, n)):
                print(f"  {label:<52} {seconds:6.3f}")
            size, parse_s, rows = index_figures(last)
            print(f"  index.html: {size / 1024:.1f} kB, {rows} rows, read and parsed in {1000 * parse_s:.1f} ms",
                  flush=True)
        for m, parallel in (("serial", 1), ("parallel2", 2)):
            if m in methods:
                times[m] = bench_naive(runs, work / m, cache if "batch" in methods else work / f"{m}-cache", parallel)
                print(_line(m, times[m], n, "papermill CLI + nbconvert CLI per run"
                            + (", the cache filled" if "batch" in methods else ", its own cache")), flush=True)
        if "dask-local" in methods:
            times["dask"] = bench_batch(matrix, work / "dask-local", work / "dask-cache", None, f"local:{jobs}")
            print(_line("dask-local", times["dask"], n, "cold, its own cache"), flush=True)
            size, parse_s, rows = index_figures(work / "dask-local")
            print(f"{'':<11} index.html: {size / 1024:.1f} kB, {rows} rows, read and parsed in {1000 * parse_s:.1f} ms")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for m in ("serial", "parallel2"):
        if "warm" in times and m in times:
            print(f"gnaexp batch (warm) is {times[m] / times['warm']:.2f}x faster than the {m} CLI loop"
                  + (f" (target >= {TARGET_RATIO:g}x)" if m == "serial" else "")
                  + f"; cold: {times[m] / times['cold']:.2f}x")
    if "cold" in times and "dask" in times:
        print(f"dask-local takes {times['dask'] / times['cold']:.2f}x the time of the local pool, both cold "
              "(target <= 1.2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
