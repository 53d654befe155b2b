"""The layers a streaming audio net needs: PWL activations designed as the plugin designs them, eltwise sum and
product as diagonal affine layers, host pre/post-processing and the porting rewrites, batched streaming."""

import math

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from gnaexp.backends import make_backend
from gnaexp.emulator import activations, emulate, pwl as pw
from gnaexp.emulator.api import load_program
from gnaexp.emulator.porting import support_report
from gnaexp.vad import stream as vad

FUNCS = {"Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Tanh": np.tanh}


@pytest.mark.parametrize("op,e,target", [("Sigmoid", 1.0, 1.0), ("Tanh", 1.0, 1.0), ("Power", 2.0, 0.015),
                                         ("Power", 0.5, 0.015)])
def test_pwl_design_meets_the_plugins_error_target(op, e, target):
    m, b, alpha = activations.design(op, e)
    assert len(alpha) == len(m) + 1 and alpha[-1] == math.inf and len(m) <= activations.MAX_SEGMENTS
    assert np.all(np.diff(alpha[1:-1]) >= 0)  # segments in order
    f = FUNCS.get(op, lambda x: np.power(x, e))
    lo, hi = (-10, 10) if op == "Sigmoid" else (-5, 5) if op == "Tanh" else (-16 if e == 2 else 0, 16)
    x = np.linspace(lo, hi, 20001)
    seg = np.searchsorted(alpha[:-1], x, side="right") - 1
    err = np.abs(m[seg] * x + b[seg] - f(x))
    span = float(f(x).max() - f(x).min())
    # the design stops when (max + min)/4 of the pivot errors is within the target: the true peak is close
    assert 100 * err.max() / span <= 1.5 * target
    assert 100 * err.max() / span > 0.2 * target  # not a finer design than the plugin's (which would be wrong too)


def test_sigmoid_segments_as_integers_follow_the_function():
    in_sf, out_sf = 2.0 ** 20, activations.output_scale("Sigmoid", 1.0, 2.0 ** 20)
    assert out_sf == 2048.0
    curve = activations.encode(*activations.design("Sigmoid"), in_sf, out_sf, "sigmoid")
    x = np.linspace(-12, 12, 4001)
    y, sat = pw.evaluate(curve, np.round(x * in_sf))
    assert sat == 0 and y.min() >= 0 and y.max() <= 2048
    assert np.max(np.abs(y / out_sf - FUNCS["Sigmoid"](x))) < 0.012  # 1 % design error + output rounding


def test_power_output_scale_follows_the_reachable_domain():
    assert activations.output_scale("Power", 2.0, 1.0) == pytest.approx(32767 / 256, rel=1e-6)
    assert activations.output_scale("Power", 0.5, 1.0) == pytest.approx(32767 / 4, rel=1e-6)
    # a large input scale makes the int32 input range (±2^31/in_sf) the limit instead of ±16
    assert activations.output_scale("Power", 2.0, 2.0 ** 28) == pytest.approx(32767 / 64, rel=1e-6)


def _two_inputs(op):
    a = ops.parameter([1, 64], np.float32, name="a")
    b = ops.parameter([1, 64], np.float32, name="b")
    return ov.Model([op(a, b)], [a, b])


def test_eltwise_sum_and_product_compute_the_diagonal_affine_integers():
    rng = np.random.default_rng(0)
    x = {"a": rng.uniform(-1, 1, (1, 64)).astype(np.float32), "b": rng.uniform(-1, 1, (1, 64)).astype(np.float32)}
    qa, qb = (np.round(x[k].astype(np.float64) * 1024) for k in ("a", "b"))
    added = emulate(_two_inputs(ops.add), x, 1024.0)
    # 16 + 16: a unit diagonal (×16384) makes input a the 32-bit bias; b enters with the weight 16384
    assert [r.op for r in added.plan] == ["Parameter", "Parameter", "Diagonal (inserted, weight 1.0)",
                                             "Eltwise Sum (diagonal affine)"]
    assert added.plan[-1].extras.weight_int == 16384 and added.plan[-1].out_sf == 1024.0 * 16384
    np.testing.assert_array_equal(added.outputs[next(iter(added.outputs))],
                                  ((qa * 16384 + qb * 16384) / (1024.0 * 16384)).astype(np.float32))
    mult = emulate(_two_inputs(ops.multiply), x, {"a": 1024.0, "b": 512.0})
    qb = np.round(x["b"].astype(np.float64) * 512)
    assert mult.plan[-1].out_sf == 1024.0 * 512
    np.testing.assert_array_equal(mult.outputs[next(iter(mult.outputs))],
                                  (qa * qb / (1024.0 * 512)).astype(np.float32))


