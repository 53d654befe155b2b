"""The emulator against a plain reading of the plugin's FakeQuantize rules (``spec_reference_fq.py``), bit for
bit, on random nets, for every plugin release.

The nets are written the way NNCF post-training quantization writes them (see ``gnaexp/models/nncf_quantize.py``): an FQ
on the input, an FQ on the weight constant (per-tensor, 256/65535/65536 levels: int16 weights) and an FQ on the
layer's output. Hypothesis draws the geometry, the FQ ranges (symmetric, asymmetric, narrower than the weights),
exact-zero weights, the bias magnitude, the data and the release; the scale factors follow from the ranges.
Bounded and fixed here; ``GNAEXP_DIFFERENTIAL_EXAMPLES`` sets a longer, exploring profile.
"""

from __future__ import annotations

import os

import numpy as np
import openvino as ov
import openvino.opset13 as ops
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spec_reference as ref
import spec_reference_fq as rfq
import spec_reference_ops as rops
from gnaexp.core.inputs import generate
from gnaexp.emulator import emulate

EXAMPLES = int(os.environ.get("GNAEXP_DIFFERENTIAL_EXAMPLES", "0")) or None
PROFILE = settings(max_examples=EXAMPLES or 40, deadline=None, derandomize=EXAMPLES is None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow])

inputs = st.tuples(st.sampled_from(["uniform11", "normal", "sines"]), st.sampled_from([0.1, 1.0, 3.0, 30.0]),
                   st.integers(0, 2**16))
input_fqs = st.tuples(st.sampled_from([256, 65535, 65536]), st.sampled_from([1.0, 4.0, 16.0]))
weight_fqs = st.tuples(st.sampled_from([256, 65535, 65536]), st.sampled_from(["symmetric", "asymmetric", "narrow"]))
output_ranges = st.sampled_from([0.05, 1.0, 8.0, 64.0, 1000.0])  # small: no reducer; large: w_sf shrinks
bias_scales = st.sampled_from([0.0, 1e-3, 0.5, 2e6])  # 2e6: the bias cap of the destination-statistics branch


def _fq(x, lo, hi, levels):
    lo, hi = np.float32(lo), np.float32(hi)
    return ops.fake_quantize(x, ops.constant(lo), ops.constant(hi), ops.constant(lo), ops.constant(hi), levels)


def _weight_range(w, kind):
    if kind == "symmetric":
        m = float(np.max(np.abs(w)))
        return -m, m
    if kind == "asymmetric":
        return float(np.min(w)), float(np.max(w))
    return -0.5 * float(np.max(np.abs(w))), 0.5 * float(np.max(np.abs(w)))  # weights beyond the range clamp


@PROFILE
@given(st.integers(1, 48), st.integers(1, 16), inputs, input_fqs, weight_fqs, output_ranges, bias_scales,
       st.integers(0, 3), st.sampled_from(rops.RELEASES))
def test_fq_input_weights_and_output_fully_connected_is_bit_exact(n_in, n_out, signal, in_fq, w_fq, out_range,
                                                                   bias_scale, zeros, release):
    """input FQ → FC (FQ weights, bias) → FQ → Result: input sf from the input FQ, weights snapped and scaled
    from their FQ statistics, the output FQ's destination statistics shrinking w_sf (and capping it by the
    bias), and the FQ itself run as the kActFakeQuantize PWL."""
    x = generate(signal[0], (1, n_in), signal[2], signal[1])
    rng = np.random.default_rng(signal[2] + 1)
    w = (rng.uniform(-1, 1, (n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
    w.reshape(-1)[:zeros] = 0.0  # exact zeros: rounded with −0.5f whatever they snap to
    b = (rng.uniform(-1, 1, n_out) * bias_scale).astype(np.float32)
    (in_levels, a), (w_levels, kind) = in_fq, w_fq
    wl, wh = _weight_range(w, kind)
    p = ops.parameter([1, n_in], np.float32, name="x")
    y = ops.matmul(_fq(p, -a, a, in_levels), _fq(ops.constant(w), wl, wh, w_levels), False, True)
    if bias_scale:
        y = ops.add(y, ops.constant(b.reshape(1, -1)))
    model = ov.Model([_fq(y, -out_range, out_range, 65536)], [p])
    em = emulate(model, {"x": x}, 1.0, plugin_release=release)

    in_sf = rfq.input_scale(in_levels, -a, a)
    lo32, hi32 = float(np.float32(wl)), float(np.float32(wh))
    w_sf, fc_sf = rfq.weightable_scales(w_levels, lo32, hi32, in_sf, b if bias_scale else None,
                                        (-out_range, out_range))
    wq = rfq.quantize_fq_weights(w, w_sf, (lo32, hi32, lo32, hi32, w_levels))
    bq = ref.quantize_bias(b, fc_sf) if bias_scale else np.zeros(n_out, np.int64)
    acc = ref.fc(ref.quantize_input(x[0], in_sf), wq, bq)
    act_sf = rfq.activation_out_sf(float(fc_sf), -out_range, out_range, release)
    out = rops.pwl_eval(rfq.fq_segments(float(fc_sf), act_sf, -out_range, out_range, release), acc)
    fc_row = next(r for r in em.plan if r.op == "FullyConnected")
    assert (fc_row.in_sf, fc_row.w_sf, fc_row.out_sf) == (in_sf, float(w_sf), float(fc_sf))
    assert [r.out_sf for r in em.plan if r.op.startswith("FakeQuantize")] == [act_sf]
    np.testing.assert_array_equal(next(iter(em.outputs.values())), ref.dequantize(out, act_sf)[None])
