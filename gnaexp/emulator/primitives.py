"""The GNA integer operations as public functions on integer data you bring (docs/gna-rules.md §7).

``emulate()`` runs whole networks; these are its building blocks, for checking one operation against numbers
worked by hand or dumped from a device. Every function takes and returns integers (held in int64 or float
arrays whose values are exact integers) and says how many values it saturated.
"""

from __future__ import annotations

import numpy as np

from gnaexp.emulator import conv as cv
from gnaexp.emulator import native, parallel
from gnaexp.emulator.pwl import PWL, evaluate
from gnaexp.emulator.quantize import quantize_input

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
__all__ = ["affine", "conv1d_memory", "dequantize", "pwl_from_table", "evaluate", "quantize_input"]


def affine(x: np.ndarray, weights: np.ndarray, bias: np.ndarray,
           multipliers: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The affine (fully connected) primitive: y = sat32(Σ_k x[k]·W[m, k]·mult[m] + bias[m]).

    x: (N, K) int16 values; weights: (M, K) int16 values, or int8 values with the per-row compound-bias
    ``multipliers`` (M,) of the low-precision mode (docs/gna-rules.md §3.2, E10); bias: (M,) int32 values.
    Returns ((N, M) int32 values as float64, saturated count). Exact: sums are taken in float64 while every
    partial sum stays below 2^53, in int64 otherwise.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    mult = None if multipliers is None else np.asarray(multipliers, dtype=np.float64)
    bound = 32768.0 * float(np.max(np.sum(np.abs(w), axis=1) * (1 if mult is None else mult))) if w.size else 0.0
    wt = np.ascontiguousarray(w.T)
    with parallel.single_threaded_blas():  # never inside a BLAS thread pool (see parallel.py)
        if bound + float(np.max(np.abs(bias), initial=0)) < cv.EXACT_F64:
            acc = x @ wt
        else:
            acc = (x.astype(np.int64) @ wt.astype(np.int64)).astype(np.float64)
    if mult is not None:
        acc = acc * mult
    acc = acc + np.asarray(bias, dtype=np.float64)
    saturated = int(np.count_nonzero((acc < INT32_MIN) | (acc > INT32_MAX)))
    if saturated:
        np.clip(acc, INT32_MIN, INT32_MAX, out=acc)
    return acc, saturated


def dequantize(values: np.ndarray, scale_factor: float) -> np.ndarray:
    """Integer outputs (int32 or int16) to float32 as the plugin exports scores: float32 division by the sf."""
    return (np.asarray(values).astype(np.float32) / np.float32(scale_factor)).astype(np.float32)


def conv1d_memory(memory: np.ndarray, filters: np.ndarray, bias: np.ndarray, stride: int,
                  positions: int) -> tuple[np.ndarray, int]:
    """The 1-D convolution primitive over a raw GNA memory view (docs/gna-rules.md §4.1).

    memory: (N, L) flat int16 values (read as zero past L); filters: (F, nfc) coefficients including their
    zero padding; stride: in elements (C·S for C interleaved channels); positions: how many outputs per filter.
    Output position j of filter f is sat32(bias[f] + Σ_t memory[j·stride + t]·filters[f, t]).
    Returns ((N, positions·F) int32 values in GNA order O[j·F + f], as float64; saturated count).
    """
    memory = np.ascontiguousarray(np.asarray(memory, dtype=np.float64).reshape(len(memory), -1))
    filters = np.asarray(filters, dtype=np.float64)
    f_count, nfc = filters.shape
    n_blocks = -(-nfc // stride)
    padded = np.zeros((f_count, n_blocks * stride))
    padded[:, :nfc] = filters
    blocks = np.ascontiguousarray(padded.reshape(f_count, n_blocks, stride).transpose(1, 0, 2))
    bias = np.ascontiguousarray(bias, dtype=np.float64)
    if not native.conv_exact_bound_ok(cv.INT16_BOUND, blocks, bias):
        raise ValueError("convolution operands exceed int16 (memory, filters) / int32 (bias)")
    out = np.empty((memory.shape[0], f_count, positions))
    sat = native.conv1d_rows(memory, 1, memory.shape[1], False, blocks, bias, 1, out)
    return np.transpose(out, (0, 2, 1)).reshape(memory.shape[0], positions * f_count), int(sat)


def pwl_from_table(xbase: np.ndarray, ybase: np.ndarray, slope: np.ndarray) -> PWL:
    """A PWL from a raw segment table as GNA stores it: xBase with the shift index in its 2 LSBs (shift =
    8·(index + 1)), yBase and slope int16. ``evaluate(pwl, x)`` runs it on int32 inputs and returns int16."""
    xb = np.asarray(xbase, dtype=np.int64)
    if xb.ndim != 1 or len(xb) == 0 or np.any(np.diff(xb & ~3) <= 0):
        raise ValueError("a PWL table needs one or more segments with strictly increasing xBase values")
    return PWL(xb, np.asarray(ybase, dtype=np.int64), np.asarray(slope, dtype=np.int64), 1.0, 1.0, "table")
