"""Emulator work on all cores without ever entering a library's own thread pool.

Why: OpenBLAS's thread pool lost a wake-up under load here (the calling thread spinning in ``inner_thread``
while its workers slept), so a GEMM in the emulator could hang forever. The emulator's hot loops are compiled
(native.py) and run in the calling thread; whatever still goes through BLAS runs inside
``single_threaded_blas``, which limits every BLAS library in the process to one thread, so each call runs
wholly in the thread that made it. The cores are used by ``run_all``: plain Python threads of this module (the
compiled loops and NumPy release the GIL). They outlive a call only briefly: a stream runs one call per step
(250 Silero VAD streams: a few ms each), and starting a thread for every call cost 0.12 ms of it, so a helper
waits IDLE_SECONDS for the next call and then ends. Nothing else persists: a ``fork()``ed child (batch kernels
are forked) starts with no helpers and a fresh queue, never a half-dead pool.
"""

from __future__ import annotations

import os
import queue
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

_LOCK = threading.Lock()
_DEPTH = 0
_RESTORE: list[tuple[Any, int]] = []  # (BLAS library, its thread count) to set back on the way out
_CONTROLLER: tuple[int, Any] | None = None  # (pid, threadpoolctl controller of the BLAS libraries)
_INSIDE = threading.local()  # set in worker threads: nested parallel calls run inline
MAX_THREADS = 8
IDLE_SECONDS = 1.0  # a helper thread waits this long for another call, then ends


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _blas_controller() -> Any:
    global _CONTROLLER
    if _CONTROLLER is None or _CONTROLLER[0] != os.getpid():
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = (os.getpid(), ThreadpoolController().select(user_api="blas"))
    return _CONTROLLER[1]


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread while inside (re-entrant, shared by threads; restored on the way out).

    Covers every BLAS loaded when the process first got here, NumPy's among them (the one the emulator calls).
    Each library's count is read and set directly (``threadpoolctl``'s ``limit`` asks every library for its full
    description first, which costs more than a small product: the emulator enters here once per layer).
    """
    global _DEPTH
    with _LOCK:
        if _DEPTH == 0:
            for lib in _blas_controller().lib_controllers:
                threads = lib.get_num_threads()
                if threads != 1:
                    lib.set_num_threads(1)
                    _RESTORE.append((lib, threads))
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                while _RESTORE:
                    lib, threads = _RESTORE.pop()
                    lib.set_num_threads(threads)


class _Call:
    """One ``run_all``: its tasks claimed one at a time by whichever thread asks next; ``finished`` once every
    task has ended, or after a failure every task that had started (no new one starts then)."""

    def __init__(self, tasks: Sequence[Callable[[], Any]]) -> None:
        self.tasks = tasks
        self.results: list[Any] = [None] * len(tasks)
        self.errors: list[BaseException] = []
        self.finished = threading.Event()
        self._claim = threading.Lock()
        self._next = 0
        self._running = 0

    def work(self) -> None:
        while True:
            with self._claim:
                if self.errors or self._next >= len(self.tasks):
                    return
                i = self._next
                self._next += 1
                self._running += 1
            try:
                self.results[i] = self.tasks[i]()
            except BaseException as exc:  # noqa: BLE001 — handed to the caller by run_all
                self.errors.append(exc)
            with self._claim:
                self._running -= 1
                if self._running == 0 and (self.errors or self._next >= len(self.tasks)):
                    self.finished.set()


class _Helpers:
    """The helper threads and the queue they take calls from (one per process: reset in a forked child)."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.started = 0

    def ensure(self, count: int) -> None:
        """At least ``count`` helpers alive."""
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            while len(self.threads) < count:
                self.started += 1
                t = threading.Thread(target=self._serve, name=f"gnaexp-emulator-{self.started}", daemon=True)
                t.start()
                self.threads.append(t)

    def _serve(self) -> None:
        _INSIDE.active = True  # a task that calls run_all runs its tasks inline
        while True:
            try:
                call = self.calls.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self.lock:  # leave unless a call came in while timing out
                    if self.calls.empty():
                        self.threads = [t for t in self.threads if t is not threading.current_thread()]
                        return
                continue
            call.work()


_HELPERS = _Helpers()


def _reset_after_fork() -> None:
    global _HELPERS
    _HELPERS = _Helpers()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def run_all(tasks: Sequence[Callable[[], Any]], threads: int | None = None) -> list[Any]:
    """Run the tasks on up to ``threads`` threads (default: the cores), BLAS single-threaded; results in order.

    The calling thread works too; helper threads join it (started on the first call, kept IDLE_SECONDS after the
    last). The first exception raised by a task is raised here after every task that had started has ended.
    """
    n = len(tasks)
    threads = min(n, threads or available_cores(), MAX_THREADS)
    with single_threaded_blas():
        if threads <= 1 or getattr(_INSIDE, "active", False):
            return [task() for task in tasks]
        helpers = _HELPERS
        helpers.ensure(threads - 1)
        call = _Call(tasks)
        for _ in range(threads - 1):
            helpers.calls.put(call)
        _INSIDE.active = True  # a task that calls run_all runs its tasks inline, here too
        try:
            call.work()
        finally:
            _INSIDE.active = False
        call.finished.wait()
        call.tasks = ()  # a copy of the call a helper has not taken yet keeps nothing of them
        if call.errors:
            raise call.errors[0]
    return call.results
