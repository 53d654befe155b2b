import json
import numpy as np
import openvino as ov
import pytest
import torch

from gnaexp import experiment
from gnaexp.backends import BackendUnavailable, make_backend
from gnaexp.backends.imported import write_outputs
from gnaexp.backends.openvino_runner import gna_config
from gnaexp.core import inputs
from gnaexp.models import forum_nets as nets, ir

SHAPES = {"conv": ((1, 6, 255), (1, 4, 127)), "concat": ((1, 2, 255), (1, 6, 255)),
          "concat_conv": ((1, 2, 255), (1, 4, 127))}


@pytest.mark.parametrize("name", list(SHAPES))
def test_forum_net_shapes_and_seeded_weights(name):
    net, shape = nets.build_net(name, nets.NetSpec(), seed=5)
    assert shape == SHAPES[name][0]
    with torch.no_grad():
        y = net(torch.zeros(shape))
    assert tuple(y.shape) == SHAPES[name][1]
    again, _ = nets.build_net(name, nets.NetSpec(), seed=5)
    other, _ = nets.build_net(name, nets.NetSpec(), seed=6)
    for (k, v), (_, w) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k
    if name != "concat":
        assert not all(torch.equal(v, w) for v, w in zip(net.state_dict().values(), other.state_dict().values()))


def test_ir_export_is_static_named_fp32_and_cached(tmp_path, monkeypatch):
    from gnaexp import cache

    monkeypatch.setenv("GNAEXP_CACHE", str(tmp_path))
    net, shape = nets.build_net("concat_conv", nets.NetSpec(), seed=0)
    xml = cache.torch_ir(net, shape)
    assert xml.is_relative_to(tmp_path / "ir")
    model = ov.Core().read_model(str(xml))
    assert ir.input_shapes(model) == {"input": (1, 2, 255)}
    assert ir.output_names(model) == ["output"]
    types = [op.get_type_name() for op in model.get_ordered_ops()]
    assert "Concat" in types and "Convolution" in types
    assert all(op.get_output_element_type(0) == ov.Type.f32 for op in model.get_ordered_ops()
               if op.get_type_name() == "Constant")
    mtime = xml.stat().st_mtime_ns
    assert cache.torch_ir(net, shape) == xml and xml.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("name", list(SHAPES))
def test_openvino_cpu_matches_torch(name):
    config = experiment.ExperimentConfig(experiment=name)
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    ref = make_backend("torch").run(model, feed)
    cpu = make_backend("openvino:CPU").run(model, feed)
    assert cpu.kind == "reference" and cpu.info["plugin_config"] == {"INFERENCE_PRECISION_HINT": "f32"}
    assert np.abs(cpu.outputs["output"] - ref.outputs["output"]).max() < 1e-5


def test_gna_missing_fails_at_once_and_says_why():
    backend = make_backend("openvino:GNA", {"scale_factor": 2048})
    with pytest.raises(BackendUnavailable) as info:
        backend.check_available()
    msg = str(info.value)
    assert "GNA" in msg and "2023.3" in msg and "gna-emu" in msg and "CPU" in msg


def test_gna_config_maps_settings_to_plugin_keys():
    cfg = gna_config(["a", "b"], {"a": 2048.0, "b": 0.5}, "i8", "sw_exact")
    assert cfg == {"GNA_DEVICE_MODE": "GNA_SW_EXACT", "GNA_PRECISION": "I8",
                   "GNA_SCALE_FACTOR_0": "2048.0", "GNA_SCALE_FACTOR_1": "0.5"}
    assert gna_config(["x"], 16.0, "i16", "HW")["GNA_SCALE_FACTOR_0"] == "16.0"
    with pytest.raises(ValueError, match="execution mode 'FAST'"):
        gna_config(["x"], 1.0, "i16", "FAST")
    with pytest.raises(ValueError, match="positive and finite"):
        gna_config(["x"], 0.0, "i16", "HW")
    with pytest.raises(ValueError, match=r"unknown input\(s\) \['y'\]"):
        gna_config(["x"], {"y": 2.0}, "i16", "HW")


