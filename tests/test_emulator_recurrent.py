"""Recurrent nets as the GNA plugin transforms them (emulator/recurrent.py), and the ScaleShift and Sub layers
the decompositions produce: the rewrite is exact in FP32 on OpenVINO CPU, the emulated result tracks CPU FP32,
and the new layers compute the integers worked out by hand from the plugin's rules."""

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from gnaexp.core.gna_settings import GnaSettings
from gnaexp.core import metrics
from gnaexp.emulator import emulate, UnsupportedOpError
from gnaexp.emulator.recurrent import transform

CPU_FP32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _named(outputs, names):
    for o, n in zip(outputs, names):
        o.get_tensor().set_names({n})
    return [ops.result(o) for o in outputs]


def _lstm(steps=4, n_in=8, hidden=16, direction="forward", state_inputs=True, seed=0, clip=0.0):
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    x = ops.parameter([1, steps, n_in], np.float32, name="x")
    if state_inputs:
        h0, c0 = (ops.parameter([1, d, hidden], np.float32, name=n) for n in ("h0", "c0"))
        params = [x, h0, c0]
    else:  # zero initial states, as exporters write them: constants the plugin folds into the first step
        h0 = c0 = ops.constant(np.zeros((1, d, hidden), np.float32))
        params = [x]
    w = ops.constant((rng.normal(size=(d, 4 * hidden, n_in)) * 0.4).astype(np.float32))
    r = ops.constant((rng.normal(size=(d, 4 * hidden, hidden)) * 0.3).astype(np.float32))
    b = ops.constant((rng.normal(size=(d, 4 * hidden)) * 0.2).astype(np.float32))
    seq = ops.lstm_sequence(x, h0, c0, ops.constant(np.array([steps], np.int32)), w, r, b, hidden, direction,
                            clip=clip)
    return ov.Model(_named(seq.outputs(), ("y", "ho", "co")), params)


def _gru(steps=4, n_in=8, hidden=16, linear_before_reset=True, seed=0):
    rng = np.random.default_rng(seed)
    x = ops.parameter([1, steps, n_in], np.float32, name="x")
    h0 = ops.parameter([1, 1, hidden], np.float32, name="h0")
    w = ops.constant((rng.normal(size=(1, 3 * hidden, n_in)) * 0.4).astype(np.float32))
    r = ops.constant((rng.normal(size=(1, 3 * hidden, hidden)) * 0.3).astype(np.float32))
    b = ops.constant((rng.normal(size=(1, (4 if linear_before_reset else 3) * hidden)) * 0.2).astype(np.float32))
    seq = ops.gru_sequence(x, h0, ops.constant(np.array([steps], np.int32)), w, r, b, hidden, "forward",
                           linear_before_reset=linear_before_reset)
    return ov.Model(_named(seq.outputs(), ("y", "ho")), [x, h0])


def _cells():
    rng = np.random.default_rng(2)
    x, h, c = (ops.parameter([1, n], np.float32, name=name) for name, n in (("x", 6), ("h", 5), ("c", 5)))

    def const(*shape):
        return ops.constant((rng.normal(size=shape) * 0.5).astype(np.float32))

    lstm = ops.lstm_cell(x, h, c, const(20, 6), const(20, 5), const(20), 5)
    gru = ops.gru_cell(x, h, const(15, 6), const(15, 5), const(15), 5)
    return ov.Model(_named([*lstm.outputs(), gru.output(0)], ("lh", "lc", "gh")), [x, h, c])


