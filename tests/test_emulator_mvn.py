"""MVN as the GNA plugin decomposes it (emulator/mvn.py, DecomposeMVN @2023.1.0): the rewrite computes what the
MVN computes in FP32 on OpenVINO CPU, its integers follow the plan's scale factors, the emulated result tracks
CPU FP32, and an MVN DecomposeMVN does not take stays refused with the reason."""

import numpy as np
import openvino as ov
import openvino.opset8 as ops
import pytest

from gnaexp.core import metrics
from gnaexp.emulator import emulate, UnsupportedOpError
from gnaexp.emulator.mvn import transform
from gnaexp.emulator.support import model_support

CPU_FP32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _net(shape=(1, 4, 16), axes=(2,), normalize=True, mvn1=False, front=True):
    rng = np.random.default_rng(0)
    x = ops.parameter(list(shape), np.float32, name="x")
    y = x
    if front:  # a layer before it, as in a real net (the MVN then reads a 32-bit output)
        y = ops.matmul(x, ops.constant((rng.normal(size=(shape[-1], shape[-1])) * 0.5).astype(np.float32)), False,
                       False)
    if mvn1:
        import openvino.opset2 as ops2  # MVN-1

        m = ops2.mvn(y, across_channels=False, normalize_variance=normalize, eps=1e-5)
    else:
        m = ops.mvn(y, ops.constant(np.array(axes, dtype=np.int64)), normalize, 1e-5, "inside_sqrt")
    m.set_friendly_name("norm")
    r = ops.result(m)
    r.output(0).get_tensor().set_names({"y"})
    return ov.Model([r], [x])


def _cpu(model, x):
    compiled = ov.Core().compile_model(model, "CPU", CPU_FP32)
    return np.stack([compiled({"x": s})[compiled.outputs[0]] for s in x])


def _x(model, n=8, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, *model.inputs[0].get_shape())).astype(np.float32)


@pytest.mark.parametrize("kw", [{}, {"normalize": False}, {"mvn1": True}, {"shape": (1, 2, 1600)},
                                {"shape": (1, 1, 1, 16), "axes": (2, 3)}])
def test_the_decomposition_computes_the_mvn_in_fp32(kw):
    model = _net(**kw)
    rewritten, rewrites = transform(model)
    assert [r.op for r in rewrites] == ["MVN"] and not rewrites[0].problem
    assert not any(op.get_type_name() == "MVN" for op in rewritten.get_ordered_ops())
    assert any(op.get_type_name() == "MVN" for op in model.get_ordered_ops())  # a clone was rewritten
    x = _x(model, n=3)
    np.testing.assert_allclose(_cpu(rewritten, x), _cpu(model, x), atol=5e-5)


def test_rank_4_rows_get_their_own_mean_as_the_plugin_computes_it():
    # DecomposeMVN takes axes [2, 3] of [1, C, H, W] but averages over W only, per row (decompose_mvn.cpp)
    model = _net(shape=(1, 1, 2, 8), axes=(2, 3), front=False)
    rewritten, _ = transform(model)
    x = _x(model, n=1)
    rows = x[0, 0, 0]
    got = _cpu(rewritten, x)[0, 0, 0]
    mean, var = rows.mean(axis=-1, keepdims=True), rows.var(axis=-1, keepdims=True)
    np.testing.assert_allclose(got, (rows - mean) / np.sqrt(var + 1e-5), atol=1e-4)
    assert not np.allclose(got, _cpu(model, x)[0, 0, 0], atol=1e-3)


