"""Mirrored filters (an STFT written as a convolution) take half the multiply-adds with the same integers
(emulator/conv_fold.py)."""

import numpy as np
import pytest

from gnaexp.emulator import conv as cv
from gnaexp.emulator import conv_fold


def _stft_kernel(taps: int, bins: int, stride: int, channels: int = 1, bias=None, extra=None):
    """cos and sin filters under a periodic Hann window, quantized as the plugin quantizes weights (rounded to
    int16), plus two zero filters (the porting's padding to a multiple of 4), as a ConvKernel on 1-channel data.
    Each filter's second half is its first mirrored (as the real values are; NumPy's cos of the two halves can
    differ in the last bit and round apart)."""
    t = np.arange(taps)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * t / taps)
    f = np.arange(bins)[:, None]
    cos, sin = window * np.cos(2 * np.pi * f * t / taps), window * np.sin(2 * np.pi * f * t / taps)
    half = taps // 2  # the periodic window's centre: tap t mirrors tap taps − t
    cos[:, half + 1:] = cos[:, 1:taps - half][:, ::-1]
    sin[:, half + 1:] = -sin[:, 1:taps - half][:, ::-1]
    if taps % 2 == 0:
        sin[:, half] = 0
    filters = np.concatenate([cos, sin, np.zeros((2, taps))] + ([] if extra is None else [extra]))
    wt = np.round(filters * 16383).astype(np.int64)[:, None, :]  # (F, C=1, K)
    g = cv.geometry(channels, 4 * taps, taps, stride, len(wt))
    bias = np.zeros(len(wt), np.int64) if bias is None else bias
    return cv.ConvKernel(cv.filter_blocks(cv.interleave_filters(wt, g.nfc), g.step), bias, g.positions,
                         interleave=(g.channels, g.width, g.stride)), g


@pytest.mark.parametrize("taps", [64, 65])  # an even span (no centre tap: window[0] = 0) and an odd one
@pytest.mark.parametrize("keep", [None, 3])
def test_an_stft_convolution_folds_and_gives_the_unfolded_products_bits(taps, keep):
    from gnaexp.emulator import native

    rng = np.random.default_rng(taps)
    bias = rng.integers(-2**20, 2**20, 2 * 17 + 2)
    bias[:2] = [2**31 - 1, -(2**31)]  # sums past int32 both ways: counted the same
    kernel, g = _stft_kernel(taps, 17, taps // 2, bias=bias)
    fold = kernel.fold
    assert fold is not None and len(fold.symmetric) + len(fold.antisymmetric) == 2 * 17 + 2
    assert len(fold.first) <= taps // 2 + 1  # about half the taps
    x = rng.integers(-32768, 32768, (23, 4 * taps)).astype(np.float32)
    folded, folded_sat = kernel.product(x, keep, native)
    plain, plain_sat = kernel.product(x, keep)  # the NumPy product over every tap
    assert folded.shape == plain.shape
    np.testing.assert_array_equal(folded, plain)
    assert folded_sat == plain_sat > 0
    in_float64, float_sat = kernel._float_product(x, keep, native)  # the fold in the float64 product too
    np.testing.assert_array_equal(in_float64, plain)
    assert float_sat == plain_sat


def test_a_kernel_with_one_filter_that_does_not_mirror_is_not_folded():
    taps = 64
    lopsided = np.zeros((4, taps))
    lopsided[0, 3] = 0.5  # one tap off the mirror
    kernel, _ = _stft_kernel(taps, 17, 32, extra=lopsided)
    assert kernel.fold is None
    short = np.zeros((conv_fold.MIN_TAPS - 1, 3))
    short[0] = short[-1] = 1
    assert conv_fold.find_fold(short) is None  # too short to gain
    mirrored = np.zeros((40, 2), np.int64)
    mirrored[5:30, 0] = np.arange(25) % 7
    mirrored[5:30, 0] += mirrored[5:30, 0][::-1]  # symmetric about 17
    mirrored[5:30, 1] = np.arange(25) - 12  # antisymmetric, 0 at the centre
    found = conv_fold.find_fold(mirrored)
    assert found is not None and found.symmetric.tolist() == [0] and found.antisymmetric.tolist() == [1]
    assert found.first.tolist() == list(range(5, 18)) and found.second.tolist() == list(range(29, 17, -1)) + [-1]