def _tensor_iterator(steps=3, n_in=6, hidden=5, reverse=False):
    """A TensorIterator over an LSTM cell, as older IRs hold recurrent layers."""
    rng = np.random.default_rng(4)
    x = ops.parameter([1, steps, n_in], np.float32, name="x")
    h0, c0 = (ops.parameter([1, hidden], np.float32, name=n) for n in ("h0", "c0"))
    xi = ops.parameter([1, 1, n_in], np.float32)
    hi, ci = (ops.parameter([1, hidden], np.float32) for _ in range(2))

    def const(*shape):
        return ops.constant((rng.normal(size=shape) * 0.5).astype(np.float32))

    cell = ops.lstm_cell(ops.squeeze(xi, ops.constant(np.array([1]))), hi, ci, const(4 * hidden, n_in),
                         const(4 * hidden, hidden), const(4 * hidden), hidden)
    h_res, c_res = ops.result(cell.output(0)), ops.result(cell.output(1))
    y_res = ops.result(ops.unsqueeze(cell.output(0), ops.constant(np.array([1]))))
    body = ov.Model([h_res, c_res, y_res], [xi, hi, ci])
    ti = ops.tensor_iterator()
    ti.set_body(body)
    stride = -1 if reverse else 1
    ti.set_sliced_input(xi, x.output(0), 0 if stride > 0 else -1, stride, 1, -1 if stride > 0 else 0, 1)
    ti.set_merged_input(hi, h0.output(0), h_res.output(0))
    ti.set_merged_input(ci, c0.output(0), c_res.output(0))
    last = ti.get_iter_value(h_res.output(0), -1)
    ys = ti.get_concatenated_slices(y_res.output(0), 0 if stride > 0 else -1, stride, 1, -1 if stride > 0 else 0, 1)
    return ov.Model(_named([last, ys], ("h", "y")), [x, h0, c0])


def _inputs(model, n=16, seed=5):
    rng = np.random.default_rng(seed)
    return {p.get_any_name(): rng.uniform(-1, 1, size=[n, *p.get_shape()]).astype(np.float32) for p in model.inputs}


def _cpu(model, inputs):
    compiled = ov.Core().compile_model(model, "CPU", CPU_FP32)
    n = len(next(iter(inputs.values())))
    runs = [compiled({k: v[i] for k, v in inputs.items()}) for i in range(n)]
    return {o.get_any_name(): np.stack([r[o] for r in runs]) for o in compiled.outputs}


MODELS = {"lstm": _lstm, "lstm_reverse": lambda: _lstm(direction="reverse"),
          "lstm_bidirectional": lambda: _lstm(direction="bidirectional"), "lstm_clip": lambda: _lstm(clip=0.5),
          "lstm_zero_state": lambda: _lstm(state_inputs=False), "gru": _gru,
          "gru_reset_first": lambda: _gru(linear_before_reset=False), "cells": _cells,
          "tensor_iterator": _tensor_iterator, "tensor_iterator_reverse": lambda: _tensor_iterator(reverse=True)}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_rewrite_computes_what_the_recurrent_op_computes(name):
    model = MODELS[name]()
    rewritten, rewrites = transform(model)
    assert rewrites and all(not r.problem for r in rewrites)
    recurrent = ("Sequence", "Cell", "TensorIterator")
    assert not any(op.get_type_name().endswith(recurrent) for op in rewritten.get_ordered_ops())
    assert any(op.get_type_name().endswith(recurrent) for op in model.get_ordered_ops())  # a clone was rewritten
    inputs = _inputs(model, n=4)
    ref, got = _cpu(model, inputs), _cpu(rewritten, inputs)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], atol=2e-6)


@pytest.mark.parametrize("name, floor_db", [("lstm", 30), ("lstm_reverse", 30), ("lstm_bidirectional", 29),
                                            ("lstm_clip", 30),
                                            ("lstm_zero_state", 29),
                                            ("gru", 36), ("gru_reset_first", 36), ("cells", 30),
                                            ("tensor_iterator", 30), ("tensor_iterator_reverse", 30)])
def test_emulated_recurrent_nets_track_cpu_fp32(name, floor_db):
    model = MODELS[name]()
    inputs = _inputs(model)
    ref = _cpu(model, inputs)
    em = emulate(model, inputs, 1024.0)
    for k in ref:
        # The sigmoid/tanh PWLs are designed to a 1 % error target: about 40 dB for one gate, less through steps.
        assert metrics.sqnr_db(ref[k], em.outputs[k]) > floor_db, k


