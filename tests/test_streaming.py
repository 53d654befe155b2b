"""Stateful streaming of any model (--state IN=OUT): the state output of each step fed to its input, each backend
carrying its own state, on real OpenVINO CPU and the emulator; a streamed run's record, bundle and reproduce.py."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import openvino as ov
import openvino.opset8 as ops
import pytest

from gnaexp.backends import streaming
from gnaexp.backends.base import stream_steps
from gnaexp.cli import main

RNG = np.random.default_rng(3)
W = RNG.uniform(-0.4, 0.4, (8, 6)).astype(np.float32)
U = RNG.uniform(-0.4, 0.4, (6, 6)).astype(np.float32)


def _named(node, name):
    node.output(0).get_tensor().set_names({name})
    return node


@pytest.fixture(scope="module")
def rnn(tmp_path_factory):
    """h' = tanh(x·W + h·U), y = 2·h': a one-layer recurrent net with its state as an input/output pair."""
    folder = tmp_path_factory.mktemp("rnn")
    x = _named(ops.parameter([1, 8], np.float32, name="x"), "x")
    h = _named(ops.parameter([1, 6], np.float32, name="h"), "h")
    new_h = ops.tanh(ops.add(ops.matmul(x, ops.constant(W), False, False), ops.matmul(h, ops.constant(U), False, False)))
    y = ops.multiply(new_h, ops.constant(np.float32(2.0)))
    model = ov.Model([_named(ops.result(y), "y"), _named(ops.result(new_h), "hn")], [x, h])
    ov.save_model(model, folder / "rnn.xml", compress_to_fp16=False)
    frames = RNG.uniform(-1, 1, (24, 1, 8)).astype(np.float32)
    np.savez(folder / "frames.npz", x=frames)
    return folder


def _numpy_stream(frames):
    h, ys, hs = np.zeros((1, 6), np.float32), [], []
    for x in frames:
        h = np.tanh(x @ W + h @ U)
        ys.append(2 * h)
        hs.append(h)
    return np.stack(ys), np.stack(hs)


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_engine_carries_each_state_output_to_its_input():
    seen = []

    def step(feed):
        seen.append(feed["h"].copy())
        return {"y": feed["x"] + feed["h"], "hn": feed["h"] + 1}

    outs, fed = stream_steps(step, {"x": np.arange(3, dtype=np.float32)[:, None]}, {"h": "hn"},
                              {"h": np.zeros(1, np.float32)})
    assert [float(s[0]) for s in seen] == [0.0, 1.0, 2.0]  # the state is the previous step's output
    np.testing.assert_array_equal(outs["y"][:, 0], [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(fed["h"][:, 0], [0.0, 1.0, 2.0])


@pytest.mark.parametrize("text, named", [("h", "not INPUT=OUTPUT"), ("h=hn,h=y", "paired twice"), ("=hn", "INPUT")])
def test_a_malformed_pair_is_named(text, named):
    with pytest.raises(ValueError, match=named):
        streaming.parse_state_pairs(text)


def test_run_streams_openvino_cpu_and_the_emulator_each_on_its_own_state(rnn, tmp_path, capsys):
    code, out, err = _run(capsys, "run", "model", "--set", f"model={rnn / 'rnn.xml'}", "--set",
                          f"input_file={rnn / 'frames.npz'}", "--state", "h=hn", "--set", "scale_factor=x=8192,h=8192",
                          "--out", tmp_path / "run")
    assert code == 0, err
    assert "streamed over 24 steps, state h←hn" in out
    with np.load(tmp_path / "run" / "outputs.npz") as z:
        stored = dict(z)
    want_y, want_h = _numpy_stream(np.load(rnn / "frames.npz")["x"])
    np.testing.assert_allclose(stored["openvino:CPU/y"], want_y, atol=1e-5)  # the closed loop, step by step
    np.testing.assert_allclose(stored["openvino:CPU/hn"], want_h, atol=1e-5)
    emulated = stored["gna-emu (emulated)/y"]
    assert emulated.shape == want_y.shape and 0 < np.abs(emulated - want_y).max() < 0.05  # quantized, close
    with np.load(tmp_path / "run" / "inputs.npz") as z:
        inputs = dict(z)
    np.testing.assert_allclose(inputs["h"][1:], want_h[:-1], atol=1e-5)  # the reference's state at each step
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    emu = next(r for r in record["backends"] if r["kind"] == "emulated")
    assert emu["info"]["streamed"] == {"steps": 24, "state": {"h": "hn"}}

    # the emulator's closed loop equals its own per-step run on the states it fed itself
    from gnaexp.emulator import emulate

    own_h = np.concatenate([np.zeros((1, 1, 6), np.float32), stored["gna-emu (emulated)/hn"][:-1]])
    again = emulate(str(rnn / "rnn.xml"), {"x": inputs["x"], "h": own_h}, {"x": 8192.0, "h": 8192.0})
    np.testing.assert_array_equal(again.outputs["y"], emulated)

    code, _, err = _run(capsys, "bundle", tmp_path / "run", "--out", tmp_path / "b.zip")
    assert code == 0, err
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        z.extractall(tmp_path / "b")
    proc = subprocess.run([sys.executable, "reproduce.py", "--plain"], cwd=tmp_path / "b", capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OpenVINO CPU rerun vs stored reference, y: SQNR inf dB" in proc.stdout


def test_sweep_and_diagnose_of_a_stream_run_each_step_on_the_reference_state(rnn, capsys):
    common = ("--set", f"input_file={rnn / 'frames.npz'}", "--state", "h=hn")
    code, out, err = _run(capsys, "sweep", "model", "--set", f"model={rnn / 'rnn.xml'}", *common,
                          "--scale-factors", "1,4096")
    assert code == 0, err
    sqnr = [float(line.split()[3]) for line in out.splitlines() if line.strip().split(" ")[0] in ("1", "4096")]
    assert len(sqnr) == 2 and sqnr[1] > sqnr[0] + 20
    code, out, err = _run(capsys, "diagnose", "--model", rnn / "rnn.xml", "--input", rnn / "frames.npz",
                          "--state", "h=hn")
    assert code == 0 and "[floor]" in out, err


@pytest.mark.parametrize("state, named", [
    ("q=hn", "state input 'q' is not an input of the model"),
    ("h=zz", "state output 'zz' (paired with 'h') is not an output"),
    ("h=y", None),  # y has 6 values like h: a legal (if odd) pair
    ("h=hn,x=y", "state x=y: the input has shape [1, 8], the output [1, 6]; pair an output of the same size"),
])
def test_a_pair_the_model_does_not_have_is_exit_2_naming_it(rnn, tmp_path, capsys, state, named):
    code, _, err = _run(capsys, "run", "model", "--set", f"model={rnn / 'rnn.xml'}", "--set",
                        f"input_file={rnn / 'frames.npz'}", "--state", state, "--out", tmp_path / "r")
    if named is None:
        assert code == 0, err
        return
    assert code == 2 and named in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_frames_without_a_steps_axis_are_exit_2_with_the_shape_to_give(rnn, tmp_path, capsys):
    np.savez(tmp_path / "one.npz", x=np.zeros((1, 8), np.float32))
    code, _, err = _run(capsys, "run", "model", "--set", f"model={rnn / 'rnn.xml'}", "--set",
                        f"input_file={tmp_path / 'one.npz'}", "--state", "h=hn", "--out", tmp_path / "r")
    assert code == 2 and "streaming takes its frames as (steps, 1, 8)" in err
    code, _, err = _run(capsys, "run", "model", "--set", f"model={rnn / 'rnn.xml'}", "--state", "h=hn",
                        "--out", tmp_path / "r")
    assert code == 2 and "give them in input_file=FRAMES.npz" in err
