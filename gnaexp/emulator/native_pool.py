"""A compiled plan's blocks of samples shared by the cores inside compiled code: no thread is woken, and no
thread takes the interpreter's lock, for a call.

Why: a step of 250 Silero VAD streams is about 1.1 ms of compiled work. Shared through ``parallel.run_all``,
each call woke a helper thread (blocked in the kernel: 0.03–0.06 ms on this virtual machine before it ran),
both threads took the interpreter's lock in turn for their tasks' Python, and the caller was woken again when
the helper finished (0.04 ms). Here helper threads wait in compiled code, spinning on one word of shared memory
between calls (for ``PATIENCE_SPINS``, a few ms, then they sleep, and end after ``IDLE_SECONDS``); a call
posts its job with one store, and every thread, the caller's too, claims the job's blocks one at a time with an
atomic compare-and-swap until none is left. The caller then spins until every claimed block is finished: a
helper still asleep when the job is posted claims nothing, and the caller runs every block itself.

Safety: a claim names its job (the job's number and the next block in one word), so a helper that read an
earlier job never claims a block of a later one; a job's arrays are only read through a claim, and the caller
returns (releasing them) only once every block claimed is finished. A helper's failure is handed to the caller,
which raises it. Samples are independent and each block runs ``native_plan._run_block``: any sharing gives the
same numbers. A ``fork()``ed child starts with a fresh pool and no helpers.
"""

from __future__ import annotations

import os
import platform
import threading
from typing import Sequence

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from gnaexp.emulator import native_plan, parallel
from gnaexp.emulator.native_plan import WIDTH, _run_block, f32_at as _f32_at, f64_at as _f64_at, i16_at as _i16_at, \
    i64_at as _i64_at

LINE = 8  # int64 words a cache line: each hot word on its own line (no false sharing between the spinning threads)
SEQ, WORD, FINISHED, ERROR = 0, LINE, 2 * LINE, 3 * LINE  # the job's number; its claims; blocks done; a failure
ASLEEP = 4 * LINE  # helper h's flag at ASLEEP + LINE·h: it left the spin, the caller must wake it
RAN = ASLEEP + LINE * parallel.MAX_THREADS  # the blocks of the job run by row r (the caller 0, helper h h + 1)
JOB = RAN + LINE * parallel.MAX_THREADS  # the job's fields, written before its number
(ARENA, ROWS, COLUMNS, OPS, OP_ROWS, INDEX, INDEX_SIZE, FLOATS, FLOATS_SIZE, WEIGHTS, WEIGHTS_SIZE, COUNTS,
 COUNTS_SIZE, BLOCK, BLOCKS, COPIES, COPY_COUNT) = range(JOB, JOB + 17)
FIELDS = JOB + 17
COPY_FIELDS = 3  # a copy into the work array before a block runs: its float32 (N, size) source's address, column, size
PATIENCE_SPINS = 1 << 16  # a helper's spin after its last job, in pause instructions (1–3 ms on x86)
IDLE_SECONDS = parallel.IDLE_SECONDS  # then it sleeps this long before it ends
X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _word_pointer(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
    array = context.make_array(signature.args[0])(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, signature.args[0], array, [args[1]])


@intrinsic
def _load(typingctx, words, i):
    """words[i], an acquiring atomic load (a spin's reads are not hoisted out of its loop)."""
    def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
        return builder.load_atomic(_word_pointer(context, builder, signature, args), "acquire", 8)
    return types.int64(words, types.intp), codegen


def _rmw_intrinsic(operation: str, doc: str):  # pragma: no cover - runs inside numba's compiler
    """An atomic read-modify-write of words[i] with a value (sequentially consistent)."""

    @intrinsic
    def rmw(typingctx, words, i, value):
        def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
            builder.atomic_rmw(operation, _word_pointer(context, builder, signature, args), args[2], "seq_cst")
            return context.get_dummy_value()
        return types.void(words, types.intp, types.int64), codegen

    rmw.__doc__ = doc
    return rmw


_store = _rmw_intrinsic("xchg", "words[i] = value, an atomic exchange (a store no later load passes)")
_add = _rmw_intrinsic("add", "words[i] += value atomically")


@intrinsic
def _swap(typingctx, words, i, expected, value):
    """words[i] = value if it holds ``expected`` (atomically); whether it did."""
    def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
        pair = builder.cmpxchg(_word_pointer(context, builder, signature, args), args[2], args[3], "seq_cst",
                               "seq_cst")
        return builder.extract_value(pair, 1)
    return types.boolean(words, types.intp, types.int64, types.int64), codegen


@intrinsic
def _pause(typingctx):
    """The processor's spin-wait hint (x86 ``pause``: the spinning core yields to its sibling and saves power)."""
    def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
        if X86:
            builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                        "llvm.x86.sse2.pause"), [])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(nogil=True, cache=True)