def test_unknown_backend_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: torch, openvino:DEVICE"):
        make_backend("tensorrt")


def test_import_backend_round_trip(tmp_path):
    config = experiment.ExperimentConfig(experiment="conv")
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    out = np.full((1, 4, 127), 0.25, np.float32)
    path = write_outputs(tmp_path / "o.npz", {"output": out},
                         {"device": "GNA", "input_fingerprint": inputs.fingerprint(feed)})
    res = make_backend(f"import:{path}").run(model, feed)
    assert res.kind == "imported" and res.label == "import:o.npz (imported)"
    assert np.array_equal(res.outputs["output"], out)
    assert res.info["source_meta"]["device"] == "GNA" and res.info["input_fingerprint_matches"] is True


def test_forum_figure_beside_imports_from_gna_only(tmp_path):
    from gnaexp.core import records
    from gnaexp.present import summary

    config = experiment.ExperimentConfig(experiment="concat_conv", backends=["torch"])
    feed = experiment.make_inputs(config, experiment.build_model(config))
    out = np.full((1, 4, 127), 0.25, np.float32)
    gna = write_outputs(tmp_path / "gna.npz", {"output": out}, {"device": "GNA", "input_fingerprint": inputs.fingerprint(feed)})
    cpu = write_outputs(tmp_path / "cpu.npz", {"output": out}, {"backend": "openvino:CPU", "device": "CPU"})
    for path, expect_forum in ((gna, True), (cpu, False)):
        cfg = experiment.ExperimentConfig(experiment="concat_conv", backends=["torch", f"import:{path}"])
        rec = experiment.run(cfg, out_dir=tmp_path / path.stem)
        for record in (rec, records.Record.load(tmp_path / path.stem)):  # also after the JSON round trip
            row = next(r for r in summary.rows(record) if r.kind == "imported")
            assert (row.forum_cosine is not None) is expect_forum


def test_two_device_files_in_one_run_stay_two_results(tmp_path, monkeypatch, capsys):
    """Each import is named by its file: two measurements (e.g. two plugin releases) are two rows, two metrics
    entries and two outputs.npz keys; two files that would share a name are refused before any work."""
    from gnaexp import cli

    monkeypatch.chdir(tmp_path)
    config = experiment.ExperimentConfig(experiment="conv", length=33)
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    for folder, value in (("a", 0.25), ("b", 0.5)):
        (tmp_path / folder).mkdir()
        write_outputs(tmp_path / folder / "outputs.npz", {"output": np.full((1, 4, 16), value, np.float32)},
                      {"device": "GNA", "input_fingerprint": inputs.fingerprint(feed)})
    assert cli.main(["run", "conv", "--set", "length=33", "--backends",
                     "torch,import:a/outputs.npz,import:b/outputs.npz", "--out", "run", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"import:a/outputs.npz (imported)", "import:b/outputs.npz (imported)"} <= set(data["metrics"])
    with np.load(tmp_path / "run" / "outputs.npz") as z:
        assert float(z["import:a/outputs.npz (imported)/output"].max()) == 0.25
        assert float(z["import:b/outputs.npz (imported)/output"].max()) == 0.5
    from gnaexp.core.records import Record

    loaded = {r.label: r for r in Record.load(tmp_path / "run").results}  # labels holding a "/" load their outputs
    assert float(loaded["import:b/outputs.npz (imported)"].outputs["output"].max()) == 0.5
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir(exist_ok=True)
    monkeypatch.chdir(elsewhere)  # both files now lie outside the working folder: both would be import:outputs.npz
    assert cli.main(["run", "conv", "--set", "length=33", "--backends",
                     f"torch,import:{tmp_path / 'a' / 'outputs.npz'},import:{tmp_path / 'b' / 'outputs.npz'}",
                     "--out", "run2"]) == 2
    err = capsys.readouterr().err
    assert "would share the label 'import:outputs.npz'" in err and "Traceback" not in err
    assert not (elsewhere / "run2").exists()
    assert cli.main(["run", "conv", "--backends", "torch,gna-emu,gna-emu", "--out", "run3"]) == 2
    assert "'gna-emu' is given twice" in capsys.readouterr().err
