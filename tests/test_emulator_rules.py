"""Integer-level rules of the emulator against the worked examples E1–E11 of docs/gna-rules.md §6 and worked numbers from the plugin source."""

import numpy as np
import pytest

from gnaexp.emulator import primitives, pwl, quantize as q, releases

F32 = np.float32


def test_e1_int16_weight_scale():
    wq = q.quantize_weightable(np.array([[0.37, -0.2]], F32), None, 1.0, kind="fc")
    assert wq.w_sf == 44281.08203125
    assert wq.weight_precision == "i16"


def test_e2_bias_below_cap_keeps_weight_scale():
    wq = q.quantize_weightable(np.array([[0.37, -0.2]], F32), np.array([0.05], F32), 2048.0, kind="fc")
    assert wq.w_sf == 44281.08203125
    assert wq.out_sf == 90687656.0
    assert not wq.bias_cap_hit


def test_e3_weight_rounding():
    w = np.array([[0.37, -0.37, -0.1234, 1e-4, 1e-5]], F32)
    wq = q.quantize_weightable(w, None, 1.0, kind="fc")
    assert wq.weights.tolist() == [[16384, -16384, -5464, 4, 0]]


def test_e4_bias_rounding_at_out_sf():
    w = np.array([[0.37, 0.1]], F32)
    wq = q.quantize_weightable(np.vstack([w, w]), np.array([0.05, -0.0123], F32), 2048.0, kind="fc")
    assert wq.bias.tolist() == [4534383, -1115458]


def test_e5_input_quantization():
    vals, sat = q.quantize_input(np.array([0.3, -1.2345, 0.0002, 20.0], F32), 2048.0)
    assert vals.tolist() == [614, -2528, 0, 32767] and sat == 1
    vals, sat = q.quantize_input(np.array([0.3, -1.2345, 20.0], F32), 1.0)
    assert vals.tolist() == [0, -1, 20] and sat == 0


def test_input_rounding_is_float32_half_away():
    # 0.49999997 + 0.5 rounds to 1.0 in float32, so the plugin writes 1; float64 rounding would give 0.
    just_below_half = np.nextafter(F32(0.5), F32(0))
    vals, _ = q.quantize_input(np.array([just_below_half, -just_below_half, 2.5, -2.5, 1.5], F32), 1.0)
    assert vals.tolist() == [1, -1, 3, -3, 2]
    assert round(float(just_below_half)) == 0


@pytest.mark.parametrize("sf", [1.0, 3.7, 2048.0, 40000.0])
def test_input_quantization_matches_the_plugins_scalar_rule(sf):
    # The plugin per value: v = x·sf in float32; v += (v >= 0 ? 0.5f : -0.5f); truncate; saturate to int16.
    rng = np.random.default_rng(int(sf))
    x = np.concatenate([rng.normal(0, 2, 4000), rng.integers(-8, 8, 500) / 2, [0.0, -0.0, 1e9, -1e9]]).astype(F32)
    v = x * F32(sf)
    expected = np.trunc(v + np.where(v >= 0, F32(0.5), F32(-0.5)).astype(F32))
    n_sat = int(np.count_nonzero((expected > 32767) | (expected < -32768)))
    vals, sat = q.quantize_input(x, sf)
    assert np.array_equal(vals, np.clip(expected, -32768, 32767)) and sat == n_sat


def test_bias_rounding_float32_tie_above_2_23():
    # In [2^23, 2^24) v + 0.5 is a float32 tie, rounded to even: odd integers come out one larger (§3.6).
    v = np.array([2**23 + 1, 2**23 + 2, -(2**23) - 1, 2**23 + 3], F32)
    assert q.round_f32(v).tolist() == [2**23 + 2, 2**23 + 2, -(2**23) - 2, 2**23 + 4]


def test_e6_conv_reducer_integer_quotient():
    assert [q.conv_reducer(c, 16384) for c in (6, 12, 16, 20, 24)] == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert q.conv_reducer(100, 127) == 1.0  # int8: quotient 0 until C_in ≥ 1033
    assert q.conv_reducer(2100, 127) == 2.0
    assert q.conv_reducer(16, 16384, k2d=1.3) == pytest.approx(2.6)
    assert q.conv_reducer(6, 16384, k2d=3.0) == 1.0
    w = np.zeros((4, 16, 3), F32)
    w[0, 0, 0] = 0.37
    wq = q.quantize_weightable(w, None, 1.0, kind="conv", c_in=16)
    assert wq.w_sf == pytest.approx(22140.541, abs=1e-3) and wq.reducer == 2.0
    w6 = np.zeros((4, 6, 3), F32)
    w6[0, 0, 0] = 0.37
    assert q.quantize_weightable(w6, None, 1.0, kind="conv", c_in=6).reducer == 1.0


