"""The emulator against a plain reading of the plugin's PWL, eltwise and int8 rules (``spec_reference_ops.py``),
bit for bit, on random nets, for every plugin release.

Each test draws a net kind's geometry, data, scale factors and the plugin release, builds the net as an
OpenVINO model and requires identical float32 outputs and identical scale factors layer by layer. Bounded and
fixed here; ``GNAEXP_DIFFERENTIAL_EXAMPLES`` sets a longer, exploring profile (see test_emulator_differential).
"""

from __future__ import annotations

import os

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spec_reference as ref
import spec_reference_ops as rops
from gnaexp.core.inputs import generate
from gnaexp.emulator import emulate
from gnaexp.emulator.activations import design
from gnaexp.emulator.releases import get as release_named

EXAMPLES = int(os.environ.get("GNAEXP_DIFFERENTIAL_EXAMPLES", "0")) or None


def _profile(default: int):
    return settings(max_examples=EXAMPLES or default, deadline=None, derandomize=EXAMPLES is None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow])


releases = st.sampled_from(rops.RELEASES)
inputs = st.tuples(st.sampled_from(["uniform11", "normal", "sines"]), st.sampled_from([1e-3, 0.1, 1.0, 3.0, 30.0]),
                   st.integers(0, 2**16))
scale_factors = st.one_of(st.sampled_from([1.0, 300.0, 2048.0, 30000.0]),
                          st.floats(0.5, 40000.0, allow_nan=False).map(lambda v: float(np.float32(v))))
bias_scales = st.sampled_from([0.0, 1e-3, 0.5, 10.0, 2e6])
ACTIVATIONS = {"Sigmoid": (ops.sigmoid, 1.0), "Tanh": (ops.tanh, 1.0), "Exp": (ops.exp, 1.0), "Log": (ops.log, 1.0),
               "Sqrt": (ops.sqrt, 0.5), "Power2": (lambda y: ops.power(y, ops.constant(np.float32(2.0))), 2.0),
               "Relu": (ops.relu, None), "Clamp": (None, None)}


