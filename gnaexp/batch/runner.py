"""``gnaexp batch``: run the runs of a matrix (``matrix.load_matrix``) of parameterized notebooks with papermill into executed notebooks, HTML
reports and an index page.

Runs go to a pool of long-lived worker processes (one kernel per run) that import papermill and nbconvert
once and reuse one HTML exporter. Each run executes in a staging folder and is moved into place only when it
succeeded, so a finished report is never replaced by a failed or interrupted attempt; a failed attempt is kept
beside it as ``NAME.failed.html``. A run whose notebook, parameters and library sources are unchanged and whose
outputs exist is skipped.

The execution into a staging folder (``execute_in_stage``) and the publishing (``finish_run``) are separate
steps: ``gnaexp.batch.cluster`` runs the first on a dask worker and the second here, with the files in between.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gnaexp.batch.matrix import Run
from gnaexp.core.files import atomic_write_text, dumps
from gnaexp.core.output_folder import shared_folder
from gnaexp.present import pages
from gnaexp.present.pages import export_html, hide_local_paths


def _skip_iri_grammar() -> None:
    """Keep jsonschema from loading rfc3987_syntax in the processes that run batches.

    nbformat imports jsonschema, and jsonschema, where rfc3987_syntax is installed (JupyterLab's jupyter-events
    pulls it in), compiles that package's IRI grammar at import: about 1 s of CPU in every process that reads a
    notebook. The notebook schema has no "iri" formats, so nothing here needs it. Set before nbformat's first
    import in the driver, each pool worker and each cluster worker (all import this module first).
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # import then raises ImportError


_skip_iri_grammar()

KERNEL = "python3"
STATE_DIR = ".runs"  # per-run state (key, status, duration, error) inside the output folder
STAGING_DIR = ".staging"
INDEX_INTERVAL_S = 0.5  # at most this often the index is rewritten while runs finish
RUN_ENTRIES = (".html", ".ipynb", ".record", ".failed.html", ".failed.ipynb")  # what a run may publish, by suffix


@dataclass
class Outcome:
    name: str
    status: str  # ok | failed | skipped
    duration_s: float = 0.0
    error: str = ""
    key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- resumability ----------------------------------------------------------------------------------------------

def library_digest() -> str:
    """gnaexp's version and a digest of its sources: a changed library reruns every notebook."""
    from gnaexp import __version__

    h = hashlib.sha256(__version__.encode())
    root = Path(__file__).resolve().parent.parent  # the gnaexp package
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def run_key(run: Run, library: str, show_code: bool, source: bytes | None = None) -> str:
    h = hashlib.sha256()
    h.update(run.notebook.read_bytes() if source is None else source)
    h.update(json.dumps(run.parameters, sort_keys=True, default=str).encode())
    h.update(f"{library}|{show_code}|{KERNEL}".encode())
    return h.hexdigest()[:20]


