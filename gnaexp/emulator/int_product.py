"""When a product of int16 values summed in wrapping int32 lanes gives the exact sums, and the operands' layout
for it (native_gemm.py computes it). Imports no numba: a kernel prepares this before the compiled loops load.

A sum Σ_k w_k·x_k modulo 2^32 is the sum itself when |Σ_k w_k·x_k| < 2^31, and |Σ_k w_k·x_k| ≤ Σ_k |w_k| ·
max_k |x_k|. So with W = the largest Σ|w| over the filters, every sum of a sample whose values stay within
``IntWeights.peak_limit`` (≤ (2^31 − 1) / W, and within int16) is exact: the primitive's sum, which the caller
then adds to the bias and saturates to int32 in float64 as before. A sample beyond it is split into its bytes,
x = 256·⌊x/256⌋ + (x mod 256), two quiet samples (peaks 128 and 255) whose sums recombine exactly, where the
limit holds 255 (Σ|w|·255 < 2^31); the float64 product takes it otherwise. Most layers a GNA port produces have W·32768 < 2^31 (the plugin's weight scale keeps Σ|w| small: in Silero
VAD every convolution but the STFT), so every sample qualifies; an STFT on audio at scale factor 2048 qualifies
for all but about one sample in a thousand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnaexp.emulator.int_ranges import INT16_BOUND, INT16_MAX, INT32_MAX

SPLIT_PEAK = 255.0  # a sample split into bytes (x = 256·⌊x/256⌋ + x mod 256) has this larger peak
K_ALIGN = 2  # taps padded with a zero to pairs: pmaddwd multiplies int16 pairs
ROW_ALIGN = 6  # windows padded to a multiple of the tile's rows (6 at AVX-512, 2 at AVX2)
FILTER_ALIGN = 16  # filters padded to whole registers of int32 sums (one at AVX-512, two at AVX2)


def aligned(n: int, m: int) -> int:
    return -(-n // m) * m


def pack(wt: np.ndarray) -> np.ndarray:
    """(filters, taps) int16 weights (padded to FILTER_ALIGN, K_ALIGN) in the product's layout: row p holds tap
    pair (2p, 2p + 1) of every filter in turn, packed[p, 2f + e] = wt[f, 2p + e], so one register load gives a
    tap pair of consecutive filters (native_gemm.py)."""
    filters, taps = wt.shape
    return np.ascontiguousarray(wt.reshape(filters, taps // 2, 2).transpose(1, 0, 2).reshape(taps // 2, 2 * filters))


@dataclass(frozen=True)
class IntWeights:
    """A (taps, filters) integer weight matrix as the int16 product takes it, with its exactness limit.

    wt: the weights ``pack``ed, from (filters padded to FILTER_ALIGN, taps padded to K_ALIGN) with zeros in the
    padding; filters: how many are real; peak_limit: the largest max |x| of a sample whose sums are all exact
    (0: none is)."""

    wt: np.ndarray
    filters: int
    peak_limit: float

    @property
    def taps(self) -> int:
        """Taps with their padding: the columns of the windows the product takes."""
        return 2 * self.wt.shape[0]

    @property
    def width(self) -> int:
        """Filters with their padding: the columns of the sums the product gives."""
        return self.wt.shape[1] // 2

    @property
    def any_int16(self) -> bool:
        """Whether every int16 sample qualifies: no sample needs checking."""
        return self.peak_limit >= INT16_BOUND

    @property
    def splits(self) -> bool:
        """Whether a louder sample's bytes qualify (Σ|w|·255 < 2^31): split, its sums recombine exactly."""
        return self.peak_limit >= SPLIT_PEAK


def int_weights(weights: np.ndarray, gain: int = 1) -> IntWeights | None:
    """``IntWeights`` of a (taps, filters) matrix, or None when a weight is not an int16 integer.

    gain: how many times a sample's peak one int16 operand can reach (a folded kernel's operands are sums and
    differences of two inputs: 2, so its samples stay within 16383)."""
    taps, filters = weights.shape
    small = weights.astype(np.int16)
    if not np.array_equal(small, weights):
        return None
    wt = np.zeros((aligned(filters, FILTER_ALIGN), aligned(max(taps, 1), K_ALIGN)), dtype=np.int16)
    wt[:filters, :taps] = small.T
    spread = int(np.abs(small.astype(np.int64)).sum(axis=0).max(initial=0)) * gain
    operand = INT16_BOUND if gain == 1 else float(INT16_MAX // gain)
    return IntWeights(pack(wt), filters, operand if spread == 0 else min(operand, float(INT32_MAX // spread)))
