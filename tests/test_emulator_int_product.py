"""The int16 product (native_gemm.py, int_product.py): wrapping int32 sums, used only where they are exact, give
the float64 product's integers and saturation counts bit for bit."""

import numpy as np
import pytest

import conv_reference as conv_ref
from gnaexp.emulator import conv as cv
from gnaexp.emulator import int_product
from gnaexp.emulator.int_ranges import INT32_MAX

native = pytest.importorskip("gnaexp.emulator.native")
needs_lanes = pytest.mark.skipif(native.gemm.LANES is None, reason="this processor has no int16 multiply-add")


@needs_lanes
def test_the_product_gives_every_sum_modulo_2_to_the_32():
    """Full-range operands, -32768 pairs included (the one product pair whose sum, 2^31, wraps in a lane): every
    sum equals the int64 sum modulo 2^32, for sizes that fill the tiles and the lane steps exactly."""
    rng = np.random.default_rng(0)
    x = rng.integers(-32768, 32768, (int_product.ROW_ALIGN * 7, int_product.K_ALIGN * 65)).astype(np.int16)
    wt = rng.integers(-32768, 32768, (int_product.FILTER_ALIGN * 5, x.shape[1])).astype(np.int16)
    x[0], wt[0] = -32768, -32768
    out = np.empty((x.shape[0], wt.shape[0]), np.int32)
    native.gemm.product(x, int_product.pack(wt), out)
    wide = x.astype(np.int64) @ wt.T.astype(np.int64)
    assert wide[0, 0] == x.shape[1] * 2**30  # far past int32: wrapped
    np.testing.assert_array_equal(out, wide.astype(np.int32))  # astype keeps the low 32 bits


@pytest.mark.parametrize("width", ["avx2", "avx512-3x3", "portable"])
def test_the_other_widths_give_the_same_sums(width):
    """The AVX2 tiles (2 × 4 at 8 lanes, what a processor without AVX-512 runs), a narrower AVX-512 tile (its
    filters past the whole tiles take each narrower one) and the portable loops (none)."""
    from gnaexp.emulator import native_gemm

    if width == "avx2":
        if native_gemm.LANES is None:
            pytest.skip("this processor has no int16 multiply-add")
        product = native_gemm.make_product(2, 4, 8, cache=False)
    elif width == "avx512-3x3":
        if native_gemm.LANES != 16:
            pytest.skip("this processor has no AVX-512 int16 multiply-add")
        product = native_gemm.make_product(3, 3, 16, cache=False)
    else:
        product = native_gemm.portable_product
    rng = np.random.default_rng(1)
    x = rng.integers(-32768, 32768, (int_product.ROW_ALIGN * 3, int_product.K_ALIGN * 33)).astype(np.int16)
    wt = rng.integers(-32768, 32768, (int_product.FILTER_ALIGN * 5, x.shape[1])).astype(np.int16)
    x[1], wt[2] = -32768, -32768
    out = np.empty((x.shape[0], wt.shape[0]), np.int32)
    product(x, int_product.pack(wt), out)
    np.testing.assert_array_equal(out, (x.astype(np.int64) @ wt.T.astype(np.int64)).astype(np.int32))


def test_the_limit_is_the_largest_peak_whose_sums_stay_below_2_to_the_31():
    weights = np.zeros((40, 3))
    weights[:, 0], weights[:20, 1], weights[0, 2] = 1000, -30000, 7  # Σ|w|: 40,000, 600,000, 7
    exact = int_product.int_weights(weights)
    assert exact.peak_limit == INT32_MAX // 600_000 and exact.filters == 3
    assert exact.wt.shape == (20, 32) and exact.taps == 40 and exact.width == 16
    unpacked = exact.wt.reshape(20, 16, 2).transpose(1, 0, 2).reshape(16, 40)  # pack's inverse
    assert np.array_equal(unpacked[:3], weights.T) and not unpacked[3:].any()
    odd = int_product.int_weights(np.ones((41, 17)))  # an odd tap count and a second register of filters
    assert (odd.taps, odd.width) == (42, 32) and odd.wt[20, 1::2].sum() == 0 and odd.wt[20, 0:34:2].sum() == 17
    assert int_product.int_weights(weights, gain=2).peak_limit == INT32_MAX // 1_200_000
    assert exact.splits  # 600,000·255 < 2^31: a loud sample's bytes qualify
    assert not int_product.int_weights(np.full((300, 2), 32767.0)).splits  # 300·32767·255 ≥ 2^31
    assert int_product.int_weights(np.ones((3, 4))).peak_limit == 32768  # small weights: every int16 sample
    assert int_product.int_weights(np.ones((3, 4))).any_int16 and not exact.any_int16
    assert int_product.int_weights(np.ones((3, 4)), gain=2).peak_limit == 16383  # x_a + x_b must fit int16
    assert int_product.int_weights(np.full((3, 4), 0.5)) is None  # not integers
    assert int_product.int_weights(np.full((3, 4), 40000.0)) is None  # not int16


