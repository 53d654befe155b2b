"""Convolutions whose filters mirror about their centre take half the multiply-adds, with the same sums.

Why: a speech net ported to GNA writes its STFT as a 1-D convolution (GNA has no STFT), one filter per frequency:
window·cos, symmetric about the window's centre, and window·sin, antisymmetric. Quantized, the mirrored taps stay
equal or opposite integers (the same real value rounds the same way), so for a symmetric filter
Σ_t w[t]·x[t] = Σ_k w[a_k]·(x[a_k] + x[b_k]) over the pairs (a_k, b_k) of mirrored taps, and for an
antisymmetric one the same with x[a_k] − x[b_k]. Every operand is an integer and every partial sum stays below
2^53 (|x_a ± x_b|·|w| ≤ |x_a·w| + |x_b·w|: the bound ``conv.exact_bound_ok`` checked), so the folded sums are
the primitive's sums exactly, bit for bit. Silero VAD's STFT convolution (258 filters of 256 taps) halves.
The fold is found from the integer weights themselves, never assumed: a kernel with any other filter is not
folded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_TAPS = 16  # shorter filters: the product is small and folding saves little


@dataclass(frozen=True)
class Fold:
    """The mirrored tap pairs and the two filter groups of a foldable kernel.

    first/second: (pairs,) window offsets of each pair's taps; at the centre of an odd span second is -1 (the
    tap counts once). symmetric/antisymmetric: the filter columns of each group (zero filters count as
    symmetric); w_plus (pairs, S) and w_minus (pairs, A): each group's weights at the first taps."""

    first: np.ndarray
    second: np.ndarray
    symmetric: np.ndarray
    antisymmetric: np.ndarray
    w_plus: np.ndarray
    w_minus: np.ndarray


def find_fold(weights: np.ndarray) -> Fold | None:
    """The fold of a (window offsets, filters) integer weight matrix, or None when some filter does not mirror
    about the centre of the taps in use (or the span is too short to gain)."""
    used = np.flatnonzero(np.any(weights != 0, axis=1))
    if len(used) < MIN_TAPS:
        return None
    lo, hi = int(used[0]), int(used[-1])
    first = np.arange(lo, (lo + hi) // 2 + 1)
    second = hi - (first - lo)
    a, b = weights[first], weights[second]
    symmetric = np.all(a == b, axis=0)
    antisymmetric = np.all(a == -b, axis=0) & ~symmetric
    if not np.all(symmetric | antisymmetric):
        return None
    centre = first == second
    second = np.where(centre, -1, second)
    sym_cols, anti_cols = np.flatnonzero(symmetric), np.flatnonzero(antisymmetric)
    return Fold(first, second, sym_cols, anti_cols, np.ascontiguousarray(a[:, sym_cols], dtype=np.float64),
                np.ascontiguousarray(a[:, anti_cols], dtype=np.float64))


def pair_index(fold: Fold, full_index: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, pairs) input indices of each pair's two taps at every position, from the kernel's index of
    every window offset (``length``: the zero padding; the centre's second tap reads it)."""
    first = np.ascontiguousarray(full_index[:, fold.first])
    second = np.where(fold.second[None, :] < 0, length, full_index[:, np.maximum(fold.second, 0)])
    return first, np.ascontiguousarray(second)
