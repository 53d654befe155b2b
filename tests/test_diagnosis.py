"""The diagnosis ladder on the forum nets (emulator + real OpenVINO CPU + torch)."""

from pathlib import Path

import numpy as np
import pytest

from gnaexp import experiment
from gnaexp.diagnose import ladder, verdicts as diagnosis
from gnaexp.emulator import emulate
from gnaexp.present.index_entry import IndexEntry


def _steps(result):
    return {s["step"]: s for s in result.to_json()["steps"]}


def test_concat_conv_ladder_names_the_layout_defect():
    config = experiment.ExperimentConfig(experiment="concat_conv", scale_factor=2048)
    steps = _steps(ladder.ladder(config))
    assert steps["fp32"]["ok"]
    assert steps["floor"]["cosine"] > 0.9999
    # uniform [0, 1) inputs, half of int16 kept free: sf = 16383.5 / max x
    peak = float(experiment.make_inputs(config, experiment.build_model(config))["input"].max())
    assert steps["floor"]["recommended_scale_factor"] == pytest.approx(16383.5 / peak, rel=1e-6)
    assert f"use sf ≈ {steps['floor']['recommended_scale_factor']:.6g}" in steps["floor"]["verdict"]
    assert steps["sensitivity"]["sqnr_spread_db"] > 40  # quantization error reacts strongly to sf
    legacy = next(r for r in steps["layouts"]["rows"] if r["layout"] == "legacy-concat")
    assert legacy["cosine"] < 0.9 and not legacy["same_as_correct"]
    assert abs(legacy["sqnr_at_other_sf"] - legacy["sqnr_db"]) < 3
    assert "layout defect" in steps["layouts"]["verdict"]


def test_conv_alone_has_no_layout_hypothesis():
    steps = _steps(ladder.ladder(experiment.ExperimentConfig(experiment="conv", scale_factor=2048)))
    assert all(r.get("same_as_correct", True) for r in steps["layouts"]["rows"])
    assert "computes the same" in steps["layouts"]["verdict"]


def test_observed_output_is_matched_to_its_hypothesis():
    config = experiment.ExperimentConfig(experiment="concat_conv", scale_factor=2048)
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    # A "device" that has the legacy layout defect, plus a little noise of its own.
    bad = emulate(model.ir_xml, feed, 2048.0, layout="legacy-concat").outputs["output"]
    bad = bad + np.random.default_rng(0).normal(0, 1e-4, bad.shape).astype(np.float32)
    steps = _steps(ladder.ladder(config, observed=bad))
    assert steps["observed"]["hypotheses"][0]["hypothesis"] == "legacy-concat"
    assert steps["observed"]["explained_by"] == "legacy-concat"
    assert "reads the channel-major concat buffer as interleaved" in steps["observed"]["verdict"]
    # the per-layer table, in the explaining layout, points at the conv after the concat
    assert steps["per-layer"]["layout"] == "legacy-concat"
    assert "Convolution" in steps["per-layer"]["first_bad_layer"]
    # A healthy device sits at the floor.
    good = emulate(model.ir_xml, feed, 2048.0).outputs["output"]
    steps = _steps(ladder.ladder(config, observed=good))
    assert steps["observed"]["explained_by"] == "as-configured"
    assert steps["observed"]["verdict"].startswith("no defect")
    assert steps["per-layer"]["first_bad_layer"] is None


def test_emulated_verdict_names_saturation_instead_of_calling_it_the_floor():
    config = experiment.ExperimentConfig(experiment="conv", backends=["torch", "gna-emu"], amplitude=2.0,
                                         scale_factor=40000)  # 2·40000 does not fit int16
    verdict = experiment.run(config).diagnosis.verdicts["gna-emu (emulated)"]
    assert "saturation in input (" in verdict and "lower the input scale factor" in verdict
    assert "quantization floor" not in verdict
    config.scale_factor = 2048
    assert "the emulated int16 quantization floor for sf 2048" in \
        experiment.run(config).diagnosis.verdicts["gna-emu (emulated)"]


@pytest.mark.parametrize("scale_factor", [1, 2048])
def test_run_notebook_batch_record_and_index_say_the_same(tmp_path, scale_factor):
    """One config through `gnaexp run` and through a one-run `gnaexp batch`: the same verdict text everywhere."""
    import html
    import json

    import yaml

    from gnaexp import cli
    from gnaexp.core.records import Record

    params = {"scale_factor": scale_factor, "length": 33, "seed": 3, "backends": "torch,openvino:CPU,gna-emu"}
    run_dir = tmp_path / "run"
    sets = [f"{k}={v}" for k, v in params.items() if k != "backends"]
    assert cli.main(["run", "conv", *sum((["--set", s] for s in sets), []), "--backends", params["backends"],
                     "--out", str(run_dir)]) == 0
    by_run = Record.load(run_dir)

    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    matrix = tmp_path / "m.yaml"
    matrix.write_text(yaml.safe_dump({"runs": [{"notebook": str(notebooks / "conv"), "name": "one",
                                                "parameters": params}]}))
    out = tmp_path / "reports"
    assert cli.main(["batch", str(matrix), "--out", str(out), "--jobs", "1"]) == 0
    by_batch = Record.load(out / "one.record")

    assert by_batch.input_fingerprint == by_run.input_fingerprint  # the same run, not a look-alike
    assert by_batch.diagnosis.verdicts == by_run.diagnosis.verdicts
    lines = diagnosis.verdict_lines(by_run)
    cause = diagnosis.scale_factor_cause(by_run.sweep)  # sf 1 is the cause here, sf 2048 is not
    assert (cause is not None) == (scale_factor == 1)
    assert len(lines) == 2 + (cause is not None)  # the finding, then openvino:CPU and gna-emu against torch
    if cause:
        assert lines[0] == f"**finding**: {cause}."
    summary = IndexEntry.load(out / "one.record")
    assert summary is not None and summary.verdict == lines
    cells = json.loads((out / "one.ipynb").read_text())["cells"]
    notebook_text = json.dumps([o.get("data", {}) for c in cells for o in c.get("outputs", [])], ensure_ascii=False)
    index = (out / "index.html").read_text()
    for label, text in by_run.diagnosis.verdicts.items():
        assert json.dumps(text, ensure_ascii=False)[1:-1] in notebook_text  # the notebook's verdict cell shows it
        assert html.escape(text) in index
