"""2-D convolutions as the 2023.1 plugin runs them on GNA 3.0: the 2-D primitive after its validator (with the k2d
weight reducer), H/W swapped for a width-1 input, mapped to 1-D where isMappableFrom2DTo1D holds; a hand-worked
integer example, the validator's refusals, porting's exact channel/kernel padding, and agreement with CPU FP32."""

import numpy as np
import openvino as ov
import openvino.opset8 as ops
import pytest

from gnaexp.core import metrics
from gnaexp.emulator import emulate
from gnaexp.emulator.conv2d import validator_errors
from gnaexp.emulator.support import model_support

CPU_FP32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _net(shape, kernel, filters=8, strides=(1, 1), weights=None, relu=True, pool=False):
    x = ops.parameter(list(shape), np.float32, name="x")
    w = weights if weights is not None else \
        np.random.default_rng(2).uniform(-0.3, 0.3, (filters, shape[1], *kernel)).astype(np.float32)
    y = ops.convolution(x, ops.constant(w), list(strides), [0, 0], [0, 0], [1, 1])
    y = ops.relu(y) if relu else y
    if pool:
        y = ops.max_pool(y, strides=[1, 2], dilations=[1, 1], pads_begin=[0, 0], pads_end=[0, 0],
                         kernel_shape=[1, 2]).output(0)
    r = ops.result(y)
    r.output(0).get_tensor().set_names({"y"})
    return ov.Model([r], [x])


def _cpu(model, x):
    compiled = ov.Core().compile_model(model, "CPU", CPU_FP32)
    return np.stack([compiled({"x": s})[compiled.outputs[0]] for s in x])


def _x(shape, n=4, seed=1):
    """n samples of the model's input shape (batch 1 included)."""
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, *shape[1:])).astype(np.float32)


def test_the_2d_primitive_by_hand_with_the_k2d_reducer():
    # 16 channels, 3×3 kernel of 0.5, input 1.0 at sf 1. Weight scale (§3.2): 16384/0.5 = 32768; the conv reducer
    # is k2d·⌊16384·16384·16 / (2^31 − 1)⌋ = 1.3·2 (kernel area 9 → 1.3, getWeightsReducer; ⌊C_in/8⌋ = 2), so
    # w_sf = 32768/2.6.
    w_sf = np.float32(np.float32(32768.0) / np.float32(1.3 * 2))
    w_int = int(np.round(np.float32(0.5) * w_sf))
    model = _net((1, 16, 16, 16), (3, 3), weights=np.full((8, 16, 3, 3), 0.5, np.float32), relu=False)
    em = emulate(model, {"x": np.ones((1, 16, 16, 16), np.float32)}, 1.0, keep_ints=True)
    (row,) = [r for r in em.plan if r.op == "Convolution"]
    assert row.w_sf == pytest.approx(float(w_sf)) and row.extras.geometry["k2d"] == 1.3
    assert row.extras.geometry["way"].startswith("GNA 3.0 2-D convolution")
    acc = em.ints[row.layer]
    assert acc.shape == (1, 8, 14, 14) and np.all(acc == 9 * 16 * w_int)  # 144 products of 1·w_int, exact
    np.testing.assert_allclose(em.outputs["y"], 9 * 16 * w_int / w_sf, rtol=0)


def test_the_validator_refuses_what_gna_3_0_refuses_and_porting_pads_channels_exactly():
    model = _net((1, 1, 20, 24), (3, 3))  # one input channel: the first layer of a spectrogram CNN
    x = _x((1, 1, 20, 24))
    with pytest.raises(ValueError, match=r"Unsupported number of input channels, actual value: 1, valid range \[8, "
                                         r"384\].*must be multiple of 8.*gna_limitations.cpp"):
        emulate(model, {"x": x}, 1024.0)
    em = emulate(model, {"x": x}, 1024.0, porting=True)
    assert any("padded with zeros to 8 × 8" in n for n in em.notes)
    assert metrics.sqnr_db(_cpu(model, x), em.outputs["y"]) > 40
    rows = {p: [r for r in model_support(model, porting=p).rows if r["op"] == "Convolution"][0] for p in (0, 1)}
    assert rows[0]["status"] == "refused" and rows[0]["by"] == "plugin" and "Validator_30" in rows[0]["source"]
    assert rows[1]["status"] == "rewritten" and "k2d 1.3" in rows[1]["how"]