def test_e7_identity_after_e2_conv():
    in_sf = 90687656.0
    assert pwl.identity_out_scale(in_sf) == 2049.0
    assert pwl.slope_int(1.0, in_sf, 2049.0) == (379, 2)
    s, scale, idx = pwl.gna_slope(1.0, in_sf, 1024.5)
    assert abs(s * scale) == pytest.approx(189.53, abs=0.01)
    assert 90687656 * 379 / 2**24 == pytest.approx(2048.65, abs=0.01)
    # x_lower: 2023.0 rounds through float32 (-1,450,294,400); 2022.3 and 2023.1+ in double (-1,450,294,344)
    for name, expected in (("2023.0", -1450294400), ("2022.3", -1450294344), ("2023.3", -1450294344)):
        xl, _, yl, yu = pwl.border_values(in_sf, 2049.0, release=releases.get(name))
        assert xl == expected and (yl, yu) == (-32768, 32767), name
    assert pwl.border_values(in_sf, 2049.0)[0] == -1450294344  # the default is 2023.3
    curve = pwl.build_identity(in_sf, 2049.0)
    seg = curve.to_json()["segments"]
    assert seg[2] == {"x_base": 0, "shift": 24, "y_base": 0, "slope": 379}  # F(0) = 0 segment
    x = np.array([0, 1, 10**6, 123456789, 2**31 - 1], dtype=np.float64)
    y, _ = pwl.evaluate(curve, x)
    assert y.tolist() == [int(v) * 379 >> 24 if v < 1450498776 else 32767 for v in x.astype(np.int64)]


def test_identity_1024_5_window():
    # in_sf 2048 · w_sf in [134.3e6, 268.6e6) → 1024.5 wins (±32 range)
    assert pwl.identity_out_scale(2.0e8) == 1024.5
    # Below the k=2 window the plugin compares the unclamped idx-0 products, so 2049 wins in [8, 16)
    # (its slope is then clamped to 32767), as the plugin source compares them (docs/gna-rules.md §3.4).
    assert pwl.identity_out_scale(12.0) == 2049.0
    assert pwl.slope_int(1.0, 12.0, 2049.0) == (32767, 0)
    assert pwl.identity_out_scale(3000.0) == 1024.5
    assert pwl.identity_out_scale(90687656.0) == 2049.0
    assert pwl.identity_out_scale(20.0) == 2049.0


def test_e8_bias_cap_lowers_weight_scale():
    wq = q.quantize_weightable(np.array([[0.37]], F32), np.array([50.0], F32), 2048.0, kind="fc")
    assert wq.bias_cap_hit
    assert wq.out_sf == 21474836.0
    assert wq.w_sf == pytest.approx(10485.76, abs=1e-3)


def test_e9_fake_quantize_scales():
    assert q.fq_scale(65535, -4.0, 4.0) == pytest.approx(8191.75)
    st16 = q.WeightStats(65535, np.array([-0.37], F32), np.array([0.37], F32), "fake-quantize")
    assert q.fq_weight_scale(st16, int8=False) == pytest.approx(88559.46, abs=0.01)
    st8 = q.WeightStats(255, np.array([-0.37], F32), np.array([0.37], F32), "fake-quantize")
    assert q.fq_weight_scale(st8, int8=True) == pytest.approx(78945.95, abs=0.01)
    assert q.weight_precision_for("fc", "i16", st8) == "i8"
    assert q.weight_precision_for("conv", "i16", st8) == "i16"  # GNA 3.0 target: conv weights int16


def test_e10_int8_fc_compound_bias():
    w = np.array([[0.37, 0.1, -0.2], [0.01, -0.02, 0.005]], F32)
    wq = q.quantize_weightable(w, None, 1.0, kind="fc", precision="i8")
    assert wq.w_sf == pytest.approx(78945.95, abs=0.01)
    assert wq.multipliers[0] == 230
    assert wq.weights[0].tolist() == [127, 34, -69]
    assert wq.weight_precision == "i8"
    # row 2: multiplier floor(1578.9/127 + 0.5) = 12 rounds down, so -131.6 saturates to -128 (counted)
    assert wq.multipliers[1] == 12
    assert wq.weights[1].tolist() == [66, -128, 33] and wq.weight_saturations == 1


