import json
import subprocess
import sys

import numpy as np
import pytest

from gnaexp.cli import main


@pytest.mark.parametrize("name", ["conv", "concat", "concat_conv"])
def test_run_each_forum_net_fp32_match(name, tmp_path, capsys):
    assert main(["run", name, "--backends", "torch,openvino:CPU", "--out", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    m = data["metrics"]["openvino:CPU"]["output"]
    assert m["cosine"] > 0.99999 and m["l1"] < 1e-5
    assert (tmp_path / "record.json").exists() and (tmp_path / "ir" / "model.xml").exists()


def test_run_prints_table(tmp_path, capsys):
    assert main(["run", "conv", "--set", "seed=1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "openvino:CPU" in out and "cosine" in out and "matches the FP32 reference" in out


@pytest.mark.parametrize("argv, message", [
    (["run", "nope"], "unknown experiment 'nope'; valid: conv, concat, concat_conv, model"),
    (["run", "conv", "--set", "foo=1"], "unknown parameter 'foo'; valid: experiment,"),
    (["run", "conv", "--set", "seed=abc"], "parameter seed='abc': expected a whole number"),
    (["run", "conv", "--set", "length=2.5"], "parameter length='2.5': expected a whole number"),
    (["run", "conv", "--set", "seed=-1"], "seed must be between 0 and 4294967295, got -1"),
    (["run", "conv", "--set", f"seed={2**70}"], "seed must be between 0 and 4294967295"),
    (["run", "conv", "--set", "amplitude=nan"], "amplitude must be a finite, non-zero number, got nan"),
    (["run", "conv", "--set", "amplitude=inf"], "amplitude must be a finite, non-zero number, got inf"),
    (["run", "conv", "--set", "execution_mode=BOGUS"], "execution_mode must be one of AUTO, HW,"),
    (["run", "conv", "--set", "kernel=300"], "kernel (300) is longer than the input (length 255)"),
    (["run", "conv", "--set", "ir=quantized"], "ir must be default or nncf"),
    (["run", "conv", "--backends", "openvino:"], "unknown backend 'openvino:' (name the device, e.g. openvino:CPU)"),
    (["run", "conv", "--backends", "torch,gna_emu"], "unknown backend 'gna_emu'; valid: torch, openvino:DEVICE"),
    (["run", "conv", "--set", "scale_factor=0"], "scale_factor must be positive"),
    (["run", "conv", "--set", "layout=weird"], "layout must be correct or legacy-concat"),
    (["run", "conv", "--set", "noequals"], "--set takes key=value"),
    (["run", "model"], "experiment 'model' needs model=PATH"),
    (["run", "conv", "--backends", "openvino:CPU:f64"], "unknown precision 'f64' in 'openvino:CPU:f64'; valid: f32, "
                                                       "bf16, f16 (e.g. openvino:CPU:bf16)"),
    (["run", "conv", "--backends", "openvino:GNA:bf16"], "GNA takes no inference precision; its weights' precision"),
])
def test_bad_usage_exit_2_with_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("value, message", [
    (32.7, "parameter length=32.7: expected a whole number"),
    (True, "parameter length=True: expected a whole number"),
    ([1, 2], "parameter length=[1, 2]: expected one int value"),
    ({"a": 1}, "parameter length={'a': 1}: expected one int value"),
])
def test_typed_values_from_yaml_are_checked(value, message):
    """Values that are not strings (a matrix row, a notebook parameter) must already have the field's type."""
    from gnaexp.experiment import ExperimentConfig

    with pytest.raises(ValueError) as err:
        ExperimentConfig().with_settings({"length": value})
    assert message in str(err.value)
    assert ExperimentConfig().with_settings({"length": 17, "amplitude": 2, "ir": "pot"}).ir == "nncf"  # alias

def test_gna_backend_unavailable_exit_3(tmp_path, capsys):
    assert main(["run", "conv", "--backends", "torch,openvino:GNA", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "GNA" in err and "gna-emu" in err
    assert not (tmp_path / "record.json").exists()


def test_bad_input_file_names_expected_shape(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 5, 255), np.float32))
    assert main(["run", "conv", "--set", f"input_file={tmp_path / 'x.npy'}", "--out", str(tmp_path / "o")]) == 2
    assert "the model expects (1, 6, 255)" in capsys.readouterr().err


def test_compare_and_export(tmp_path, capsys):
    a = np.linspace(-1, 1, 50).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", a * 0.5)
    assert main(["compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cosine"] == pytest.approx(1.0) and data["l1"] == pytest.approx(np.mean(np.abs(a)) / 2, rel=1e-6)
    np.save(tmp_path / "c.npy", a[:10])
    assert main(["compare", str(tmp_path / "a.npy"), str(tmp_path / "c.npy")]) == 2
    assert "shape mismatch" in capsys.readouterr().err

    out = tmp_path / "exp"
    assert main(["export", "concat_conv", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"model.xml", "model.bin", "input.npy", "inputs.npz", "reference_output.npy", "config.json",
            "measure_on_device.py"} <= names
    assert np.load(out / "reference_output.npy").shape == (1, 4, 127)
    compile(open(out / "measure_on_device.py").read(), "measure_on_device.py", "exec")


def test_console_script_and_help():
    exe = [sys.executable, "-m", "gnaexp"]
    res = subprocess.run(exe + ["devices", "--json"], capture_output=True, text=True, check=True)
    info = json.loads(res.stdout)
    assert "CPU" in info["devices"]
    if "GNA" not in info["devices"]:  # a machine with the GNA plugin says so instead
        assert info["gna_usable"] is False and "2023.3" in info["gna_reason"]
    else:
        assert info["gna_usable"] is True
    for cmd in ([], ["run"], ["compare"], ["export"], ["devices"]):
        res = subprocess.run(exe + cmd + ["--help"], capture_output=True, text=True)
        assert res.returncode == 0 and "usage: gnaexp" in res.stdout


def test_user_model_file_and_module(tmp_path, capsys):
    import torch

    from gnaexp import experiment

    # An IR file from elsewhere: OpenVINO CPU is the reference when there is no torch module.
    assert main(["export", "conv", "--set", "seed=4", "--out", str(tmp_path / "pack")]) == 0
    capsys.readouterr()
    assert main(["run", "model", "--set", f"model={tmp_path / 'pack' / 'model.xml'}", "--backends", "openvino:CPU",
                 "--out", str(tmp_path / "run"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reference"] == "openvino:CPU" and data["model"] == {}
    # A torch module of one's own.
    net = torch.nn.Sequential(torch.nn.Conv1d(3, 4, 5), torch.nn.ReLU())
    bundle = experiment.bundle_from_torch(net, (1, 3, 40), "mine")
    rec = experiment.run(experiment.ExperimentConfig(), model=bundle)
    assert rec.metrics["openvino:CPU"]["output"].cosine > 0.99999 and rec.experiment == "mine"


def test_user_model_file_errors_and_unnamed_tensors(tmp_path, capsys):
    import openvino as ov
    import torch

    # A missing file, a lone .xml and an unsupported type: exit 2 with what is wrong.
    assert main(["run", "model", "--set", f"model={tmp_path / 'none.onnx'}"]) == 2
    assert "none.onnx does not exist; give a .onnx or .xml" in capsys.readouterr().err
    (tmp_path / "lone.xml").write_text("<net/>")
    assert main(["run", "model", "--set", f"model={tmp_path / 'lone.xml'}"]) == 2
    assert "IR weights lone.bin missing next to lone.xml" in capsys.readouterr().err
    (tmp_path / "m.pt").write_bytes(b"")
    assert main(["run", "model", "--set", f"model={tmp_path / 'm.pt'}"]) == 2
    assert "OpenVINO cannot read m.pt: " in capsys.readouterr().err  # no refusal by suffix: OpenVINO decides
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["run", "model", "--set", f"model={tmp_path / 'junk.onnx'}"]) == 2
    assert "OpenVINO cannot read junk.onnx" in capsys.readouterr().err

    # An IR whose tensors have no names (a plain convert_model of a torch module) still runs on every backend.
    net = torch.nn.Sequential(torch.nn.Conv1d(8, 8, 3), torch.nn.ReLU(), torch.nn.Conv1d(8, 4, 3)).eval()
    model = ov.convert_model(net, example_input=torch.rand(1, 8, 50), input=[1, 8, 50])
    assert not model.outputs[0].get_names()
    ov.save_model(model, str(tmp_path / "unnamed.xml"), compress_to_fp16=False)
    assert main(["run", "model", "--set", f"model={tmp_path / 'unnamed.xml'}", "--set", "scale_factor=2048",
                 "--backends", "openvino:CPU,gna-emu", "--out", str(tmp_path / "run"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"]["gna-emu (emulated)"]["output"]["cosine"] > 0.999


def test_measure_script_builds_the_gna_config_and_round_trips_through_import(tmp_path, capsys):
    import subprocess
    import sys

    from gnaexp.backends.openvino_runner import gna_config

    pack = tmp_path / "pack"
    assert main(["export", "concat_conv", "--set", "scale_factor=2048", "--set", "execution_mode=HW",
                 "--out", str(pack)]) == 0

    def script(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "measure_on_device.py", *args], cwd=pack, capture_output=True,
                              text=True, timeout=300)

    # On a GNA machine it asks the plugin for what gnaexp's own GNA backend would ask.
    shown = script("--show-config")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == gna_config(["input"], 2048.0, "i16", "HW")
    per_input = json.loads(script("--show-config", "--sf", "input=512", "--mode", "SW_EXACT", "--precision", "i8").stdout)
    assert per_input == gna_config(["input"], {"input": 512.0}, "i8", "SW_EXACT")
    wrong = script("--show-config", "--sf", "nope=3")
    assert wrong.returncode != 0 and "unknown input(s) ['nope']; the inputs are ['input']" in wrong.stderr

    # Measured here on CPU and brought back: the import matches torch and recognises its inputs.
    measured = script("--device", "CPU")
    assert measured.returncode == 0, measured.stderr
    capsys.readouterr()
    assert main(["run", "concat_conv", "--backends", f"torch,import:{pack / 'outputs.npz'}",
                 "--out", str(tmp_path / "run"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"]["import:outputs.npz (imported)"]["output"]["cosine"] > 0.99999
    imported = next(b for b in data["backends"] if b["kind"] == "imported")
    assert imported["info"]["input_fingerprint_matches"] is True


def test_unnamed_irs_with_the_same_graph_and_other_weights_stay_apart(tmp_path):
    import openvino as ov
    import torch

    from gnaexp import experiment
    from gnaexp.models import ir

    bundles = []
    for seed in (0, 1):  # same .xml text, different .bin: each needs its own renamed copy in the cache
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3)).eval()
        folder = tmp_path / f"m{seed}"
        folder.mkdir()
        ov.save_model(ov.convert_model(net, example_input=torch.rand(1, 4, 30), input=[1, 4, 30]),
                      str(folder / "net.xml"), compress_to_fp16=False)
        if seed:  # the same graph text (only a model-name counter differs), the other weights
            (folder / "net.xml").write_text((tmp_path / "m0" / "net.xml").read_text())
        bundles.append(experiment.build_model(experiment.ExperimentConfig(experiment="model",
                                                                          model=str(folder / "net.xml"))))
    assert (tmp_path / "m0" / "net.xml").read_text() == (tmp_path / "m1" / "net.xml").read_text()
    a, b = (x.ir_xml for x in bundles)
    assert a != b and ir.fingerprint_ir(a) != ir.fingerprint_ir(b)
    before = a.stat().st_mtime_ns  # built again: the cached copy is reused, not rewritten
    again = experiment.build_model(experiment.ExperimentConfig(experiment="model", model=str(tmp_path / "m0" / "net.xml")))
    assert again.ir_xml == a and a.stat().st_mtime_ns == before


def test_diagnose_command_text_json_and_observed(tmp_path, capsys):
    from gnaexp import experiment
    from gnaexp.emulator import emulate

    sets = ["--set", "scale_factor=2048", "--set", "length=33"]
    assert main(["diagnose", "concat_conv", *sets]) == 0
    text = capsys.readouterr().out
    assert "1. [fp32]" in text and "[floor]" in text and "[layouts]" in text and "layout defect" in text
    config = experiment.ExperimentConfig(experiment="concat_conv", scale_factor=2048, length=33)
    model = experiment.build_model(config)
    bad = emulate(model.ir_xml, experiment.make_inputs(config, model), 2048.0, layout="legacy-concat")
    np.save(tmp_path / "observed.npy", bad.outputs["output"])
    assert main(["diagnose", "concat_conv", *sets, "--observed", str(tmp_path / "observed.npy"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    observed = next(s for s in result["steps"] if s["step"] == "observed")
    assert observed["hypotheses"][0]["hypothesis"] == "legacy-concat"
    assert main(["diagnose", "concat_conv", *sets, "--observed", str(tmp_path / "missing.npy")]) == 2
    assert "missing.npy does not exist" in capsys.readouterr().err


def test_sweep_command(capsys):
    assert main(["sweep", "conv", "--scale-factors", "1,2048,65536", "--set", "length=33", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["scale_factors"] == [1.0, 2048.0, 65536.0] and res["emulated"] is True
    assert res["best_scale_factor"] == 2048.0  # highest SQNR: sf 1 rounds, 65536 saturates int16 inputs
    assert res["input_saturation_starts"] == 65536.0
    assert main(["sweep", "conv", "--scale-factors", "1,x"]) == 2
    assert "--scale-factors takes comma-separated numbers" in capsys.readouterr().err


def test_an_inference_precision_is_a_backend_of_its_own(tmp_path, capsys):
    """openvino:CPU:bf16 in the one backend syntax: CPU run in bf16, labelled so and measured (not the reference);
    openvino:CPU:f32 is openvino:CPU itself."""
    import json

    assert main(["run", "conv", "--backends", "openvino:CPU,openvino:CPU:bf16", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "record.json").read_text(encoding="utf-8"))
    results = {r["backend"]: r for r in record["backends"]}
    assert results["openvino:CPU"]["kind"] == "reference"
    assert results["openvino:CPU:bf16"]["kind"] == "measured"
    assert results["openvino:CPU:bf16"]["settings"]["inference_precision"] == "bf16"
    sqnr = record["metrics"]["openvino:CPU:bf16"]["output"]["sqnr_db"]
    assert 20 < sqnr < 100  # bf16 rounding, not FP32's exactness
    from gnaexp.backends import make_backend

    assert make_backend("openvino:CPU:f32").name == "openvino:CPU" and make_backend("openvino:CPU:f32").kind == "reference"
