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

import numpy as np
from numba import njit

from gnaexp.emulator.int_ranges import INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN
from gnaexp.emulator.native import pwl_rows

GATHER, CONST, PWL, SUM, PROD, SCALE, SCALESHIFT, FC = range(8)
WIDTH = 11  # columns of an op row
LO32, HI32, LO16, HI16 = float(INT32_MIN), float(INT32_MAX), float(INT16_MIN), float(INT16_MAX)


@njit(nogil=True, cache=True, inline="always")
def _sat32(a):  # pragma: no cover - compiled
    if a > HI32:
        return HI32, 1
    if a < LO32:
        return LO32, 1
    return a, 0


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
def _pwl(arena, x_off, out_off, size, xv, ybase, slope, inv_scale, lo, hi, scale):  # pragma: no cover - compiled
    """``native.pwl_rows`` (the one PWL loop) on one tensor times ``scale``, plus the values past a design domain
    [lo, hi] (NaN: none) counted."""
    scaled = np.empty(size, dtype=np.float64)
    saturated = 0
    for i in range(arena.shape[0]):
        for j in range(size):
            v = arena[i, x_off + j] * scale
            scaled[j] = v
            saturated += (1 if v < lo else 0) + (1 if v > hi else 0)  # NaN bounds compare false
        saturated += pwl_rows(scaled, xv, ybase, slope, inv_scale, arena[i, out_off:out_off + size])
    return saturated


@njit(nogil=True, cache=True)
def run_ops(arena, ops, index, floats, weights16, counts):  # pragma: no cover - compiled
    """Run the op rows on ``arena`` (N, columns), adding each row's saturated count to ``counts``."""
    n = arena.shape[0]
    for o in range(ops.shape[0]):
        code, a, b, out, size = ops[o, 0], ops[o, 1], ops[o, 2], ops[o, 3], ops[o, 4]
        p0, p1, p2, p3, p4, p5 = ops[o, 5], ops[o, 6], ops[o, 7], ops[o, 8], ops[o, 9], ops[o, 10]
        saturated = 0
        if code == GATHER:  # index p0…: 1 + the column each value comes from, 0 for a zero
            for i in range(n):
                for j in range(size):
                    c = index[p0 + j]
                    arena[i, out + j] = arena[i, c - 1] if c > 0 else 0.0
        elif code == CONST:
            for i in range(n):
                for j in range(size):
                    arena[i, out + j] = floats[p0 + j]
        elif code == PWL:  # p1 segments; p2/p3: the domain bounds in floats (NaN: none), p4: the input's scale
            saturated = _pwl(arena, a, out, size, floats[p0:p0 + p1], floats[p0 + p1:p0 + 2 * p1],
                             floats[p0 + 2 * p1:p0 + 3 * p1], floats[p0 + 3 * p1:p0 + 4 * p1], floats[p2], floats[p3],
                             floats[p4])
        elif code == SCALE:  # a unit diagonal: no saturation possible
            w = floats[p0]
            for i in range(n):
                for j in range(size):
                    arena[i, out + j] = arena[i, a + j] * w
        elif code == FC:  # p0 rows per sample, p1 inputs, p2 outputs per row, weights at p3 (int16 if p5), bias p4
            if p5:
                wt = weights16[p3:p3 + p2 * p1].reshape((p2, p1))
                saturated = _fc(arena, a, out, p0, p1, p2, wt, floats[p4:p4 + p2])
            else:
                wt64 = floats[p3:p3 + p2 * p1].reshape((p2, p1))
                saturated = _fc(arena, a, out, p0, p1, p2, wt64, floats[p4:p4 + p2])
        else:  # SUM x·w + y, PROD x·y, SCALESHIFT x·w[j] + b[j]; int32-saturated
            w = floats[p0]
            for i in range(n):
                for j in range(size):
                    x = arena[i, a + j]
                    if code == SUM:
                        v = x * w + arena[i, b + j]
                    elif code == PROD:
                        v = x * arena[i, b + j]
                    else:
                        v = x * floats[p0 + j] + floats[p1 + j]
                    r, s = _sat32(v)
                    arena[i, out + j] = r
                    saturated += s
        counts[o] += saturated


def warm_up() -> None:
    """Compile (or load from the disk cache) the loop, on a tiny program of every op, and native's loops."""
    from gnaexp.emulator import native

    native.warm_up()
    ops = np.zeros((0, WIDTH), dtype=np.int64)
    run_ops(np.zeros((1, 4)), ops, np.zeros(1, np.int64), np.zeros(4), np.zeros(4, np.int16), np.zeros(0, np.int64))
