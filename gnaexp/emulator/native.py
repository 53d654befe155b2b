"""Compiled inner loops of the emulator (numba): input quantization, the 1-D convolution primitive and PWL
evaluation.

Each loop runs in the thread that calls it and releases the GIL (``nogil``), so ``parallel.run_all`` spreads a
batch over the cores without any library thread pool. Compiled once per argument types and cached on disk.

Exactness: the convolution multiplies and adds in float64. Its operands are int16 values (inputs, weights) and
an int32 bias, so every partial sum is an integer below 2^15·2^15·768 + 2^31 < 2^41 in magnitude, which
float64 represents exactly whatever the order of the additions; the result is then saturated to int32 as the
hardware does (docs/gna-rules.md §4.1). ``conv.exact_bound_ok`` checks the bound for other operands. Long
filters' products run in int16 multiply-adds (native_gemm.py) where their int32 sums are exact.

Loading numba costs a process most of a second, so nothing imports this module up front: ``kernels.compiled``
hands it out once a process has enough work for it, and NumPy equivalents run before.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from gnaexp.emulator import native_gemm as gemm  # the int16 product (where the processor has it)
from gnaexp.emulator.native_finish import POSITIONS as FOUR, finish_four
from gnaexp.emulator.int_ranges import INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN

INT32_MIN_FLOAT, INT32_MAX_FLOAT = float(INT32_MIN), float(INT32_MAX)  # for the compiled loops


@njit(nogil=True, cache=True)
def quantize_input(x, sf, out, lo, hi):  # pragma: no cover - compiled
    """out = clamp(sign(v)·floor(|v| + 0.5f), lo, hi) with v = float32(x·sf); returns (saturated, non-finite).

    All arithmetic is float32, as in the plugin's host-side rounding (docs/gna-rules.md §2). The first loop has
    no branch, so it runs vectorized; the clamping loop runs only when some value is out of range.
    """
    n, length = x.shape
    half = np.float32(0.5)
    limit = np.float32(np.inf)
    over = 0
    bad = 0
    for i in range(n):
        for j in range(length):
            v = x[i, j] * sf
            a = np.abs(v)
            q = np.floor(a + half)
            over += 1 if q > min(hi, -lo) else 0
            bad += 0 if a < limit else 1
            out[i, j] = -q if v < 0 else q
    saturated = 0
    if over:
        for i in range(n):
            for j in range(length):
                q = out[i, j]
                if q > hi:
                    out[i, j] = hi
                    saturated += 1
                elif q < lo:
                    out[i, j] = lo
                    saturated += 1
    return saturated, bad


@njit(nogil=True, cache=True)
def conv1d_rows(x, channels, width, interleave, blocks, bias, stride, out):  # pragma: no cover - compiled
    """The GNA 1-D convolution primitive on each sample of x; returns how many sums saturated int32.

    x: (N, L) int16 values. With ``interleave`` x is NCW data (L = C·W) that the host writes interleaved
    (memory element w·C + c = x[c, w]); without it x is the flat memory itself (zero beyond L).
    blocks: (B, F, step) filter coefficients cut into blocks of one stride (step = C·S elements): output
    position j of filter f is bias[f] + Σ_b Σ_u mem[(j + b)·step + u]·blocks[b, f, u].
    out: (N, F, P) float64, P positions (all that the primitive computes), int32-saturated.
    """
    n, length = x.shape
    n_blocks, n_filters, step = blocks.shape
    positions = out.shape[2]
    rows = positions + n_blocks - 1
    # Memory as a (step, rows) table, so that the sums over positions run along contiguous memory.
    table = np.zeros((step, rows), dtype=np.float64)
    acc = np.empty(positions, dtype=np.float64)
    saturated = 0
    for i in range(n):
        # Only the cells that hold data are written: the zero padding beyond the data stays from np.zeros.
        if interleave:  # element r·step + u is x[c, w] with u = s·C + c, w = r·S + s
            for u in range(step):
                c = u % channels
                s = u // channels
                base = c * width + s
                filled = min(rows, (width - s + stride - 1) // stride) if s < width else 0
                for r in range(filled):
                    table[u, r] = x[i, base + r * stride]
        else:
            for u in range(step):
                filled = min(rows, (length - u + step - 1) // step) if u < length else 0
                for r in range(filled):
                    table[u, r] = x[i, r * step + u]
        for f in range(n_filters):
            for j in range(positions):
                acc[j] = bias[f]
            for b in range(n_blocks):
                for u in range(step):
                    w_fu = blocks[b, f, u]
                    if w_fu != 0.0:
                        for j in range(positions):
                            acc[j] += w_fu * table[u, j + b]
            for j in range(positions):
                a = acc[j]
                saturated += (1 if a > INT32_MAX_FLOAT else 0) + (1 if a < INT32_MIN_FLOAT else 0)
                out[i, f, j] = min(max(a, INT32_MIN_FLOAT), INT32_MAX_FLOAT)
    return saturated


@njit(nogil=True, cache=True)
def conv1d_windows(x, index, weights, bias, out):  # pragma: no cover - compiled
    """The same sums as ``conv1d_rows`` for a few samples with long filters, read through a window index;
    returns how many sums saturated int32.

    x: (N, L) int16 values; index: (P, T) the input element tap t of position j reads (L: the zero padding);
    weights: (T, F) the filters' taps (float64, or int16 from ``compact``); bias: (F,); out: (N, F, P) float64,
    int32-saturated. The inner loop runs
    over the filters (contiguous, vectorized), and a zero input adds nothing, so it is skipped (ReLU outputs are
    mostly zeros). Exact in any order of the additions (see above).
    """
    n, length = x.shape
    positions, taps = index.shape
    filters = weights.shape[1]
    acc = np.empty(filters, dtype=np.float64)
    saturated = 0
    for i in range(n):
        for j in range(positions):
            for f in range(filters):
                acc[f] = 0.0
            for t in range(taps):
                k = index[j, t]
                if k < length:
                    v = np.float64(x[i, k])
                    if v != 0.0:
                        for f in range(filters):
                            acc[f] += v * weights[t, f]
            for f in range(filters):
                a = acc[f] + bias[f]
                saturated += (1 if a > INT32_MAX_FLOAT else 0) + (1 if a < INT32_MIN_FLOAT else 0)
                out[i, f, j] = min(max(a, INT32_MIN_FLOAT), INT32_MAX_FLOAT)
    return saturated


@njit(nogil=True, cache=True)
def conv_windows(x, index, windows, peaks):  # pragma: no cover - compiled
    """The matrix product's left operand: windows[i·P + j, t] = x[i, index[j, t]], 0 where the index is L (the
    zero padding past the data); x: (N, L), index: (P, T), windows: (≥ N·P, ≥ T) float64, or int16 for the int16
    product (x's values then fit int16), zeros past N·P rows and T columns (its padding). Reads x itself, no
    padded copy. Unless ``peaks`` is empty (it must be for float64 windows), peaks[i] = max |x[i, k]| over the
    values the windows read (which of the samples the int16 product holds exactly, int_product.py), taken from
    each int16 window while it is in cache (an integer maximum: it vectorizes, a float one does not)."""
    n, length = x.shape
    positions, taps = index.shape
    track = peaks.shape[0] > 0
    for i in range(n):
        peak = np.int32(0)
        for j in range(positions):
            row = windows[i * positions + j]
            for t in range(taps):
                k = index[j, t]
                row[t] = x[i, k] if k < length else 0.0
            row[taps:] = 0
            if track:
                for t in range(taps):
                    a = abs(np.int32(row[t]))
                    peak = a if a > peak else peak
        if track:
            peaks[i] = peak
    windows[n * positions:] = 0


@njit(nogil=True, cache=True)
def conv_finish(acc, bias, out):  # pragma: no cover - compiled
    """The matrix product's sums to the primitive's output in one pass: out[i, f, j] = sat32(acc[i·P + j, f] +
    bias[f]) for the first Q positions out holds (out: (N, F, Q), acc: (N·P, F), Q ≤ P); returns how many of all P
    positions' sums saturated int32 (the positions past Q count too, as the primitive computes them)."""
    return _finish_columns(acc, None, bias, out)


@njit(nogil=True, cache=True)
def conv_windows_pair(x, first, second, plus, minus, peaks):  # pragma: no cover - compiled
    """A folded kernel's windows (conv_fold.py): plus/minus[i·P + j, k] = x[i, first[j, k]] ± x[i, second[j, k]],
    an index of L reading 0 (the zero padding, and the centre's missing second tap); float64 windows, or int16
    ones (x then within ±16383), padded with zeros as ``conv_windows``'s; peaks, unless empty, as
    ``conv_windows``'s, of x's values (not of their sums, which int16 may not hold)."""
    n, length = x.shape
    positions, pairs = first.shape
    track = peaks.shape[0] > 0
    for i in range(n):
        p0 = p1 = 0.0  # running maxima of the first and of the second taps' values
        for j in range(positions):
            p_row, m_row = plus[i * positions + j], minus[i * positions + j]
            for k in range(pairs):
                a, b = first[j, k], second[j, k]
                u = np.float64(x[i, a]) if a < length else 0.0
                v = np.float64(x[i, b]) if b < length else 0.0
                p_row[k] = u + v
                m_row[k] = u - v
                if track:
                    p0, p1 = max(p0, abs(u)), max(p1, abs(v))
            p_row[pairs:] = 0
            m_row[pairs:] = 0
        if track:
            peaks[i] = max(p0, p1)
    plus[n * positions:] = 0
    minus[n * positions:] = 0


@njit(nogil=True, cache=True)
def conv_finish_pair(acc_plus, acc_minus, cols_plus, cols_minus, bias, out):  # pragma: no cover - compiled
    """``conv_finish`` for a folded kernel: the two groups' sums go to their filters' columns of out."""
    return _finish_columns(acc_plus, cols_plus, bias, out) + _finish_columns(acc_minus, cols_minus, bias, out)


@njit(nogil=True, cache=True)
def _finish_columns(acc, cols, bias, out):  # pragma: no cover - compiled
    """Column q of acc is filter cols[q] (None: filter q): out[i, cols[q], j] = sat32(acc[i·P + j, q] +
    bias[cols[q]]) for the positions and filters out keeps (the filters past its second axis, porting's zero
    filters, are counted, not written); returns the saturated count over all P positions. None compiles its own
    loop, without the indirection (it vectorizes)."""
    n, kept_filters, kept = out.shape
    positions = acc.shape[0] // n
    columns = bias.shape[0] if cols is None else len(cols)  # acc may have more: the int16 product's padding
    if positions == kept == FOUR and out.strides[2] == 8 and out.strides[1] == 8 * FOUR:  # through registers
        if cols is None:
            return finish_four(acc, np.arange(columns), bias, out)
        return finish_four(acc, cols, bias, out)
    saturated = 0
    for i in range(n):
        for j in range(positions):
            row = acc[i * positions + j]
            for q in range(columns):
                f = q if cols is None else cols[q]
                a = row[q] + bias[f]
                saturated += (1 if a > INT32_MAX_FLOAT else 0) + (1 if a < INT32_MIN_FLOAT else 0)
                if j < kept and f < kept_filters:
                    out[i, f, j] = min(max(a, INT32_MIN_FLOAT), INT32_MAX_FLOAT)
    return saturated


PWL_BLOCK = 1024  # values per pass over the segments: the block stays in the L1 cache through every pass
SEARCH_TOP = 4  # the search's first halvings, done as counts of 15 bucket edges (cheaper than gathers)
SEARCH_MIN_SEGMENTS = 40  # from here a search per block beats a pass per segment (61 segments: 5.7 vs 8.3 ns a value)


@njit(nogil=True, cache=True)
def pwl_rows(x, xv, ybase, slope, inv_scale, out):  # pragma: no cover - compiled
    """out = the GNA PWL of every value of x (flat float64 integers); returns how many outputs saturated int16.

    The same arithmetic as ``pwl.evaluate`` in the same order, so the results are the same bits: the last
    segment s with xv[s] ≤ x, y = floor((x − xv[s])·slope[s]·inv_scale[s]) + ybase[s], the first segment's yBase
    at or below its xBase, saturated to int16. The segment is found without a branch per value, which a
    processor cannot predict: up to SEARCH_MIN_SEGMENTS segments by one pass per segment over a block of values,
    each pass keeping its line where xv[s] ≤ x (so the last such segment wins, shared xBases included; the passes
    run vectorized); beyond that (a designed power or square root has 40–61) by a search over the sorted
    xBases, one step at a time for the whole block (``_pwl_search``).
    """
    n = x.shape[0]
    segments = xv.shape[0]
    search = segments >= SEARCH_MIN_SEGMENTS
    for s in range(1, segments):
        if xv[s] < xv[s - 1]:  # the search needs xBases in order (the plugin's always are); passes take any
            search = False
    saturated = 0
    if search:
        steps = 1
        while (1 << steps) < segments:
            steps += 1
        padded = np.full(1 << steps, np.inf)  # past the last segment: never ≤ x
        padded[:segments] = xv
        found = np.empty(PWL_BLOCK, dtype=np.int64)
        for start in range(0, n, PWL_BLOCK):
            stop = min(n, start + PWL_BLOCK)
            saturated += _pwl_search(x[start:stop], padded, steps, ybase, slope, inv_scale, found, out[start:stop])
        return saturated
    for start in range(0, n, PWL_BLOCK):
        stop = min(n, start + PWL_BLOCK)
        saturated += _pwl_block(x[start:stop], xv, ybase, slope, inv_scale, out[start:stop])
    return saturated


@njit(nogil=True, cache=True)
def _pwl_search(x, padded, steps, ybase, slope, inv_scale, found, out):  # pragma: no cover - compiled
    """``pwl_rows`` on one block by search: the last index s with padded[s] ≤ x (padded: the xBases in order,
    then +inf to a power of two). The first SEARCH_TOP halvings are counts of the bucket edges at or below each
    value (one branch-free pass per edge, no gather); each further halving is one pass of gathers over the block.
    Then each value's line."""
    n = x.shape[0]
    top = min(steps, SEARCH_TOP)
    width = 1 << (steps - top)  # segments per bucket
    for i in range(n):
        found[i] = 0
    for m in range(1, 1 << top):
        edge = padded[m * width]
        for i in range(n):
            found[i] += width if edge <= x[i] else 0
    half = width
    for _ in range(steps - top):
        half >>= 1
        for i in range(n):
            s = found[i]
            found[i] = s + half if padded[s + half] <= x[i] else s
    x0, y0 = padded[0], ybase[0]
    saturated = 0
    for i in range(n):
        s = found[i]
        v = x[i]
        y = np.floor((v - padded[s]) * slope[s] * inv_scale[s]) + ybase[s]
        y = y0 if v <= x0 else y  # at or below the first xBase, whatever segments share it
        saturated += (1 if y > INT16_MAX else 0) + (1 if y < INT16_MIN else 0)
        out[i] = min(max(y, float(INT16_MIN)), float(INT16_MAX))
    return saturated


@njit(nogil=True, cache=True)
def _pwl_block(x, xv, ybase, slope, inv_scale, out):  # pragma: no cover - compiled
    """``pwl_rows`` on one block (loops from 0 over whole arrays: the form the compiler vectorizes)."""
    n = x.shape[0]
    x0, y0, s0, c0 = xv[0], ybase[0], slope[0], inv_scale[0]
    for i in range(n):
        out[i] = np.floor((x[i] - x0) * s0 * c0) + y0
    for s in range(1, xv.shape[0]):
        xs, ys, ss, cs = xv[s], ybase[s], slope[s], inv_scale[s]
        for i in range(n):
            v = x[i]
            y = np.floor((v - xs) * ss * cs) + ys
            out[i] = y if xs <= v else out[i]
    saturated = 0
    for i in range(n):
        y = y0 if x[i] <= x0 else out[i]  # at or below the first xBase, whatever segments share it
        saturated += (1 if y > INT16_MAX else 0) + (1 if y < INT16_MIN else 0)
        out[i] = min(max(y, float(INT16_MIN)), float(INT16_MAX))
    return saturated


def warm_up() -> None:
    """Compile (or load from the disk cache) every variant the emulator calls, on tiny arrays.

    A process that forks workers calls this first, so that no forked child pays the compilation.
    """
    x = np.zeros((1, 8), np.float32)
    quantize_input(x, np.float32(1.0), np.empty_like(x), np.float32(INT16_MIN), np.float32(INT16_MAX))
    for segments in (2, SEARCH_MIN_SEGMENTS):  # passes, search
        xv = np.arange(segments, dtype=np.float64)
        pwl_rows(np.zeros(4), xv, np.zeros(segments), np.zeros(segments), np.ones(segments), np.empty(4))
    blocks, bias = np.zeros((2, 4, 4)), np.zeros(4)
    cols = np.arange(2, dtype=np.intp)
    for acc_type in (np.float64, np.int32):  # the float64 product's sums, the int16 product's
        for out in (np.empty((1, 4, 1)), np.empty((1, 4, 2))[:, :, :1]):  # an array, a plan's work array columns
            conv_finish(np.zeros((2, 4), acc_type), bias, out)
            pair = np.zeros((2, 2), acc_type)
            conv_finish_pair(pair, pair, cols, cols + 2, bias, out)
    gemm.warm_up()
    for dtype in (np.float32, np.float64):  # quantized inputs are float32, PWL outputs float64
        for interleave in (True, False):
            conv1d_rows(np.zeros((1, 8), dtype), 2, 4, interleave, blocks, bias, 2, np.empty((1, 4, 2)))
        for x in (np.zeros((1, 8), dtype), np.zeros((1, 9), dtype)[:, :8]):  # rows together, rows apart
            pair = np.zeros((2, 4), np.intp)
            for windows in (np.empty((2, 4)), np.empty((4, 32), np.int16)):  # float64 product's, int16 product's
                for peaks in (np.empty(0), np.empty(1)):  # unchecked, checked
                    conv_windows(x, pair, windows, peaks)
                    conv_windows_pair(x, pair, pair, windows, np.empty_like(windows), peaks)
        for weights in (np.zeros((4, 4)), np.zeros((4, 4), np.int16)):  # compact() gives either
            conv1d_windows(np.zeros((1, 8), dtype), np.zeros((2, 4), np.intp), weights, bias, np.empty((1, 4, 2)))
