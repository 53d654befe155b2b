"""Memory layers (ReadValue/Assign) as the 2023.1 plugin quantizes them: the state takes the scale factor of the
layer that writes it (a restart from the ReadValue), the activation before the Assign is requantized when the
writer's scale depends on the state, and the state is carried as int16 from one inference to the next; against
OpenVINO CPU streaming the same model (its infer request keeps the state)."""

import re

import numpy as np
import openvino as ov
import openvino.opset6 as ops6
import openvino.opset8 as ops
import pytest
from openvino.op.util import Variable, VariableInfo

from gnaexp.backends import make_backend
from gnaexp.backends.base import ModelBundle
from gnaexp.cli import main
from gnaexp.core import metrics
from gnaexp.emulator import emulate
from gnaexp.emulator.support import model_support


def _net(act, feedback=0.5):
    """y = act(x·I + h·(feedback·I)), h ← y: one memory variable written by the activation."""
    x = ops.parameter([1, 4], np.float32, name="x")
    info = VariableInfo()
    info.data_shape, info.data_type, info.variable_id = ov.PartialShape([1, 4]), ov.Type.f32, "h"
    var = Variable(info)
    h = ops6.read_value(ops.constant(np.zeros((1, 4), np.float32)), var)
    total = ops.add(ops.matmul(x, ops.constant(np.eye(4, dtype=np.float32)), False, False),
                    ops.matmul(h, ops.constant(feedback * np.eye(4, dtype=np.float32)), False, False))
    y = act(total)
    r = ops.result(y)
    r.output(0).get_tensor().set_names({"y"})
    return ov.Model([r], [ops6.assign(y, var)], [x], "memory-net")


def test_a_relu_writer_is_requantized_to_the_state_and_the_integers_follow_by_hand():
    em = emulate(_net(ops.relu), {"x": np.full((1, 4), 0.25, np.float32)}, 4096.0, keep_ints=True)
    # first pass: state sf 1 gives the Relu sf 2048 → the state takes 2048 and propagation restarts; then the Relu
    # follows the new state scale (w_sf·sf changes), so the plugin requantizes the Relu to the state's sf
    assert em.notes[0].startswith("memory 'h': the state takes the scale factor of the layer writing it (sf 2048)")
    assert re.fullmatch(r"memory 'h': activation 'Relu_\d+' requantized from sf 1024 to the state's sf 2048", em.notes[1])
    assert em.input_scale_factors["memory:h"] == 2048.0 and em.input_sf_source["memory:h"] == "memory"
    assert int(em.ints["x"].reshape(-1)[0]) == 1024  # 0.25 · 4096
    fc = next(r for r in em.plan if r.op == "FullyConnected" and r.in_sf == 4096.0)
    assert fc.w_sf == 16384.0 and int(em.ints[fc.layer].reshape(-1)[0]) == 1024 * 16384  # I·16384
    relu = next(r for r in em.plan if r.op == "Relu")
    assert relu.out_sf == 2048.0
    state_int = em.ints[relu.layer]
    np.testing.assert_array_equal(em.state["h"], state_int / np.float32(2048.0))  # what the Assign stores


def test_the_state_carried_by_the_stepper_is_bit_identical_to_feeding_it_back(tmp_path):
    model = _net(ops.tanh)
    xml = tmp_path / "m.xml"
    ov.save_model(model, xml)
    frames = np.random.default_rng(0).uniform(-1, 1, (6, 1, 4)).astype(np.float32)
    step = make_backend("gna-emu", {"scale_factor": 2048.0}).stepper(ModelBundle("m", ir_xml=xml))
    streamed = [step({"x": f})["y"] for f in frames]
    state, by_hand = None, []
    for f in frames:
        em = emulate(str(xml), {"x": f} | ({"memory:h": state} if state is not None else {}), 2048.0)
        by_hand.append(em.outputs["y"])
        state = em.state["h"]
    np.testing.assert_array_equal(np.stack(streamed), np.stack(by_hand))
    tanh = next(r for r in em.plan if r.op.startswith("Tanh"))
    assert em.input_scale_factors["memory:h"] == tanh.out_sf  # a Tanh's output scale does not follow the state


def test_run_streams_a_memory_model_on_cpu_and_the_emulator_and_the_bundle_reproduces(tmp_path, capsys):
    model = _net(ops.tanh, feedback=0.8)
    ov.save_model(model, tmp_path / "m.xml")
    frames = np.random.default_rng(1).uniform(-1, 1, (30, 1, 4)).astype(np.float32)
    np.savez(tmp_path / "frames.npz", x=frames)
    assert main(["run", "model", "--set", f"model={tmp_path / 'm.xml'}", "--set", f"input_file={tmp_path / 'frames.npz'}",
                 "--set", "scale_factor=4096", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "streamed over 30 steps, state memory h" in out
    with np.load(tmp_path / "run" / "outputs.npz") as z:
        ref, emu = z["openvino:CPU/y"], z["gna-emu (emulated)/y"]
    h, want = np.zeros((1, 4), np.float32), []
    for f in frames:  # the model by hand, state carried: OpenVINO's request keeps it the same way
        h = np.tanh(f + 0.8 * h)
        want.append(h)
    np.testing.assert_allclose(ref, np.stack(want), atol=1e-3)  # CPU's tanh differs from NumPy's by ~2e-4
    assert 20 < metrics.sqnr_db(ref, emu) < 80  # the Tanh PWL's error, accumulating through the state
    with np.load(tmp_path / "run" / "inputs.npz") as z:
        np.testing.assert_allclose(z["memory:h"][1:], ref[:-1], atol=1e-6)  # the state each step read
    assert main(["bundle", str(tmp_path / "run"), "--out", str(tmp_path / "b.zip")]) == 0


def test_support_names_the_memory_pair_and_an_unpaired_read_is_refused():
    rows = model_support(_net(ops.tanh)).rows
    (row,) = [r for r in rows if r["op"] == "ReadValue/Assign"]
    assert row["status"] == "native" and row["name"] == "h" and "scale_factor_calc.cpp" in row["source"]
    x = ops.parameter([1, 4], np.float32, name="x")
    info = VariableInfo()
    info.data_shape, info.data_type, info.variable_id = ov.PartialShape([1, 4]), ov.Type.f32, "lonely"
    h = ops6.read_value(ops.constant(np.zeros((1, 4), np.float32)), Variable(info))
    lonely = ov.Model([ops.result(ops.add(x, h))], [x], "lonely")
    with pytest.raises(ValueError, match=r"memory variable\(s\) \['lonely'\] are read \(ReadValue\) but never written"):
        emulate(lonely, {"x": np.zeros((1, 4), np.float32)}, 1.0)
