"""``--dask``: ``gnaexp batch`` runs and ``gnaexp evaluate`` files as tasks on a dask.distributed cluster.

``--dask tcp://HOST:PORT`` uses a running scheduler (``dask scheduler``) and its workers (``dask worker``, started
in the same environment: same requirements, same gnaexp sources; checked before anything runs); ``--dask local:N``
starts N single-threaded worker processes on this machine for the command and closes them after.

Results travel back, no shared filesystem is needed: a worker executes its run with the local pool's own
``batch.execute_in_stage`` in a staging folder of its own (in its dask local directory) and returns the
finished files (executed notebook, HTML report, record folder) as bytes. The client writes them into
OUT/.staging/NAME and publishes them with ``batch.finish_run``, the same atomic moves as the local pool. So a
report is published whole or not at all, only the client writes into the output folder, and resuming, failure
isolation and the index are those of the local pool.

A worker that dies mid-run: the scheduler runs the task again on another worker, as many times as its
``distributed.scheduler.allowed-failures`` allows (``local:N`` clusters: once; set the same for your scheduler
with ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1``); nothing of a dead attempt comes back, so nothing of it is
published. When every allowed worker died, the run is red in the index: "its worker died".

Each worker process prepares kernels once (``batch.prepare_kernels``: the environment's kernelspec, the kernel
zygote, papermill and nbconvert), from a worker plugin. papermill changes the process's working folder during
a run, so a worker process executes one run at a time: start workers with ``--nthreads 1`` (and
``--nworkers`` for several per machine).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from distributed import Client, KilledWorker, LocalCluster, WorkerPlugin, as_completed, get_worker

from gnaexp.batch import runner as batch
from gnaexp.batch.matrix import Run
from gnaexp.batch.runner import Outcome, Staged, STAGING_DIR
from gnaexp.core.environment import local_capacity
from gnaexp.core.excerpt import excerpt
from gnaexp.core.output_folder import check_folder
from gnaexp.vad import run as vad_run
from gnaexp.vad.options import StreamSettings, VadOptions
from gnaexp.vad.record import VadRecord
from gnaexp.core.errors import BadInput

CONNECT_TIMEOUT_S = 10
LOCAL_ALLOWED_FAILURES = 1  # a run whose worker died is tried once more, on another worker
_ADDRESS = re.compile(r"(?:(tcp|tls)://)?([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})")


class ClusterError(BadInput):
    """A --dask value that cannot be used; the message names the problem and the fix (exit code 2)."""


class WorkerDied(RuntimeError):
    """Workers died on a task as often as the scheduler allows (exit code 1: the run failed)."""


def parse(spec: str) -> tuple[str, Any]:
    """("local", N) for ``local:N``, ("address", "tcp://HOST:PORT") for a scheduler address."""
    spec = spec.strip()
    if spec.lower().startswith("local"):
        m = re.fullmatch(r"local:0*([0-9]+)", spec, re.I)
        if not m or int(m.group(1)[:10]) < 1:
            raise ClusterError(f"--dask {excerpt(spec)}: give the number of worker processes to start here, at least "
                               "1 (e.g. --dask local:4)")
        n, (most, why) = int(m.group(1)[:10]), local_capacity()  # 10 digits: more than any machine holds
        if n > most:
            raise ClusterError(f"--dask {excerpt(spec)}: this machine holds at most {most} worker process(es) ({why}); "
                               f"give local:{most} or less, or a scheduler's address to use more machines")
        return "local", n
    m = _ADDRESS.fullmatch(spec)
    if not m or not 0 < int(m.group(3)) < 65536:
        raise ClusterError(f"--dask {excerpt(spec)} is neither a scheduler address (tcp://HOST:PORT, as `dask "
                           "scheduler` prints it) nor local:N (N worker processes on this machine)")
    return "address", f"{m.group(1) or 'tcp'}://{m.group(2)}:{m.group(3)}"


class KernelSetup(WorkerPlugin):  # type: ignore[misc]
    """Prepares each worker process for notebook runs once, as the local pool's initializer does. ``log``: the
    kernels' log (default: in the worker's local directory); ``own_stderr``: the worker's stderr goes there
    too, as a pool worker's does (a local cluster's workers would otherwise write over the progress bar)."""

    name = "gnaexp-kernels"

    def __init__(self, log: str | None = None, own_stderr: bool = False) -> None:
        self.log, self.own_stderr = log, own_stderr

    async def setup(self, worker: Any) -> None:
        log = self.log or str(Path(worker.local_directory) / "gnaexp-kernels.log")
        if self.own_stderr:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 2)
            os.close(fd)
        # Off the worker's event loop: the imports take a second or two, and heartbeats must go on meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, batch.prepare_kernels, log)


def _unreachable(address: str, why: Any) -> ClusterError:
    return ClusterError(f"cannot reach a dask scheduler at {address} ({why}); start one there with `dask scheduler` "
                        f"and workers with `dask worker {address}`, or run on this machine with --dask local:N")


def _reachable(address: str) -> None:
    """Fail at once on a refused or unknown address (the dask client would retry until its timeout)."""
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise _unreachable(address, exc.strerror or exc) from None


@contextmanager
def connect(spec: str, local_dir: Path | None = None, kernels: bool = True, log: str | None = None) -> Iterator[Any]:
    """A client on the cluster ``spec`` names, its workers checked (and prepared for notebook runs with
    ``kernels``, their kernels' log in ``log`` for a local cluster); a ``local:N`` cluster is started (its
    workers' scratch space under ``local_dir``) and closed on the way out, also on Ctrl-C."""
    import dask

    kind, value = parse(spec)
    cluster = None
    try:
        if kind == "local":
            # Ctrl-C goes to the whole process group: the workers leave it to this process, which cancels the
            # runs and closes the cluster. They are started with SIGINT blocked (the cluster's threads, which
            # start them and any worker restarted later, are made while this thread blocks it; a blocked signal
            # stays blocked across exec), so this process alone gets a Ctrl-C, also one pressed while they start:
            # at once on another of its threads, else here when the start-up ends. (Ignoring SIGINT here while
            # they started lost that Ctrl-C: the batch ran on to the end.) multiprocessing's resource tracker is
            # started first: starting it unblocks SIGINT in the thread that starts it, and that thread would
            # then start a worker that takes Ctrl-C.
            resource_tracker.ensure_running()
            blocked = (signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                       if threading.current_thread() is threading.main_thread() else None)
            try:
                # One run per worker thread in flight (dask's default is 1.1): a worker that dies then takes
                # no run with it that it had not started.
                with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
                                      "distributed.scheduler.worker-saturation": 1.0}):
                    cluster = LocalCluster(n_workers=value, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=logging.ERROR,
                                           local_directory=str(local_dir) if local_dir else None)
            finally:
                if blocked is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a Ctrl-C pressed meanwhile arrives now
            client = Client(cluster)
        else:
            _reachable(value)
            try:
                client = Client(value, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise _unreachable(value, exc) from None
        try:
            _check_workers(client, value if kind == "address" else spec)
            if kernels:
                client.register_plugin(KernelSetup(log, own_stderr=True) if kind == "local" and log else KernelSetup())
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
            if local_dir is not None:
                shutil.rmtree(local_dir, ignore_errors=True)  # the workers' scratch space, empty by now


def _check_workers(client: Any, where: str) -> None:
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise ClusterError(f"the dask scheduler at {where} has no workers; start them on each machine with "
                           f"`dask worker {where} --nthreads 1`") from None
    try:
        digests = client.run(batch.library_digest)
    except Exception as exc:  # noqa: BLE001 — whatever a worker's environment lacks, the fix is the same
        raise ClusterError(f"a dask worker cannot run gnaexp ({type(exc).__name__}: {exc}); start the workers in "
                           "the same environment as this machine (same requirements, same gnaexp)") from None
    mine = batch.library_digest()
    other = sorted(w for w, d in digests.items() if d != mine)
    if other:
        raise ClusterError(f"dask worker(s) {', '.join(other)} run other gnaexp sources than this machine; install "
                           "the same gnaexp version (and requirements) on every worker")


# --- the worker's side ------------------------------------------------------------------------------------------

_ONE_RUN = threading.Lock()  # papermill changes the process's working folder while it runs a notebook
_ACTIVE: dict[str, set[Path]] = {}  # batch id → staging folders of its runs executing in this process
_STOPPED: set[str] = set()


def _scratch() -> Path:
    try:
        return Path(get_worker().local_directory)
    except ValueError:  # not on a worker
        return Path(tempfile.gettempdir())


def _run_task(run: Run, source: bytes, show_code: bool, timeout: float | None,
              batch_id: str) -> tuple[Staged, dict[str, bytes | None]]:
    """Execute a run in a staging folder of this worker; return its outcome and files (paths relative to it)."""
    batch.prepare_kernels()  # done by the plugin already; a no-op then
    base = Path(tempfile.mkdtemp(prefix="gnaexp-", dir=_scratch()))
    try:
        notebook = base / run.notebook.name
        notebook.write_bytes(source)
        stage = base / run.name
        with _ONE_RUN:
            if batch_id in _STOPPED:
                return Staged("cancelled", 0.0), {}
            _ACTIVE.setdefault(batch_id, set()).add(stage)
            try:
                staged = batch.execute_in_stage(run, stage, show_code, timeout, source=notebook, hide=(base,))
            finally:
                _ACTIVE[batch_id].discard(stage)
        return staged, _pack(stage, run.name)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _pack(stage: Path, name: str) -> dict[str, bytes | None]:
    """The files a run publishes (folders as None), by path relative to the stage."""
    files: dict[str, bytes | None] = {}
    for rel in (f"{name}.ipynb", f"{name}.html"):
        if (stage / rel).is_file():
            files[rel] = (stage / rel).read_bytes()
    record = stage / f"{name}.record"
    if record.is_dir():
        files[record.name] = None
        for p in sorted(record.rglob("*")):
            files[p.relative_to(stage).as_posix()] = None if p.is_dir() else p.read_bytes()
    return files


STOP_WAIT_S = 15.0  # how long a cancelled batch's runs may take to end once their kernels are killed


def _stop_runs(batch_id: str) -> int:
    """Stop this process's runs of a cancelled batch: their kernels (and what those started) are the processes
    working in their staging folders; a run waiting for its turn does not start. The folders are watched until
    their runs have ended: a kernel forked after the first look (a zygote still importing on a restarted worker
    forks late) is killed as it appears."""
    import psutil

    _STOPPED.add(batch_id)
    killed, end = 0, time.monotonic() + STOP_WAIT_S
    while True:
        stages = [str(s) for s in _ACTIVE.get(batch_id, ())]
        for proc in psutil.process_iter(["cwd"]):
            cwd = proc.info.get("cwd") or ""
            # This process works there too while papermill runs (it changes folder): not this one.
            if proc.pid != os.getpid() and any(cwd == s or cwd.startswith(s + os.sep) for s in stages):
                with suppress(psutil.Error):
                    proc.kill()
                    killed += 1
        if not stages or time.monotonic() > end:
            return killed
        time.sleep(0.1)


# --- the client's side ------------------------------------------------------------------------------------------

def _unpack(files: dict[str, bytes | None], stage: Path) -> None:
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    root = stage.resolve()
    for rel, data in files.items():
        path = stage / rel
        if root not in path.resolve().parents:
            raise BadInput(f"a worker returned a file outside its run: {rel!r}")
        if data is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _collect(future: Any, run: Run, out: Path) -> Outcome:
    """Publish a finished task's run like the local pool would; a task that came back without a run is red."""
    try:
        staged, files = future.result()
    except KilledWorker as exc:
        outcome = Outcome(run.name, "failed", 0.0, f"its worker died while running it, on each of "
                          f"{exc.allowed_failures + 1} attempt(s) (killed, out of memory or crashed: see the workers' "
                          "logs); nothing of it was published", run.key)
        batch.write_state(out, run, outcome)
        return outcome
    except Exception as exc:  # noqa: BLE001 — one run's failure, whatever it is, leaves the others going
        outcome = Outcome(run.name, "failed", 0.0, f"on the cluster: {batch._error_of(exc)}", run.key)
        batch.write_state(out, run, outcome)
        return outcome
    stage = out / STAGING_DIR / run.name
    try:
        _unpack(files, stage)
        return batch.finish_run(run, stage, out, staged)
    except Exception as exc:  # noqa: BLE001 — as a pool worker's failure to publish: this run is red, others go on
        shutil.rmtree(stage, ignore_errors=True)
        return Outcome(run.name, "failed", staged.duration_s, f"publishing failed: {batch._error_of(exc)}", run.key)


@contextmanager
def _ctrl_c_after() -> Iterator[None]:
    """Ctrl-C inside the block takes effect at its end (in the main thread; elsewhere signals never arrive): the
    report "N run(s) done" then counts a run whose files were published as it came in."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[Any, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append((number, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(*caught[0])  # the handler it replaced: KeyboardInterrupt, as Ctrl-C raises everywhere else
    elif caught and previous == signal.SIG_DFL:
        raise KeyboardInterrupt


def _stop(client: Any, futures: Sequence[Any], batch_id: str) -> None:
    with suppress(Exception):  # best effort: the cluster may be going away already
        client.cancel(list(futures))
        client.run(_stop_runs, batch_id)


def run_batch_on_cluster(runs: list[Run], out: Path, spec: str, force: bool = False, show_code: bool = False,
                         timeout: float | None = None, echo: Any = print) -> list[Outcome]:
    """``batch.run_batch`` with one task per run on the cluster ``spec`` names (see the module's docstring)."""
    kind, _ = parse(spec)  # a bad value fails before anything is written
    with batch.owned_output(runs, out):
        return _run_batch_on_cluster(runs, out, spec, kind, force, show_code, timeout, echo)


def _run_batch_on_cluster(runs: list[Run], out: Path, spec: str, kind: str, force: bool, show_code: bool,
                          timeout: float | None, echo: Any) -> list[Outcome]:
    todo, outcomes = batch.plan_runs(runs, out, force, show_code, echo)
    if kind == "local" or not todo:  # a local cluster's kernels log there from the start
        (out / batch.STATE_DIR).mkdir(parents=True, exist_ok=True)
    if todo:
        log = str(out / batch.STATE_DIR / "workers.log")
        try:
            # A scheduler that is not there, or unfit workers, fail before anything is written.
            with connect(spec, out / STAGING_DIR / "dask", True, log) as client:
                _execute(client, runs, todo, outcomes, out, show_code, timeout, echo)
        except KeyboardInterrupt:  # also while the workers start or are prepared
            echo(batch.interrupted(outcomes))
            raise
    batch.write_index(runs, out)
    return [outcomes[r.name] for r in runs if r.name in outcomes]


def _execute(client: Any, runs: list[Run], todo: list[Run], outcomes: dict[str, Outcome], out: Path, show_code: bool,
             timeout: float | None, echo: Any) -> None:
    """One task per run to execute; each published as it comes back, the index kept up to date."""
    (out / batch.STATE_DIR).mkdir(parents=True, exist_ok=True)
    threads = client.nthreads()
    echo(f"running {len(todo)} of {len(runs)} notebooks on {len(threads)} dask worker(s) → {out}")
    if any(n > 1 for n in threads.values()):
        echo("note: a worker process executes one notebook at a time; start workers with --nthreads 1 "
             "--nworkers N to run N at once on a machine")
    batch_id = uuid.uuid4().hex[:8]
    sources = {nb: nb.read_bytes() for nb in {r.notebook for r in todo}}
    # The notebook travels inside each task (a few kB): a task without dependencies waits in the
    # scheduler's queue until a worker is free, so a worker that dies takes only its own run with it.
    # One key group, so that the queue applies; the local pool's order, by priority.
    futures = {client.submit(_run_task, r, sources[r.notebook], show_code, timeout, batch_id, pure=False,
                             key=(f"gnaexp-run-{batch_id}", i), priority=len(todo) - i): r
               for i, r in enumerate(todo)}
    bar = batch.progress_bar(len(todo))
    index = batch.IndexWriter(runs, out)
    try:
        for future in as_completed(futures):
            with _ctrl_c_after():  # a run published here is counted too when Ctrl-C comes in meanwhile
                outcome = _collect(future, futures[future], out)
                future.release()  # its files are in place: the worker may forget them
                outcomes[outcome.name] = outcome
                batch.note_outcome(bar, outcome)
            index.update()
    except KeyboardInterrupt:
        _stop(client, list(futures), batch_id)
        bar.close()
        index.final()
        raise
    finally:
        bar.close()


# --- evaluate ---------------------------------------------------------------------------------------------------

def _stream_share(audios: list[Any], backends: list[str], opts: StreamSettings) -> vad_run.StreamedPart:
    return vad_run.stream_files(audios, backends, opts, _scratch() / "gnaexp-vad-ir")


def shares(lengths: Sequence[int], n: int) -> list[list[int]]:
    """Split file indices into at most n shares of about equal audio (longest first to the lightest share)."""
    groups: list[list[int]] = [[] for _ in range(max(1, min(n, len(lengths))))]
    load = [0] * len(groups)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        g = load.index(min(load))
        groups[g].append(i)
        load[g] += lengths[i]
    return [sorted(g) for g in groups if g]


def evaluate_on_cluster(audio_files: Sequence[str | Path], backends: Sequence[str], out_dir: Path | None, spec: str,
                        options: Mapping[str, Any] | VadOptions | None = None,
                        progress: Callable[[int], None] | None = None) -> VadRecord:
    """``vad_run.run`` with the files split across the cluster's workers (one task per share of the files); the
    record's per-file rows and aggregate are those of a run here. ``progress(n)``: n more files are done."""
    parse(spec)
    if out_dir is not None:
        check_folder(out_dir, "record folder")  # refused before any audio is read or any worker starts
    loaded, opts, imported = vad_run.load(audio_files, backends, options)
    with vad_run.record_folder(out_dir) as stage:
        # a local cluster's scratch space, inside the staging folder and removed before it is published
        with connect(spec, stage / ".dask-scratch" if out_dir is not None else None, kernels=False) as client:
            parts = _stream_shares(client, loaded, backends, opts, progress)
        parts.sort(key=lambda p: p[0][0])  # the first part's backend descriptions are used: the same in every part
        return vad_run.assemble(loaded, backends, parts, imported, stage if out_dir is not None else None)


def _stream_shares(client: Any, loaded: vad_run.Loaded, backends: Sequence[str], opts: StreamSettings,
                   progress: Callable[[int], None] | None) -> list[tuple[list[int], vad_run.StreamedPart]]:
    """Stream the files in shares on the cluster's workers: (indices of the share's files, streamed part)."""
    groups = shares([len(sound.samples) for _, sound in loaded], sum(client.nthreads().values()))
    token = uuid.uuid4().hex[:8]
    futures = {client.submit(_stream_share, [loaded[i][1].samples for i in g], vad_run.streamed(backends), opts,
                             pure=False, key=f"gnaexp-vad-{k}-{token}"): g for k, g in enumerate(groups)}
    parts = []
    try:
        for future in as_completed(futures):
            try:
                parts.append((futures[future], future.result()))
            except KilledWorker as exc:
                raise WorkerDied(f"the worker streaming {len(futures[future])} of the files died, on each "
                                 f"of {exc.allowed_failures + 1} attempt(s) (killed, out of memory or crashed: "
                                 "see the workers' logs); nothing was written") from None
            future.release()
            if progress:
                progress(len(futures[future]))
    except BaseException:
        with suppress(Exception):
            client.cancel(list(futures))
        raise
    return parts
