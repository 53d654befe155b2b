import json
from pathlib import Path

import numpy as np
import pytest

from gnaexp import experiment
from gnaexp.core.files import atomic_write_text
from gnaexp.core.records import Record


def test_record_round_trip_and_relative_paths(tmp_path):
    config = experiment.ExperimentConfig(experiment="conv", seed=2)
    rec = experiment.run(config, out_dir=tmp_path / "run")
    data = json.loads((tmp_path / "run" / "record.json").read_text())
    assert data["schema"] == "gnaexp.record/1" and data["seed"] == 2
    assert data["artifacts"] == {"ir": "ir/model.xml", "inputs": "inputs.npz", "outputs": "outputs.npz"}
    text = (tmp_path / "run" / "record.json").read_text()
    assert str(tmp_path) not in text and "/home/" not in text and "/root/" not in text
    for key in ("os", "cpu", "python", "torch", "openvino", "nncf", "openvino_devices"):
        assert key in data["environment"]
    back = Record.load(tmp_path / "run")
    assert back.to_json() == rec.to_json()
    for a, b in zip(rec.results, back.results):
        assert np.array_equal(a.outputs["output"], b.outputs["output"])
    assert np.array_equal(back.inputs["input"], rec.inputs["input"])


def test_same_seed_same_numbers(tmp_path):
    a = experiment.run(experiment.ExperimentConfig(experiment="concat_conv", seed=7))
    b = experiment.run(experiment.ExperimentConfig(experiment="concat_conv", seed=7))
    assert a.input_fingerprint == b.input_fingerprint and a.model_fingerprint == b.model_fingerprint
    assert a.metrics["openvino:CPU"]["output"].to_json() == b.metrics["openvino:CPU"]["output"].to_json()


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    """The write fails after the temporary file holds the new bytes, just before the rename: the old file stays
    whole and no temporary file is left (a write straight to the destination would fail this)."""
    import os

    target = tmp_path / "f.json"
    atomic_write_text(target, "good")
    written = []

    def failing_replace(src, dst):
        written.append(Path(src).read_text())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "bad, and longer than the good text")
    assert written == ["bad, and longer than the good text"]  # the new bytes were written, to another file
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_load_refuses_another_schema(tmp_path):
    record = experiment.run(experiment.ExperimentConfig(experiment="conv", length=17, backends=["torch"]),
                            out_dir=tmp_path)
    data = json.loads((tmp_path / "record.json").read_text())
    data["schema"] = "gnaexp.record/0"
    (tmp_path / "record.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="has schema 'gnaexp.record/0'; this gnaexp reads gnaexp.record/1"):
        Record.load(tmp_path)
    assert record.sweep is None and record.sweep_error == ""  # every result is a reference: no floor to sweep