def test_pwl_evaluator_floor_and_saturation():
    curve = pwl.PWL(np.array([-(2**31), -400 | 1, 0 | 1], dtype=np.int64), np.array([-5, -100, 0]),
                    np.array([0, 256, 512]), 1.0, 1.0)
    y, sat = pwl.evaluate(curve, np.array([-(2**31), -500, -400, -399, -1, 0, 1, 300, 10**9]))
    # shift 16 on segments 1 and 2; floor for negatives
    expect = [-5, -5, -100, -100 + (1 * 256 >> 16), -100 + (399 * 256 >> 16), 0, (512 >> 16), (300 * 512) >> 16,
              min(32767, (10**9 * 512) >> 16)]
    assert y.tolist() == expect and sat == 1
    y, _ = pwl.evaluate(curve, np.array([-10]))
    assert y.tolist() == [-100 + (390 * 256 >> 16)]


def test_relu_pwl_zero_left_identity_right():
    curve = pwl.build_relu(90687656.0, pwl.relu_out_scale(90687656.0))
    assert pwl.relu_out_scale(90687656.0) == 1024.0  # 2048·in_sf > INT32_MAX → halved
    y, _ = pwl.evaluate(curve, np.array([-(10**9), -1, 0, 10**7, 2**31 - 1], dtype=np.float64))
    k, idx = pwl.slope_int(1.0, 90687656.0, 1024.0)
    assert y.tolist()[:3] == [0, 0, 0]
    assert y[3] == (10**7 * k) >> (8 * (idx + 1))
    assert y[4] == ((2**31 - 1) * k) >> (8 * (idx + 1))  # int32 max is still inside the int16 range here
    y, _ = pwl.evaluate(pwl.build_relu(2.0e6, 2048.0), np.array([2**31 - 1]))
    assert y.tolist() == [32767]


def test_fq_scale_adjustment_stays_within_ten_percent():
    sf = pwl.adjust_scale_factor(4096.0, 90687656.0)
    assert 0.9 * 4096 <= sf <= 4096
    k, idx = pwl.slope_int(1.0, 90687656.0, sf)
    gain = k / 2 ** (8 * (idx + 1)) * 90687656.0 / sf
    k0, idx0 = pwl.slope_int(1.0, 90687656.0, 4096.0)
    gain0 = k0 / 2 ** (8 * (idx0 + 1)) * 90687656.0 / 4096.0
    assert abs(gain - 1) <= abs(gain0 - 1)


def test_pwl_input_at_or_below_the_first_xbase_gives_its_ybase():
    """intel/gna kernels/pwl.cpp: ``if (I > xBase0) … else O = yBase0`` — the first segment is not extended left.

    A table whose first segment has a slope: x = −1000 (below xBase0 = −400) gives yBase0 = −100 and counts no
    saturation, where extending the line would give −100 + ((−600·4096) >> 16) = −138 (or saturate for far x).
    """
    curve = pwl.PWL(np.array([-400 | 1, 0 | 1], dtype=np.int64), np.array([-100, 0]), np.array([4096, 512]),
                    1.0, 1.0)
    y, sat = pwl.evaluate(curve, np.array([-(2**31), -1000, -401, -400, -399, 0, 8]))
    assert y.tolist() == [-100, -100, -100, -100, -100 + (1 * 4096 >> 16), 0, (8 * 512) >> 16]
    assert sat == 0


def test_identity_with_every_border_zero_is_refused_like_the_plugin():
    """pwl_border_values_counter_identity.cpp AreValuesValid: all of x_lower, x_upper, y_lower, y_upper 0 → throw.

    in_sf 1 → out_sf 70000: x_lower = round(−32768/70000) = round(−0.468) = 0, x_upper = round(0.468) = 0, then
    y_lower = 0·70000 = 0 and y_upper = 0. out_sf 65000: x_lower = round(−0.504) = −1, so the PWL is valid.
    """
    with pytest.raises(ValueError, match="Unacceptable scale factors"):
        pwl.border_values(1.0, 70000.0)
    with pytest.raises(ValueError, match="Unacceptable scale factors"):
        pwl.build_identity(1.0, 70000.0)
    xl, xu, yl, yu = pwl.border_values(1.0, 65000.0)
    assert (xl, xu) == (-1, 1) and yl < 0 < yu
    with pytest.raises(ValueError, match="Unacceptable scale factors"):  # FakeQuantize range below one step
        pwl.border_values(1.0, 1000.0, fq_range=(-1e-4, 1e-4))