def test_reflect_pad_runs_on_the_host_only_with_porting():
    p = ops.parameter([1, 1, 64], np.float32, name="x")
    padded = ops.pad(p, ops.constant(np.array([0, 0, 0], np.int64)), ops.constant(np.array([0, 0, 8], np.int64)),
                     "reflect")
    w = np.random.default_rng(1).uniform(-1, 1, (4, 1, 8)).astype(np.float32)
    conv = ops.convolution(padded, ops.constant(w), [4], [0], [0], [1])
    model = ov.Model([conv], [p])
    x = np.random.default_rng(2).uniform(-1, 1, (1, 1, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="no Pad layer.*porting=True"):
        emulate(model, {"x": x}, 4096.0)
    ported = emulate(model, {"x": x}, 4096.0, porting=True)
    # the host pad then the GNA part == the GNA part fed with the padded input
    q = ops.parameter([1, 1, 72], np.float32, name="x")
    plain = ov.Model([ops.convolution(q, ops.constant(w), [4], [0], [0], [1])], [q])
    direct = emulate(plain, {"x": np.pad(x, ((0, 0), (0, 0), (0, 8)), mode="reflect")}, 4096.0)
    np.testing.assert_array_equal(next(iter(ported.outputs.values())), next(iter(direct.outputs.values())))
    assert ported.plan[0].op.startswith("Pad (host") and ported.plan[1].op == "Parameter (after host pre-processing)"


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "edge"])
def test_a_host_pad_of_two_axes_gives_numpys_values_in_every_copying_mode(mode):
    """Margins on both sides of two axes (the second axis's margins copied over the first's): the host pad, run
    ported, then the GNA part == the GNA part fed with np.pad's array."""
    p = ops.parameter([1, 3, 16], np.float32, name="x")
    padded = ops.pad(p, ops.constant(np.array([0, 1, 2], np.int64)), ops.constant(np.array([0, 2, 3], np.int64)),
                     mode)
    w = np.random.default_rng(3).uniform(-1, 1, (4, 6, 5)).astype(np.float32)
    model = ov.Model([ops.convolution(padded, ops.constant(w), [1], [0], [0], [1])], [p])
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 16)).astype(np.float32)
    ported = emulate(model, {"x": x}, 4096.0, porting=True)
    q = ops.parameter([1, 6, 21], np.float32, name="x")
    plain = ov.Model([ops.convolution(q, ops.constant(w), [1], [0], [0], [1])], [q])
    direct = emulate(plain, {"x": np.pad(x, ((0, 0), (1, 2), (2, 3)), mode=mode)}, 4096.0)
    np.testing.assert_array_equal(next(iter(ported.outputs.values())), next(iter(direct.outputs.values())))


@pytest.fixture(scope="module")
def vad_bundle(tmp_path_factory):
    return vad.model_bundle(tmp_path_factory.mktemp("vad"))


def test_silero_vad_plan_follows_the_lstm_decomposition(vad_bundle):
    emu = make_backend("gna-emu", {"scale_factor": {"chunk": 2048.0, "state": 1024.0}, "porting": True})
    emu.stepper(vad_bundle)
    rows = {r.layer: r for r in emu.plan.summary()}
    c_sum = next(r for name, r in rows.items() if name.endswith("aten::add_/Add_1"))
    # f·C (32-bit, sf 2048·1024) gets an identity (sf 2049), i·c stays the bias at 2048·2048 = 2^22:
    # weights scale 2^22/2049 = 2047.0 → stored 2047
    assert c_sum.in_sf == [2049.0, 2.0 ** 22] and c_sum.extras.weight_int == 2047
    gates = [r for r in rows.values() if r.op.startswith(("Sigmoid", "Tanh"))]
    assert len(gates) == 6 and all(r.out_sf == 2048.0 for r in gates)
    statuses = {r["status"] for r in support_report(load_program(str(vad_bundle.ir_xml)))}
    assert statuses == {"native", "decomposed", "rewritten", "host", "movement", "folded"}
    refused = {r["op"] for r in support_report(load_program(str(vad_bundle.ir_xml)), porting=False)
               if r["status"] == "refused"}
    assert refused == {"Pad", "ReduceMean", "Convolution"}