@pytest.mark.parametrize("shape, kernel, strides, named", [
    ((1, 8, 8, 24), (3, 3), (1, 1), "Unsupported input height, actual value: 8, valid range [16, 384]"),
    ((1, 8, 16, 16), (3, 3), (1, 4), "kernel stride width (must be up to kernel width), actual value: 4"),
    ((1, 8, 16, 16), (9, 3), (1, 1), "Unsupported kernel shape, actual HxW: 9x3, only rectangular shapes up to 7x7"),
])
def test_limits_no_rewrite_fixes_stay_refused_with_the_plugins_message(shape, kernel, strides, named):
    model = _net(shape, kernel, strides=strides)
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        emulate(model, {"x": _x(shape)}, 1024.0, porting=True)
    assert named in validator_errors(shape[2], shape[3], shape[1], *kernel, 8, *strides)[0]


@pytest.mark.parametrize("shape, kernel, way", [
    ((1, 4, 12, 1), (3, 1), "swapped H/W, 1-D"),
    ((1, 4, 6, 5), (2, 5), "mapped 2-D → 1-D"),
])
def test_width_one_and_mappable_convolutions_run_as_the_plugin_maps_them(shape, kernel, way):
    model = _net(shape, kernel)
    x = _x(shape)
    em = emulate(model, {"x": x}, 2048.0)
    (row,) = [r for r in em.plan if r.op == "Convolution"]
    assert row.extras.geometry["way"].startswith(way) and row.extras.geometry["k2d"] == 1.0  # mappable: no 2-D reducer
    assert metrics.sqnr_db(_cpu(model, x), em.outputs["y"]) > 50
    (support,) = [r for r in model_support(model).rows if r["op"] == "Convolution"]
    assert support["status"] == "rewritten" and ("swapped" in support["how"] or "isMappable" in support["how"])


def test_a_spectrogram_cnn_with_relu_and_pooling_tracks_cpu_fp32():
    model = _net((1, 8, 16, 20), (3, 3), filters=16, pool=True)
    x = _x((1, 8, 16, 20), n=8)
    em = emulate(model, {"x": x}, 2048.0)
    assert em.outputs["y"].shape == (8, 1, 16, 14, 9)
    assert metrics.sqnr_db(_cpu(model, x), em.outputs["y"]) > 40


def test_a_convolution_over_one_row_stays_a_native_1d_convolution():
    model = _net((1, 2, 1, 8), (1, 3), filters=4)
    (row,) = [r for r in model_support(model).rows if r["op"] == "Convolution"]
    assert row["status"] == "native"
    assert emulate(model, {"x": np.ones((1, 2, 1, 8), np.float32)}, 64.0).outputs


def test_2d_max_pooling_after_a_2d_convolution_is_exact_and_gna_3_0s_window_rule_holds():
    x_in = ops.parameter([1, 8, 16, 16], np.float32, name="x")
    w = np.random.default_rng(4).uniform(-0.3, 0.3, (8, 8, 3, 3)).astype(np.float32)
    conv = ops.relu(ops.convolution(x_in, ops.constant(w), [1, 1], [0, 0], [0, 0], [1, 1]))
    pooled = ops.max_pool(conv, strides=[2, 2], dilations=[1, 1], pads_begin=[0, 0], pads_end=[0, 0],
                          kernel_shape=[2, 2]).output(0)
    r = ops.result(pooled)
    r.output(0).get_tensor().set_names({"y"})
    model = ov.Model([r], [x_in])
    x = _x((1, 8, 16, 16))
    em = emulate(model, {"x": x}, 2048.0, keep_ints=True)
    assert em.outputs["y"].shape == (4, 1, 8, 7, 7)
    assert metrics.sqnr_db(_cpu(model, x), em.outputs["y"]) > 40
    # the pooled integers are the maxima of the activation's integers over each 2×2 window
    act = next(r.layer for r in em.plan if r.op not in ("Parameter", "Convolution") and "MaxPool" not in r.op)
    pool = next(r.layer for r in em.plan if r.op.startswith("MaxPool (window 2x2"))
    a = em.ints[act][..., :14, :14].reshape(4, 1, 8, 7, 2, 7, 2)
    np.testing.assert_array_equal(em.ints[pool], a.max(axis=(4, 6)))
    wide = ops.max_pool(conv, strides=[1, 1], dilations=[1, 1], pads_begin=[0, 0], pads_end=[0, 0],
                        kernel_shape=[2, 4]).output(0)
    with pytest.raises(ValueError, match="2-D pooling window 2x4.*square window up to 3x3"):
        emulate(ov.Model([ops.result(wide)], [x_in]), {"x": x}, 2048.0)