def test_an_lstm_step_is_planned_as_lstm_cell_decomposition_writes_it():
    model = _lstm(steps=1, hidden=4)
    em = emulate(model, _inputs(model, n=2), 256.0)
    steps = {r.layer.split("/t0/")[1]: r for r in em.plan if "/t0/" in r.layer}
    # X·Wᵀ, H·Rᵀ (+B fused), the identity that makes the first sum input 16-bit, XHB, four gate PWLs, f·C, i·c,
    # C' (an identity on f·C), tanh(C'), H', and the identity that brings the 32-bit C' out as an output.
    assert sorted(steps) == sorted(["Xt_W", "Ht_R", "Xt_W/identity", "XHB", "f", "i", "c", "o", "f_C", "i_c",
                                    "f_C/identity", "C", "h_C", "H", "C/identity_output"])
    assert steps["XHB"].in_sf == [steps["Xt_W/identity"].out_sf, steps["Ht_R"].out_sf]
    assert [steps[g].op.split(" ")[0] for g in "fico"] == ["Sigmoid", "Sigmoid", "Tanh", "Sigmoid"]
    assert steps["f_C"].in_sf == [2048.0, 256.0] and steps["H"].in_sf == [2048.0, 2048.0]


def test_scaleshift_hand_worked_integers():
    x = ops.parameter([1, 2], np.float32, name="x")
    y = ops.add(ops.multiply(x, ops.constant(np.array([2.0, -1.0], np.float32))),
                ops.constant(np.array([0.1, 0.2], np.float32)))
    y.set_friendly_name("ss")
    em = emulate(ov.Model(_named([y.output(0)], ["y"]), [x]), {"x": np.array([[0.5, -0.25]], np.float32)}, 2048.0,
                 keep_ints=True)
    (row,) = [r for r in em.plan if r.layer.startswith("Multiply") or "ScaleShift" in r.op]
    # One layer for ×w then +b. in_sf 2048; w_sf = 16384 / max|w| = 8192 (the bias cap 2^30/0.2 does not bite);
    # weights round(w·8192) = [16384, −8192]; out_sf 8192·2048 = 16777216; bias round(b·out_sf) in float32 =
    # [1677722, 3355443]; x → [1024, −512]: acc = [1024·16384 + 1677722, −512·−8192 + 3355443].
    assert row.w_sf == 8192.0 and row.out_sf == 16777216.0
    assert em.ints[row.layer].tolist() == [[18454938, 7549747]]
    np.testing.assert_allclose(em.outputs["y"], [[18454938 / 16777216, 7549747 / 16777216]])


def test_subtract_hand_worked_integers():
    a, b = (ops.parameter([1, 4], np.float32, name=n) for n in ("a", "b"))
    d = ops.subtract(a, b)
    d.set_friendly_name("diff")
    feeds = {"a": np.array([[0.5, -0.25, 1.0, 0.0]], np.float32), "b": np.array([[0.25, 0.5, -1.0, 0.001]], np.float32)}
    em = emulate(ov.Model(_named([d.output(0)], ["d"]), [a, b]), feeds, 1024.0, keep_ints=True)
    # a, b at sf 1024 → [512, −256, 1024, 0] and [256, 512, −1024, 1]. a becomes the 32-bit bias input through a
    # unit diagonal (×16384, sf 1024·16384); b is the w-input with weight 16384·(−1): out = (a_q − b_q)·16384.
    row = next(r for r in em.plan if r.layer == "diff")
    assert row.op == "Eltwise Sub (diagonal affine)" and row.extras.weight_int == -16384
    assert em.ints["diff"].tolist() == [[4194304, -12582912, 33554432, -16384]]
    np.testing.assert_allclose(em.outputs["d"], [[0.25, -0.75, 2.0, -1 / 1024]])


