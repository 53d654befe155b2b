"""Planning a batch matrix: ``matrix.load_matrix`` then ``batch.plan_runs``, for matrices of growing size.

Each matrix is the conv notebook over a grid of seeds × precisions × layouts. Planning must grow linearly with
the number of runs (the time per run stays about flat down the table); a quadratic step (a name or run looked up
in a list of all runs) shows as a time per run that doubles with the size. Nothing is run or written.

    .venv/bin/python bench/plan.py [--runs 10000,40000,90000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gnaexp.batch import runner as batch  # noqa: E402
from gnaexp.batch import matrix


def plan(folder: Path, runs: int) -> tuple[float, float]:
    """(seconds to read and check the matrix, seconds to key and plan its runs) for ``runs`` runs."""
    seeds = ", ".join(str(i) for i in range(runs // 4))
    path = folder / f"m{runs}.yaml"
    path.write_text(f"runs:\n  - notebook: {ROOT / 'notebooks' / 'conv'}\n    grid:\n      seed: [{seeds}]\n"
                    "      precision: [i16, i8]\n      layout: [correct, legacy-concat]\n")
    start = time.perf_counter()
    planned = matrix.load_matrix(path)
    read = time.perf_counter() - start
    start = time.perf_counter()
    todo, _ = batch.plan_runs(planned, folder / "out", False, False, echo=lambda line: None)
    assert len(todo) == len(planned) == runs // 4 * 4
    return read, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="10000,40000,90000", help="comma list of matrix sizes")
    args = parser.parse_args()
    print(f"{'runs':>8} {'read s':>8} {'plan s':>8} {'µs per run':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for runs in (int(n) for n in args.runs.split(",")):
            read, planned = plan(Path(tmp), runs)
            print(f"{runs:>8} {read:8.2f} {planned:8.2f} {1e6 * (read + planned) / runs:11.1f}")


if __name__ == "__main__":
    main()
