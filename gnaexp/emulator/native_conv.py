"""A convolution as a row of the compiled plan's loop (numba): its windows (native_windows.py, or through its
window index), its sums in the int16 product (native_gemm.py), a block with a sample beyond the product's peak
limit split into bytes, and the sums finished into the work array (native.py).

Exactness: as ``conv.ConvKernel.product``: the same int16 windows reach the same int16 product, whose int32
sums are exact for samples within the peak limit; louder samples' bytes are summed apart and recombined in
float64 (exact: integers below 2^53).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import as_strided

from gnaexp.emulator.int_product import ROW_ALIGN
from gnaexp.emulator.int_ranges import INT16_BOUND
from gnaexp.emulator.native import conv_finish, conv_finish_pair, conv_windows, conv_windows_pair
from gnaexp.emulator.native_gemm import product as int16_product
from gnaexp.emulator.native_windows import RUN_FIELDS, SINGLE_FIELDS, pair_windows, sliding_sums, stage_rows, \
    stage_transposed

# a convolution's description (plan_conv.conv_row), fields of ints in the index pool: positions computed and
# kept, input values and filters a sample, whether folded; its window index (a fold's first and second taps, its
# filters' columns, symmetric then antisymmetric, and how many of each), taps (pairs) a window; each filter
# group's packed int16 weights (offset, rows, columns: two groups of three); its bias in the floats pool, the
# product's peak limit after it; the filters kept (porting's zero filters dropped); its staged row's index and
# size (0: none) and the step between its windows in it, or its pair runs, how many (0: none) and how many pairs
# left after them; a staged row that is a transposition: its base, channels (0: none), frames and leading zeros
# (native_windows.py)
(CONV_POSITIONS, CONV_KEEP, CONV_LENGTH, CONV_FILTERS, CONV_FOLD, CONV_FIRST, CONV_SECOND, CONV_COLUMNS,
 CONV_SYMMETRIC, CONV_ANTISYMMETRIC, CONV_TAPS, CONV_WEIGHTS, CONV_BIAS, CONV_KEPT_FILTERS, CONV_STAGE, CONV_STAGED,
 CONV_STEP, CONV_RUNS, CONV_RUN_COUNT, CONV_SINGLE_COUNT, CONV_T_BASE, CONV_T_CHANNELS, CONV_T_FRAMES, CONV_T_LEAD,
 CONV_FIELDS) = (*range(12), *range(17, 30))


@njit(nogil=True, cache=True)
def conv_row(arena, x_off, out_off, desc, index, floats, weights16):  # pragma: no cover - compiled
    """``conv.ConvKernel.product`` on the samples of ``arena`` (its int16 product, the loops it calls) into the
    columns from out_off, (filters × kept positions) a sample; returns the saturated count. A block with a sample
    beyond the product's peak limit runs split into bytes, every sample of it (exact for all: the same sums)."""
    n = arena.shape[0]
    keep, kept = desc[CONV_KEEP], desc[CONV_KEPT_FILTERS]  # the sums finished straight into the work array, porting's filters dropped
    out = as_strided(arena[:, out_off:out_off + kept * keep], shape=(n, kept, keep),
                     strides=(arena.strides[0], keep * 8, 8))
    return _conv_sums(arena, x_off, out, desc, index, floats, weights16)


