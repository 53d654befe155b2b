"""Scale-factor sweep, the gna-emu backend and the emulate command."""

import json

import numpy as np
import pytest
import torch

from gnaexp.backends import make_backend
from gnaexp.backends.base import ModelBundle
from gnaexp.emulator import emulate
from gnaexp.emulator.sweep import input_saturation_onset, recommended_scale_factor, sweep
from gnaexp.models import forum_nets as nets, ir


@pytest.fixture(scope="module")
def conv_case(tmp_path_factory):
    module, shape = nets.build_net("conv", nets.NetSpec(), seed=0)
    path = ir.save(ir.convert_torch(module, shape), tmp_path_factory.mktemp("ir") / "conv.xml")
    x = np.random.default_rng(11).random((256,) + shape, dtype=np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x[:, 0])).numpy()[:, None]
    return path, x, ref, module, shape


def test_recommended_scale_factor_headroom():
    x = np.array([0.5, -2.0, 1.0], np.float32)
    assert recommended_scale_factor(x, headroom=0.0) == pytest.approx(32767 / 2.0)
    assert recommended_scale_factor(x) == pytest.approx(0.5 * 32767 / 2.0)
    with pytest.raises(ValueError):
        recommended_scale_factor(x, headroom=1.0)


def test_sweep_shape(conv_case):
    # Speed is measured by bench/emulator.py, never asserted here.
    path, x, ref, _, _ = conv_case
    sfs = list(np.geomspace(1, 2**20, 64))
    res = sweep(path, {"input": x}, {"output": ref}, sfs)
    assert len(res.cosine) == 64
    best = sfs.index(res.best_scale_factor)
    assert 1000 < res.best_scale_factor < 40000
    assert res.l1[0] > 100 * res.l1[best] and res.l1[-1] > 10 * res.l1[best]
    # inputs in [0, 1): int16 saturation starts at the first swept sf above 32767.5
    assert res.input_saturation_starts == min(s for s in sfs if s > 32767.5)
    assert res.cosine[best] > 0.9999
    assert res.recommended_scale_factor == pytest.approx(0.5 * 32767 / float(x.max()), rel=1e-6)
    json.dumps(res.to_json())


def test_backend_labels_emulated(conv_case):
    path, x, ref, module, shape = conv_case
    bundle = ModelBundle(name="conv", ir_xml=path, input_names=["input"], output_names=["output"],
                         input_shapes={"input": shape})
    be = make_backend("gna-emu", {"scale_factor": 2048.0, "precision": "i16", "layout": "correct"})
    res = be.run(bundle, {"input": x[0]})
    assert res.kind == "emulated" and res.emulated and res.label == "gna-emu (emulated)"
    assert res.settings == {"scale_factors": 2048.0, "precision": "i16", "layout": "correct", "porting": False,
                            "plugin_release": "2023.3"}
    assert res.info["emulated"] is True and res.info["input_scale_factors_used"] == {"input": 2048.0}
    assert res.info["rules_version"] and res.info["plan"][1]["op"] == "Convolution"
    assert np.array_equal(res.outputs["output"], emulate(path, {"input": x[0]}, 2048.0).outputs["output"])
    json.dumps(res.to_json())


def test_emulate_command_writes_outputs_plan_ints(conv_case, tmp_path, capsys):
    from gnaexp.cli import main

    path, x, _, _, _ = conv_case
    np.save(tmp_path / "x.npy", x[:3])
    assert main(["emulate", str(path), str(tmp_path / "x.npy"), "--scale-factor", "2048",
                 "--out", str(tmp_path / "y.npy"), "--plan", str(tmp_path / "plan.json"),
                 "--ints", str(tmp_path / "ints.npz")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert np.array_equal(y, emulate(path, {"input": x[:3]}, 2048.0).outputs["output"])
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["emulated"] is True and plan["input_scale_factors"] == {"input": 2048.0}
    assert plan["input_sf_source"] == {"input": "configured"}
    with np.load(tmp_path / "ints.npz") as z:
        assert any(v.dtype == np.int32 for v in z.values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    capsys.readouterr()
    assert main(["emulate", str(path), str(tmp_path / "x.npy"), "--scale-factor", "abc",
                 "--out", str(tmp_path / "z.npy")]) == 2
    assert "--scale-factor takes a number" in capsys.readouterr().err
    assert not (tmp_path / "z.npy").exists()


def test_input_saturation_onset():
    assert input_saturation_onset(np.array([0.5, -2.0])) == pytest.approx(32767 / 2)
    assert input_saturation_onset({"a": np.array([1.0]), "b": np.array([-4.0])}) == pytest.approx(32767 / 4)
    assert input_saturation_onset(np.zeros(3)) == float("inf")


def test_a_multi_output_row_holds_its_worst_output_not_the_outputs_flattened():
    # big = 100·(x·W) is clean, small = 0.01·tanh(x·W) is bounded by the tanh PWL: flattened, big would hide it
    import openvino as ov
    import openvino.opset8 as ops

    from gnaexp.core import metrics

    rng = np.random.default_rng(5)
    x = ops.parameter([1, 16], np.float32, name="x")
    h = ops.matmul(x, ops.constant(rng.uniform(-0.3, 0.3, (16, 16)).astype(np.float32)), False, False)
    big = ops.result(ops.multiply(h, ops.constant(np.float32(100.0))))
    small = ops.result(ops.multiply(ops.tanh(h), ops.constant(np.float32(0.01))))
    big.output(0).get_tensor().set_names({"big"})
    small.output(0).get_tensor().set_names({"small"})
    model = ov.Model([big, small], [x])
    feed = rng.uniform(-1, 1, (32, 1, 16)).astype(np.float32)
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ref = {n: np.stack([compiled({"x": s})[n] for s in feed]) for n in ("big", "small")}
    res = sweep(model, {"x": feed}, ref, [1024.0])
    em = emulate(model, {"x": feed}, 1024.0)
    per = {n: metrics.sqnr_db(ref[n], em.outputs[n]) for n in ("big", "small")}
    assert per["small"] < per["big"] - 10
    assert res.worst_output == ["small"] and res.sqnr_db[0] == pytest.approx(per["small"])
    flattened = metrics.sqnr_db(np.concatenate([ref["big"].ravel(), ref["small"].ravel()]),
                                np.concatenate([em.outputs["big"].ravel(), em.outputs["small"].ravel()]))
    assert flattened > res.sqnr_db[0] + 10  # what the row used to say
    assert "worst output" in res.table() and res.table().splitlines()[1].endswith("small")