def read_state(out: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((out / STATE_DIR / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_done(out: Path, run: Run) -> bool:
    state = read_state(out, run.name)
    return (state.get("status") == "ok" and state.get("key") == run.key and (out / f"{run.name}.html").exists()
            and (out / f"{run.name}.ipynb").exists())


# --- the worker ------------------------------------------------------------------------------------------------

_PREPARED = threading.Lock()
_prepared = False


def prepare_kernels(log: str | None = None, zygote: str | None = None) -> None:
    """What every process that executes runs needs, done once per process (a pool worker, a cluster worker):
    this environment's kernelspec, a kernel zygote (``zygote``: the socket of one the batch already started; else
    one of this process's own), papermill imported and nbconvert's exporter with its templates compiled."""
    global _prepared
    with _PREPARED:
        if _prepared:
            return
        use_environment_kernelspec()
        from gnaexp.batch import forkserver

        if zygote:
            forkserver.attach(zygote)
        else:  # it imports for the kernels while this process imports papermill and nbconvert
            forkserver.start_zygote(log)
        importlib.import_module("papermill")  # once per worker, not once per run

        pages.warm_up()  # templates compiled, once per worker where the pool's forkserver did not (pool_preload)
        _prepared = True


def use_environment_kernelspec() -> None:
    """Prefer this environment's kernelspec (its python has gnaexp) over a user-wide "python3"."""
    share = str(Path(sys.prefix) / "share" / "jupyter")
    if share not in os.environ.get("JUPYTER_PATH", "").split(os.pathsep):
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (share, os.environ.get("JUPYTER_PATH", "")) if p)


def _worker_init(log: str | None = None, zygote: str | None = None) -> None:
    # The parent handles Ctrl-C and stops the pool; workers must not die half-way through a move.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if log:
        # Kernels inherit this process's stderr: their start-up chatter goes to a log, not over the progress bar.
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    prepare_kernels(log, zygote)


def _error_of(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        return f"{ename}: {evalue}" + (f" (cell [{cell}])" if cell else "")
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Staged:
    """What executing a run into its staging folder gave (small and picklable: it travels back from a cluster
    worker with the files)."""

    error: str
    duration_s: float
    html_bytes: int = 0
    execute_s: float = 0.0


def execute_in_stage(run: Run, stage: Path, show_code: bool, timeout: float | None, source: Path | None = None,
                     hide: tuple[Path, ...] = ()) -> Staged:
    """Execute one run with papermill into ``stage`` (emptied first; the kernel's working folder), hide local
    paths and export HTML: ``stage`` then holds NAME.ipynb, NAME.html when they could be made, and what the
    notebook wrote (NAME.record). ``source``: the notebook to execute when it is not at ``run.notebook`` (a
    cluster worker gets it as bytes). ``hide``: further folders shown as "." in the report."""
    import papermill as pm

    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    staged_nb, staged_html = stage / f"{run.name}.ipynb", stage / f"{run.name}.html"
    start = time.perf_counter()
    error = ""
    from gnaexp.batch import forkserver

    manager = forkserver.manager_class()  # kernels forked from a pre-warmed process where possible
    # The timeout bounds the whole run: each cell may take what is left of it (nbclient asks timeout_func per cell).
    deadline = time.monotonic() + timeout if timeout else None
    limits = {"timeout_func": lambda cell: max(1.0, deadline - time.monotonic())} if deadline else {}
    try:
        # No save after every cell: each save re-validates the whole notebook; papermill still writes the
        # executed notebook at the end, with the error banner if a cell raised. The kernel has nothing left to
        # flush once the last cell replied, so it is stopped at once rather than politely (≈0.4 s a run).
        pm.execute_notebook(str(source or run.notebook), str(staged_nb), parameters=run.parameters,
                            kernel_name=KERNEL, cwd=str(stage), progress_bar=False, log_output=False,
                            execution_timeout=timeout, request_save_on_cell_execute=False,
                            shutdown_kernel="immediate", **limits,
                            **({"kernel_manager_class": manager} if manager else {}))
    except TimeoutError:  # nbclient's CellTimeoutError: the kernel is stopped, the batch goes on
        error = f"timed out after {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 — any failure is reported in the index, others runs go on
        error = _error_of(exc)
    executed = time.perf_counter()
    size = 0
    try:
        if staged_nb.exists():  # papermill's metadata, its parameters cell and tracebacks name local folders
            staged_nb.write_text(hide_local_paths(staged_nb.read_text(encoding="utf-8"), stage, *hide,
                                                  files=run.local_paths), encoding="utf-8")
            size = export_html(staged_nb, staged_html, show_code, title=run.title)
    except Exception as exc:  # noqa: BLE001
        error = error or f"HTML export failed: {_error_of(exc)}"
    return Staged(error, time.perf_counter() - start, size, executed - start)


def finish_run(run: Run, stage: Path, out: Path, staged: Staged) -> Outcome:
    """Put a staged run in place (``stage`` lies in ``out``'s filesystem): a success is published whole, a
    failure only as NAME.failed.*; then the stage goes and the run's state is written."""
    if staged.error:
        for src, dst in ((stage / f"{run.name}.ipynb", f"{run.name}.failed.ipynb"),
                         (stage / f"{run.name}.html", f"{run.name}.failed.html")):
            if _complete(src):  # a write cut short (a full disk) is no report of the attempt
                os.replace(src, out / dst)
        outcome = Outcome(run.name, "failed", staged.duration_s, staged.error, run.key)
    else:
        _publish(stage, out, run.name)
        for stale in (out / f"{run.name}.failed.html", out / f"{run.name}.failed.ipynb"):
            stale.unlink(missing_ok=True)
        outcome = Outcome(run.name, "ok", staged.duration_s, "", run.key,
                          {"html_bytes": staged.html_bytes, "execute_s": round(staged.execute_s, 2),
                           "export_s": round(staged.duration_s - staged.execute_s, 2)})
    shutil.rmtree(stage, ignore_errors=True)
    write_state(out, run, outcome)
    return outcome


def _complete(path: Path) -> bool:
    """A staged file worth publishing: present, not empty, and a notebook that reads as JSON."""
    try:
        if path.stat().st_size == 0:
            return False
        if path.suffix == ".ipynb":
            json.loads(path.read_bytes())
        return True
    except (OSError, ValueError):
        return False


def execute_run(run: Run, out: Path, show_code: bool, timeout: float | None) -> Outcome:
    """Execute one run in its staging folder inside ``out``, and move it into place (pool worker side)."""
    stage = out / STAGING_DIR / run.name
    return finish_run(run, stage, out, execute_in_stage(run, stage, show_code, timeout, hide=(out,)))


def _publish(stage: Path, out: Path, name: str) -> None:
    """Move a successful run into place: record folder first, report last (its presence means complete)."""
    record = stage / f"{name}.record"
    if record.exists():
        target = out / f"{name}.record"
        old = out / STAGING_DIR / f".{name}.old-record"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(record, target)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(stage / f"{name}.ipynb", out / f"{name}.ipynb")
    os.replace(stage / f"{name}.html", out / f"{name}.html")


def write_state(out: Path, run: Run, outcome: Outcome) -> None:
    prev = read_state(out, run.name)
    state = {"name": run.name, "notebook": run.notebook.name, "parameters": run.shown_parameters, "key": outcome.key,
             "status": outcome.status, "duration_s": round(outcome.duration_s, 2), "error": outcome.error,
             "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **outcome.extra}
    if outcome.status == "failed" and prev.get("status") == "ok":
        state["last_ok"] = prev.get("finished", "")
    elif outcome.status == "failed":
        state["last_ok"] = prev.get("last_ok", "")
    atomic_write_text(out / STATE_DIR / f"{run.name}.json", dumps(state))


def _pool_task(args: tuple[Run, Path, bool, float | None]) -> Outcome:
    run, out, show_code, timeout = args
    try:
        return execute_run(run, out, show_code, timeout)
    except Exception as exc:  # noqa: BLE001 — a broken run must not take the pool down
        return Outcome(run.name, "failed", 0.0, _error_of(exc), run.key)


# --- the driver ------------------------------------------------------------------------------------------------

def plan_runs(runs: list[Run], out: Path, force: bool, show_code: bool,
              echo: Any = print) -> tuple[list[Run], dict[str, Outcome]]:
    """Key every run; return the runs to execute (round-robin over notebooks) and the outcomes of those skipped
    because they are done and unchanged (all run with ``force``). Shared by the local pool and a cluster; it
    writes nothing."""
    library = library_digest()
    sources: dict[Path, bytes] = {}  # each notebook read once, however many runs it has
    for run in runs:
        if run.notebook not in sources:
            sources[run.notebook] = run.notebook.read_bytes()
        run.key = run_key(run, library, show_code, sources[run.notebook])
    todo = [r for r in runs if force or not is_done(out, r)]
    waiting = {id(r) for r in todo}  # by identity: `r in todo` compared runs field by field, n² times
    outcomes = {r.name: Outcome(r.name, "skipped", read_state(out, r.name).get("duration_s", 0.0), "", r.key)
                for r in runs if id(r) not in waiting}
    for name in outcomes:
        echo(f"= {name}: unchanged, skipped (--force reruns it)")
    return _spread_notebooks(todo), outcomes


def progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True)


def note_outcome(bar: Any, outcome: Outcome) -> None:
    mark = "✓" if outcome.status == "ok" else "✗"
    bar.write(f"{mark} {outcome.name}: {outcome.status} in {outcome.duration_s:.1f} s"
              + (f" — {outcome.error}" if outcome.error else ""))
    bar.update(1)


def interrupted(outcomes: dict[str, Outcome]) -> str:
    return (f"interrupted: {sum(o.status == 'ok' for o in outcomes.values())} run(s) done; run the same command "
            "again to finish the rest")


def output_entries(runs: list[Run]) -> list[str]:
    """Every name a batch of these runs may write in its output folder."""
    return ["index.html", STATE_DIR, STAGING_DIR] + [f"{r.name}{suffix}" for r in runs for suffix in RUN_ENTRIES]


def owned_output(runs: list[Run], out: Path) -> Any:
    """The batch's hold on ``out``: locked for the batch, and the names it writes claimed (a file of the user's
    under one of them stops the batch before it starts; other files of the user's stay)."""
    return shared_folder(out, output_entries(runs), "batch output folder")


def run_batch(runs: list[Run], out: Path, jobs: int | None = None, force: bool = False, show_code: bool = False,
              timeout: float | None = None, echo: Any = print) -> list[Outcome]:
    """Execute the runs not already done (all with ``force``) in a process pool; write the index as runs finish.

    Ctrl-C stops the pool; finished runs stay, and the next call does the rest. A second batch on the same
    ``out`` is refused while this one runs.
    """
    with owned_output(runs, out):
        return _run_batch(runs, out, jobs, force, show_code, timeout, echo)


def _run_batch(runs: list[Run], out: Path, jobs: int | None, force: bool, show_code: bool, timeout: float | None,
               echo: Any) -> list[Outcome]:
    todo, outcomes = plan_runs(runs, out, force, show_code, echo)
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    if todo:
        echo(f"running {len(todo)} of {len(runs)} notebooks with {jobs} worker(s) → {out}")
        from gnaexp.batch import forkserver

        log = str(out / STATE_DIR / "workers.log")
        # One zygote for every worker, started first: its imports overlap the workers' start.
        use_environment_kernelspec()  # the zygote's kernels read it too
        zygote = forkserver.new_zygote(log)  # the workers', not this process's: it runs no kernel
        pool = _context().Pool(jobs, initializer=_worker_init, initargs=(log, zygote.path if zygote else None))
        bar = progress_bar(len(todo))
        index = IndexWriter(runs, out)
        try:
            for outcome in pool.imap_unordered(_pool_task, [(r, out, show_code, timeout) for r in todo]):
                outcomes[outcome.name] = outcome
                note_outcome(bar, outcome)
                index.update()
            pool.close()
        except KeyboardInterrupt:
            pool.terminate()
            bar.close()
            index.final()
            echo(interrupted(outcomes))
            raise
        except BaseException:  # e.g. the index cannot be written: the pool stops, the error is the user's to see
            pool.terminate()
            raise
        finally:
            try:
                pool.join()
            finally:
                bar.close()
                if zygote:  # its kernels end with it
                    zygote.close()
    write_index(runs, out)
    return [outcomes[r.name] for r in runs if r.name in outcomes]


def _context() -> Any:
    """Where workers come from: fresh processes (no inherited locks or threads), each forked from one process
    that imported papermill and nbconvert and compiled the exporter's templates (multiprocessing's forkserver,
    preloading ``pool_preload``: done once, not once per worker); spawned from scratch where there is no fork."""
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["gnaexp.batch.pool_preload"])  # only when it starts (once a process)
    return context


def write_index(runs: list[Run], out: Path) -> Path:
    return pages.write_index([(r, read_state(out, r.name)) for r in runs], out)


class IndexWriter:
    """index.html rewritten as runs finish, but not after every one: a write reads every run's state, so on a
    matrix of thousands of runs writing after each would cost more than the runs. A write waits until 20 times
    its own last duration (at least INDEX_INTERVAL_S) has passed; ``final`` always writes."""

    def __init__(self, runs: list[Run], out: Path) -> None:
        self.runs, self.out, self.due = runs, out, 0.0

    def update(self) -> None:
        if time.monotonic() >= self.due:
            self.final()

    def final(self) -> Path:
        start = time.monotonic()
        path = write_index(self.runs, self.out)
        self.due = time.monotonic() + max(INDEX_INTERVAL_S, 20 * (time.monotonic() - start))
        return path


def _spread_notebooks(runs: list[Run]) -> list[Run]:
    """Round-robin over notebooks: the first runs of different nets build their (cached) torch reference in
    parallel, instead of two runs of the same net both building it."""
    groups: dict[Path, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.notebook, []).append(r)
    order: list[Run] = []
    for batch in itertools.zip_longest(*groups.values()):
        order.extend(r for r in batch if r is not None)
    return order
