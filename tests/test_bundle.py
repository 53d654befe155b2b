"""The vendor-support bundle and the diagnose command's other inputs (own model, export pack), for real."""

import json
import math
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from gnaexp.cli import main
from gnaexp.emulator import emulate


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "concat_conv"
    assert main(["run", "concat_conv", "--set", "scale_factor=2048", "--set", "seed=3", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("plain", [False, True], ids=["with-gnaexp", "numpy-and-openvino-only"])
def test_bundle_round_trip_reproduces_the_metrics(run_dir, tmp_path, plain, capsys):
    zip_path = tmp_path / "support.zip"
    assert main(["bundle", str(run_dir), "--out", str(zip_path)]) == 0
    fresh = tmp_path / "elsewhere"
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        z.extractall(fresh)
    assert {"record.json", "inputs.npz", "outputs.npz", "ir/model.xml", "ir/model.bin", "diagnosis.json",
            "reproduce.py", "README.txt"} <= names
    assert "emulated (as GNA plugin 2023.3), not measured" in (fresh / "README.txt").read_text()
    for name in names - {"ir/model.bin", "inputs.npz", "outputs.npz"}:  # no absolute path inside
        text = (fresh / name).read_text(encoding="utf-8")
        assert str(run_dir) not in text and str(tmp_path) not in text, name
    res = subprocess.run([sys.executable, "reproduce.py", "--json"] + (["--plain"] if plain else []), cwd=fresh,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    record = json.loads((run_dir / "record.json").read_text())
    emu = got["metrics"]["gna-emu (emulated)/output"]
    want = record["metrics"]["gna-emu (emulated)"]["output"]
    # same figures as the record (the NumPy-only path sums in another order: agreement to 1e-6)
    assert emu["matches_record"] and math.isclose(emu["cosine"], want["cosine"], rel_tol=1e-6)
    assert math.isclose(emu["sqnr_db"], want["sqnr_db"], rel_tol=1e-6)
    cpu = got["openvino_cpu"]["output"]  # the IR reruns to float rounding of the stored reference
    assert cpu["sqnr_db"] > 100 and cpu["matches_record"] is True
    diag = json.loads((fresh / "diagnosis.json").read_text())
    assert diag["emulated"] and any(s["step"] == "per-layer" for s in diag["steps"])


def test_bundle_of_a_folder_without_a_record_is_refused(tmp_path, capsys):
    assert main(["bundle", str(tmp_path), "--out", str(tmp_path / "x.zip")]) == 2
    assert "holds no record.json" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()


def test_diagnose_an_export_pack_and_an_own_model(tmp_path, capsys):
    pack = tmp_path / "pack"
    assert main(["export", "concat_conv", "--set", "scale_factor=2048", "--out", str(pack)]) == 0
    assert main(["diagnose", "--export-dir", str(pack)]) == 2  # no device outputs yet
    assert "has no outputs.npz" in capsys.readouterr().err
    feed = dict(np.load(pack / "inputs.npz"))
    device = emulate(pack / "model.xml", feed, 2048.0, layout="legacy-concat").outputs
    np.savez(pack / "outputs.npz", **device)  # as measure_on_device.py would bring it back
    capsys.readouterr()
    assert main(["diagnose", "--export-dir", str(pack), "--json"]) == 0
    steps = {s["step"]: s for s in json.loads(capsys.readouterr().out)["steps"]}
    assert steps["observed"]["explained_by"] == "legacy-concat"
    assert steps["observed"]["hypotheses"][0]["hypothesis"] == "legacy-concat"
    # the same model and inputs as the user's own files, with the observed output rolled in time
    np.save(tmp_path / "obs.npy", np.roll(emulate(pack / "model.xml", feed, 2048.0).outputs["output"], 1, axis=2))
    assert main(["diagnose", "--model", str(pack / "model.xml"), "--input", str(pack / "inputs.npz"),
                 "--set", "scale_factor=2048", "--observed", str(tmp_path / "obs.npy"), "--json"]) == 0
    steps = {s["step"]: s for s in json.loads(capsys.readouterr().out)["steps"]}
    assert steps["observed"]["explained_by"] == "time-rolled +1"


def test_diagnose_refuses_an_observed_output_of_another_shape(tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 50), np.float32))
    assert main(["diagnose", "conv", "--set", "length=33", "--observed", str(tmp_path / "wrong.npy")]) == 2
    err = capsys.readouterr().err
    assert "has shape (1, 3, 50)" in err and "pass the device output for the same inputs and model" in err


def test_a_bundle_diagnoses_the_imported_device_output(tmp_path, monkeypatch, capsys):
    """The vendor-support path: a run with a device file measured elsewhere, bundled — the bundle's diagnosis
    observes that device output (its outputs.npz key is the import's label)."""
    from gnaexp import experiment
    from gnaexp.backends.imported import write_outputs
    from gnaexp.emulator import emulate

    monkeypatch.chdir(tmp_path)
    config = experiment.ExperimentConfig(experiment="concat_conv", scale_factor=2048, length=33)
    model = experiment.build_model(config)
    device = emulate(model.ir_xml, experiment.make_inputs(config, model), 2048.0, layout="legacy-concat")
    write_outputs(tmp_path / "dev.npz", device.outputs, {"device": "GNA"})
    assert main(["run", "concat_conv", "--set", "scale_factor=2048", "--set", "length=33", "--backends",
                 "torch,import:dev.npz", "--out", "run"]) == 0
    assert main(["bundle", "run", "--out", "support.zip"]) == 0
    with zipfile.ZipFile(tmp_path / "support.zip") as z:
        diagnosis = json.loads(z.read("diagnosis.json"))
    observed = next(s for s in diagnosis["steps"] if s["step"] == "observed")
    assert observed["source"] == "given" and observed["hypotheses"][0]["hypothesis"] == "legacy-concat"


def test_a_run_folder_with_a_per_layer_table_bundles_it_and_a_damaged_one_is_named(run_dir, tmp_path, capsys):
    import shutil

    from gnaexp.layers.results import LayerComparison, LayerDiff

    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    table = LayerComparison("openvino:CPU", ["openvino:CPU:bf16"], {"openvino:CPU:bf16": None},
                            {"openvino:CPU:bf16": 30.0}, {}, [LayerDiff("conv", "Convolution", "openvino:CPU:bf16",
                                                                        50.0, 50.0, 0.99999, 0.002)], "concat_conv")
    (folder / "layers.json").write_text(table.dumps(), encoding="utf-8")
    assert main(["bundle", str(folder), "--out", str(tmp_path / "a.zip"), "--no-diagnosis"]) == 0
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        assert {"layers.json", "record.json", "reproduce.py"} <= set(z.namelist())
        assert LayerComparison.from_json(json.loads(z.read("layers.json"))).rows == table.rows
        assert "layers.json: the per-layer comparison of concat_conv" in z.read("README.txt").decode()
    (folder / "layers.json").write_text('{"schema": "gnaexp.layers/1", "rows": []}', encoding="utf-8")
    capsys.readouterr()
    assert main(["bundle", str(folder), "--out", str(tmp_path / "b.zip"), "--no-diagnosis"]) == 2
    err = capsys.readouterr().err
    assert "layers.json is not a per-layer comparison" in err and "rerun gnaexp layers --out" in err
    assert "Traceback" not in err and not (tmp_path / "b.zip").exists()