@njit(nogil=True, cache=True, inline="always")
def _conv_sums(x, x_off, out, desc, index, floats, weights16):  # pragma: no cover - compiled
    """``_conv``'s sums of the values from column x_off of x into ``out`` (samples, filters kept, positions kept);
    the saturated count. (x whole and an offset, not a slice of its columns: rows of x then are contiguous, which
    lets the window loops vectorize.)"""
    n = x.shape[0]
    positions, length, filters, fold = desc[CONV_POSITIONS], desc[CONV_LENGTH], desc[CONV_FILTERS], desc[CONV_FOLD]
    bias = floats[desc[CONV_BIAS]:desc[CONV_BIAS] + filters]
    limit = floats[desc[CONV_BIAS] + filters]
    columns = index[desc[CONV_COLUMNS]:desc[CONV_COLUMNS] + desc[CONV_SYMMETRIC] + desc[CONV_ANTISYMMETRIC]]
    symmetric, antisymmetric = columns[:desc[CONV_SYMMETRIC]], columns[desc[CONV_SYMMETRIC]:]
    rows = n * positions
    wt0 = _packed(weights16, desc, 0)
    wt1 = _packed(weights16, desc, 1) if fold else wt0
    if desc[CONV_STAGED]:  # windows as slices of one staged row a sample (native_windows.sliding_layout)
        win0 = np.empty(((n + ROW_ALIGN - 1) // ROW_ALIGN * ROW_ALIGN, desc[CONV_STAGED]), dtype=np.int16)
    else:
        win0 = np.empty(((rows + ROW_ALIGN - 1) // ROW_ALIGN * ROW_ALIGN, 2 * wt0.shape[0]), dtype=np.int16)
    win1 = np.empty((win0.shape[0] if fold else 0, 2 * wt1.shape[0]), dtype=np.int16)
    peaks = np.empty(n if limit < INT16_BOUND else 0)
    _windows(x, x_off, desc, index, win0, win1, peaks)
    quiet = True
    for i in range(peaks.shape[0]):
        quiet = quiet and peaks[i] <= limit
    if quiet:
        acc0, acc1 = _window_sums(win0, win1, wt0, wt1, desc)
        if not fold:
            return conv_finish(acc0[:rows], bias, out)
        return conv_finish_pair(acc0[:rows], acc1[:rows], symmetric, antisymmetric, bias, out)
    # x = 256·⌊x/256⌋ + x mod 256: bytes whose sums the product holds (the kernel's limit is at least 255)
    high = np.empty((n, length))
    low = np.empty((n, length))
    for i in range(n):
        _bytes(x[i, x_off:x_off + length], high[i], low[i])
    sums = []
    for part in (high, low):
        _windows(part, 0, desc, index, win0, win1, peaks[:0])
        sums.append(_window_sums(win0, win1, wt0, wt1, desc))
    whole0 = np.empty((rows, sums[0][0].shape[1]))
    whole1 = np.empty((rows, sums[0][1].shape[1]))
    for r in range(rows):
        for f in range(whole0.shape[1]):
            whole0[r, f] = 256.0 * np.float64(sums[0][0][r, f]) + np.float64(sums[1][0][r, f])
        if fold:
            for f in range(whole1.shape[1]):
                whole1[r, f] = 256.0 * np.float64(sums[0][1][r, f]) + np.float64(sums[1][1][r, f])
    if not fold:
        return conv_finish(whole0, bias, out)
    return conv_finish_pair(whole0, whole1, symmetric, antisymmetric, bias, out)


@njit(nogil=True, cache=True, inline="always")
def _windows(x, x_off, desc, index, win0, win1, peaks):  # pragma: no cover - compiled
    """A convolution's windows of the values from column x_off of x into win0 (a fold's plus windows; staged rows)
    and win1 (a fold's minus windows), the samples' peaks unless empty: staged, through runs, or through the
    window index."""
    positions, taps, length = desc[CONV_POSITIONS], desc[CONV_TAPS], desc[CONV_LENGTH]
    if desc[CONV_T_CHANNELS]:
        stage_transposed(x, x_off, desc[CONV_T_BASE], desc[CONV_T_CHANNELS], desc[CONV_T_FRAMES], desc[CONV_T_LEAD],
                         win0, peaks)
    elif desc[CONV_STAGED]:
        stage_rows(x, x_off, length, index[desc[CONV_STAGE]:desc[CONV_STAGE] + desc[CONV_STAGED]], win0, peaks)
    elif desc[CONV_RUN_COUNT]:
        at, count, left = desc[CONV_RUNS], desc[CONV_RUN_COUNT], desc[CONV_SINGLE_COUNT]
        runs = index[at:at + RUN_FIELDS * count].reshape((count, RUN_FIELDS))
        at += RUN_FIELDS * count
        singles = index[at:at + SINGLE_FIELDS * left].reshape((left, SINGLE_FIELDS))
        pair_windows(x, x_off, runs, singles, positions, taps, win0, win1, peaks)
    else:
        first = index[desc[CONV_FIRST]:desc[CONV_FIRST] + positions * taps].reshape((positions, taps))
        if desc[CONV_FOLD]:
            second = index[desc[CONV_SECOND]:desc[CONV_SECOND] + positions * taps].reshape((positions, taps))
            conv_windows_pair(x[:, x_off:x_off + length], first, second, win0, win1, peaks)
        else:
            conv_windows(x[:, x_off:x_off + length], first, win0, peaks)


@njit(nogil=True, cache=True, inline="always")
def _window_sums(win0, win1, wt0, wt1, desc):  # pragma: no cover - compiled
    """The int16 product of ``_windows``' windows: (the first group's sums, the second's: a fold's, else empty)."""
    if desc[CONV_STAGED]:
        return sliding_sums(win0, wt0, desc[CONV_POSITIONS], desc[CONV_STEP]), np.empty((0, 0), dtype=np.int32)
    return _group_sums(win0, win1, wt0, wt1, desc[CONV_FOLD])


@njit(nogil=True, cache=True, inline="always")
def _group_sums(win0, win1, wt0, wt1, fold):  # pragma: no cover - compiled
    """The int16 product of each filter group's windows (the second only for a folded kernel; else empty)."""
    acc0 = np.empty((win0.shape[0], wt0.shape[1] // 2), dtype=np.int32)
    int16_product(win0, wt0, acc0)
    acc1 = np.empty((win1.shape[0], wt1.shape[1] // 2), dtype=np.int32)
    if fold:
        int16_product(win1, wt1, acc1)
    return acc0, acc1


@njit(nogil=True, cache=True, inline="always")
def _bytes(x, high, low):  # pragma: no cover - compiled
    """high = ⌊x/256⌋, low = x − 256·high (exact: integers, a power-of-two scale), as conv._split_product."""
    for k in range(x.shape[0]):
        h = np.floor(x[k] * (1.0 / 256.0))
        high[k] = h
        low[k] = x[k] - 256.0 * h


@njit(nogil=True, cache=True, inline="always")
def _packed(weights16, desc, group):  # pragma: no cover - compiled
    """A convolution's filter group's int16 weights as int_product.pack laid them out."""
    offset, rows, columns = desc[CONV_WEIGHTS + 3 * group], desc[CONV_WEIGHTS + 3 * group + 1], \
        desc[CONV_WEIGHTS + 3 * group + 2]
    return weights16[offset:offset + rows * columns].reshape((rows, columns))
