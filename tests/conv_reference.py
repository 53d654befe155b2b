"""Test helpers for the 1-D convolution primitive: what a correct host writes into and reads out of GNA memory,
and a straightforward NCW convolution as the yardstick (``gnaexp.emulator.conv`` computes the primitive)."""

from __future__ import annotations

import numpy as np

from gnaexp.emulator.conv import ConvGeometry

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def interleave_input(x_ncw: np.ndarray) -> np.ndarray:
    """(N, C, W) → (N, W·C) with element w·C + c = x[c, w]: what a correct host transposition writes."""
    n, c, w = x_ncw.shape
    return np.ascontiguousarray(np.swapaxes(x_ncw, 1, 2)).reshape(n, w * c)


def deinterleave_output(o: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """(N, positions·F) interleaved → (N, F, logical positions): the host's output transposition."""
    n = o.shape[0]
    return np.swapaxes(o.reshape(n, geo.positions, geo.filters)[:, : geo.logical_positions, :], 1, 2)


def conv1d_ncw_reference(x_ncw: np.ndarray, w_fck: np.ndarray, bias: np.ndarray, stride: int) -> tuple[np.ndarray, int]:
    """Straightforward int64 NCW convolution with int32 saturation: the yardstick for the primitive."""
    x = np.asarray(x_ncw, dtype=np.int64)
    w = np.asarray(w_fck, dtype=np.int64)
    n, c, width = x.shape
    f, _, k = w.shape
    j = (width - k) // stride + 1
    out = np.zeros((n, f, j), dtype=np.int64)
    for kk in range(k):
        xs = x[:, :, kk : kk + stride * (j - 1) + 1 : stride]  # (N, C, J)
        out += np.einsum("ncj,fc->nfj", xs, w[:, :, kk])
    out += np.asarray(bias, dtype=np.int64).reshape(1, f, 1)
    sat = int(np.count_nonzero((out < INT32_MIN) | (out > INT32_MAX)))
    return np.clip(out, INT32_MIN, INT32_MAX), sat