def _fc_net(n_in, n_out, signal, bias_scale, name="x"):
    x = generate(signal[0], (1, n_in), signal[2], signal[1])
    rng = np.random.default_rng(signal[2] + 1)
    w = (rng.uniform(-1, 1, (n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
    b = (rng.uniform(-1, 1, n_out) * bias_scale).astype(np.float32)
    p = ops.parameter([1, n_in], np.float32, name=name)
    y = ops.add(ops.matmul(p, ops.constant(w), False, True), ops.constant(b.reshape(1, -1)))
    return x, w, b, p, y


def _run(model, feed, sf, release, precision="i16"):
    em = emulate(model, feed, sf, precision=precision, plugin_release=release)
    return next(iter(em.outputs.values())), [r.out_sf for r in em.plan if r.op != "Parameter"]


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@_profile(20)
@given(n_in=st.integers(1, 48), n_out=st.integers(1, 16), signal=inputs, sf=scale_factors, bias_scale=bias_scales,
       bounds=st.sampled_from([(-1.0, 1.0), (-0.7, 0.3), (0.0, 6.0), (-20.0, 20.0)]), release=releases)
def test_fc_then_activation_is_bit_exact(act, n_in, n_out, signal, sf, bias_scale, bounds, release):
    """FC → activation: the PWL reads the FC's int32 directly (make_pwl.cpp, kernels/pwl.cpp). One example
    budget per activation (``bounds`` is used by Clamp only)."""
    x, w, b, p, y = _fc_net(n_in, n_out, signal, bias_scale)
    build, exponent = ACTIVATIONS[act]
    out = ops.clamp(y, *bounds) if act == "Clamp" else build(y)
    got, sfs = _run(ov.Model([out], [p]), {"x": x}, sf, release)
    w_sf, fc_sf = ref.weight_scales(w, b, sf, conv_in_channels=None)
    q = ref.fc(ref.quantize_input(x[0], sf), ref.quantize_weights(w, w_sf), ref.quantize_bias(b, fc_sf))
    in_sf = float(fc_sf)
    if act == "Relu":
        out_sf = rops.activation_out_sf("Relu", in_sf)
        segs = rops.relu_segments(in_sf, out_sf, release)
    elif act == "Clamp":
        out_sf = rops.activation_out_sf("Clamp", in_sf)
        segs = rops.clamp_segments(in_sf, out_sf, *bounds, release)
    else:
        op = "Power" if exponent != 1.0 else act
        out_sf = rops.activation_out_sf(op, in_sf, exponent)
        m, bb, alpha = design(op, exponent, release=release_named(release))
        segs = rops.designed_segments(m, bb, alpha, in_sf, out_sf, release)
    assert sfs == [in_sf, out_sf]
    np.testing.assert_array_equal(got, ref.dequantize(rops.pwl_eval(segs, q), out_sf)[None])


@_profile(50)
@given(st.integers(1, 16), st.integers(1, 5), st.integers(1, 3).map(lambda n: 4 * n), inputs, scale_factors,
       bias_scales, releases)
def test_conv_identity_conv_with_signed_data_is_bit_exact(c, k, mid, signal, sf, bias_scale, release):
    """conv → (inserted identity) → conv on signed data: the identity's negative branch (segment 1 moved left
    so that it meets (0, 0)) and its release-dependent borders."""
    length = k + 20
    x = generate(signal[0], (1, c, length), signal[2], signal[1])
    rng = np.random.default_rng(signal[2] + 1)
    w1 = (rng.uniform(-1, 1, (mid, c, k)) / np.sqrt(c * k)).astype(np.float32)
    b1 = (rng.uniform(-1, 1, mid) * bias_scale).astype(np.float32)
    w2 = (rng.uniform(-1, 1, (4, mid, 1)) / np.sqrt(mid)).astype(np.float32)
    b2 = (rng.uniform(-1, 1, 4) * bias_scale).astype(np.float32)
    p = ops.parameter([1, c, length], np.float32, name="x")

    def conv(t, w, b):
        return ops.add(ops.convolution(t, ops.constant(w), [1], [0], [0], [1]), ops.constant(b.reshape(1, -1, 1)))

    got, sfs = _run(ov.Model([conv(conv(p, w1, b1), w2, b2)], [p]), {"x": x}, sf, release)
    ws1, sf1 = ref.weight_scales(w1, b1, sf, conv_in_channels=c)
    q1 = ref.conv_ncw(ref.quantize_input(x[0], sf), ref.quantize_weights(w1, ws1), ref.quantize_bias(b1, sf1), 1)
    sf_id = rops.identity_out_sf(float(sf1))
    mid_q = rops.pwl_eval(rops.identity_segments(float(sf1), sf_id, release), q1)
    ws2, sf2 = ref.weight_scales(w2, b2, sf_id, conv_in_channels=mid)
    q2 = ref.conv_ncw(mid_q, ref.quantize_weights(w2, ws2), ref.quantize_bias(b2, sf2), 1)
    assert sfs == [float(sf1), sf_id, float(sf2)]
    np.testing.assert_array_equal(got, ref.dequantize(q2, sf2)[None])


@_profile(50)
@given(st.integers(1, 48), st.integers(1, 16), inputs, scale_factors, bias_scales,
       st.sampled_from([1.0, 1e-2, 1e-3, 3e-5]), releases)
def test_int8_fully_connected_is_bit_exact(n_in, n_out, signal, sf, bias_scale, small_rows, release):
    """FC with int8 weights and the compound bias; ``small_rows`` shrinks every other row so that its
    multiplier computes to 0 (2022.3 then divides by 0)."""
    x = generate(signal[0], (1, n_in), signal[2], signal[1])
    rng = np.random.default_rng(signal[2] + 1)
    w = (rng.uniform(-1, 1, (n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
    w[1::2] *= np.float32(small_rows)
    b = (rng.uniform(-1, 1, n_out) * bias_scale).astype(np.float32)
    p = ops.parameter([1, n_in], np.float32, name="x")
    y = ops.add(ops.matmul(p, ops.constant(w), False, True), ops.constant(b.reshape(1, -1)))
    got, sfs = _run(ov.Model([y], [p]), {"x": x}, sf, release, precision="i8")
    w_sf, out_sf = rops.int8_fc_scales(w, b, sf)
    q, mult, bias = rops.int8_fc_quantize(w, b, w_sf, out_sf, release)
    assert sfs == [float(out_sf)]
    np.testing.assert_array_equal(got, ref.dequantize(rops.int8_fc(ref.quantize_input(x[0], sf), q, mult, bias),
                                                      out_sf)[None])


def _expect_sum(run, still_too_large):
    """The emulated sum, or its refusal where the emulator refuses on purpose: a second lowering of the same
    layer (the plugin's requantization loop, which its loop detection ends). A weight that rounds to 0 is
    computed as the plugin does: the sum is its bias input alone."""
    if still_too_large:
        with pytest.raises(ValueError, match="cannot take a lower scale"):
            run()
        return None
    return run()


@_profile(50)
@given(st.integers(1, 48), inputs, scale_factors, scale_factors, st.booleans(), releases)
def test_eltwise_sum_of_two_inputs_is_bit_exact(n, signal, sf0, sf1, swapped, release):
    """x0 + x1, both 16-bit: a unit diagonal on input 0 (InsertDiagonalLayerPass) makes it the 32-bit bias;
    a weights scale above 32767 lowers the diagonal (requantizeInput, weightable identity)."""
    x0 = generate(signal[0], (1, n), signal[2], signal[1])
    x1 = generate(signal[0], (1, n), signal[2] + 1, signal[1])
    p0, p1 = ops.parameter([1, n], np.float32, name="x0"), ops.parameter([1, n], np.float32, name="x1")
    first, second = (p1, p0) if swapped else (p0, p1)
    (xa, sfa), (xb, sfb) = ((x1, sf1), (x0, sf0)) if swapped else ((x0, sf0), (x1, sf1))
    w_diag = 16384.0  # ScaleFactorForQuantization(ones, 16384)
    weight, scale = rops.sum_weight(float(np.float32(np.float32(w_diag) * np.float32(sfa))), sfb)
    again = False
    if rops.needs_requantize(scale, release):
        w_diag = rops.diagonal_requantized(sfa, w_diag, float(np.float32(np.float32(sfb) * np.float32(32767))))
        weight, scale = rops.sum_weight(float(np.float32(np.float32(w_diag) * np.float32(sfa))), sfb)
        again = rops.needs_requantize(scale, release)
    model = ov.Model([ops.add(first, second)], [p0, p1])
    result = _expect_sum(lambda: _run(model, {"x0": x0, "x1": x1}, {"x0": sf0, "x1": sf1}, release), again)
    if result is None:
        return
    diag_sf = float(np.float32(np.float32(w_diag) * np.float32(sfa)))
    out = rops.diagonal(ref.quantize_input(xb[0], sfb), weight, rops.diagonal(ref.quantize_input(xa[0], sfa),
                                                                              int(w_diag)))
    assert result[1] == [diag_sf, diag_sf]
    np.testing.assert_array_equal(result[0], ref.dequantize(out, diag_sf)[None])


@_profile(50)
@given(st.integers(1, 48), st.integers(1, 16), inputs, scale_factors, scale_factors, bias_scales, st.booleans(),
       releases)
def test_eltwise_sum_of_fc_and_input_is_bit_exact(n_in, n_out, signal, sf, sf_y, bias_scale, fc_first, release):
    """FC(x) + y or y + FC(x): the FC's int32 is the bias, y the input (no identity, no diagonal); above 32767
    the FC's output scale is lowered to sf_y·32767 (requantizeInput: w_sf = new/in_sf) and the sum computed
    again."""
    x, w, b, p, fc = _fc_net(n_in, n_out, signal, bias_scale)
    yv = generate(signal[0], (1, n_out), signal[2] + 3, signal[1])
    py = ops.parameter([1, n_out], np.float32, name="y")
    model = ov.Model([ops.add(fc, py) if fc_first else ops.add(py, fc)], [p, py])
    w_sf, fc_sf = ref.weight_scales(w, b, sf, conv_in_channels=None)
    weight, scale = rops.sum_weight(float(fc_sf), sf_y)
    again = False
    if rops.needs_requantize(scale, release):
        fc_sf = np.float32(np.float32(sf_y) * np.float32(32767))
        w_sf = np.float32(fc_sf / np.float32(sf))
        fc_sf = np.float32(w_sf * np.float32(sf))  # the restarted layer: dst = w_sf · src
        weight, scale = rops.sum_weight(float(fc_sf), sf_y)
        again = rops.needs_requantize(scale, release)
    result = _expect_sum(lambda: _run(model, {"x": x, "y": yv}, {"x": sf, "y": sf_y}, release), again)
    if result is None:
        return
    q = ref.fc(ref.quantize_input(x[0], sf), ref.quantize_weights(w, w_sf), ref.quantize_bias(b, fc_sf))
    out = rops.diagonal(ref.quantize_input(yv[0], sf_y), weight, q)
    assert result[1] == [float(fc_sf), float(fc_sf)]
    np.testing.assert_array_equal(result[0], ref.dequantize(out, fc_sf)[None])


@_profile(50)
@given(st.integers(1, 48), inputs, scale_factors, scale_factors, releases)
def test_eltwise_prod_of_two_inputs_is_bit_exact(n, signal, sf0, sf1, release):
    """x0 · x1, both 16-bit: input 1 is the diagonal, bias 0, out_sf = sf0·sf1 (float)."""
    x0 = generate(signal[0], (1, n), signal[2], signal[1])
    x1 = generate(signal[0], (1, n), signal[2] + 1, signal[1])
    p0, p1 = ops.parameter([1, n], np.float32, name="x0"), ops.parameter([1, n], np.float32, name="x1")
    got, sfs = _run(ov.Model([ops.multiply(p0, p1)], [p0, p1]), {"x0": x0, "x1": x1}, {"x0": sf0, "x1": sf1}, release)
    out_sf = float(np.float32(np.float32(sf0) * np.float32(sf1)))
    out = rops.diagonal(ref.quantize_input(x0[0], sf0), ref.quantize_input(x1[0], sf1))
    assert sfs == [out_sf]
    np.testing.assert_array_equal(got, ref.dequantize(out, out_sf)[None])
