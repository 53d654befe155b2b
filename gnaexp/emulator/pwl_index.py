"""A PWL's segments indexed by the magnitude of the input: each value finds its segment with one lookup and one
comparison instead of a search (native_pwl.py evaluates with it). Imports no numba.

The key of a value v is its sign and the leading bits of |v| + 1 as a float64 (the exponent and ``bits`` bits of
mantissa), an integer that never decreases as v grows. ``bits`` is the fewest (up to MAX_BITS) that give every
xBase its own key, so a key's bucket holds at most one xBase: a value's segment is then the bucket's segment
below that xBase, or the one from it on when v reaches it. The plugin's designed PWLs place their xBases about
geometrically (dense near zero, where the curves bend), which a key of few bits separates: Silero VAD's 61- and
43-segment Power PWLs take 2 and 1 bits (245 and 123 buckets). The segment found is the one ``pwl.evaluate``
takes, the last with xBase ≤ v (shared xBases: the last of them); values at or below the first xBase keep its
yBase as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BITS = 6  # mantissa bits a key may take (at most 2·34·64 buckets)
MIN_SEGMENTS = 22  # from here the index clearly beats a pass per segment (1.1 ns a value against 0.09 ns a segment)
SMALL = 16  # segments a small table holds (two AVX-512 registers a field: native_pwl.pwl_small_rows)
WINDOW = 4  # segments around zero an index's window holds (``window``)
WINDOW_SIZE = 2 + 3 * WINDOW  # its bounds, xBases, gains and yBases


@dataclass(frozen=True)
class PwlIndex:
    """table: a row of 8 per bucket b: (its xBase, +inf: none; then the xBase, slope·2^−shift and yBase of the
    segment of a value under it; then those of a value at or over it; 0); bits and low_key: the key's mantissa
    bits and the first bucket's key; window: its segments around zero (``window``)."""

    table: np.ndarray
    bits: int
    low_key: int
    window: np.ndarray


def keys(v: np.ndarray, bits: int) -> np.ndarray:
    """The key of each value (native_pwl computes the same in its loop)."""
    v = np.asarray(v, dtype=np.float64)
    magnitude = ((np.abs(v) + 1.0).view(np.int64) >> (52 - bits)) - (1023 << bits)
    return np.where(v < 0, -magnitude, magnitude)


def build(xv: np.ndarray, ybase: np.ndarray, slope: np.ndarray, inv_scale: np.ndarray) -> PwlIndex | None:
    """The index of a PWL's segments (float64 tables as ``pwl.evaluate`` takes them, xBases in order), or None:
    too few segments to gain, xBases out of order, two of them closer than a key of MAX_BITS bits tells apart, or a
    scale that is not a power of two.

    A line's slope and scale are one factor: ((v − x)·slope)·2^−s = (v − x)·(slope·2^−s) to the bit, as
    scaling by a power of two is exact and commutes with rounding (the plugin's scales are all 2^−shift,
    pwl.py)."""
    xv, ybase, slope, inv_scale = (np.asarray(a, dtype=np.float64) for a in (xv, ybase, slope, inv_scale))
    if len(xv) < MIN_SEGMENTS or np.any(np.diff(xv) < 0) or not np.all(np.isfinite(xv)):
        return None
    gain = _gains(slope, inv_scale)
    if gain is None:
        return None
    x0 = xv[0]
    starts = np.unique(xv[xv > x0])  # where a new segment begins for values above the first xBase
    if len(starts) == 0:
        return None
    segment = np.searchsorted(xv, np.concatenate([[x0], starts]), side="right") - 1  # the last one starting there
    for bits in range(MAX_BITS + 1):
        start_keys = keys(starts, bits)
        if np.all(np.diff(start_keys) > 0):
            break
    else:
        return None
    low = int(keys(np.array([x0]), bits)[0])
    bucket_keys = np.arange(low, int(start_keys[-1]) + 1)
    before = np.searchsorted(start_keys, bucket_keys, side="left")  # xBases in the buckets before
    at = np.minimum(before, len(starts) - 1)
    inside = (before < len(starts)) & (start_keys[at] == bucket_keys)
    bound = np.where(inside, starts[at], np.inf)
    above = np.where(inside, segment[np.minimum(before + 1, len(segment) - 1)], segment[before])
    under = segment[before]
    table = np.stack([bound, xv[under], gain[under], ybase[under], xv[above], gain[above], ybase[above],
                      np.zeros(len(bound))], axis=1)
    return PwlIndex(np.ascontiguousarray(table, dtype=np.float64), bits, low, window(xv, ybase, gain))


def window(xv: np.ndarray, ybase: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """An indexed PWL's WINDOW segments around zero (from two before the last whose xBase ≤ 0), as native_pwl
    takes them: their bounds [low, high) (high: the next xBase, +inf past the last), then their xBases (+inf past
    the last segment: never reached), gains and yBases. Eight values all inside take their line among these few
    segments, by comparisons, instead of the index (Silero VAD's Power PWL of its STFT: 98% of the values in the
    four segments around zero). Exact: a value in [low, high) lies in one of them, the last whose xBase ≤ it.
    xv, ybase, gain: an indexed PWL's (``build``: in order, gains slope·2^−shift)."""
    k = len(xv)
    zero = int(np.searchsorted(xv, 0.0, side="right")) - 1
    first = max(0, min(zero - WINDOW // 2, k - WINDOW))
    last = min(first + WINDOW, k)
    out = np.empty(WINDOW_SIZE)
    out[0], out[1] = xv[first], xv[last] if last < k else np.inf
    fields = out[2:].reshape(3, WINDOW)
    fields[0], fields[1], fields[2] = np.inf, gain[last - 1], ybase[last - 1]
    fields[0, :last - first], fields[1, :last - first], fields[2, :last - first] = \
        xv[first:last], gain[first:last], ybase[first:last]
    return out


def small(xv: np.ndarray, ybase: np.ndarray, slope: np.ndarray, inv_scale: np.ndarray) -> np.ndarray | None:
    """A PWL of at most SMALL segments as one (3, SMALL) table that registers hold (native_pwl.pwl_small_rows):
    its xBases padded with +inf (never reached), its gains slope·2^−shift and its yBases (both padded with the
    last); None when there are more segments, the xBases are out of order or a scale is not a power of two."""
    xv, ybase, slope, inv_scale = (np.asarray(a, dtype=np.float64) for a in (xv, ybase, slope, inv_scale))
    k = len(xv)
    gain = _gains(slope, inv_scale)
    if not 1 <= k <= SMALL or np.any(np.diff(xv) < 0) or not np.all(np.isfinite(xv)) or gain is None:
        return None
    table = np.empty((3, SMALL))
    table[0], table[1], table[2] = np.inf, gain[-1], ybase[-1]
    table[0, :k], table[1, :k], table[2, :k] = xv, gain, ybase
    return table


def small_halvings(segments: int) -> int:
    """Halvings of the search through a small table of ``segments`` (native_pwl compiles loops of 1, 2 and 4)."""
    return 1 if segments <= 2 else 2 if segments <= 4 else 4


def _gains(slope: np.ndarray, inv_scale: np.ndarray) -> np.ndarray | None:
    """slope·inv_scale when every scale is a power of two (then one factor to the bit, see ``build``), else None."""
    gain = slope * inv_scale
    mantissa, _ = np.frexp(inv_scale)
    if not (np.all(mantissa == 0.5) and np.all(inv_scale >= 2.0**-1000) and np.all(inv_scale <= 2.0**1000)
            and np.array_equal(gain / inv_scale, slope)):
        return None
    return gain
