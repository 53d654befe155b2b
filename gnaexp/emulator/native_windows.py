"""A compiled convolution's windows without a gather per window value: laid out once, at plan compile, as
slices of one staged row a sample, or as runs of consecutive values.

Why: ``native.conv_windows`` reads every window value through its index, one load and one conversion at a time
(0.36 ns a value). Silero VAD's first encoder convolution (129 channels × 4 frames, kernel 3) reads each input
value three times that way: 193,000 values for 125 streams, 0.07 ms of a 1.3 ms step.

- Sliding (``sliding_layout``): when window j is the slice [j·step, j·step + taps) of a staged row (the input's
  values in the order the windows read them, zeros for the padding), the row is built once a sample (each value
  read once) and the int16 product takes window j of every sample straight from it, a strided view with no copy:
  one product per position (``sliding_sums``).
- Runs (``pair_runs``): a folded kernel's windows (conv_fold.py) add and subtract two taps; where the first taps
  count up and the second count down in runs, each run is one loop that vectorizes (``pair_windows``), and the
  few pairs left (a zero's) are read one by one.

Exactness: the same window values reach the same product: only where they are read from changes. The product's
taps past the window (its padding to pairs) meet zero weights (int_product.pack), whatever the staged row holds
there.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import as_strided

from gnaexp.emulator.native_gemm import product as int16_product

RUN_FIELDS = 5  # a pair run: position, first column, count, first tap's start, second tap's start
SINGLE_FIELDS = 4  # a pair outside the runs: position, column, first tap, second tap (−1: a zero)


def sliding_layout(index: np.ndarray, length: int, taps: int) -> tuple[np.ndarray, int] | None:
    """(stage, step) such that window j (row j of ``index``: positions × window values, ``length`` for a zero) is
    staged[j·step : j·step + taps] with staged[s] = x[stage[s]] (``length``: zero) and ``taps`` ≥ the window's
    values (the product's padding: zeros); None when no step shorter than a window shares values, one window
    among them (the windows then are the product's rows as they are)."""
    positions, width = index.shape
    if positions == 1:
        return None
    for step in range(1, width):
        staged = np.full((positions - 1) * step + taps, -1, dtype=np.int64)
        for j in range(positions):
            part = staged[j * step:j * step + width]
            if np.any((part >= 0) & (part != index[j])):
                break
            part[:] = index[j]
        else:
            return np.where(staged < 0, length, staged), step
    return None


def pair_runs(first: np.ndarray, second: np.ndarray, length: int,
              shortest: int = 8) -> tuple[np.ndarray, np.ndarray] | None:
    """A folded kernel's window index (first and second taps, positions × pairs, ``length`` for a zero) as runs
    (RUN_FIELDS a row: from a column, count pairs whose first taps count up from a start and second taps down
    from theirs, none of them a zero) and the pairs left (SINGLE_FIELDS a row); None when the runs average fewer
    than ``shortest`` pairs or leave more than a tenth of the pairs (the index is then as fast)."""
    positions, pairs = first.shape
    runs, singles = [], []
    for j in range(positions):
        c = 0
        while c < pairs:
            a, b = int(first[j, c]), int(second[j, c])
            end = c + 1
            if a < length and b < length:
                while end < pairs and first[j, end] == a + end - c and second[j, end] == b - (end - c):
                    end += 1
            if end - c >= shortest:
                runs.append((j, c, end - c, a, b))
            else:
                singles += [(j, k, int(first[j, k]), int(second[j, k])) for k in range(c, end)]
            c = end
    if not runs or 10 * len(singles) > positions * pairs:
        return None
    singles = [(j, k, -1 if a == length else a, -1 if b == length else b) for j, k, a, b in singles]
    return np.array(runs, dtype=np.int64), np.array(singles, dtype=np.int64).reshape(-1, SINGLE_FIELDS)


@njit(nogil=True, cache=True)
def stage_rows(x, x_off, length, stage, staged, peaks):  # pragma: no cover - compiled
    """staged[i, s] = x[i, x_off + stage[s]] as int16 (0 where stage[s] is ``length``) for x's N samples; staged
    may have more rows (the product's padding, left as they are). Unless ``peaks`` is empty, peaks[i] = max
    |x[i, x_off + k]| over the values staged."""
    n = x.shape[0]
    track = peaks.shape[0] > 0
    for i in range(n):
        row, values = staged[i], x[i, x_off:x_off + length]
        for s in range(stage.shape[0]):
            k = stage[s]
            row[s] = np.int16(values[min(k, length - 1)]) if k < length else 0
        if track:
            peaks[i] = _peak(row[:stage.shape[0]])


@njit(nogil=True, cache=True, inline="always")
def _peak(row):  # pragma: no cover - compiled
    """max |row| of int16 values (an integer maximum: it vectorizes)."""
    peak = np.int32(0)
    for s in range(row.shape[0]):
        a = abs(np.int32(row[s]))
        peak = a if a > peak else peak
    return peak


@njit(nogil=True, cache=True, inline="always")
def sliding_sums(staged, wt, positions, step):  # pragma: no cover - compiled
    """The int16 product of every window of the staged rows (``sliding_layout``): row i·positions + j of the sums
    is window j of sample i; the staged rows whole tiles of the product (int_product.ROW_ALIGN)."""
    rows, width = staged.shape
    taps, columns = 2 * wt.shape[0], wt.shape[1] // 2
    acc = np.empty((rows * positions, columns), dtype=np.int32)
    flat = staged.reshape(rows * width)
    for j in range(positions):
        windows = as_strided(flat[j * step:], shape=(rows, taps), strides=(staged.strides[0], staged.strides[1]))
        int16_product(windows, wt, acc[j::positions])
    return acc


@njit(nogil=True, cache=True)
def pair_windows(x, x_off, runs, singles, positions, pairs, plus, minus, peaks):  # pragma: no cover - compiled
    """``native.conv_windows_pair`` of the values from column x_off of x into int16 windows through runs and the
    pairs left (``pair_runs``): the same windows, zeros past each row's ``pairs`` and past N·positions rows;
    peaks as its, unless empty. (x whole: a row of a C-contiguous array is contiguous, and its loops vectorize.)

    The runs' loop holds no branch, which keeps it vectorized (0.34 ns a pair, 0.45 with a branch for zeros
    beside it); the second taps read backwards through an unsigned index, as a signed one is checked for wrapping
    around, and that check keeps the loop from vectorizing (0.5 ns a pair)."""
    n = x.shape[0]
    track = peaks.shape[0] > 0
    for i in range(n):
        peak = np.int32(0)
        for j in range(positions):
            plus[i * positions + j, pairs:] = 0
            minus[i * positions + j, pairs:] = 0
        for r in range(runs.shape[0]):
            j, c, count, a, b = runs[r, 0], runs[r, 1], runs[r, 2], runs[r, 3], runs[r, 4]
            p_row, m_row = plus[i * positions + j, c:c + count], minus[i * positions + j, c:c + count]
            up, down = x[i, x_off + a:x_off + a + count], x[i, x_off + b - count + 1:x_off + b + 1]
            last = np.uint64(count - 1)
            for t in range(count):
                u, v = np.int32(up[t]), np.int32(down[last - np.uint64(t)])
                p_row[t] = np.int16(u + v)
                m_row[t] = np.int16(u - v)
                peak = max(peak, max(abs(u), abs(v)))
        for r in range(singles.shape[0]):
            j, c, a, b = singles[r, 0], singles[r, 1], singles[r, 2], singles[r, 3]
            u = np.int32(x[i, x_off + a]) if a >= 0 else np.int32(0)
            v = np.int32(x[i, x_off + b]) if b >= 0 else np.int32(0)
            plus[i * positions + j, c] = np.int16(u + v)
            minus[i * positions + j, c] = np.int16(u - v)
            peak = max(peak, max(abs(u), abs(v)))
        if track:
            peaks[i] = peak
    plus[n * positions:] = 0
    minus[n * positions:] = 0


@njit(nogil=True, cache=True)
def stage_transposed(x, x_off, base, channels, frames, lead, staged, peaks):  # pragma: no cover - compiled
    """``stage_rows`` for a staged row that is ``lead`` zeros, then the values from column x_off + base of x read
    channel-major (channels × frames) written frame-major, then zeros (``transposition``): a loop a frame, over
    its channels at a stride of ``frames`` (0.2 against 0.37 ns a value through the stage's index)."""
    n = x.shape[0]
    track = peaks.shape[0] > 0
    end = lead + channels * frames
    for i in range(n):
        row = staged[i]
        row[:lead] = 0
        row[end:] = 0
        for f in range(frames):
            out = row[lead + f * channels:lead + (f + 1) * channels]
            source = x[i, x_off + base + f:]
            for c in range(channels):
                out[c] = np.int16(source[c * frames])
        if track:
            peaks[i] = _peak(row)


def transposition(stage: np.ndarray, length: int) -> tuple[int, int, int, int] | None:
    """(base, channels, frames, lead) when a staged row's index (``sliding_layout``) is ``lead`` zeros, then
    columns base + c·frames + f in frame-major order (f outer), then zeros: a channel-major input read frame by
    frame (Silero VAD's encoder convolutions); else None."""
    real = np.flatnonzero(stage != length)
    if len(real) < 2:
        return None
    lead, middle = int(real[0]), stage[real[0]:real[-1] + 1]
    if np.any(middle == length) or middle[1] - middle[0] < 2:
        return None
    frames, base = int(middle[1] - middle[0]), int(middle[0])
    channels = len(middle) // frames
    if channels * frames != len(middle):
        return None
    expected = base + np.arange(channels)[None, :] * frames + np.arange(frames)[:, None]
    return (base, channels, frames, lead) if np.array_equal(middle, expected.ravel()) else None
