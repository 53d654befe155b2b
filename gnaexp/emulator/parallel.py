"""Emulator work on all cores without ever entering a library's own thread pool.

Why: OpenBLAS's thread pool lost a wake-up under load here (the calling thread spinning in ``inner_thread``
while its workers slept), so a GEMM in the emulator could hang forever. The emulator's hot loops are compiled
(native.py) and run in the calling thread; whatever still goes through BLAS runs inside
``single_threaded_blas``, which limits every BLAS library in the process to one thread, so each call runs
wholly in the thread that made it. The cores are used by ``run_all``: plain Python threads started for the call
and joined before it returns (the compiled loops and NumPy release the GIL). Nothing persists between calls:
no pool to inherit half-dead across ``fork()`` (batch kernels are forked) and no thread left behind.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

_LOCK = threading.Lock()
_DEPTH = 0
_RESTORE: list[tuple[Any, int]] = []  # (BLAS library, its thread count) to set back on the way out
_CONTROLLER: tuple[int, Any] | None = None  # (pid, threadpoolctl controller of the BLAS libraries)
_INSIDE = threading.local()  # set in worker threads: nested parallel calls run inline
MAX_THREADS = 8


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


def run_all(tasks: Sequence[Callable[[], Any]], threads: int | None = None) -> list[Any]:
    """Run the tasks on up to ``threads`` threads (default: the cores), BLAS single-threaded; results in order.

    The first exception raised by a task is raised here after every thread has stopped.
    """
    n = len(tasks)
    threads = min(n, threads or available_cores(), MAX_THREADS)
    results: list[Any] = [None] * n
    with single_threaded_blas():
        if threads <= 1 or getattr(_INSIDE, "active", False):
            return [task() for task in tasks]
        next_index = iter(range(n))
        claim = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            _INSIDE.active = True
            while not errors:
                with claim:
                    i = next(next_index, None)
                if i is None:
                    return
                try:
                    results[i] = tasks[i]()
                except BaseException as exc:  # noqa: BLE001 — handed to the caller below
                    errors.append(exc)

        pool = [threading.Thread(target=worker, name=f"gnaexp-emulator-{k}", daemon=True) for k in range(threads - 1)]
        for t in pool:
            t.start()
        try:
            worker()  # the calling thread works too
        finally:
            _INSIDE.active = False
            for t in pool:
                t.join()
        if errors:
            raise errors[0]
    return results
