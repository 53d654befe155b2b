"""The GNA 1-D convolution primitive on interleaved memory, plus a plain NCW integer reference.

docs/gna-rules.md §4.1: the input is one flat int16 vector in NWC order (element w·C + c), each filter is a flat
vector of nfc = ALIGN8(max(K·C, S·C)) coefficients (k-major, c-minor, zero-padded), the effective stride is
C·S elements, and output position j of filter f is O[j·F + f] = sat32(bias[f] + Σ_t X[j·C·S + t]·Flt[f][t]).

The sums run in the compiled loop ``native.conv1d_rows``, exact for int16 operands (see native.py), in the
calling thread: no BLAS and no library thread pool is involved. Long filters, and a process's first small work
(before ``kernels.compiled`` loads the loops), run as one float64 matrix product with the same results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnaexp.emulator import kernels, parallel
from gnaexp.emulator.int_ranges import EXACT_F64, INT32_MAX, INT32_MIN
from gnaexp.core.errors import BadInput

INT16_BOUND = 32768.0  # largest |value| an int16 operand can have
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
        raise BadInput(
            f"GNA convolution needs the number of filters to be a multiple of {CONV_FILTERS_DIVIDER} "
            f"(at least {CONV_FILTERS_DIVIDER}); this layer has {filters}"
        )
    if filters > CONV_MAX_FILTERS:
        raise BadInput(f"GNA 3.x allows at most {CONV_MAX_FILTERS} convolution filters; this layer has {filters}")
    if kernel > width:
        raise BadInput(f"kernel {kernel} is wider than the input ({width})")
    nfc = align(max(kernel * channels, stride * channels), FILTER_DIVISOR)
    if nfc > CONV_FILTER_MAX_SIZE:
        raise BadInput(f"GNA convolution filter of {nfc} coefficients exceeds the limit {CONV_FILTER_MAX_SIZE}")
    logical = (width - kernel) // stride + 1
    step = channels * stride
    n_in = align(channels * width, INPUT_DIVISOR)
    while (n_in - nfc) // step + 1 < logical:
        n_in += INPUT_DIVISOR
    positions = (n_in - nfc) // step + 1
    return ConvGeometry(channels, width, kernel, stride, filters, nfc, n_in, positions, logical)


def interleave_filters(w_fck: np.ndarray, nfc: int) -> np.ndarray:
    """[F, C, K] → [F, nfc] with Flt[f][k·C + c] = W[f, c, k], zero-padded to nfc."""
    f, c, k = w_fck.shape
    flt = np.zeros((f, nfc), dtype=np.float64)
    flt[:, : k * c] = np.swapaxes(w_fck, 1, 2).reshape(f, k * c)
    return flt


def filter_blocks(flt: np.ndarray, step: int) -> np.ndarray:
    """[F, nfc] → (B, F, step) float64: each filter cut into blocks of one stride, zero-padded (B = ⌈nfc/step⌉)."""
    flt = np.asarray(flt, dtype=np.float64)
    f_count, nfc = flt.shape
    n_blocks = -(-nfc // step)
    padded = np.zeros((f_count, n_blocks * step), dtype=np.float64)
    padded[:, :nfc] = flt
    return np.ascontiguousarray(padded.reshape(f_count, n_blocks, step).transpose(1, 0, 2))


def exact_bound_ok(max_abs_x: float, blocks: np.ndarray, bias: np.ndarray) -> bool:
    """Whether every partial sum stays below 2^53 (float64 exact) for inputs up to max_abs_x."""
    per_filter = np.abs(blocks).sum(axis=(0, 2)) if blocks.size else np.zeros(1)
    return float(np.max(max_abs_x * per_filter + np.abs(bias))) < EXACT_F64


def run_blocks(x2: np.ndarray, blocks: np.ndarray, bias: np.ndarray, positions: int, max_abs_x: float = INT16_BOUND,
               interleave: tuple[int, int, int] | None = None) -> tuple[np.ndarray, int]:
    """The compiled primitive on (N, L) data: (N, F, positions) float64 int32-saturated sums, and the count.

    ``interleave`` = (channels, width, stride) when x2 is NCW data written interleaved on the way in; otherwise
    x2 is the flat memory itself. Operands beyond int16/int32 are refused (the float64 sums would not be exact).
    """
    bias = np.ascontiguousarray(bias, dtype=np.float64)
    if not exact_bound_ok(max_abs_x, blocks, bias):
        raise BadInput("convolution operands exceed int16 (inputs, weights) / int32 (bias): the GNA primitive "
                         "takes int16 data")
    if x2.dtype not in (np.float32, np.float64):
        x2 = x2.astype(np.float64)  # exact for int16 values; one compiled variant per float type
    x2 = np.ascontiguousarray(x2)
    channels, width, stride = interleave or (1, x2.shape[1], 1)
    if blocks.shape[0] * blocks.shape[2] >= BLAS_MIN_FILTER:
        return _run_blas(x2, blocks, bias, positions, interleave)
    native = kernels.compiled(x2.shape[0] * blocks.size * positions)
    if native is None:
        return _run_blas(x2, blocks, bias, positions, interleave)
    out = np.empty((x2.shape[0], blocks.shape[1], positions), dtype=np.float64)
    sat = native.conv1d_rows(x2, channels, width, interleave is not None, blocks, bias, stride, out)
    return out, int(sat)


BLAS_MIN_FILTER = 64  # long filters (few positions, many taps) run as one matrix product instead of the loop


def _run_blas(x2: np.ndarray, blocks: np.ndarray, bias: np.ndarray, positions: int,
              interleave: tuple[int, int, int] | None) -> tuple[np.ndarray, int]:
    """The same sums as ``native.conv1d_rows`` as one float64 matrix product over all windows: every operand is
    an integer and every partial sum stays below 2^53 (checked by the caller), so the order of the additions
    does not matter and the results are identical."""
    n_blocks, n_filters, step = blocks.shape
    n = x2.shape[0]
    if interleave is not None:  # NCW → the interleaved memory w·C + c
        channels, width, _ = interleave
        x2 = x2.reshape(n, channels, width).transpose(0, 2, 1).reshape(n, channels * width)
    span = (positions + n_blocks - 1) * step
    mem = np.zeros((n, max(span, x2.shape[1])), dtype=np.float64)
    mem[:, :x2.shape[1]] = x2
    windows = np.lib.stride_tricks.sliding_window_view(mem[:, :span], n_blocks * step, axis=1)[:, ::step][:, :positions]
    weights = blocks.transpose(0, 2, 1).reshape(n_blocks * step, n_filters)  # (b, u) rows, as the windows run
    with parallel.single_threaded_blas():
        acc = windows.reshape(n * positions, -1) @ weights
    acc = acc.reshape(n, positions, n_filters).transpose(0, 2, 1) + bias[None, :, None]
    saturated = int(np.count_nonzero((acc < INT32_MIN) | (acc > INT32_MAX)))
    if saturated:
        np.clip(acc, INT32_MIN, INT32_MAX, out=acc)
    return np.ascontiguousarray(acc), saturated


def _accumulate(x_mem: np.ndarray, flt: np.ndarray, bias: np.ndarray, geo: ConvGeometry,
                max_abs_x: float) -> tuple[np.ndarray, int]:
    """The primitive's sums for every position it computes: (N, F, positions) float64, saturated to int32."""
    x_mem = np.asarray(x_mem)
    flt = np.asarray(flt)
    blocks = flt if flt.ndim == 3 else filter_blocks(flt, geo.step)  # (B, F, step) when prepared by the caller
    n = x_mem.shape[0]
    interleave = x_mem.ndim == 3  # (N, C, W) logical input: written interleaved (w·C + c) on the way in
    x2 = x_mem.reshape(n, -1)
    if not interleave and x2.shape[1] > geo.n_inputs:
        raise BadInput(f"interleaved input has {x2.shape[1]} elements, more than the layer's {geo.n_inputs}")
    return run_blocks(x2, blocks, bias, geo.positions, max_abs_x,
                      (geo.channels, geo.width, geo.stride) if interleave else None)


