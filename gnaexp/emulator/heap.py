"""Freed work arrays stay in the process's heap for the next step instead of going back to the operating system.

Why: glibc's malloc hands blocks of 128 KiB and more to the system as soon as they are freed (and trims the heap's
top once 256 KiB of it is free), raising those thresholds only as it sees larger blocks freed. A plan step of a
few hundred streams allocates megabytes of work arrays (the compiled plan's columns, a convolution's windows and
sums) and frees them before the next step, so the next step faulted the same pages in again: measured on 125
Silero VAD streams, 2,361 page faults a step and 40% of the step's time in the first pass over the audio, with a
count that depended on which blocks the process had happened to free before. Fixing the thresholds once makes
every step reuse the memory the previous one freed. The peak resident size does not change (the memory is the
step's own high-water mark); it is kept rather than returned between steps.

Only glibc has ``mallopt``; elsewhere (musl, macOS, Windows) this does nothing and the numbers are the same either
way: it changes where memory comes from, never a value.
"""

from __future__ import annotations

import ctypes
import threading

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h
MMAP_THRESHOLD = 32 * 2 ** 20  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2); larger blocks mmap
TRIM_THRESHOLD = 256 * 2 ** 20  # free memory kept at the heap's top before it is returned

_lock = threading.Lock()
_done: bool | None = None  # None: not tried yet; then whether glibc took the settings


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds once per process; whether they are in effect (False off glibc)."""
    global _done
    if _done is None:
        with _lock:
            if _done is None:
                _done = _set_thresholds()
    return _done


def _set_thresholds() -> bool:
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: libc's where it is glibc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
