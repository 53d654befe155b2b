"""gnaexp layers with torch: every module's output (forward hooks) matched to the OpenVINO layers it became."""

import json

import numpy as np

from gnaexp.cli import main
from gnaexp.layers.torch_taps import module_path


def test_torch_against_openvino_cpu_f32_agrees_on_every_matched_layer(capsys):
    assert main(["layers", "concat_conv", "--backends", "torch,openvino:CPU", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["layer"]: r for r in data["rows"]}
    compared = [r for r in rows.values() if r["status"] == "compared"]
    assert {r["layer"] for r in compared} == {"__module.0/aten::cat/Concat", "__module.1/aten::_convolution/Add"}
    assert all(float(r["sqnr_db"]) >= 100 for r in compared)  # inf for the concat: the same floats
    # a Conv1d is a Convolution and its bias Add: the module's output is the Add's, the Convolution fused into it
    assert rows["__module.1/aten::_convolution/Convolution"]["status"] == "fused"
    assert rows["__module.1/aten::_convolution/Add"]["is_output"]


def test_torch_as_the_backend_under_test(capsys):
    assert main(["layers", "concat_conv", "--backends", "openvino:CPU,torch", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = [r for r in data["rows"] if r["backend"] == "torch"]
    assert [r["status"] for r in rows] == ["compared", "fused", "compared"]
    assert all(r["local_sqnr_db"] is None and float(r["sqnr_db"]) >= 100 for r in rows if r["status"] == "compared")
    assert data["first_diverging"]["torch"] is None
    assert "no local error" in data["notes"]["torch"][0]


def test_an_unmatched_layer_or_module_is_named(tmp_path):
    import torch

    from gnaexp.layers.torch_taps import run

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)
            self.unused = torch.nn.ReLU()

        def forward(self, x):
            return self.fc(x) * 2

    order = [("__module.fc/aten::linear/MatMul", "MatMul"), ("__module.fc/aten::linear/Add", "Add"),
             ("aten::mul/Multiply", "Multiply"), ("Transpose_12", "Transpose")]
    m = run(Net().eval(), {"x": np.ones((1, 4), np.float32)}, ["x"], order, ["aten::mul/Multiply"], "torch")
    assert set(m.values) == {"__module.fc/aten::linear/Add", "aten::mul/Multiply"}
    assert m.fused_into == {"__module.fc/aten::linear/MatMul": "torch module fc"}
    assert "1 OpenVINO layer(s) match no torch module output: Transpose_12" in m.notes
    assert "1 torch module(s) have no OpenVINO layer (folded or renamed by the converter): unused" in m.notes
    assert module_path("__module.encoder.0/aten::relu/Relu") == "encoder.0" and module_path("Result_1") is None


def test_torch_needs_a_torch_module(tmp_path, capsys):
    from gnaexp.experiment import ExperimentConfig, build_model, make_inputs

    config = ExperimentConfig(experiment="conv")
    bundle = build_model(config)
    np.save(tmp_path / "x.npy", make_inputs(config, bundle)["input"])
    assert main(["layers", "--model", str(bundle.ir_xml), "--input", str(tmp_path / "x.npy"),
                 "--backends", "torch,openvino:CPU"]) == 2
    err = capsys.readouterr().err
    assert "the torch backend needs a net with a torch module" in err and len(err.strip().splitlines()) == 1
