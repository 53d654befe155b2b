"""The emulator against a plain reading of the rules (``spec_reference.py``), bit for bit, on random nets.

Hypothesis draws the geometry (channels incl. ≥ 16 for the conv reducer, kernel, stride, length, filters),
the input kind and amplitude (incl. int16 saturation), the bias magnitude (incl. the 2^30 cap) and the scale
factor, builds the net as an OpenVINO model (real OpenVINO ops, handed to the emulator as a model) and requires
identical float32 outputs. A failure shrinks to the smallest net that breaks. Bounded here; set
``GNAEXP_DIFFERENTIAL_EXAMPLES`` for a longer profile.
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

EXAMPLES = int(os.environ.get("GNAEXP_DIFFERENTIAL_EXAMPLES", "0")) or None
# The suite's profile is fixed (same examples every run); a longer one explores new examples each time.
PROFILE = settings(max_examples=EXAMPLES or 30, deadline=None, derandomize=EXAMPLES is None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow])


@st.composite
def conv_geometry(draw, max_channels=40):
    channels = draw(st.integers(1, max_channels))
    kernel = draw(st.integers(1, 6))
    stride = draw(st.integers(1, kernel))
    length = draw(st.integers(kernel, kernel + 60))
    filters = 4 * draw(st.integers(1, 5))  # GNA: filters in multiples of 4
    return channels, filters, kernel, stride, length


inputs = st.tuples(st.sampled_from(["uniform11", "normal", "sines"]),
                   st.sampled_from([1e-3, 0.1, 1.0, 3.0, 30.0]),  # 30 × sf ≥ 1093 saturates int16
                   st.integers(0, 2**16))
scale_factors = st.one_of(st.sampled_from([1.0, 300.0, 2048.0, 30000.0, 32768.0]),
                          st.floats(0.5, 40000.0, allow_nan=False).map(lambda v: float(np.float32(v))))
bias_scales = st.sampled_from([0.0, 1e-3, 0.5, 10.0, 3e4, 2e6])  # 2e6 caps the bias sf at any sf ≥ 1


def _weights(shape, seed, bias_scale, nonnegative=False):
    rng = np.random.default_rng(seed + 1)
    w = (rng.uniform(0 if nonnegative else -1, 1, shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)
    b = (rng.uniform(0 if nonnegative else -1, 1, shape[0]) * bias_scale).astype(np.float32)
    return w, b


def _conv_op(x, w, b, stride):
    y = ops.convolution(x, ops.constant(w), [stride], [0], [0], [1])
    return ops.add(y, ops.constant(b.reshape(1, -1, 1))) if b is not None else y


def _emulated(model, feed, sf, layout="correct", scales=(), release=None):
    """The emulated output; ``scales`` [(w_sf, out_sf)] of the reference must be the plan's, layer by layer
    (the scales are compared exactly: a one-ulp difference flips weights only now and then)."""
    em = emulate(model, feed, sf, layout=layout, plugin_release=release)
    planned = [(r.w_sf, r.out_sf) for r in em.plan if r.op in ("Convolution", "FullyConnected")]
    assert planned == [(float(w), float(o)) for w, o in scales]
    return next(iter(em.outputs.values()))


def _reference_conv(x, w, b, stride, in_sf, read=lambda q: q):
    w_sf, out_sf = ref.weight_scales(w, b, in_sf, conv_in_channels=w.shape[1])
    bq = ref.quantize_bias(b, out_sf) if b is not None else np.zeros(w.shape[0], np.int64)
    q = ref.conv_ncw(read(x), ref.quantize_weights(w, w_sf), bq, stride)
    return q, (w_sf, out_sf)


@PROFILE
@given(conv_geometry(), inputs, scale_factors, bias_scales)
def test_single_conv_is_bit_exact(geo, signal, sf, bias_scale):
    c, f, k, s, length = geo
    x = generate(signal[0], (1, c, length), signal[2], signal[1])
    w, b = _weights((f, c, k), signal[2], bias_scale)
    p = ops.parameter([1, c, length], np.float32, name="x")
    model = ov.Model([_conv_op(p, w, b if bias_scale else None, s)], [p])
    q, scales = _reference_conv(ref.quantize_input(x[0], sf), w, b if bias_scale else None, s, sf)
    np.testing.assert_array_equal(_emulated(model, {"x": x}, sf, scales=[scales]), ref.dequantize(q, scales[1])[None])


@PROFILE
@given(conv_geometry(max_channels=12), st.integers(2, 3), st.booleans(), st.sampled_from(["correct", "legacy-concat"]),
       inputs, scale_factors, bias_scales)
def test_concat_then_conv_is_bit_exact_in_both_layouts(geo, copies, two_inputs, layout, signal, sf, bias_scale):
    c, f, k, s, length = geo
    if two_inputs:  # two network inputs (one sf), concatenated once each
        xs = [generate(signal[0], (1, c, length), signal[2] + i, signal[1]) for i in range(2)]
    else:  # the forum's self-concat: one input, several copies
        xs = [generate(signal[0], (1, c, length), signal[2], signal[1])]
    params = [ops.parameter([1, c, length], np.float32, name=f"x{i}") for i in range(len(xs))]
    parts = params if two_inputs else params * copies
    arrays = xs if two_inputs else xs * copies
    w, b = _weights((f, c * len(parts), k), signal[2], bias_scale)
    model = ov.Model([_conv_op(ops.concat(parts, 1), w, b, s)], params)
    joined = np.concatenate([ref.quantize_input(a[0], sf) for a in arrays], axis=0)
    read = ref.legacy_read if layout == "legacy-concat" else (lambda q: q)
    q, scales = _reference_conv(joined, w, b, s, sf, read)
    got = _emulated(model, {f"x{i}": a for i, a in enumerate(xs)}, sf, layout, [scales])
    np.testing.assert_array_equal(got, ref.dequantize(q, scales[1])[None])


@PROFILE
@given(conv_geometry(max_channels=20), st.integers(1, 3).map(lambda n: 4 * n), inputs, scale_factors, bias_scales,
       st.sampled_from(rops.RELEASES))
def test_conv_identity_conv_is_bit_exact(geo, mid, signal, sf, bias_scale, release):
    """conv → (inserted identity) → conv with non-negative data, weights and bias, for each plugin release
    (signed data: test_emulator_differential_ops)."""
    c, _, k, s, length = geo
    x = np.abs(generate(signal[0], (1, c, length), signal[2], signal[1]))
    w1, b1 = _weights((mid, c, k), signal[2], bias_scale, nonnegative=True)
    w2, b2 = _weights((4, mid, 1), signal[2] + 7, bias_scale)
    p = ops.parameter([1, c, length], np.float32, name="x")
    model = ov.Model([_conv_op(_conv_op(p, w1, b1, s), w2, b2, 1)], [p])
    q1, scales1 = _reference_conv(ref.quantize_input(x[0], sf), w1, b1, s, sf)
    sf_id = rops.identity_out_sf(float(scales1[1]))
    mid_q = rops.pwl_eval(rops.identity_segments(float(scales1[1]), sf_id, release), q1)
    q2, scales2 = _reference_conv(mid_q, w2, b2, 1, sf_id)
    got = _emulated(model, {"x": x}, sf, scales=[scales1, scales2], release=release)
    np.testing.assert_array_equal(got, ref.dequantize(q2, scales2[1])[None])


@PROFILE
@given(st.integers(1, 80), st.integers(1, 24), inputs, scale_factors, bias_scales)
def test_fully_connected_is_bit_exact(n_in, n_out, signal, sf, bias_scale):
    x = generate(signal[0], (1, n_in), signal[2], signal[1])
    w, b = _weights((n_out, n_in), signal[2], bias_scale)
    p = ops.parameter([1, n_in], np.float32, name="x")
    y = ops.add(ops.matmul(p, ops.constant(w), False, True), ops.constant(b.reshape(1, -1)))
    model = ov.Model([y], [p])
    w_sf, out_sf = ref.weight_scales(w, b, sf, conv_in_channels=None)
    q = ref.fc(ref.quantize_input(x[0], sf), ref.quantize_weights(w, w_sf), ref.quantize_bias(b, out_sf))
    np.testing.assert_array_equal(_emulated(model, {"x": x}, sf, scales=[(w_sf, out_sf)]),
                                  ref.dequantize(q, out_sf)[None])


@pytest.mark.parametrize("c,o,k,s,kind,amp,sf", [(15, 12, 3, 1, "sines", 0.1, 30000.0),
                                                 (24, 16, 2, 1, "uniform11", 30.0, 300.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conv_experiment_geometries_with_a_bias_round_trip(c, o, k, s, kind, amp, sf, seed):
    """The conv experiment (as ``gnaexp export conv --set …`` builds it) at geometries and scale factors where
    w_sf = b_sf / in_sf moves by one float32 ulp although the bias cap does not bite (§3.2 step 2)."""
    from gnaexp import experiment

    config = experiment.ExperimentConfig(experiment="conv", conv_in_channels=c, out_channels=o, kernel=k, stride=s,
                                         length=128, input_kind=kind, amplitude=amp, seed=seed, scale_factor=sf)
    model = experiment.build_model(config)
    x = experiment.make_inputs(config, model)["input"]
    core = ov.Core().read_model(str(model.ir_xml))
    conv = next(op for op in core.get_ordered_ops() if op.get_type_name() == "Convolution")
    add = next(op for op in core.get_ordered_ops() if op.get_type_name() == "Add")
    w = conv.input_value(1).get_node().get_data().astype(np.float32)
    b = next(add.input_value(i).get_node() for i in range(2)
             if add.input_value(i).get_node().get_type_name() == "Constant").get_data().reshape(-1).astype(np.float32)
    q, scales = _reference_conv(ref.quantize_input(x[0], sf), w, b, s, sf)
    got = _emulated(model.ir_xml, {"input": x}, sf, scales=[scales])
    np.testing.assert_array_equal(got, ref.dequantize(q, scales[1])[None])