def test_the_mean_is_taken_in_integers_as_the_plan_says():
    # x = [1, 2, 3, 6] at sf 4 → ints [4, 8, 12, 24], Σ = 48; Avg1 (8 filters of −1/4) accumulates
    # round(−0.25·w_sf)·48 in each filter; Avg2 sums the first copy into each of the 4 outputs
    model = _net(shape=(1, 1, 4), normalize=False, front=False)
    x = np.array([[[1.0, 2.0, 3.0, 6.0]]], dtype=np.float32)
    em = emulate(model, {"x": x}, 4.0, keep_ints=True)
    rows = {r.layer: r for r in em.plan}
    w1 = round(-0.25 * rows["norm_Avg1"].w_sf)
    np.testing.assert_array_equal(em.ints["norm_Avg1"].reshape(-1), np.full(8, w1 * 48))
    avg1_16 = em.ints["norm_Avg1/identity"].reshape(-1)
    assert np.all(avg1_16 == avg1_16[0])  # the identity PWL brings every copy to the same 16-bit value
    w2 = round(rows["norm_Avg2"].w_sf)  # the broadcast weight 1
    np.testing.assert_array_equal(em.ints["norm_Avg2"].reshape(-1), np.full(4, w2 * int(avg1_16[0])))
    mean = em.ints["norm_Avg2"].reshape(-1)[0] / rows["norm_Avg2"].out_sf
    assert mean == pytest.approx(-3.0, abs=0.01)
    np.testing.assert_allclose(em.outputs["y"].reshape(-1), [-2.0, -1.0, 0.0, 3.0], atol=0.01)


