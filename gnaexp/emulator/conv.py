"""The GNA 1-D convolution primitive on interleaved memory, plus a plain NCW integer reference.

docs/gna-rules.md §4.1: the input is one flat int16 vector in NWC order (element w·C + c), each filter is a flat
vector of nfc = ALIGN8(max(K·C, S·C)) coefficients (k-major, c-minor, zero-padded), the effective stride is
C·S elements, and output position j of filter f is O[j·F + f] = sat32(bias[f] + Σ_t X[j·C·S + t]·Flt[f][t]).

Arithmetic is exact: products and sums are done in float32 while the per-layer bound max|x|·Σ|w| stays below
2^24, in float64 below 2^53 (so every partial sum is an exactly representable integer, whatever order BLAS adds
in), and in int64 otherwise; the bias joins in float64 (or int64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnaexp.emulator.parallel import single_threaded_blas

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
EXACT_F32 = 2.0**24
EXACT_F64 = 2.0**53
INPUT_DIVISOR = 8  # kNoOfInputsDivisor
FILTER_DIVISOR = 8
CONV_FILTER_MAX_SIZE = 768
CONV_FILTERS_DIVIDER = 4
CONV_MAX_FILTERS = 8192  # GNA 3.x


def align(n: int, m: int) -> int:
    return -(-n // m) * m


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one 1-D convolution as laid out in GNA memory (E11: 6×255, k3 s2, F4 → 24, 1536, 508)."""

    channels: int
    width: int
    kernel: int
    stride: int
    filters: int
    nfc: int  # coefficients per filter after padding
    n_inputs: int  # padded input vector length
    positions: int  # output positions the primitive computes (≥ logical)
    logical_positions: int  # (W − K)//S + 1

    @property
    def n_outputs(self) -> int:
        return self.positions * self.filters

    @property
    def step(self) -> int:
        return self.channels * self.stride


def geometry(channels: int, width: int, kernel: int, stride: int, filters: int) -> ConvGeometry:
    """Padded filter length, padded input length and output count, checking the GNA filter limits."""
    if filters < CONV_FILTERS_DIVIDER or filters % CONV_FILTERS_DIVIDER:
        raise ValueError(
            f"GNA convolution needs the number of filters to be a multiple of {CONV_FILTERS_DIVIDER} "
            f"(at least {CONV_FILTERS_DIVIDER}); this layer has {filters}"
        )
    if filters > CONV_MAX_FILTERS:
        raise ValueError(f"GNA 3.x allows at most {CONV_MAX_FILTERS} convolution filters; this layer has {filters}")
    if kernel > width:
        raise ValueError(f"kernel {kernel} is wider than the input ({width})")
    nfc = align(max(kernel * channels, stride * channels), FILTER_DIVISOR)
    if nfc > CONV_FILTER_MAX_SIZE:
        raise ValueError(f"GNA convolution filter of {nfc} coefficients exceeds the limit {CONV_FILTER_MAX_SIZE}")
    logical = (width - kernel) // stride + 1
    step = channels * stride
    n_in = align(channels * width, INPUT_DIVISOR)
    while (n_in - nfc) // step + 1 < logical:
        n_in += INPUT_DIVISOR
    positions = (n_in - nfc) // step + 1
    return ConvGeometry(channels, width, kernel, stride, filters, nfc, n_in, positions, logical)


def interleave_input(x_ncw: np.ndarray) -> np.ndarray:
    """(N, C, W) → (N, W·C) with element w·C + c = x[c, w]: what a correct host transposition writes."""
    n, c, w = x_ncw.shape
    return np.ascontiguousarray(np.swapaxes(x_ncw, 1, 2)).reshape(n, w * c)


def interleave_filters(w_fck: np.ndarray, nfc: int) -> np.ndarray:
    """[F, C, K] → [F, nfc] with Flt[f][k·C + c] = W[f, c, k], zero-padded to nfc."""
    f, c, k = w_fck.shape
    flt = np.zeros((f, nfc), dtype=np.float64)
    flt[:, : k * c] = np.swapaxes(w_fck, 1, 2).reshape(f, k * c)
    return flt


def accumulation_bound(max_abs_x: float, flt: np.ndarray, bias: np.ndarray) -> float:
    """Largest |partial sum| any output can reach: max|x|·Σ|w| + |b| over rows."""
    return float(np.max(max_abs_x * np.sum(np.abs(flt), axis=1) + np.abs(bias)))