def test_a_sequence_the_plugin_cannot_convert_is_refused_with_the_reason():
    x = ops.parameter([1, 3, 4], np.float32, name="x")
    h0 = ops.parameter([1, 1, 5], np.float32, name="h0")
    lengths = ops.parameter([1], np.int32, name="lengths")  # data-dependent lengths: the masked form (Select)
    rng = np.random.default_rng(0)
    w, r, b = (ops.constant(rng.normal(size=s).astype(np.float32)) for s in ((1, 15, 4), (1, 15, 5), (1, 15)))
    seq = ops.gru_sequence(x, h0, lengths, w, r, b, 5, "forward")
    model = ov.Model(_named([seq.output(0)], ["y"]), [x, h0, lengths])
    with pytest.raises(UnsupportedOpError, match="sequence lengths are not the constant time length: the converted "
                                                 "TensorIterator masks the steps with Select"):
        emulate(model, {"x": np.zeros((1, 3, 4), np.float32), "h0": np.zeros((1, 1, 5), np.float32),
                        "lengths": np.array([3], np.float32)}, 1.0)


def test_a_sum_whose_scales_differ_by_more_than_32767_lowers_the_bias_layer_as_the_plugin_does():
    """Every LSTM/GRU gate sum whose weights are small hits this: the plugin sets the output scale of the layer
    behind the bias input to sf_w·32767 (scale_factor_calc.cpp requantizeInput) instead of failing."""
    rng = np.random.default_rng(3)
    x = ops.parameter([1, 8], np.float32, name="x")
    small = ops.matmul(x, ops.constant((rng.uniform(-1, 1, (8, 8)) * 0.01).astype(np.float32)), False, False)
    large = ops.matmul(x, ops.constant(rng.uniform(-1, 1, (8, 8)).astype(np.float32)), False, False)
    small.set_friendly_name("small")
    large.set_friendly_name("large")
    total = ops.add(small, large)
    total.set_friendly_name("sum")
    model = ov.Model(_named([total.output(0)], ["y"]), [x])
    feeds = {"x": rng.uniform(-1, 1, (64, 1, 8)).astype(np.float32)}
    em = emulate(model, feeds, 8192.0)
    rows = {r.layer: r for r in em.plan}
    w_sf = rows["small/identity"].out_sf  # the 16-bit w-input: an identity on the first 32-bit input
    # Unlowered, "large" would sit at 16384/max|W| · 8192 ≈ 1.3e8, > 32767 · w_sf: it is set to w_sf · 32767.
    assert rows["large"].out_sf == float(np.float32(np.float32(w_sf) * np.float32(32767)))
    assert rows["large"].requantized_for == "eltwise" and rows["sum"].extras.weight_int == 32767
    assert any("output scale of 'large' lowered" in n for n in em.notes)
    ref = _cpu(model, feeds)["y"]
    assert metrics.sqnr_db(ref, em.outputs["y"]) > 40


def test_the_per_layer_table_reaches_inside_an_unrolled_lstm(tmp_path):
    """The rewritten ops get FP32 references from the same rewrite on CPU, with names stable across reads (an
    op name OpenVINO makes up is numbered anew on each read)."""
    from gnaexp.diagnose.layer_error import per_layer

    model = _lstm(steps=2, hidden=8)
    for op in model.get_ordered_ops():
        if op.get_type_name() == "LSTMSequence":
            op.set_friendly_name("LSTMSequence_7")  # as a frontend names an unnamed node
    ov.save_model(model, str(tmp_path / "lstm.xml"))
    rows = {r.layer: r for r in per_layer(tmp_path / "lstm.xml", _inputs(model, n=8), GnaSettings(1024.0))}
    cell = [r for name, r in rows.items() if name.startswith("LSTMSequence[0]/t1/")]
    computed = [r for r in cell if "identity" not in r.layer]  # an identity holds its input's FP32 value
    assert len(computed) == 12 and all(np.isfinite(r.accumulated_sqnr_db) for r in computed)
    assert rows["LSTMSequence[0]/t0/Xt_W"].accumulated_sqnr_db > 60  # the X·Wᵀ product, not the gate sum


