"""The 1-D convolution primitive on interleaved GNA memory (docs/gna-rules.md §4.1, E11)."""

import numpy as np
import pytest

import conv_reference as conv_ref
from gnaexp.emulator import conv as cv


def test_e11_forum_geometry():
    g = cv.geometry(6, 255, 3, 2, 4)
    assert (g.nfc, g.n_inputs, g.n_outputs, g.logical_positions) == (24, 1536, 508, 127)
    assert g.step == 12


def test_interleaved_layout_indices():
    x = np.arange(2 * 6 * 5).reshape(2, 6, 5)
    mem = conv_ref.interleave_input(x)
    assert mem[1, 3 * 6 + 4] == x[1, 4, 3]  # X[w·C + c] = x[c, w]
    w = np.arange(4 * 6 * 3).reshape(4, 6, 3)
    flt = cv.interleave_filters(w, 24)
    assert flt.shape == (4, 24) and flt[2, 1 * 6 + 5] == w[2, 5, 1]  # Flt[f][k·C + c] = W[f, c, k]
    assert not flt[:, 18:].any()


@pytest.mark.parametrize("c,w,k,s,f", [(6, 255, 3, 2, 4), (3, 40, 5, 1, 8), (5, 33, 2, 3, 4), (16, 20, 4, 2, 12),
                                       (1, 64, 8, 4, 4), (9, 17, 3, 5, 4)])
def test_interleaved_equals_ncw_reference(c, w, k, s, f):
    rng = np.random.default_rng(c * 100 + k)
    x = rng.integers(-32768, 32768, (3, c, w))
    wt = rng.integers(-16384, 16385, (f, c, k))
    b = rng.integers(-(2**28), 2**28, f)
    g = cv.geometry(c, w, k, s, f)
    o, sat = cv.conv1d_interleaved(conv_ref.interleave_input(x), cv.interleave_filters(wt, g.nfc), b, g)
    got = conv_ref.deinterleave_output(o, g)
    ref, sat_ref = conv_ref.conv1d_ncw_reference(x, wt, b, s)
    assert np.array_equal(got, ref)
    assert sat >= sat_ref  # the primitive also counts the extra (padding) positions it computes


def test_saturation_to_int32_counted():
    x = np.full((1, 8, 16), 32767)
    wt = np.full((4, 8, 2), 16384)
    g = cv.geometry(8, 16, 2, 1, 4)
    o, sat = cv.conv1d_interleaved(conv_ref.interleave_input(x), cv.interleave_filters(wt, g.nfc), np.zeros(4), g)
    out = conv_ref.deinterleave_output(o, g)
    assert out.max() == 2**31 - 1 and sat >= out.size


def test_exact_with_biases_at_the_int32_limits():
    rng = np.random.default_rng(1)
    x = rng.integers(-32768, 32768, (2, 4, 12))
    wt = rng.integers(-16384, 16385, (4, 4, 3))
    b = np.array([2**31 - 5, -(2**31), 0, 7])
    g = cv.geometry(4, 12, 3, 1, 4)
    flt = cv.interleave_filters(wt, g.nfc)
    o, sat = cv.conv1d_interleaved(conv_ref.interleave_input(x), flt, b, g)
    ref, ref_sat = conv_ref.conv1d_ncw_reference(x, wt, b, 1)
    assert np.array_equal(conv_ref.deinterleave_output(o, g), ref) and sat >= ref_sat > 0


def test_operands_beyond_int16_are_refused():
    g = cv.geometry(4, 12, 3, 1, 4)
    flt = np.full((4, g.nfc), 2.0**40)
    with pytest.raises(ValueError, match="int16"):
        cv.conv1d(np.ones((1, 4, 12)), flt, np.zeros(4), g)


def test_filter_count_limit():
    with pytest.raises(ValueError, match="multiple of 4"):
        cv.geometry(6, 255, 3, 2, 6)
    with pytest.raises(ValueError, match="multiple of 4"):
        cv.geometry(6, 255, 3, 2, 2)


def test_logical_input_is_interleaved_on_the_way_in():
    rng = np.random.default_rng(5)
    x = rng.integers(-32768, 32768, (4, 6, 255)).astype(np.float32)
    wt = rng.integers(-16384, 16385, (4, 6, 3))
    g = cv.geometry(6, 255, 3, 2, 4)
    flt = cv.interleave_filters(wt, g.nfc)
    a, _ = cv.conv1d_interleaved(x, flt, np.arange(4), g)
    b, _ = cv.conv1d_interleaved(conv_ref.interleave_input(x), flt, np.arange(4), g)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("x_max,w_max,dtype", [(8, 64, np.float32), (2048, 16384, np.float32),
                                               (32768, 32767, np.float64), (32768, 16384, np.int64)])
def test_host_order_conv_is_exact(x_max, w_max, dtype):
    # Small and full-scale data, every input type the primitive accepts, with a bias no float32 could hold
    # exactly: the result equals the int64 reference.
    rng = np.random.default_rng(x_max + w_max)
    x = rng.integers(-x_max, x_max, (5, 6, 255)).astype(dtype)
    wt = rng.integers(-w_max, w_max + 1, (4, 6, 3))
    b = np.array([2**30 + 1, -(2**29) - 3, 5, -7])
    g = cv.geometry(6, 255, 3, 2, 4)
    flt = cv.interleave_filters(wt, g.nfc)
    got, sat = cv.conv1d(x, flt, b, g)
    ref, ref_sat = conv_ref.conv1d_ncw_reference(x.astype(np.int64), wt, b, 2)
    assert got.shape == (5, 4, 127) and np.array_equal(got, ref)


@pytest.mark.parametrize("keep", [None, 5])
def test_the_compiled_windows_and_finish_give_the_numpy_product_bits(keep):
    """Long filters on a batch run as one matrix product; with the compiled loops its windows are gathered from
    the input itself and its sums finished (bias, int32 saturation, transposition, the positions kept) in one
    pass: the same integers and saturation counts as the NumPy product, padding past the data included."""
    from gnaexp.emulator import native

    rng = np.random.default_rng(5)
    g = cv.geometry(16, 9, 4, 1, 24)  # 16 channels × kernel 4: 64 taps, the matrix product's kind of filter
    wt = rng.integers(-16384, 16385, (24, 16, 4))
    bias = rng.integers(-2**31, 2**31, 24)
    bias[:3] = [2**31 - 1, -(2**31), 2**31 - 2]  # sums past int32 both ways
    kernel = cv.ConvKernel(cv.filter_blocks(cv.interleave_filters(wt, g.nfc), g.step), bias, g.positions,
                           interleave=(g.channels, g.width, g.stride))
    assert kernel.blas and g.positions > 5
    for dtype in (np.float32, np.float64):
        x = rng.integers(-32768, 32768, (40, 16 * 9)).astype(dtype)
        fused, fused_sat = kernel.product(x, keep, native)
        plain, plain_sat = kernel.product(x, keep)
        assert fused.shape == plain.shape == (40, 24, g.positions if keep is None else keep)
        np.testing.assert_array_equal(fused, plain)
        assert fused_sat == plain_sat > 0
        ref, _ = conv_ref.conv1d_ncw_reference(x.reshape(40, 16, 9).astype(np.int64), wt, bias, 1)
        np.testing.assert_array_equal(fused[:, :, :ref.shape[2]], ref[:, :, :fused.shape[2]])