def test_the_variance_path_in_integers_on_a_hand_worked_example():
    # x = [1, 2, 3, 6] at sf 4: d = [−2, −1, 0, 3], d² = [4, 1, 0, 9], variance 3.5; ln 3.5 = 1.2528 and
    # 1/√3.5 = 0.5345, but the Log PWL (12 segments on [0.001, 2981]) gives about 1.14 there
    model = _net(shape=(1, 1, 4), front=False)
    em = emulate(model, {"x": np.array([[[1.0, 2.0, 3.0, 6.0]]], np.float32)}, 4.0, keep_ints=True)
    rows = {r.layer: r for r in em.plan}

    def value(layer):
        return em.ints[layer].reshape(-1)[:4] / rows[layer].out_sf

    # x (16-bit) + (−mean) (the 32-bit _Avg2): _Avg2's int32 is the bias as it is and x takes the integer weight
    # (no identity, no diagonal: MarkIdentityCandidates, InsertDiagonalLayerPass); _Avg2's sf / 4 passes 32767,
    # so _Avg2 is lowered to out_sf 4·32767 (w_sf 63.97, its 0/1 weights round to 64): not exact any more
    np.testing.assert_allclose(value("norm_SubMean"), [-2.0, -1.0, 0.0, 3.0], atol=2e-4)
    np.testing.assert_allclose(value("norm_SqrDiff"), [4.0, 1.0, 0.0, 9.0], atol=1e-2)
    np.testing.assert_allclose(value("norm_Avg4"), 3.5, atol=5e-3)  # the ±1/4 weights and identities round
    log = value("norm_LogVarEps")[0]
    assert 0.05 < np.log(3.5) - log < 0.15  # the Log PWL's error at 3.5
    inv = value("norm_InvStdev")[0]
    assert inv == pytest.approx(np.exp(-0.5 * log), abs=0.01)  # Exp is close; the error comes from Log
    d = value("norm_SubMean/identity")
    np.testing.assert_allclose(em.outputs["y"].reshape(-1), inv * d, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kw, floor_db", [({"normalize": False}, 55), ({}, 10), ({"mvn1": True}, 10)])
def test_emulated_mvn_tracks_cpu_fp32(kw, floor_db):
    # With normalize_variance the Log PWL (designed on [0.001, 2981], 12 segments) bounds the result near 12 dB
    model = _net(**kw)
    x = _x(model)
    em = emulate(model, {"x": x}, 1024.0)
    assert metrics.sqnr_db(_cpu(model, x), em.outputs["y"]) > floor_db


def test_an_mvn_decomposemvn_does_not_take_stays_refused_with_its_reason():
    model = _net(shape=(1, 4, 16), axes=(1, 2))
    with pytest.raises(UnsupportedOpError, match=r"MVN 'norm'.*DecomposeMVN takes 1 axis\(es\) starting at 2.*"
                                                 r"ReduceMean"):
        emulate(model, {"x": _x(model)}, 1024.0)
    rows = [r for r in model_support(model).rows if r["op"] == "MVN"]
    assert rows[0]["status"] == "refused" and "decompose_mvn.cpp" in rows[0]["source"]


def test_support_reports_the_decomposition():
    rows = [r for r in model_support(_net()).rows if r["op"] == "MVN"]
    assert len(rows) == 1 and rows[0]["status"] == "rewritten", rows
    assert "DecomposeMVN" in rows[0]["how"] and "decompose_mvn.cpp @2023.1.0" in rows[0]["source"]


def test_a_layer_norm_written_with_reducemean_is_refused_as_given_and_runs_with_porting_as_converted():
    # The 2023.1 pipeline fuses it into MVN only after DecomposeMVN ran, and writes it back with ReduceMean;
    # porting reads the model as the IR converter writes it (MVNFusion), and DecomposeMVN then takes the MVN
    x = ops.parameter([1, 4, 16], np.float32, name="x")
    y = ops.matmul(x, ops.constant(np.eye(16, dtype=np.float32)), False, False)
    d = ops.subtract(y, ops.reduce_mean(y, ops.constant(np.array([-1])), True))
    var = ops.reduce_mean(ops.power(d, ops.constant(np.float32(2.0))), ops.constant(np.array([-1])), True)
    out = ops.divide(d, ops.sqrt(ops.add(var, ops.constant(np.float32(1e-5)))))
    model = ov.Model([ops.result(ops.matmul(out, ops.constant(np.eye(16, dtype=np.float32)), False, False))], [x])
    rows = [r for r in model_support(model, porting=False).rows if r["op"] == "ReduceMean"]
    assert len(rows) == 2 and all(r["status"] == "refused" and "MVN6Decomposition" in r["how"] for r in rows)
    with pytest.raises(ValueError, match="ReduceMean.*refuses the network"):
        emulate(model, {"x": np.zeros((1, 4, 16), np.float32)}, 1024.0)
    x = _x(model)
    em = emulate(model, {"x": x}, 1024.0, porting=True)
    assert any("fuses the layer norm" in n and "mvn_fusion.cpp" in n for n in em.notes)
    # near 12 dB, as a native MVN (the Log PWL bounds it: test_emulated_mvn_tracks_cpu_fp32)
    assert metrics.sqnr_db(_cpu(model, x), em.outputs[model.outputs[0].get_any_name()]) > 10
    ported = model_support(model, porting=True)
    assert not [r for r in ported.rows if r["status"] == "refused"]
    assert [r["status"] for r in ported.rows if r["op"] == "MVN"] == ["rewritten"]
    assert any("MOC transformations" in n for n in ported.notes)


def test_dtln_2_converted_to_ir_runs_with_its_layer_norm_decomposed(corpus, tmp_path):
    # OpenVINO's converter fuses DTLN's instant layer norm (ReduceMean … Sqrt, Divide) into one MVN over the last
    # axis, which DecomposeMVN takes: the whole net then runs on the emulator
    ir = tmp_path / "model_2.xml"
    ov.save_model(ov.convert_model(corpus["dtln_2"]), ir, compress_to_fp16=False)
    report = model_support(ir)
    (mvn,) = [r for r in report.rows if r["op"] == "MVN"]
    assert mvn["status"] == "rewritten" and "W = 256" in mvn["how"], mvn
    assert report.verdict().startswith("every op runs on the emulator")
    from gnaexp.models.catalog import example_inputs

    x = example_inputs("dtln_2", samples=4)
    compiled = ov.Core().compile_model(str(corpus["dtln_2"]), "CPU", CPU_FP32)
    runs = [compiled({k: v[i] for k, v in x.items()}) for i in range(4)]
    em = emulate(str(ir), x, 2048.0, porting=True)
    for out in compiled.outputs:
        ref = np.stack([r[out] for r in runs])
        got = em.outputs[out.get_any_name()].reshape(ref.shape)
        assert metrics.sqnr_db(ref, got) > 15, out.get_any_name()  # about 20 and 24 dB (the Log/Exp PWLs)


def test_a_row_width_gna_cannot_broadcast_to_is_named_by_the_mvns_convolution():
    # _Avg2 has W filters: W = 10 is not a multiple of 4; porting pads the filters as for any convolution
    model = _net(shape=(1, 3, 10))
    x = _x(model)
    with pytest.raises(ValueError, match=r"convolution 'norm_Avg2': GNA convolution needs the number of filters to be "
                                         r"a multiple of 4"):
        emulate(model, {"x": x}, 1024.0)
    assert metrics.sqnr_db(_cpu(model, x), emulate(model, {"x": x}, 1024.0, porting=True).outputs["y"]) > 10