def test_clamp_hand_worked_integers():
    """Clamp [-0.5, 0.75] after an FC: in_sf = w_sf·x_sf = 16384·1024 = 2^24; out_sf 2048, not halved although
    2048·2^24 passes INT32_MAX (getActivationScale halves a "relu" only); x_lower = round(−0.5·in_sf), y_lower =
    round(−0.5·2048) = −1024; x_upper = round(0.75·in_sf), y_upper = 1536; slope 1 between."""
    x = ops.parameter([1, 4], np.float32, name="x")
    fc = ops.matmul(x, ops.constant(np.eye(4, dtype=np.float32)), False, False)
    fc.set_friendly_name("fc")
    y = ops.clamp(fc, -0.5, 0.75)
    y.set_friendly_name("clip")
    em = emulate(ov.Model(_named([y.output(0)], ["y"]), [x]), {"x": np.array([[-1.0, -0.25, 0.5, 2.0]], np.float32)},
                 1024.0, keep_ints=True)
    rows = {r.layer: r for r in em.plan}
    in_sf = rows["fc"].out_sf
    assert in_sf == 16384.0 * 1024.0 and rows["clip"].out_sf == 2048.0
    segments = rows["clip"].extras.pwl["segments"]
    assert [s["y_base"] for s in segments] == [-1024, -1024, 1536]
    assert [s["x_base"] for s in segments][1:] == [round(-0.5 * in_sf) & ~3, round(0.75 * in_sf) & ~3]
    # x = [−1024, −256, 512, 2048]·16384 at in_sf: −1 and 2 clamp to the bounds, −0.25 and 0.5 pass (·2048).
    assert em.ints["clip"].tolist() == [[-1024, -512, 1024, 1536]]


def _pwl_by_hand(segments, x):
    """GNA PWL on integers, as the kernel computes it: the last segment whose xBase ≤ x (the first one's yBase
    at or below its xBase), y = floor((x − xBase)·slope / 2^shift) + yBase, saturated to int16."""
    out = []
    for v in np.asarray(x, dtype=np.int64).reshape(-1):
        seg = max((s for s in segments if s["x_base"] <= v), key=lambda s: s["x_base"], default=segments[0])
        y = seg["y_base"] if v <= segments[0]["x_base"] else \
            ((int(v) - seg["x_base"]) * seg["slope"]) // (1 << seg["shift"]) + seg["y_base"]
        out.append(min(32767, max(-32768, y)))
    return np.array(out, dtype=np.int64).reshape(np.shape(x))