def test_relu_has_the_plugins_two_segments_and_saturates_past_the_range():
    """make_pwl.cpp kActRelu, no FakeQuantize: segment 0 from x_lower = DoubleToInt32(−32768·in/out) with yBase 0
    and slope 0, segment 1 from 0 with the encoded unit slope; no flat right segment.

    in_sf = out_sf = 2048: x_lower = −32768; unit slope → index 0 (2^8), slope 256. x = 32765 → 32765 (a flat
    right segment at the multiple of 4 below 32767 would give 32767); x = 40000 → 40000 saturates to 32767 and is
    counted.
    """
    curve = pwl.build_relu(2048.0, 2048.0)
    assert len(curve.x_values) == 2
    assert curve.x_values.tolist() == [-32768, 0] and curve.slope.tolist() == [0, 256]
    assert curve.ybase.tolist() == [0, 0]
    y, sat = pwl.evaluate(curve, np.array([-(2**31), -40000, -1, 0, 7, 32765, 32767, 40000]))
    assert y.tolist() == [0, 0, 0, 0, 7, 32765, 32767, 32767] and sat == 1


def test_output_statistics_weight_reducer_worked_numbers():
    """A FakeQuantize after a conv gives the plugin the conv's output statistics (scale_factor_calc.cpp,
    calculateWeightsReducerFromDstStats): maxInt = int64(max(|lo|, |hi|)·out_sf + 0.5f),
    reducer = max(1, maxInt / INT32_MAX), w_sf /= reducer.

    max|W| = 0.5 → w_sf = 16384/0.5 = 32768; in_sf 32768 → out_sf 2^30 (conv reducer: ⌊16384·16384·1/INT32_MAX⌋
    = 0 → none). Output FQ ±8: maxInt = 8·2^30 = 2^33, reducer = 2^33/(2^31 − 1) ≈ 4.0000000019, so w_sf = 8192
    (float32) and out_sf = 2^28: max|y|·out_sf = 2^31 now fits int32 (up to the rounding of the last bit).
    """
    w = np.array([[[0.5, -0.25, 0.125]]], dtype=np.float32).repeat(4, axis=0)
    wq = q.quantize_weightable(w, None, 32768.0, kind="conv", c_in=1, dst_stats=(65536, -8.0, 8.0))
    assert wq.w_sf == 8192.0 and wq.out_sf == 2.0**28
    assert wq.facts().dst_reducer == pytest.approx(2**33 / (2**31 - 1))
    no_stats = q.quantize_weightable(w, None, 32768.0, kind="conv", c_in=1)
    assert no_stats.w_sf == 32768.0 and no_stats.out_sf == 2.0**30
    # Statistics that already fit leave the scales alone: ±1 → maxInt 2^30 < INT32_MAX → reducer 1.
    fits = q.quantize_weightable(w, None, 32768.0, kind="conv", c_in=1, dst_stats=(65536, -1.0, 1.0))
    assert fits.w_sf == 32768.0


def test_output_statistics_bias_cap_comes_before_the_reducer():
    """scale_factor_calc.cpp, weightable layer with destination statistics: first the bias cap
    (bias sf = MAX_VAL_4B_BIAS / max|b| = 2^30/max|b|; when it is below out_sf, w_sf = bias sf / in_sf), then
    calculateWeightsReducerFromDstStats on the capped out_sf.

    Weight FQ 65535 levels on ±0.5 → w_sf = 65534/1 = 65534; in_sf 2048 → out_sf 134,213,632.
    - max|b| = 16 → bias sf 2^26 = 67,108,864 < out_sf: w_sf = 2^26/2048 = 32768, out_sf = 2^26.
    - output FQ ±4: maxInt = 4·2^26 = 2^28 < INT32_MAX → no reducer; the cap alone decides.
    - output FQ ±40: maxInt = 40·2^26 = 2,684,354,560 → reducer 2,684,354,560/2,147,483,647 = 1.25000000058,
      w_sf = 32768/1.25 = 26214.4 (float32 26214.400390625), out_sf = float32(26214.4·2048) = 53,687,092;
      bias 16 → round(16·53,687,092) = 858,993,472 (float32), inside int32.
    """
    w = np.array([[[0.5, -0.25, 0.125]]], dtype=np.float32).repeat(4, axis=0)
    b = np.array([16.0, -3.0, 1.0, 0.0], dtype=np.float32)
    stats = q.WeightStats(65535, np.full((4, 1, 1), -0.5, np.float32), np.full((4, 1, 1), 0.5, np.float32), "test")
    capped = q.quantize_weightable(w, b, 2048.0, kind="conv", stats=stats, dst_stats=(65536, -4.0, 4.0))
    assert capped.w_sf == 32768.0 and capped.out_sf == 2.0**26 and capped.bias_cap_hit
    assert capped.dst_reducer == 1.0 and capped.bias.tolist() == [2**30, -3 * 2**26, 2**26, 0]
    both = q.quantize_weightable(w, b, 2048.0, kind="conv", stats=stats, dst_stats=(65536, -40.0, 40.0))
    assert both.bias_cap_hit and both.dst_reducer == pytest.approx(2684354560 / 2147483647, rel=1e-15)
    assert both.w_sf == np.float32(26214.4) and both.out_sf == 53687092.0
    assert both.bias[0] == np.float32(858993472.0) and both.bias_saturations == 0
    plain = q.quantize_weightable(w, None, 2048.0, kind="conv", stats=stats)
    assert plain.w_sf == 65534.0 and plain.out_sf == 134213632.0