def _kernel(rng, kernel=4, width=9, full_scale=False, filters=24):
    g = cv.geometry(16, width, kernel, 1, filters)
    wt = rng.integers(-16384, 16385, (filters, 16, kernel))
    if full_scale:  # every weight ±32767: Σ|w|·255 past 2^31
        wt = np.where(wt < 0, -32767, 32767)
    bias = rng.integers(-2**31, 2**31, filters)
    bias[:3] = [2**31 - 1, -(2**31), 2**31 - 2]  # sums past int32 both ways
    kernel_ = cv.ConvKernel(cv.filter_blocks(cv.interleave_filters(wt, g.nfc), g.step), bias, g.positions,
                            interleave=(g.channels, g.width, g.stride))
    return kernel_, wt, bias, g


@needs_lanes
@pytest.mark.parametrize("keep", [None, 5])
@pytest.mark.parametrize("loud_way", ["split", "float64"])
def test_samples_within_the_limit_take_the_int_product_and_loud_ones_their_bytes_or_float64(keep, loud_way,
                                                                                             monkeypatch):
    """A batch of quiet samples and a few loud ones (beyond the limit: their int32 sums could wrap). The loud
    ones are split into bytes (two more int16 products) where the limit holds a byte (≥ 255), else take the
    float64 product (weights so large that Σ|w|·255 ≥ 2^31). Every value and the saturation count equal the NumPy
    float64 product's and the int64 reference."""
    rng = np.random.default_rng(7)
    kernel, wt, bias, g = _kernel(rng) if loud_way == "split" else _kernel(rng, 20, 24, full_scale=True)
    limit = kernel._int_limit(native)
    assert (1000 < limit < 32768) if loud_way == "split" else (0 < limit < int_product.SPLIT_PEAK)
    x = rng.integers(-int(limit), int(limit) + 1, (40, 16 * g.width)).astype(np.float32)
    loud = [3, 17, 18]
    x[loud] = rng.integers(-32768, 32768, (3, 16 * g.width))
    x[3, 0], x[17, 1] = 32767, -32768
    rows_seen = []
    product = native.gemm.product
    monkeypatch.setattr(native.gemm, "product", lambda a, b, c: (rows_seen.append(a.shape[0]), product(a, b, c)))
    mixed, mixed_sat = kernel.product(x, keep, native)
    quiet_rows, loud_rows = (int_product.aligned(k * g.positions, int_product.ROW_ALIGN) for k in (37, 3))
    assert rows_seen == ([quiet_rows, loud_rows, loud_rows] if loud_way == "split" else [quiet_rows])
    plain, plain_sat = kernel.product(x, keep)  # NumPy, every sample
    np.testing.assert_array_equal(mixed, plain)
    assert mixed_sat == plain_sat > 0
    ref, _ = conv_ref.conv1d_ncw_reference(x.reshape(40, 16, g.width).astype(np.int64), wt, bias, 1)
    np.testing.assert_array_equal(mixed[:, :, :ref.shape[2]], ref[:, :, :mixed.shape[2]])
    alone, alone_sat = kernel.product(x[loud], keep, native)  # loud samples only
    np.testing.assert_array_equal(alone, plain[loud])


@needs_lanes
def test_a_folded_kernel_takes_the_int_product_with_the_same_bits():
    """An STFT-like folded kernel on audio-like samples (within ±16383 and the limit): sums and differences of
    mirrored inputs in int16, the same integers and count as the NumPy product over every tap."""
    from test_emulator_conv_fold import _stft_kernel

    rng = np.random.default_rng(3)
    taps = 64
    bias = rng.integers(-2**20, 2**20, 2 * 17 + 2)
    bias[:2] = [2**31 - 1, -(2**31)]
    kernel, g = _stft_kernel(taps, 17, taps // 2, bias=bias)
    assert kernel.fold is not None
    limit = kernel._int_limit(native)
    assert 100 < limit <= 16383
    x = rng.integers(-int(limit), int(limit) + 1, (23, 4 * taps)).astype(np.float32)
    x[5] = rng.integers(-32768, 32768, 4 * taps)  # one loud sample: split into bytes
    folded, folded_sat = kernel.product(x, 3, native)
    plain, plain_sat = kernel.product(x, 3)
    np.testing.assert_array_equal(folded, plain)
    assert folded_sat == plain_sat > 0
    quiet = np.delete(x, 5, axis=0)
    alone, _ = kernel._int_product(quiet, 3, native)
    np.testing.assert_array_equal(alone, np.delete(plain, 5, axis=0))


@needs_lanes
def test_a_streams_frame_of_a_large_kernel_takes_the_int_product(monkeypatch):
    """One sample (a stream's frame) of a kernel with enough multiply-adds goes through the int16 product rather
    than the frame loop (faster there), with the same integers and count as the NumPy product."""
    rng = np.random.default_rng(4)
    kernel, wt, bias, g = _kernel(rng, 20, 24, filters=64)  # 320 taps × 64 filters × 5 positions
    assert g.positions * kernel.weights.size >= cv.INT_MIN_WORK and g.positions <= cv.SMALL_ROWS
    limit = kernel._int_limit(native)
    x = rng.integers(-int(limit), int(limit) + 1, (1, 16 * g.width)).astype(np.float32)
    rows_seen = []
    product = native.gemm.product
    monkeypatch.setattr(native.gemm, "product", lambda a, b, c: (rows_seen.append(a.shape[0]), product(a, b, c)))
    frame, frame_sat = kernel(x, 4)
    assert rows_seen == [int_product.aligned(g.positions, int_product.ROW_ALIGN)]
    plain, plain_sat = kernel.product(x, 4)
    np.testing.assert_array_equal(frame, plain)
    assert frame_sat == plain_sat
