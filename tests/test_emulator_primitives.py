"""The public integer primitives on hand-made integer data (docs/gna-rules.md §7): numbers worked by hand."""

import numpy as np
import pytest

from gnaexp.emulator import primitives as p
from gnaexp.emulator import pwl


def test_affine_int16_and_int8_with_row_multipliers():
    y, sat = p.affine([[3, -2]], [[1000, 2000], [-32768, 32767]], [5, 2**31 - 1])
    assert y.tolist() == [[3 * 1000 - 2 * 2000 + 5, 3 * -32768 - 2 * 32767 + 2**31 - 1]] and sat == 0
    y, sat = p.affine([[32767, 32767]], [[32767, 32767]], [2**31 - 1])  # past int32: saturates and is counted
    assert y.tolist() == [[2**31 - 1]] and sat == 1
    y, sat = p.affine([[100, -50]], [[127, -128]], [7], multipliers=[3])  # int8 weights, compound bias
    assert y.tolist() == [[(100 * 127 + 50 * 128) * 3 + 7]] and sat == 0


def test_affine_on_a_frame_or_two_gives_the_batch_integers():
    """A stream's frame takes the compiled pass, a batch the matrix product: the same integers and counts."""
    from gnaexp.emulator.conv import SMALL_ROWS

    rng = np.random.default_rng(3)
    layer = p.Affine(rng.integers(-32768, 32768, (96, 130)), rng.integers(-2**31, 2**31 - 1, 96))
    x = rng.integers(-32768, 32768, (SMALL_ROWS + 1, 130)).astype(np.float64)
    x[:, ::4] = 0
    batch, batch_sat = layer(x)
    alone = [layer(x[i:i + 1]) for i in range(len(x))]
    np.testing.assert_array_equal(np.concatenate([y for y, _ in alone]), batch)
    assert sum(s for _, s in alone) == batch_sat > 0


def test_dequantize_is_a_float32_division():
    out = p.dequantize(np.array([2049, -1, 2**31 - 1], dtype=np.int64), 2049.0)
    assert out.dtype == np.float32
    assert out.tolist() == [1.0, float(np.float32(-1) / np.float32(2049)), float(np.float32(2**31 - 1) / np.float32(2049))]


def test_conv1d_over_a_raw_memory_view():
    memory = np.arange(1, 9)[None]  # 1 … 8, read as 0 past its end
    filters = np.array([[1, 0, -1, 2], [0, 1, 0, 0]])  # nfc 4, two filters
    o, sat = p.conv1d_memory(memory, filters, [1, 0], stride=2, positions=4)
    # filter 0 at j: m[2j]·1 − m[2j+2] + 2·m[2j+3] + 1; filter 1 picks m[2j+1]; GNA order O[j·F + f]
    assert o.tolist() == [[1 - 3 + 8 + 1, 2, 3 - 5 + 12 + 1, 4, 5 - 7 + 16 + 1, 6, 7 + 1, 8]] and sat == 0
    with pytest.raises(ValueError, match="int16"):
        p.conv1d_memory(memory, np.full((1, 4), 2.0**40), [0], stride=2, positions=1)


def test_pwl_from_a_raw_segment_table():
    curve = p.pwl_from_table([-100 | 0, 0 | 1], [-5, 0], [0, 256])  # index 1: shift 16
    y, sat = p.evaluate(curve, np.array([-200, -100, -50, 0, 300, 2**31 - 1]))
    assert y.tolist() == [-5, -5, -5, 0, (300 * 256) >> 16, 32767] and sat == 1  # the last one saturates int16
    with pytest.raises(ValueError, match="non-decreasing"):
        p.pwl_from_table([0, -4], [0, 0], [0, 0])


def test_a_table_whose_segments_share_an_xbase_takes_the_last_of_them_as_the_library_does():
    # √x-like start: three segments at xBase 0 (index 0: shift 8), then one at 400. At or below 0: yBase0 = 7;
    # above 0: the last segment at 0 (slope 512, yBase 3): y = (x·512) >> 8 + 3 = 2x + 3, until 400
    curve = p.pwl_from_table([0, 0, 0, 400], [7, 1, 3, 900], [256, 1024, 512, 256])
    y, sat = p.evaluate(curve, np.array([-5, 0, 1, 10, 399, 400, 500]))
    assert y.tolist() == [7, 7, 5, 23, 801, 900, 1000] and sat == 0
    y_np, _ = pwl.evaluate_numpy(curve, np.array([-5, 0, 1, 10, 399, 400, 500]))
    assert y_np.tolist() == y.tolist()  # the compiled loop and its NumPy reference agree on the shared xBase


def test_int8_input_quantization_rule():
    """preprocessing.cpp ConvertFloatToInt8: add ±0.5f (−0.5f for v ≤ 0), clamp to [−128, 127], truncate."""
    q, sat = p.quantize_input(np.array([[127.4, 127.6, -128.4, -128.6, 0.5, -0.5, 0.0]], np.float32), 1.0, bits=8)
    assert q.tolist() == [[127, 127, -128, -128, 1, -1, 0]] and sat == 2
    q16, sat16 = p.quantize_input(np.array([[127.6, -128.6]], np.float32), 1.0)
    assert q16.tolist() == [[128, -129]] and sat16 == 0  # the same values fit int16