def exact_dtype(max_abs_x: float, flt: np.ndarray) -> type:
    """The narrowest type whose BLAS sums of x·w are exact integers in any order: every partial sum stays below
    2^24 (float32) or 2^53 (float64); int64 otherwise. The bias is added afterwards in float64."""
    bound = accumulation_bound(max_abs_x, flt, np.zeros(1))
    return np.float32 if bound < EXACT_F32 else np.float64 if bound < EXACT_F64 else np.int64


def _accumulate(x_mem: np.ndarray, flt: np.ndarray, bias: np.ndarray, geo: ConvGeometry,
                max_abs_x: float) -> tuple[np.ndarray, int]:
    """The primitive's sums, filter-major: (F, N, positions) float64 (int64 past 2^53), saturated to int32."""
    x_mem = np.asarray(x_mem)
    n = x_mem.shape[0]
    length = int(np.prod(x_mem.shape[1:]))
    step, f_count, nfc = geo.step, geo.filters, geo.nfc
    n_blocks = -(-nfc // step)
    n_rows = geo.positions + n_blocks - 1
    total = n_rows * step
    dtype = exact_dtype(max_abs_x, flt)
    mem = np.empty((n, max(total, geo.n_inputs)), dtype=dtype)
    mem[:, length:] = 0
    if x_mem.ndim == 3:  # (N, C, W) logical input: write it interleaved (w·C + c) in one pass
        mem[:, :length].reshape(n, x_mem.shape[2], x_mem.shape[1])[...] = np.swapaxes(x_mem, 1, 2)
    else:
        mem[:, :length] = x_mem
    # Memory as rows of one stride (C·S elements); filter block b meets row j + b at output position j. One GEMM
    # against all filter blocks, Y[b, f, (n, r)] = block b of filter f · row r, filter-major so that the host's
    # (N, F, W) order needs no extra pass; position j then sums Y[b, f, n, j + b] over b.
    fpad = np.zeros((f_count, n_blocks * step), dtype=dtype)
    fpad[:, :nfc] = flt
    wmat = np.ascontiguousarray(fpad.reshape(f_count, n_blocks, step).transpose(1, 0, 2).reshape(-1, step))
    rows = mem[:, :total].reshape(n * n_rows, step)
    with single_threaded_blas():  # never inside a BLAS thread pool (see parallel.py)
        y = (wmat @ rows.T).reshape(n_blocks, f_count, n, n_rows)
    acc_type = np.int64 if dtype is np.int64 else np.float64
    acc = np.add(y[0, :, :, : geo.positions], np.asarray(bias, dtype=acc_type)[:, None, None], dtype=acc_type)
    for b in range(1, n_blocks):
        acc += y[b, :, :, b : b + geo.positions]
    sat = 0
    if acc.size and (acc.max() > INT32_MAX or acc.min() < INT32_MIN):
        sat = int(np.count_nonzero((acc < INT32_MIN) | (acc > INT32_MAX)))
        np.clip(acc, INT32_MIN, INT32_MAX, out=acc)
    return acc, sat


def conv1d_interleaved(
    x_mem: np.ndarray,
    flt: np.ndarray,
    bias: np.ndarray,
    geo: ConvGeometry,
    *,
    max_abs_x: float = 32768.0,
) -> tuple[np.ndarray, int]:
    """Run the primitive on interleaved int16 memory.

    x_mem: (N, L) interleaved integers with L ≤ geo.n_inputs (zero-padded here to n_inputs), or (N, C, W)
    logical integers that are written interleaved on the way in; flt: [F, nfc]; bias: [F].
    Returns (O, saturations) where O is (N, positions·F) in GNA output order O[j·F + f], float64 holding
    int32 values after saturation.
    """
    acc, sat = _accumulate(x_mem, flt, bias, geo, max_abs_x)
    n = acc.shape[1]
    return np.transpose(acc, (1, 2, 0)).reshape(n, geo.positions * geo.filters).astype(np.float64, copy=False), sat


def conv1d(x_mem: np.ndarray, flt: np.ndarray, bias: np.ndarray, geo: ConvGeometry, *,
           max_abs_x: float = 32768.0) -> tuple[np.ndarray, int]:
    """The primitive followed by the host's output transposition: (N, F, logical positions) float64.

    Same arithmetic as ``conv1d_interleaved`` + ``deinterleave_output`` without building the GNA-order array.
    """
    acc, sat = _accumulate(x_mem, flt, bias, geo, max_abs_x)
    return np.swapaxes(acc, 0, 1)[:, :, : geo.logical_positions].astype(np.float64, copy=False), sat


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