def _claim_and_run(control, row, seq):  # pragma: no cover - compiled
    """Claim job ``seq``'s blocks one at a time and run each (``native_plan._run_block``) until none is left,
    their counts added to row ``row`` of the job's counts (the caller's 0, helper h's h + 1)."""
    while True:
        word = _load(control, WORD)
        first = word & 0xFFFFFFFF
        if (word >> 32) != seq or first >= control[BLOCKS]:
            return
        if not _swap(control, WORD, word, word + 1):
            continue
        # claimed: the job's fields are its own, and its arrays stay alive until this block is counted finished
        n, block, size = control[ROWS], control[BLOCK], control[COUNTS_SIZE]
        arena = carray(_f64_at(control[ARENA]), (n, control[COLUMNS]))
        ops = carray(_i64_at(control[OPS]), (control[OP_ROWS], WIDTH))
        index = carray(_i64_at(control[INDEX]), control[INDEX_SIZE])
        floats = carray(_f64_at(control[FLOATS]), control[FLOATS_SIZE])
        weights16 = carray(_i16_at(control[WEIGHTS]), control[WEIGHTS_SIZE])
        counts = carray(_i64_at(control[COUNTS] + 8 * size * row), size)
        start = first * block
        stop = min(n, start + block)
        copies = carray(_i64_at(control[COPIES]), (control[COPY_COUNT], COPY_FIELDS))
        for c in range(copies.shape[0]):
            column, values = copies[c, 1], copies[c, 2]
            source = carray(_f32_at(copies[c, 0]), (n, values))
            for i in range(start, stop):
                into, value = arena[i, column:column + values], source[i]
                for j in range(values):
                    into[j] = value[j]
        _run_block(arena[start:stop], ops, index, floats, weights16, counts)
        control[RAN + LINE * row] += 1  # this thread's own word
        _add(control, FINISHED, 1)


@njit(nogil=True, cache=True)
def _serve(control, helper, seen, patience):  # pragma: no cover - compiled
    """A helper's wait: spin on the job number, claim blocks of each job after ``seen``; after ``patience`` spins
    without a new one, flag itself asleep and return the last job seen (unless one came in meanwhile)."""
    _store(control, ASLEEP + LINE * helper, 0)
    idle = 0
    while True:
        seq = _load(control, SEQ)
        if seq != seen:
            seen = seq
            _claim_and_run(control, helper + 1, seq)
            idle = 0
            continue
        _pause()
        idle += 1
        if idle > patience:
            _store(control, ASLEEP + LINE * helper, 1)
            if _load(control, SEQ) == seen:  # none came in after the flag: the next caller sees it and wakes it
                return seen
            _store(control, ASLEEP + LINE * helper, 0)


@njit(nogil=True, cache=True)
def _post(control, arena, ops, index, floats, weights16, counts, copies, block, seq, helpers):  # pragma: no cover
    """Write job ``seq``'s fields, then its number; returns a bit mask of the helpers flagged asleep."""
    n = arena.shape[0]
    control[ARENA], control[ROWS], control[COLUMNS] = arena.ctypes.data, n, arena.shape[1]
    control[OPS], control[OP_ROWS] = ops.ctypes.data, ops.shape[0]
    control[INDEX], control[INDEX_SIZE] = index.ctypes.data, index.shape[0]
    control[FLOATS], control[FLOATS_SIZE] = floats.ctypes.data, floats.shape[0]
    control[WEIGHTS], control[WEIGHTS_SIZE] = weights16.ctypes.data, weights16.shape[0]
    control[COUNTS], control[COUNTS_SIZE] = counts.ctypes.data, counts.shape[1]
    control[BLOCK], control[BLOCKS] = block, (n + block - 1) // block
    control[COPIES], control[COPY_COUNT] = copies.ctypes.data, copies.shape[0]
    for r in range(helpers + 1):
        control[RAN + LINE * r] = 0
    _store(control, FINISHED, 0)
    _store(control, WORD, seq << 32)
    _store(control, SEQ, seq)
    asleep = 0
    for h in range(helpers):
        if _load(control, ASLEEP + LINE * h):
            asleep |= 1 << h
    return asleep