def test_an_lstm_step_hand_worked_in_integers():
    """One LSTM step, 2 inputs, 2 cells, every input at sf 1024: weights in {±1, ±0.5, ±0.25} so w_sf = 16384
    and every weight and bias integer is exact. X·Wᵀ = W_q·x_q at sf 2^24; H·Rᵀ + B = R_q·h_q + B·2^24; XHB =
    identity(X·Wᵀ)·8188 + (H·Rᵀ + B) (8188 = round(2^24 / 2049)); the gates are the PWLs of its four crops; f·C =
    f_q·c0_q, i·c = i_q·c_q (both at 2048·…); C' = identity(f·C)·w + i·c; H' = o_q·tanh_q(C')."""
    w = np.array([[1, 0.5], [-0.5, 0.25], [0.25, -1], [0.5, 0.5], [-1, 0.25], [0.5, -0.5], [0.25, 0.25],
                  [-0.25, 1]], np.float32)
    r = np.array([[0.5, -0.25], [1, 0.5], [-0.5, 0.5], [0.25, -1], [0.5, 0.25], [-0.25, -0.5], [1, -1],
                  [0.25, 0.5]], np.float32)
    b = np.array([0.5, -0.25, 0.125, 0.0, -0.5, 0.25, 0.0, 0.125], np.float32)
    x = ops.parameter([1, 1, 2], np.float32, name="x")
    h0, c0 = (ops.parameter([1, 1, 2], np.float32, name=n) for n in ("h0", "c0"))
    seq = ops.lstm_sequence(x, h0, c0, ops.constant(np.array([1], np.int32)), ops.constant(w[None]),
                            ops.constant(r[None]), ops.constant(b[None]), 2, "forward")
    seq.set_friendly_name("lstm")
    model = ov.Model(_named(seq.outputs(), ("y", "ho", "co")), [x, h0, c0])
    feed = {"x": np.array([[[0.5, -0.25]]], np.float32), "h0": np.array([[[0.25, 0.5]]], np.float32),
            "c0": np.array([[[0.5, -1.0]]], np.float32)}
    em = emulate(model, feed, 1024.0, keep_ints=True)
    plan = {r_.layer.split("/t0/")[-1]: r_ for r_ in em.plan}
    ints = {k.split("/t0/")[-1]: v.reshape(-1).astype(np.int64) for k, v in em.ints.items()}
    x_q, h_q, c_q = np.array([512, -256]), np.array([256, 512]), np.array([512, -1024])

    xw = (w * 16384).astype(np.int64) @ x_q
    assert plan["Xt_W"].w_sf == 16384.0 and ints["Xt_W"].tolist() == xw.tolist()
    hr = (r * 16384).astype(np.int64) @ h_q + (b.astype(np.float64) * 2**24).astype(np.int64)
    assert ints["Ht_R"].tolist() == hr.tolist()
    ident = _pwl_by_hand(plan["Xt_W/identity"].extras.pwl["segments"], xw)
    assert ints["Xt_W/identity"].tolist() == ident.tolist() and plan["XHB"].extras.weight_int == 8188
    xhb = ident * 8188 + hr
    assert ints["XHB"].tolist() == xhb.tolist()
    gates = {g: _pwl_by_hand(plan[g].extras.pwl["segments"], xhb[k * 2:k * 2 + 2]) for k, g in enumerate("fico")}
    for g, v in gates.items():
        assert ints[g].tolist() == v.tolist(), g
    assert ints["f_C"].tolist() == (gates["f"] * c_q).tolist()
    assert ints["i_c"].tolist() == (gates["i"] * gates["c"]).tolist()
    f_c_id = _pwl_by_hand(plan["f_C/identity"].extras.pwl["segments"], gates["f"] * c_q)
    cw = plan["C"].extras.weight_int
    assert cw == round(2048 * 2048 / plan["f_C/identity"].out_sf)
    new_c = f_c_id * cw + gates["i"] * gates["c"]
    assert ints["C"].tolist() == new_c.tolist()
    tanh_c = _pwl_by_hand(plan["h_C"].extras.pwl["segments"], new_c)
    assert ints["H"].tolist() == (gates["o"] * tanh_c).tolist()


def test_a_sum_of_two_inputs_at_scales_far_apart_lowers_the_unit_diagonal_hand_worked():
    """a at sf 4096, b at sf 1024: a's SyntheticScaleShift (×16384) makes the weights scale 65536 > 32767, so the
    plugin lowers that weightable identity: reducer = 4096·16384 / (1024·32767) ≈ 2.00006, weight
    trunc(16384 / reducer) = 8191, out sf 4096·8191; the sum's weight is then round(4096·8191/1024) = 32764."""
    a, b = (ops.parameter([1, 3], np.float32, name=n) for n in ("a", "b"))
    total = ops.add(a, b)
    total.set_friendly_name("sum")
    feeds = {"a": np.array([[0.5, -1.0, 2.0]], np.float32), "b": np.array([[1.0, 0.25, -3.0]], np.float32)}
    em = emulate(ov.Model(_named([total.output(0)], ["y"]), [a, b]), feeds, {"a": 4096.0, "b": 1024.0},
                 keep_ints=True)
    rows = {r.layer: r for r in em.plan}
    assert rows["sum/SyntheticScaleShift"].w_sf == 8191.0 and rows["sum"].extras.weight_int == 32764
    a_q, b_q = np.array([2048, -4096, 8192]), np.array([1024, 256, -3072])
    assert em.ints["sum"].tolist() == [(a_q * 8191 + b_q * 32764).tolist()]
    np.testing.assert_allclose(em.outputs["y"], feeds["a"] + feeds["b"], rtol=1e-3)