def test_fake_quantize_activation_scale_cap_worked_numbers():
    """An activation FakeQuantize runs as the kActFakeQuantize PWL (activations.add_fake_quantize, make_pwl.cpp):
    out_sf = (65535 − 1)/range (the FQ's levels set to UINT16_MAX, gna_pass_manager.cpp), capped at the activation
    limit 4096 (scale_factor_calc.cpp), then fine-tuned downward (adjustScaleFactor).

    [−4, 4]: 65534/8 = 8191.75 → capped to 4096. In_sf 2^28: slope 4096/2^28 = 2^-16,
    index 2 (2^-16·2^32 = 65536 does not fit int16; ·2^24 = 256 does): slope 256 exactly, gain 1, so the
    fine-tuning keeps 4096. Borders from the FQ range: x = int(±4·2^28) = ±2^30, y = int(±4·4096) = ±16384.
    Evaluated: 2^28 (1.0) → 4096; −2^28 → −4096; 2^30 and above → 16384; INT32_MIN → −16384.
    """
    assert q.fq_scale(65536, -4.0, 4.0) == pytest.approx(8191.875)
    assert pwl.adjust_scale_factor(4096.0, 2.0**28) == 4096.0
    curve = pwl.build_fake_quantize(2.0**28, 4096.0, -4.0, 4.0)
    segs = curve.to_json()["segments"]
    assert [(s["x_base"], s["shift"], s["y_base"], s["slope"]) for s in segs] == [
        (-(2**31), 8, -16384, 0), (-(2**30), 24, -16384, 256), (2**30, 8, 16384, 0)]
    y, sat = pwl.evaluate(curve, np.array([2**28, -(2**28), 2**30, 2**31 - 1, -(2**31)]))
    assert y.tolist() == [4096, -4096, 16384, 16384, -16384] and sat == 0


@pytest.mark.parametrize("fake_quantized", [False, True])
def test_concat_align_filter_round_trip(fake_quantized):
    """The ConcatAlignFilter chain (memory._align_filter): unit weights quantized at w_sf 16384
    (ScaleFactorForQuantization, 16384/max|w|) or 1 (FakeQuantize mode), int32 out at sf·w_sf, then the
    identity that takes back the 16-bit sf before the filter (getActivationScale, noChange).
    - w_sf 16384: slope 2^-14 → index 2, slope 2^24/2^14 = 1024; every int16 value comes back unchanged.
    - w_sf 1: unit slope → index 0, slope 256; the last flat segment starts at ⌊32767/4⌋·4 = 32764, so 32764,
      32765 and 32766 come out as 32767 and every other value is unchanged.
    """
    sf, w_sf = 1024.5, (1.0 if fake_quantized else 16384.0)
    v = np.arange(-32768, 32768, dtype=np.float64)
    acc, sat = primitives.affine(v.reshape(-1, 1), np.array([[w_sf]]), np.array([0.0]))
    curve = pwl.build_identity(sf * w_sf, sf)
    y, pwl_sat = pwl.evaluate(curve, acc[:, 0])
    assert sat == 0 and pwl_sat == 0
    changed = v[y != v]
    if fake_quantized:
        assert changed.tolist() == [32764, 32765, 32766] and np.all(y[y != v] == 32767)
        assert curve.slope.tolist()[1] == 256 and curve.x_values.tolist()[-1] == 32764
    else:
        assert changed.size == 0
        assert curve.slope.tolist()[1] == 1024 and curve.shifts.tolist()[1] == 24
