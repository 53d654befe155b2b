"""Finishing a convolution's sums through registers (native_finish.py): four positions a sample, eight filters a
block, the same values and saturation counts as a NumPy reference, for either product's sums."""

import numpy as np
import pytest

from gnaexp.emulator.int_ranges import INT32_MAX, INT32_MIN

native = pytest.importorskip("gnaexp.emulator.native")


def _reference(acc, cols, bias, n, filters, kept):
    positions = acc.shape[0] // n
    out = np.full((n, filters, kept), np.nan)
    sums = acc[:n * positions].astype(np.float64).reshape(n, positions, -1)[:, :, :len(cols)] + bias[cols]
    saturated = int(np.count_nonzero((sums > INT32_MAX) | (sums < INT32_MIN)))
    out[:, cols, :] = np.clip(sums, INT32_MIN, INT32_MAX).transpose(0, 2, 1)[:, :, :kept]
    return out, saturated


@pytest.mark.parametrize("dtype", [np.int32, np.float64])
@pytest.mark.parametrize("layout", ["array", "work array columns", "strided"])
def test_four_positions_give_the_reference_values_and_counts(dtype, layout):
    """Filters in runs of eight and shorter, a gap between groups (a folded kernel's two groups), padding
    columns in the sums, sums that saturate both ways; the output an array of its own, columns of a wider work
    array (rows apart: the registers' path), or with its positions apart (the value-by-value path)."""
    rng = np.random.default_rng(0)
    n, filters = 37, 43
    plus = np.concatenate([np.arange(0, 21), [40, 41, 42]])  # a run of 21 then three apart
    minus = np.arange(21, 40)
    bias = rng.integers(-2**31, 2**31, filters).astype(np.float64)
    bias[:2], bias[21] = 2**31 - 1, -(2**31)
    acc_plus, acc_minus = (rng.integers(-2**31, 2**31, (n * 4 + 2, len(c) + 5)).astype(dtype) for c in (plus, minus))
    want_plus, sat_plus = _reference(acc_plus, plus, bias, n, filters, 4)
    want_minus, sat_minus = _reference(acc_minus, minus, bias, n, filters, 4)
    want = np.where(np.isnan(want_plus), want_minus, want_plus)
    if layout == "array":
        out = np.full((n, filters, 4), np.nan)
    elif layout == "work array columns":
        out = np.full((n, filters * 4 + 9), np.nan)[:, 5:5 + filters * 4].reshape(n, filters, 4)
    else:
        out = np.full((n, filters, 8), np.nan)[:, :, ::2]
    saturated = native.conv_finish_pair(acc_plus[:n * 4], acc_minus[:n * 4], plus, minus, bias, out)
    np.testing.assert_array_equal(out, want)
    assert saturated == sat_plus + sat_minus > 0
    whole = np.full((n, filters, 4), np.nan)  # every filter from one group, in order
    acc = rng.integers(-2**31, 2**31, (n * 4, filters + 3)).astype(dtype)
    want, sat = _reference(acc, np.arange(filters), bias, n, filters, 4)
    assert native.conv_finish(acc, bias, whole) == sat
    np.testing.assert_array_equal(whole, want)
