"""The compiled plan's loop (numba): every lowered step of a plan segment in one call, on one work array.

``plan_compile`` lowers the steps to rows of ``ops`` and the tensors to columns of ``arena`` (N samples × the
values of every live tensor); this loop runs the rows in order, each over the N samples, without returning to
Python between steps. Each row is (code, in0, in1, out, size, p0 … p5): in0/in1/out are column offsets, size the
values per sample, p… offsets into the parameter pools and per-op counts. Per row it returns how many values
saturated, as the step's interpreted run counts them.

Exactness: the same float64 arithmetic as the steps' NumPy and compiled forms (pwl.evaluate, eltwise.py,
primitives.Affine), on integers whose every product and partial sum stays below 2^53, so any order of the
additions (the matrix products use fused multiply-adds and reordered sums) gives the same bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from gnaexp.emulator.int_ranges import INT16_BOUND, INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN
from gnaexp.emulator.int_product import K_ALIGN, ROW_ALIGN, FILTER_ALIGN
from gnaexp.emulator.native import PWL_BLOCK, pwl_rows
from gnaexp.emulator.native_conv import CONV_FIELDS, conv_row
from gnaexp.emulator.native_gemm import product as int16_product
from gnaexp.emulator.native_pwl import LANES as PWL_LANES, pwl_indexed, pwl_small_rows
from gnaexp.emulator.pwl_index import WINDOW_SIZE as PWL_WINDOW_SIZE

GATHER, CONST, PWL, SUM, PROD, SCALE, SCALESHIFT, FC, CONV, QUANT = range(10)
NON_FINITE = -(1 << 40)  # a quantization's count when its input held NaN or infinity (any sum of counts stays < 0)
WIDTH = 11  # columns of an op row
GATHER_RUN_FIELDS = 4  # a gather's run (gather_runs)
BLOCK_BYTES = 1 << 19  # the work array a block of samples runs through a segment with (half a core's L2)
LO32, HI32, LO16, HI16 = float(INT32_MIN), float(INT32_MAX), float(INT16_MIN), float(INT16_MAX)


@njit(nogil=True, cache=True, inline="always")
def _sat32(a):  # pragma: no cover - compiled
    if a > HI32:
        return HI32, 1
    if a < LO32:
        return LO32, 1
    return a, 0


@njit(nogil=True, cache=True)
def _fc_int(arena, x_off, out_off, rows, k, m, wt, bias, limit):  # pragma: no cover - compiled
    """``_fc`` in the int16 product (native_gemm.py): wt the (m, k) weights padded to (FILTER_ALIGN, K_ALIGN)
    multiples with zeros, ``int_product.pack``ed. A row whose peak |x| is within ``limit`` (int_product.py) takes
    one product; a louder one is split x = 256·(x >> 8) + (x & 255) into two rows whose sums int32 holds for any
    int16 x (plan_compile checked Σ|w|·255 < 2^31), recombined in int64: every sum exact."""
    n = arena.shape[0]
    total = n * rows
    filters, taps = wt.shape[1] // 2, 2 * wt.shape[0]
    slot = np.empty(total, dtype=np.int64)  # ≥ 0: the row's product row; < 0: −1 − its high part's row
    quiet = 0
    for g in range(total):
        src = arena[g // rows, x_off + (g % rows) * k: x_off + (g % rows) * k + k]
        peak = np.int32(0)
        if limit < INT16_BOUND:  # an integer maximum (x is int16): it vectorizes, a float one does not
            for j in range(k):
                a = abs(np.int32(src[j]))
                peak = a if a > peak else peak
        if peak <= limit:
            slot[g] = quiet
            quiet += 1
        else:
            slot[g] = -1
    loud = total - quiet
    xs = np.zeros(((quiet + 2 * loud + ROW_ALIGN - 1) // ROW_ALIGN * ROW_ALIGN, taps), dtype=np.int16)
    next_loud = quiet
    for g in range(total):
        src = arena[g // rows, x_off + (g % rows) * k: x_off + (g % rows) * k + k]
        if slot[g] >= 0:
            row = xs[slot[g]]
            for j in range(k):
                row[j] = np.int16(src[j])
        else:
            slot[g] = -1 - next_loud
            high, low = xs[next_loud], xs[next_loud + loud]
            for j in range(k):
                v = np.int64(src[j])
                high[j] = v >> 8
                low[j] = v & 255
            next_loud += 1
    acc = np.empty((xs.shape[0], filters), dtype=np.int32)
    int16_product(xs, wt, acc)
    saturated = 0
    for g in range(total):
        dst = arena[g // rows, out_off + (g % rows) * m: out_off + (g % rows) * m + m]
        s = slot[g]
        if s >= 0:
            sums = acc[s]
            for f in range(m):
                v = np.float64(sums[f]) + bias[f]
                saturated += (1 if v > HI32 else 0) + (1 if v < LO32 else 0)
                dst[f] = min(max(v, LO32), HI32)
        else:
            high, low = acc[-1 - s], acc[-1 - s + loud]
            for f in range(m):
                v = np.float64(256 * np.int64(high[f]) + np.int64(low[f])) + bias[f]
                saturated += (1 if v > HI32 else 0) + (1 if v < LO32 else 0)
                dst[f] = min(max(v, LO32), HI32)
    return saturated


@njit(nogil=True, cache=True)
def _quant(arena, x_off, out_off, size, sf):  # pragma: no cover - compiled
    """``quantize.quantize_input`` (the same float32 arithmetic) of the columns from x_off, which hold float32
    values, into those from out_off: the saturated count, or NON_FINITE where a value was NaN or infinite after
    scaling. Each sample's scaled values go to a buffer first, then one pass rounds and writes them: the columns
    may be the same or overlap, and both loops run vectorized (0.18 ns a value; in place 0.79). The clamping pass
    runs only when some value is out of range."""
    n = arena.shape[0]
    scaled = np.empty(size, dtype=np.float32)
    scale, half, limit = np.float32(sf), np.float32(0.5), np.float32(np.inf)
    top = np.float32(min(INT16_MAX, -INT16_MIN))
    over = 0
    bad = 0
    for i in range(n):
        x = arena[i, x_off:x_off + size]
        for j in range(size):
            scaled[j] = np.float32(x[j]) * scale
        out = arena[i, out_off:out_off + size]
        for j in range(size):
            v = scaled[j]
            a = np.abs(v)
            q = np.floor(a + half)
            over += 1 if q > top else 0
            bad += 0 if a < limit else 1
            out[j] = np.float64(-q if v < 0 else q)
    if bad:
        return NON_FINITE
    saturated = 0
    if over:
        for i in range(n):
            out = arena[i, out_off:out_off + size]
            for j in range(size):
                if out[j] > HI16:
                    out[j] = HI16
                    saturated += 1
                elif out[j] < LO16:
                    out[j] = LO16
                    saturated += 1
    return saturated


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _fc(arena, x_off, out_off, rows, k, m, wt, bias):  # pragma: no cover - compiled
    """out row g = sat32(x row g · Wᵀ + bias) for the n·rows rows of k inputs (wt: (m, k)); saturated count.
    Four rows by two outputs at a time (a four-by-two tile of sums in registers), the rest one row by four."""
    total = arena.shape[0] * rows
    saturated = 0
    g = 0
    while g + 4 <= total:
        xs = [arena[(g + r) // rows, x_off + ((g + r) % rows) * k: x_off + ((g + r) % rows) * k + k] for r in range(4)]
        x0, x1, x2, x3 = xs[0], xs[1], xs[2], xs[3]
        for f in range(0, m - 1, 2):
            wa, wb = wt[f], wt[f + 1]
            s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = 0.0
            for j in range(k):
                a, b = np.float64(wa[j]), np.float64(wb[j])
                s0 += x0[j] * a
                s1 += x1[j] * a
                s2 += x2[j] * a
                s3 += x3[j] * a
                t0 += x0[j] * b
                t1 += x1[j] * b
                t2 += x2[j] * b
                t3 += x3[j] * b
            sums = (s0, s1, s2, s3, t0, t1, t2, t3)
            for q in range(8):
                r, ff = q % 4, f + q // 4
                v, s = _sat32(sums[q] + bias[ff])
                arena[(g + r) // rows, out_off + ((g + r) % rows) * m + ff] = v
                saturated += s
        if m % 2:
            f = m - 1
            wa = wt[f]
            s0 = s1 = s2 = s3 = 0.0
            for j in range(k):
                a = np.float64(wa[j])
                s0 += x0[j] * a
                s1 += x1[j] * a
                s2 += x2[j] * a
                s3 += x3[j] * a
            sums4 = (s0, s1, s2, s3)
            for r in range(4):
                v, s = _sat32(sums4[r] + bias[f])
                arena[(g + r) // rows, out_off + ((g + r) % rows) * m + f] = v
                saturated += s
        g += 4
    while g < total:
        i, base = g // rows, (g % rows)
        x0 = arena[i, x_off + base * k: x_off + base * k + k]
        o = out_off + base * m
        f = 0
        while f + 4 <= m:
            wa, wb, wc, wd = wt[f], wt[f + 1], wt[f + 2], wt[f + 3]
            s0 = s1 = s2 = s3 = 0.0
            for j in range(k):
                v0 = x0[j]
                s0 += v0 * np.float64(wa[j])
                s1 += v0 * np.float64(wb[j])
                s2 += v0 * np.float64(wc[j])
                s3 += v0 * np.float64(wd[j])
            sums4 = (s0, s1, s2, s3)
            for q in range(4):
                v, s = _sat32(sums4[q] + bias[f + q])
                arena[i, o + f + q] = v
                saturated += s
            f += 4
        while f < m:
            wa = wt[f]
            s0 = 0.0
            for j in range(k):
                s0 += x0[j] * np.float64(wa[j])
            v, s = _sat32(s0 + bias[f])
            arena[i, o + f] = v
            saturated += s
            f += 1
        g += 1
    return saturated


@njit(nogil=True, cache=True)
def _pwl(arena, x_off, out_off, size, xv, ybase, slope, inv_scale, lo, hi, scale, index,
         indexed):  # pragma: no cover - compiled
    """``native.pwl_rows`` (the one PWL loop) on one tensor times ``scale``, plus the values past a design domain
    [lo, hi] (NaN: none) counted. ``index``: the segment index's (pwl_index.py) bits, first key and buckets as
    plan_compile stores them, with its table (``indexed``); or minus the halvings of a small table (then
    ``indexed``); or empty: the passes or search of pwl_rows."""
    saturated = 0
    n = arena.shape[0]
    if index.shape[0] and index[0] < 0:  # a small table: scaled, counted and looked up in one pass of all rows
        return pwl_small_rows(arena, x_off, out_off, size, scale, lo, hi, xv[0], ybase[0], indexed, -index[0])
    if index.shape[0]:  # scaled, counted and indexed in one pass, row by row
        table = indexed[:8 * index[2]].reshape((index[2], 8))
        window = indexed[8 * index[2]:]
        tail = np.empty(2 * PWL_LANES)
        for i in range(n):
            saturated += pwl_indexed(arena[i, x_off:x_off + size], scale, lo, hi, xv[0], ybase[0], table, index[0],
                                     index[1], arena[i, out_off:out_off + size], tail, window)
        return saturated
    # short rows (a recurrent cell's gates) go several to a block: each pass over the segments then runs long
    per_block = max(1, PWL_BLOCK // size)
    scaled = np.empty(per_block * size, dtype=np.float64)
    result = np.empty(per_block * size, dtype=np.float64)
    for first in range(0, n, per_block):
        rows = min(per_block, n - first)
        for r in range(rows):
            saturated += _scale_count_row(arena[first + r, x_off:x_off + size], scale, lo, hi,
                                          scaled[r * size:(r + 1) * size])
        values = rows * size
        direct = rows == 1  # one row: straight into the work array
        dest = arena[first, out_off:out_off + size] if direct else result[:values]
        saturated += pwl_rows(scaled[:values], xv, ybase, slope, inv_scale, dest)
        if not direct:
            for r in range(rows):
                arena[first + r, out_off:out_off + size] = result[r * size:(r + 1) * size]
    return saturated


@njit(nogil=True, cache=True, inline="always")
def _scale_count_row(x, scale, lo, hi, out):  # pragma: no cover - compiled
    saturated = 0
    for j in range(x.shape[0]):
        v = x[j] * scale
        out[j] = v
        saturated += (1 if v < lo else 0) + (1 if v > hi else 0)  # NaN bounds compare false
    return saturated


# One sample's row at a time, on 1-D slices: the compiler vectorizes these loops (the same loops indexing the 2-D
# work array ran about six times slower).

@njit(nogil=True, cache=True, inline="always")
def _sum_row(x, y, w, out):  # pragma: no cover - compiled
    saturated = 0
    for j in range(x.shape[0]):
        v = x[j] * w + y[j]
        saturated += (1 if v > HI32 else 0) + (1 if v < LO32 else 0)
        out[j] = min(max(v, LO32), HI32)
    return saturated


@njit(nogil=True, cache=True, inline="always")
def _prod_row(x, y, out):  # pragma: no cover - compiled
    saturated = 0
    for j in range(x.shape[0]):
        v = x[j] * y[j]
        saturated += (1 if v > HI32 else 0) + (1 if v < LO32 else 0)
        out[j] = min(max(v, LO32), HI32)
    return saturated


@njit(nogil=True, cache=True, inline="always")
def _scaleshift_row(x, w, b, out):  # pragma: no cover - compiled
    saturated = 0
    for j in range(x.shape[0]):
        v = x[j] * w[j] + b[j]
        saturated += (1 if v > HI32 else 0) + (1 if v < LO32 else 0)
        out[j] = min(max(v, LO32), HI32)
    return saturated


@njit(nogil=True, cache=True, inline="always")
def _scale_row(x, w, out):  # pragma: no cover - compiled
    for j in range(x.shape[0]):
        out[j] = x[j] * w


@njit(nogil=True, cache=True, inline="always")
def _gather_row(row, index, out):  # pragma: no cover - compiled
    for j in range(index.shape[0]):
        c = index[j]
        out[j] = row[c - 1] if c > 0 else 0.0


@njit(nogil=True, cache=True, inline="always")
def _gather_runs(row, runs, out):  # pragma: no cover - compiled
    """``_gather_row`` through runs (``gather_runs``): each a loop that vectorizes (0.5 ns a value through the
    index), a backward one through an unsigned index (a signed one is checked for wrapping around)."""
    for r in range(runs.shape[0]):
        at, source, count, step = runs[r, 0], runs[r, 1], runs[r, 2], runs[r, 3]
        part = out[at:at + count]
        if source < 0:
            part[:] = 0.0
        elif step > 0:
            values = row[source:source + count]
            for t in range(count):
                part[t] = values[t]
        else:
            values = row[source - count + 1:source + 1]
            last = np.uint64(count - 1)
            for t in range(count):
                part[t] = values[last - np.uint64(t)]


def gather_runs(index: np.ndarray, shortest: int = 8) -> np.ndarray | None:
    """A gather's index (1 + the column each value comes from, 0 for a zero) as runs (GATHER_RUN_FIELDS a row:
    where they go, their first column (−1: zeros), how many, ±1: columns counting up or down); None when the runs
    average fewer than ``shortest`` values."""
    runs = []
    j = 0
    while j < len(index):
        c = int(index[j])
        end = j + 1
        step = -1 if end < len(index) and c > 0 and index[end] == c - 1 else 1
        while end < len(index) and (index[end] == 0 if c == 0 else index[end] == c + step * (end - j)):
            end += 1
        runs.append((j, c - 1, end - j, step))
        j = end
    if len(index) < shortest * len(runs):
        return None
    return np.array(runs, dtype=np.int64)


def _pointer_intrinsic(dtype: Any):  # pragma: no cover - runs inside numba's compiler
    @intrinsic
    def at(typingctx, address):
        """The address as a pointer to ``dtype`` (an array from its address: a row known contiguous, or a
        ``native_pool`` job's array)."""
        def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
        return types.CPointer(dtype)(types.int64), codegen
    return at


f64_at, f32_at, i64_at, i16_at = (_pointer_intrinsic(t) for t in (types.float64, types.float32, types.int64,
                                                                   types.int16))


@njit(nogil=True, cache=True)
def dequantize_rows(values, scale, out):  # pragma: no cover - compiled
    """``primitives.dequantize`` of (N, M) float64 values whose rows are contiguous (any distance apart: columns of
    the work array) into ``out`` (N, M) float32: the same float32 cast and division. Each row is read through its
    address, which tells the compiler it is contiguous, so the loop vectorizes (a strided view's does not)."""
    n, m = values.shape
    divisor = np.float32(scale)
    for i in range(n):
        row, into = carray(f64_at(values[i].ctypes.data), m), out[i]
        for j in range(m):
            into[j] = np.float32(row[j]) / divisor


def block_rows(width: int) -> int:
    """Samples a block of ``run_ops`` takes for a work array of ``width`` columns (BLOCK_BYTES of it), whole tiles
    of the int16 product where that many fit: a convolution whose windows are slices of staged rows runs one
    product a position over the block's samples (native_windows.sliding_sums), padded to whole tiles."""
    rows = max(1, BLOCK_BYTES // (8 * max(width, 1)))
    return rows - rows % ROW_ALIGN if rows > ROW_ALIGN else rows


@njit(nogil=True, cache=True)
def run_ops(arena, ops, index, floats, weights16, counts, block):  # pragma: no cover - compiled
    """Run the op rows on ``arena`` (N, columns), adding each row's saturated count to ``counts``: every op on
    ``block`` samples, then the next block, so that a segment's intermediate columns stay in the core's cache
    (``block_rows``) instead of streaming every sample's through memory once per op."""
    n = arena.shape[0]
    for first in range(0, n, block):
        _run_block(arena[first:min(n, first + block)], ops, index, floats, weights16, counts)


@njit(nogil=True, cache=True)
def _run_block(arena, ops, index, floats, weights16, counts):  # pragma: no cover - compiled
    n = arena.shape[0]
    for o in range(ops.shape[0]):
        code, a, b, out, size = ops[o, 0], ops[o, 1], ops[o, 2], ops[o, 3], ops[o, 4]
        p0, p1, p2, p3, p4, p5 = ops[o, 5], ops[o, 6], ops[o, 7], ops[o, 8], ops[o, 9], ops[o, 10]
        saturated = 0
        if code == GATHER:  # index p0…: 1 + the column each value comes from, 0 for a zero; or p1 runs at p2
            if p1:
                runs = index[p2:p2 + GATHER_RUN_FIELDS * p1].reshape((p1, GATHER_RUN_FIELDS))
                for i in range(n):
                    _gather_runs(arena[i], runs, arena[i, out:out + size])
            else:
                for i in range(n):
                    _gather_row(arena[i], index[p0:p0 + size], arena[i, out:out + size])
        elif code == CONST:
            for i in range(n):
                arena[i, out:out + size] = floats[p0:p0 + size]
        elif code == PWL:  # p1 segments; p2/p3: the domain bounds in floats (NaN: none), p4: the input's scale;
            # p5: the segment index or small table in index (0: none), its rows of 8 in floats after the tables
            # (an index's window after its rows)
            extra = 8 * index[p5 + 2] + (PWL_WINDOW_SIZE if index[p5] >= 0 else 0) if p5 else 0
            saturated = _pwl(arena, a, out, size, floats[p0:p0 + p1], floats[p0 + p1:p0 + 2 * p1],
                             floats[p0 + 2 * p1:p0 + 3 * p1], floats[p0 + 3 * p1:p0 + 4 * p1], floats[p2], floats[p3],
                             floats[p4], index[p5:p5 + (3 if p5 else 0)], floats[p0 + 4 * p1:p0 + 4 * p1 + extra])
        elif code == SCALE:  # a unit diagonal: no saturation possible
            for i in range(n):
                _scale_row(arena[i, a:a + size], floats[p0], arena[i, out:out + size])
        elif code == FC:  # p0 rows per sample, p1 inputs, p2 outputs per row, weights at p3, bias p4; p5: 0
            # float64 weights, 1 int16 weights, 2 int16 weights padded for the int16 product (the peak limit
            # after the bias)
            if p5 == 2:
                filters, taps = -(-p2 // FILTER_ALIGN) * FILTER_ALIGN, -(-p1 // K_ALIGN) * K_ALIGN
                padded = weights16[p3:p3 + filters * taps].reshape((taps // 2, 2 * filters))
                saturated = _fc_int(arena, a, out, p0, p1, p2, padded, floats[p4:p4 + p2], floats[p4 + p2])
            elif p5:
                wt = weights16[p3:p3 + p2 * p1].reshape((p2, p1))
                saturated = _fc(arena, a, out, p0, p1, p2, wt, floats[p4:p4 + p2])
            else:
                wt64 = floats[p3:p3 + p2 * p1].reshape((p2, p1))
                saturated = _fc(arena, a, out, p0, p1, p2, wt64, floats[p4:p4 + p2])
        elif code == CONV:  # p0: its description in index (CONV_*)
            saturated = conv_row(arena, a, out, index[p0:p0 + CONV_FIELDS], index, floats, weights16)
        elif code == QUANT:  # an input's quantization (scale at p0)
            saturated = _quant(arena, a, out, size, floats[p0])
        elif code == SUM:  # x·w + y, int32-saturated
            for i in range(n):
                saturated += _sum_row(arena[i, a:a + size], arena[i, b:b + size], floats[p0], arena[i, out:out + size])
        elif code == PROD:  # x·y
            for i in range(n):
                saturated += _prod_row(arena[i, a:a + size], arena[i, b:b + size], arena[i, out:out + size])
        else:  # SCALESHIFT x·w[j] + b[j]
            for i in range(n):
                saturated += _scaleshift_row(arena[i, a:a + size], floats[p0:p0 + size], floats[p1:p1 + size],
                                             arena[i, out:out + size])
        counts[o] += saturated


def warm_up() -> None:
    """Compile (or load from the disk cache) the loop, on a tiny program of every op, and native's loops."""
    from gnaexp.emulator import native

    native.warm_up()
    ops = np.zeros((0, WIDTH), dtype=np.int64)
    run_ops(np.zeros((1, 4)), ops, np.zeros(1, np.int64), np.zeros(4), np.zeros(4, np.int16), np.zeros(0, np.int64),
            1)