def conv1d_interleaved(
    x_mem: np.ndarray,
    flt: np.ndarray,
    bias: np.ndarray,
    geo: ConvGeometry,
    *,
    max_abs_x: float = INT16_BOUND,
) -> tuple[np.ndarray, int]:
    """Run the primitive on interleaved int16 memory.

    x_mem: (N, L) interleaved integers with L ≤ geo.n_inputs (zero-padded here to n_inputs), or (N, C, W)
    logical integers that are written interleaved on the way in; flt: [F, nfc] (or ``filter_blocks(flt,
    geo.step)`` prepared once); bias: [F].
    Returns (O, saturations) where O is (N, positions·F) in GNA output order O[j·F + f], float64 holding
    int32 values after saturation.
    """
    acc, sat = _accumulate(x_mem, flt, bias, geo, max_abs_x)
    n = acc.shape[0]
    return np.transpose(acc, (0, 2, 1)).reshape(n, geo.positions * geo.filters), sat


def conv1d(x_mem: np.ndarray, flt: np.ndarray, bias: np.ndarray, geo: ConvGeometry, *,
           max_abs_x: float = INT16_BOUND) -> tuple[np.ndarray, int]:
    """The primitive followed by the host's output transposition: (N, F, logical positions) float64.

    Same arithmetic as ``conv1d_interleaved`` followed by the host's transposition, without building the
    GNA-order array.
    """
    acc, sat = _accumulate(x_mem, flt, bias, geo, max_abs_x)
    return acc[:, :, : geo.logical_positions], sat


GRAPH_COMPILER = "src/plugins/intel_gna/src/gna_graph_compiler.cpp (ConvolutionPrimitive) @2023.1.0"
