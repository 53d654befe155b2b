"""The GNA integer operations as public functions on integer data you bring (docs/gna-rules.md §7).

``emulate()`` runs whole networks; these are its building blocks, for checking one operation against numbers
worked by hand or dumped from a device. Every function takes and returns integers (held in int64 or float
arrays whose values are exact integers) and says how many values it saturated.
"""

from __future__ import annotations

import numpy as np

from gnaexp.emulator import conv as cv
from gnaexp.emulator import kernels, parallel
from gnaexp.emulator.pwl import PWL, evaluate
from gnaexp.emulator.quantize import quantize_input
from gnaexp.emulator.int_ranges import EXACT_F64, INT32_MAX, INT32_MIN
from gnaexp.core.errors import BadInput

__all__ = ["Affine", "affine", "conv1d_memory", "dequantize", "pwl_from_table", "evaluate", "quantize_input"]


class Affine:
    """The affine (fully connected) primitive with its weights prepared once: y = sat32(Σ_k x[k]·W[m, k]·mult[m]
    + bias[m]).

    weights: (M, K) int16 values, or int8 values with the per-row compound-bias ``multipliers`` (M,) of the
    low-precision mode (docs/gna-rules.md §3.2, E10); bias: (M,) int32 values. Exact: sums are taken in float64
    while every partial sum stays below 2^53 for int16 inputs, in int64 otherwise.
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray, multipliers: np.ndarray | None = None) -> None:
        w = np.asarray(weights, dtype=np.float64)
        self.mult = None if multipliers is None else np.asarray(multipliers, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        row_sums = np.sum(np.abs(w), axis=1) * (1 if self.mult is None else self.mult)
        bound = cv.INT16_BOUND * float(np.max(row_sums, initial=0)) + float(np.max(np.abs(self.bias), initial=0))
        self.exact_in_float64 = bound < EXACT_F64
        self.wt = np.ascontiguousarray(w.T if self.exact_in_float64 else w.T.astype(np.int64))
        self._all: np.ndarray | None = None  # the window index of every input, made on the first small call
        self._small: np.ndarray | None = None  # the weights as the compiled pass reads them (conv.compact)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """x: (N, K) int16 values → ((N, M) int32 values as float64, saturated count)."""
        native = kernels.compiled(np.size(x) * self.wt.shape[1]) if len(x) <= cv.SMALL_ROWS else None
        if self.exact_in_float64 and self.mult is None and native is not None:
            # a stream's frame: the compiled pass a convolution window takes (one window of all K inputs)
            if self._all is None:
                self._all = np.arange(self.wt.shape[0])[None, :]
            x = np.ascontiguousarray(x, dtype=np.float64)
            out = np.empty((len(x), self.wt.shape[1], 1), dtype=np.float64)
            if self._small is None:
                self._small = cv.compact(self.wt)
            saturated = native.conv1d_windows(x, self._all, self._small, self.bias, out)
            return out.reshape(len(x), -1), int(saturated)
        with parallel.single_threaded_blas():  # never inside a BLAS thread pool (see parallel.py)
            if self.exact_in_float64:
                acc = np.asarray(x, dtype=np.float64) @ self.wt
            else:
                acc = (np.asarray(x).astype(np.int64) @ self.wt).astype(np.float64)
        if self.mult is not None:
            acc *= self.mult
        acc += self.bias
        saturated = 0
        if acc.min(initial=0.0) < INT32_MIN or acc.max(initial=0.0) > INT32_MAX:  # counted only when some did
            saturated = int(np.count_nonzero((acc < INT32_MIN) | (acc > INT32_MAX)))
            np.clip(acc, INT32_MIN, INT32_MAX, out=acc)
        return acc, saturated


def affine(x: np.ndarray, weights: np.ndarray, bias: np.ndarray,
           multipliers: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """``Affine(weights, bias, multipliers)(x)``: one call, for integer data you bring."""
    return Affine(weights, bias, multipliers)(x)


def dequantize(values: np.ndarray, scale_factor: float, out: np.ndarray | None = None) -> np.ndarray:
    """Integer outputs (int32 or int16) to float32 as the plugin exports scores: float32 division by the sf.

    ``out``: a float32 array of the values' shape to write into (a batch's slice); one pass either way: the
    values are cast to float32 first and divided in float32, the plugin's order."""
    if out is None:
        out = np.empty(np.shape(values), dtype=np.float32)
    np.divide(values, np.float32(scale_factor), out=out, dtype=np.float32, casting="unsafe")
    return out


def conv1d_memory(memory: np.ndarray, filters: np.ndarray, bias: np.ndarray, stride: int,
                  positions: int) -> tuple[np.ndarray, int]:
    """The 1-D convolution primitive over a raw GNA memory view (docs/gna-rules.md §4.1).

    memory: (N, L) flat int16 values (read as zero past L); filters: (F, nfc) coefficients including their
    zero padding; stride: in elements (C·S for C interleaved channels); positions: how many outputs per filter.
    Output position j of filter f is sat32(bias[f] + Σ_t memory[j·stride + t]·filters[f, t]).
    Returns ((N, positions·F) int32 values in GNA order O[j·F + f], as float64; saturated count).
    """
    memory = np.asarray(memory).reshape(len(memory), -1)
    out, sat = cv.run_blocks(memory, cv.filter_blocks(filters, stride), bias, positions)
    return np.transpose(out, (0, 2, 1)).reshape(memory.shape[0], positions * out.shape[1]), sat


def pwl_from_table(xbase: np.ndarray, ybase: np.ndarray, slope: np.ndarray) -> PWL:
    """A PWL from a raw segment table as GNA stores it: xBase with the shift index in its 2 LSBs (shift =
    8·(index + 1)), yBase and slope int16. ``evaluate(pwl, x)`` runs it on int32 inputs and returns int16.

    Segments may share an xBase (the plugin builds such tables, e.g. √x at input scale 2048 starts with several
    segments at 0). The library's kernels then take the last of them for an input above it: the linear search
    walks down from the last segment while x < xBase, the binary search moves its lower bound right whenever
    x ≥ xBase, and the lookup table is built only when the xBases after the first are distinct (a zero minimum
    gap disables it) [S: intel/gna src/gna-lib/kernels/pwl.cpp, pwlKernelImplAllLinear/AllBinary, PwlCached].
    That is ``evaluate``'s rule: the last segment whose xBase ≤ x."""
    xb = np.asarray(xbase, dtype=np.int64)
    if xb.ndim != 1 or len(xb) == 0 or np.any(np.diff(xb & ~3) < 0):
        raise BadInput("a PWL table needs one or more segments with non-decreasing xBase values")
    return PWL(xb, np.asarray(ybase, dtype=np.int64), np.asarray(slope, dtype=np.int64), 1.0, 1.0, "table")