def test_streams_batched_are_bit_identical_to_each_alone(vad_bundle):
    rng = np.random.default_rng(5)
    sounds = [rng.normal(0, a, n).astype(np.float32) for a, n in ((0.05, 9000), (0.3, 6000), (0.1, 12000))]
    step = make_backend("gna-emu", {"scale_factor": {"chunk": 4096.0, "state": 1024.0}, "porting": True}
                        ).stepper(vad_bundle)
    together = vad.stream_batch(step, sounds)
    for sound, mine in zip(sounds, together):
        alone = vad.stream(step, sound)
        np.testing.assert_array_equal(alone.probability, mine.probability)
        np.testing.assert_array_equal(alone.state, mine.state)


def test_streaming_holds_the_tracks_not_every_step(vad_bundle):
    """Memory grows with the signal only by its tracks (probability and state per step): no chunk array made up
    front, no list of every step's inputs and outputs (those held several copies of the signal)."""
    import tracemalloc

    step = make_backend("gna-emu", {"scale_factor": {"chunk": 4096.0, "state": 1024.0}, "porting": True}
                        ).stepper(vad_bundle)
    for n in (1, 2):
        sounds = [np.random.default_rng(i).normal(0, 0.1, 600 * vad.CHUNK).astype(np.float32) for i in range(n)]
        vad.stream_batch(step, [s[:4 * vad.CHUNK] for s in sounds])  # warm: the plan's one-off caches
        tracemalloc.start()
        try:
            streams = vad.stream_batch(step, sounds)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        tracks = sum(s.probability.nbytes + s.state.nbytes for s in streams)
        assert [len(s.probability) for s in streams] == [600] * n
        assert peak < tracks + 1_000_000, (n, peak, tracks)  # the signal is 1.2 MB a stream, its chunks more


def test_a_host_op_inside_the_network_is_refused():
    p = ops.parameter([1, 8], np.float32, name="x")
    w = ops.constant(np.eye(8, dtype=np.float32))
    mean = ops.reduce_mean(ops.matmul(p, w, False, True), ops.constant(np.array([1], np.int64)), True)
    out = ops.matmul(mean, ops.constant(np.ones((8, 1), np.float32)), False, True)
    with pytest.raises(ValueError, match="lies inside the network"):
        emulate(ov.Model([out], [p]), {"x": np.ones((1, 8), np.float32)}, 1024.0, porting=True)


@pytest.mark.parametrize("n", [5, 1])  # 1: a stream's frame, the compiled window pass (up to SMALL_ROWS windows)
@pytest.mark.parametrize("c,w,k,s,f", [(1, 640, 256, 128, 260), (129, 6, 3, 1, 128), (128, 6, 3, 2, 64),
                                       (16, 40, 5, 1, 8)])
def test_long_filters_as_one_matrix_product_give_the_loops_integers(c, w, k, s, f, n):
    from gnaexp.emulator import conv as cv, native

    rng = np.random.default_rng(c + w)
    geo = cv.geometry(c, w, k, s, f)
    x = rng.integers(-32768, 32768, (n, c * w)).astype(np.float64)
    x[:, ::3] = 0  # zeros are skipped by the window pass
    blocks = cv.filter_blocks(rng.integers(-32768, 32768, (f, geo.nfc)), geo.step)
    bias = rng.integers(-2 ** 31, 2 ** 31 - 1, f).astype(np.float64)
    assert blocks.shape[0] * blocks.shape[2] >= cv.BLAS_MIN_FILTER  # the matrix-product path is the one taken
    fast, fast_sat = cv.run_blocks(x, blocks, bias, geo.positions, interleave=(c, w, s))
    loop = np.empty_like(fast)
    loop_sat = native.conv1d_rows(x, c, w, True, blocks, bias, s, loop)
    np.testing.assert_array_equal(fast, loop)
    assert fast_sat == loop_sat > 0  # full-range operands saturate some sums, counted alike


def test_emulate_command_takes_porting(vad_bundle, tmp_path, capsys):
    from gnaexp.cli import main

    x = vad.chunks(np.random.default_rng(4).normal(0, 0.1, 3000).astype(np.float32))[:1]
    np.savez(tmp_path / "in.npz", chunk=x, state=np.zeros(vad.STATE_SHAPE, np.float32))
    args = ["emulate", str(vad_bundle.ir_xml), str(tmp_path / "in.npz"), "--scale-factor", "chunk=2048,state=1024",
            "--out", str(tmp_path / "out.npz")]
    assert main(args) == 2
    assert "--porting" in capsys.readouterr().err and not (tmp_path / "out.npz").exists()
    assert main(args + ["--porting"]) == 0
    assert "emulated, with host pre/post-processing" in capsys.readouterr().out
    assert set(np.load(tmp_path / "out.npz").files) == {"probability", "next_state"}
