"""The GNA 1-D convolution primitive on interleaved memory, plus a plain NCW integer reference.

docs/gna-rules.md §4.1: the input is one flat int16 vector in NWC order (element w·C + c), each filter is a flat
vector of nfc = ALIGN8(max(K·C, S·C)) coefficients (k-major, c-minor, zero-padded), the effective stride is
C·S elements, and output position j of filter f is O[j·F + f] = sat32(bias[f] + Σ_t X[j·C·S + t]·Flt[f][t]).

The sums run in the compiled loop ``native.conv1d_rows``, exact for int16 operands (see native.py), in the
calling thread: no BLAS and no library thread pool is involved. Long filters, and a process's first small work
(before ``kernels.compiled`` loads the loops), run as one matrix product with the same results: in int16
multiply-adds with int32 sums for the samples whose sums that holds exactly (int_product.py), else in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gnaexp.emulator import conv_fold, int_product, kernels, parallel
from gnaexp.emulator.int_ranges import EXACT_F64, INT16_BOUND, INT32_MAX, INT32_MIN
from gnaexp.core.errors import BadInput

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


def compact(weights: np.ndarray) -> np.ndarray:
    """Integer weights as int16 when every value fits (the same values in a quarter of the bytes: a layer's
    weights then stay in the core's cache between a stream's frames), else unchanged."""
    small = weights.astype(np.int16)
    return small if np.array_equal(small, weights) else weights


def exact_bound_ok(max_abs_x: float, blocks: np.ndarray, bias: np.ndarray) -> bool:
    """Whether every partial sum stays below 2^53 (float64 exact) for inputs up to max_abs_x."""
    per_filter = np.abs(blocks).sum(axis=(0, 2)) if blocks.size else np.zeros(1)
    return float(np.max(max_abs_x * per_filter + np.abs(bias))) < EXACT_F64


def run_blocks(x2: np.ndarray, blocks: np.ndarray, bias: np.ndarray, positions: int, max_abs_x: float = INT16_BOUND,
               interleave: tuple[int, int, int] | None = None) -> tuple[np.ndarray, int]:
    """The compiled primitive on (N, L) data: (N, F, positions) float64 int32-saturated sums, and the count.

    ``interleave`` = (channels, width, stride) when x2 is NCW data written interleaved on the way in; otherwise
    x2 is the flat memory itself. Operands beyond int16/int32 are refused (the float64 sums would not be exact).
    A layer that runs many times prepares its ``ConvKernel`` once instead.
    """
    return ConvKernel(blocks, bias, positions, max_abs_x, interleave)(x2)


BLAS_MIN_FILTER = 64  # long filters (few positions, many taps) run as one matrix product instead of the loop
INT_MIN_WORK = 60_000  # multiply-adds from which the int16 product beats the compiled pass on a frame or two
SMALL_ROWS = 8  # up to this many windows (samples × positions), long filters run compiled instead (faster there)


class ConvKernel:
    """``run_blocks`` with everything that depends only on the filters done once: the exactness check, and for
    long filters the weight matrix and the map from (position, tap) to the input value it reads.

    Long filters run as one float64 matrix product over all windows, the same sums as ``native.conv1d_rows``:
    every operand is an integer and every partial sum stays below 2^53 (checked here), so the order of the
    additions does not matter and the results are identical. Holds no per-call buffer: threads share it."""

    def __init__(self, blocks: np.ndarray, bias: np.ndarray, positions: int, max_abs_x: float = INT16_BOUND,
                 interleave: tuple[int, int, int] | None = None) -> None:
        self.bias = np.ascontiguousarray(bias, dtype=np.float64)
        if not exact_bound_ok(max_abs_x, blocks, self.bias):
            raise BadInput("convolution operands exceed int16 (inputs, weights) / int32 (bias): the GNA primitive "
                           "takes int16 data")
        self.blocks, self.positions, self.interleave = blocks, positions, interleave
        n_blocks, n_filters, step = blocks.shape
        self.blas = n_blocks * step >= BLAS_MIN_FILTER
        # (b, u) rows, as the windows run: every kernel has them, for the matrix product that also runs before a
        # process loads the compiled loops. Taps whose coefficients are zero in every filter (the blocks' padding:
        # a third of some filters) are left out: they add exact zeros to every sum.
        weights = blocks.transpose(0, 2, 1).reshape(n_blocks * step, n_filters)
        self.taps_used = np.flatnonzero(np.any(weights != 0, axis=1))
        self.weights = np.ascontiguousarray(weights[self.taps_used])
        self.small_weights = compact(self.weights)
        self.fold = conv_fold.find_fold(weights) if self.blas else None  # mirrored filters: half the work
        # The int16 product's weights (int_product.py): the plain matrix, or a fold's two groups; None: it does
        # not run (short filters, inputs beyond int16, weights that are not int16)
        self.int_weights: tuple[int_product.IntWeights, ...] | None = None
        if self.blas and max_abs_x <= INT16_BOUND:  # int16 samples
            made = ((int_product.int_weights(self.weights),) if self.fold is None else
                    (int_product.int_weights(self.fold.w_plus, 2), int_product.int_weights(self.fold.w_minus, 2)))
            self.int_weights = tuple(w for w in made if w is not None) if all(w is not None for w in made) else None
        self._reads: tuple[int, np.ndarray] | None = None  # (input length, window index), made on the first call
        self._pairs: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None  # the same for a folded kernel

    def _window_index(self, length: int) -> np.ndarray:
        """(positions, taps) index of the input value each tap of each window reads; ``length`` (one past the
        input) where the memory is zero padding. Interleaved data: memory element w·C + c is x[c·W + w]."""
        if self._reads is not None and self._reads[0] == length:
            return self._reads[1]
        index = np.ascontiguousarray(self._full_index(length)[:, self.taps_used])
        self._reads = (length, index)
        return index

    def _pair_index(self, fold: conv_fold.Fold, length: int) -> tuple[np.ndarray, np.ndarray]:
        if self._pairs is None or self._pairs[0] != length:
            self._pairs = (length, conv_fold.pair_index(fold, self._full_index(length), length))
        return self._pairs[1]

    def _full_index(self, length: int) -> np.ndarray:
        """``_window_index`` over every window offset, the taps no filter uses included."""
        n_blocks, _, step = self.blocks.shape
        if self.interleave is not None:
            channels, width, _ = self.interleave
            memory = np.arange(channels * width).reshape(channels, width).T.reshape(-1)  # memory → x index
        else:
            memory = np.arange(length)
        taps = np.arange(self.positions)[:, None] * step + np.arange(n_blocks * step)[None, :]
        index = np.full(taps.shape, length, dtype=np.intp)
        inside = taps < len(memory)
        index[inside] = memory[taps[inside]]
        return index

    def __call__(self, x2: np.ndarray, keep: int | None = None,
                 out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """(N, L) int16 values → ((N, F, positions) float64 int32-saturated sums, saturated count). ``keep``: only
        the first ``keep`` positions are returned (the sums past the data, which the host's transposition drops);
        the count still covers every position the primitive computes. ``out``: an (N, F, kept positions) array
        to write the sums into (a compiled plan's work array), returned."""
        if x2.dtype not in (np.float32, np.float64):
            x2 = x2.astype(np.float64)  # exact for int16 values; one compiled variant per float type
        native = kernels.compiled(x2.shape[0] * self.blocks.size * self.positions)  # None: the matrix product
        if not self.blas and native is not None:
            x2 = np.ascontiguousarray(x2)
            channels, width, stride = self.interleave or (1, x2.shape[1], 1)
            sums = np.empty((x2.shape[0], self.blocks.shape[1], self.positions), dtype=np.float64)
            sat = native.conv1d_rows(x2, channels, width, self.interleave is not None, self.blocks, self.bias, stride,
                                     sums)
            return _written(sums[:, :, :keep], out), int(sat)
        n, length = x2.shape
        small = n * self.positions <= SMALL_ROWS  # a frame or two: one compiled pass, no BLAS ...
        if small and self._int_limit(native) is not None and n * self.positions * self.weights.size >= INT_MIN_WORK:
            small = False  # ... unless the int16 product does it faster (a stream's STFT: 8 against 20 µs)
        if native is not None and small:
            x2 = np.ascontiguousarray(x2)
            sums = np.empty((n, self.weights.shape[1], self.positions), dtype=np.float64)
            sat = native.conv1d_windows(x2, self._window_index(length), self.small_weights, self.bias, sums)
            return _written(sums[:, :, :keep], out), int(sat)
        return self.product(x2, keep, native, out)

    def product(self, x2: np.ndarray, keep: int | None = None, native: Any = None,
                out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """The same sums as one matrix product over all windows (long filters, large batches, and a process that
        has not loaded the compiled loops). With the compiled loops (``native``) the windows are gathered from x2
        itself and the sums finished (bias, saturation, the transposition to (N, F, positions)) in one pass each,
        and the samples whose sums int32 lanes hold exactly (int_product.py) take the int16 product; without,
        the same values in NumPy."""
        limit = self._int_limit(native)
        if limit is None:
            sums, saturated = self._float_product(x2, keep, native)
            return _written(sums, out), saturated
        if x2.strides[1] != x2.itemsize:  # rows may lie apart (a view of a plan's work array), values not
            x2 = np.ascontiguousarray(x2)
        if limit >= INT16_BOUND:  # any int16 sample (a primitive's input): nothing to check
            return self._int_product(x2, keep, native, out=out)
        # the windows first, each sample's peak found while gathering them: the usual case (every sample within the
        # limit) then reads x2 once
        windows, peaks = self._windows(x2, native, True, check=True)
        exact = peaks <= limit
        if exact.all():
            return self._sums(windows, x2.shape[0], keep, native, True, self.bias, out)
        # samples beyond the limit: split into bytes where those are within it, else the float64 product
        loud = self._split_product if limit >= int_product.SPLIT_PEAK else self._float_product
        if not exact.any():
            sums, saturated = loud(x2, keep, native)
            return _written(sums, out), saturated
        first, rest = np.flatnonzero(exact), np.flatnonzero(~exact)
        out_int, sat_int = self._int_product(x2[first], keep, native)
        out_loud, sat_loud = loud(x2[rest], keep, native)
        if out is None:
            out = np.empty((x2.shape[0],) + out_int.shape[1:], dtype=np.float64)
        out[first], out[rest] = out_int, out_loud
        return out, sat_int + sat_loud

    def _split_product(self, x2: np.ndarray, keep: int | None, native: Any) -> tuple[np.ndarray, int]:
        """Loud samples as two quiet ones: x = 256·⌊x/256⌋ + (x mod 256), bytes of peak 128 and 255 whose sums the
        int16 product holds exactly (the kernel's limit is at least int_product.SPLIT_PEAK), recombined in float64 (below
        2^40: exact) before the bias and the int32 saturation, counted over every position as the primitive."""
        high = np.floor(x2 / 256.0)  # exact: int16 values, a power-of-two division
        low = x2 - 256.0 * high
        zero = np.zeros_like(self.bias)
        acc, _ = self._int_product(high, None, native, zero)  # no byte's sum reaches int32: nothing saturates
        acc *= 256.0
        acc += self._int_product(low, None, native, zero)[0]
        acc += self.bias[:, None]
        saturated = int(np.count_nonzero((acc < INT32_MIN) | (acc > INT32_MAX)))
        np.clip(acc, INT32_MIN, INT32_MAX, out=acc)
        return np.ascontiguousarray(acc[:, :, :keep]), saturated

    def _int_limit(self, native: Any) -> float | None:
        """The largest sample peak the int16 product holds exactly here, or None where it does not run."""
        if native is None or native.gemm.LANES is None or self.int_weights is None:
            return None
        return min(w.peak_limit for w in self.int_weights)

    def _int_product(self, x2: np.ndarray, keep: int | None, native: Any, bias: np.ndarray | None = None,
                     out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """``product`` in the int16 product: the same sums for samples within the limit (int_product.py), plus
        ``bias`` (default the kernel's), written into ``out`` when given."""
        return self._compiled_sums(x2, keep, native, True, self.bias if bias is None else bias, out)

    def _float_product(self, x2: np.ndarray, keep: int | None, native: Any) -> tuple[np.ndarray, int]:
        """``product`` as one float64 matrix product (exact: see the class)."""
        if native is not None:
            return self._compiled_sums(np.ascontiguousarray(x2), keep, native, False, self.bias, None)
        n, length = x2.shape
        index = self._window_index(length)
        padded = np.zeros((n, length + 1), dtype=np.float64)  # the last column is the zero padding's
        padded[:, :length] = x2
        windows = padded[:, index]  # (N, positions, taps)
        with parallel.single_threaded_blas():
            acc = windows.reshape(n * self.positions, -1) @ self.weights
        acc += self.bias
        saturated = 0
        if acc.min(initial=0.0) < INT32_MIN or acc.max(initial=0.0) > INT32_MAX:
            saturated = int(np.count_nonzero((acc < INT32_MIN) | (acc > INT32_MAX)))
            np.clip(acc, INT32_MIN, INT32_MAX, out=acc)
        return np.ascontiguousarray(acc.reshape(n, self.positions, -1).transpose(0, 2, 1)[:, :, :keep]), saturated

    def _compiled_sums(self, x2: np.ndarray, keep: int | None, native: Any, int16: bool, bias: np.ndarray,
                       out: np.ndarray | None) -> tuple[np.ndarray, int]:
        """The compiled loops' product: the windows gathered from x2 (``_windows``), then ``_sums``."""
        return self._sums(self._windows(x2, native, int16)[0], x2.shape[0], keep, native, int16, bias, out)

    def _windows(self, x2: np.ndarray, native: Any, int16: bool,
                 check: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
        """(The windows of each filter group, gathered from x2: a folded kernel's as sums and differences of
        mirrored taps, conv_fold.py; int16 for the int16 product, else float64, padded as it takes them; with
        ``check`` (int16 only), each sample's peak |x| over the values they read, else an empty array)."""
        n, length = x2.shape
        rows = n * self.positions
        if int16:
            assert self.int_weights is not None  # _int_limit said so
            padded, taps = int_product.aligned(rows, int_product.ROW_ALIGN), self.int_weights[0].taps
        else:
            padded, taps = rows, (self.weights if self.fold is None else self.fold.w_plus).shape[0]
        windows = [np.empty((padded, taps), dtype=np.int16 if int16 else np.float64)
                   for _ in range(1 if self.fold is None else 2)]
        peaks = np.empty(n if check else 0)
        if self.fold is None:
            native.conv_windows(x2, self._window_index(length), windows[0], peaks)
        else:
            native.conv_windows_pair(x2, *self._pair_index(self.fold, length), *windows, peaks)
        return windows, peaks

    def _sums(self, windows: list[np.ndarray], n: int, keep: int | None, native: Any, int16: bool,
              bias: np.ndarray, out: np.ndarray | None) -> tuple[np.ndarray, int]:
        """The windows' product, one per filter group, in int16 (int_product.py) or in float64, and the sums
        finished (bias, int32 saturation, transposition, the positions kept) into ``out``."""
        rows = n * self.positions
        if out is None:
            out = np.empty((n, self.weights.shape[1], self.positions if keep is None else keep), dtype=np.float64)
        if int16:
            assert self.int_weights is not None
            groups: tuple[Any, ...] = self.int_weights
        else:
            groups = (self.weights,) if self.fold is None else (self.fold.w_plus, self.fold.w_minus)
        sums = []
        for group, operand in zip(groups, windows):
            if int16:
                acc = np.empty((operand.shape[0], group.width), dtype=np.int32)
                native.gemm.product(operand, group.wt, acc)
            else:
                with parallel.single_threaded_blas():
                    acc = operand @ group
            sums.append(acc[:rows])
        if self.fold is None:
            return out, int(native.conv_finish(sums[0], bias, out))
        return out, int(native.conv_finish_pair(sums[0], sums[1], self.fold.symmetric, self.fold.antisymmetric,
                                                bias, out))


def _written(sums: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """The sums, copied into ``out`` when the caller gave one."""
    if out is None:
        return sums
    out[...] = sums
    return out


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
