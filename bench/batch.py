"""Wall time of the default batch matrix three ways, in one go on the same machine.

1. ``gnaexp batch`` (long-lived workers, papermill and nbconvert Python APIs, --jobs = cores)
2. a naive serial loop: ``papermill`` CLI then ``jupyter nbconvert --to html`` CLI per run
3. the same loop with 2 runs at a time

Every method starts from an empty output folder and an empty gnaexp cache, so none profits from another's
IRs or cached references. Machines are noisy: compare the ratios of one invocation, not absolute times.

    .venv/bin/python bench/batch.py [MATRIX] [--runs N] [--methods batch,serial,parallel2]
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


def bench_batch(matrix: Path, work: Path, jobs: int | None) -> float:
    out, cache = work / "batch", work / "batch-cache"
    cmd = [str(BIN / "gnaexp"), "batch", str(matrix), "--out", str(out), "--force"]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    start = time.perf_counter()
    _quiet(cmd, _env(cache))
    return time.perf_counter() - start


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
    from gnaexp import matrix as matrix_mod

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("matrix", nargs="?", default=str(ROOT / "notebooks" / matrix_mod.MATRIX_NAME))
    p.add_argument("--runs", type=int, help="only the first N runs of the matrix")
    p.add_argument("--jobs", type=int, help="gnaexp batch --jobs (default: cores)")
    p.add_argument("--methods", default="batch,serial,parallel2")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args()

    runs = matrix_mod.load_matrix(args.matrix)[: args.runs]
    work = Path(tempfile.mkdtemp(prefix="gnaexp-bench-"))
    matrix = Path(args.matrix)
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
            elif m == "serial":
                times[m] = bench_naive(runs, work, "serial", 1)
            elif m == "parallel2":
                times[m] = bench_naive(runs, work, "parallel2", 2)
            else:
                raise SystemExit(f"unknown method {m!r}; use batch, serial, parallel2")
            print(f"{m:<10} {times[m]:7.1f} s  ({times[m] / len(runs):.2f} s/run)", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if "batch" in times:
        for m in ("serial", "parallel2"):
            if m in times:
                print(f"gnaexp batch is {times[m] / times['batch']:.2f}x faster than the {m} CLI loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