@njit(nogil=True, cache=True)
def _run_and_wait(control, seq):  # pragma: no cover - compiled
    """The caller's part of job ``seq``: claim blocks like a helper, then spin until every block is finished;
    False when a helper failed."""
    _claim_and_run(control, 0, seq)
    blocks = control[BLOCKS]
    while _load(control, FINISHED) < blocks:
        if _load(control, ERROR):
            return False
        _pause()
    return True


class Pool:
    """The helper threads of one process and their control block: one job at a time."""

    def __init__(self, helpers: int) -> None:
        self.helpers = helpers
        self.control = np.zeros(FIELDS, dtype=np.int64)
        self.busy = threading.Lock()  # held by the call whose job the control block holds
        self.lock = threading.Lock()  # guards ``alive``
        self.alive = [False] * helpers
        self.wake = [threading.Event() for _ in range(helpers)]
        self.seq = 0
        self.error: BaseException | None = None
        self.blocks_run: list[int] = []  # the last job's blocks run by the caller, then by each helper
        self.serve = _serve  # a helper's compiled wait (its own attribute: a test makes one pool's fail)

    def run_ops(self, arena: np.ndarray, ops: np.ndarray, index: np.ndarray, floats: np.ndarray,
                weights16: np.ndarray, counts: np.ndarray, block: int,
                copies: Sequence[tuple[np.ndarray, int]] = ()) -> None:
        """``native_plan.run_ops``, its blocks shared by the caller and the helpers: the same numbers and counts.
        ``copies``: (float32 (N, size) values, the column they go to) copied into each block's rows of the work
        array before it runs (a batch's inputs: copied by every core, into the block while it is in cache). A
        call while another thread's runs (its job holds the control block) runs in the caller alone."""
        if not self.busy.acquire(blocking=False):
            for values, column in copies:
                arena[:, column:column + values.shape[1]] = values
            native_plan.run_ops(arena, ops, index, floats, weights16, counts, block)
            return
        try:
            self._raise_failure()
            self._start_helpers()
            rows = np.zeros((self.helpers + 1, len(counts)), dtype=np.int64)  # the caller's, then each helper's
            self.seq = self.seq % 0x7FFFFFFF + 1
            into = np.array([(values.ctypes.data, column, values.shape[1]) for values, column in copies],
                            dtype=np.int64).reshape(-1, COPY_FIELDS)
            asleep = _post(self.control, arena, ops, index, floats, weights16, rows, into, block, self.seq,
                           self.helpers)
            for h in range(self.helpers):
                if asleep >> h & 1:
                    self.wake[h].set()
            if not _run_and_wait(self.control, self.seq):
                self._raise_failure()
            counts += rows.sum(axis=0)
            self.blocks_run = [int(self.control[RAN + LINE * r]) for r in range(self.helpers + 1)]
        finally:
            self.busy.release()

    def _raise_failure(self) -> None:
        """A helper failed: this pool is not used again (its other helpers sleep and end); its error is raised."""
        if self.error is not None:
            _forget(self)
            raise self.error

    def _start_helpers(self) -> None:
        with self.lock:
            for h in range(self.helpers):
                if not self.alive[h]:
                    self.alive[h] = True
                    threading.Thread(target=self._helper, args=(h,), name=f"gnaexp-pool-{h}",
                                     daemon=True).start()

    def _helper(self, h: int) -> None:
        seen = int(self.control[SEQ])
        try:
            while True:
                seen = self.serve(self.control, h, seen, PATIENCE_SPINS)
                woke = self.wake[h].wait(IDLE_SECONDS)
                self.wake[h].clear()
                if not woke:
                    break
        except BaseException as exc:  # noqa: BLE001 — handed to the caller, which raises it
            self.error = exc
            self.control[ERROR] = 1
        with self.lock:
            self.alive[h] = False


_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def _forget(broken: Pool) -> None:
    """A pool whose helper failed is not used again (its other helpers sleep and end)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is broken:
            _POOL = None


def pool() -> Pool | None:
    """This process's pool (None on one core)."""
    global _POOL
    if _POOL is None:
        helpers = min(parallel.available_cores(), parallel.MAX_THREADS) - 1
        if helpers < 1:
            return None
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = Pool(helpers)
    return _POOL


def _reset_after_fork() -> None:
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
