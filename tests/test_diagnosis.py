"""The diagnosis ladder on the forum nets (emulator + real OpenVINO CPU + torch)."""

import numpy as np
import pytest

from gnaexp import diagnosis, experiment
from gnaexp.emulator import emulate


def _steps(result):
    return {s["step"]: s for s in result["steps"]}


def test_concat_conv_ladder_names_the_layout_defect():
    config = experiment.ExperimentConfig(experiment="concat_conv", scale_factor=2048)
    steps = _steps(diagnosis.ladder(config))
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
    steps = _steps(diagnosis.ladder(experiment.ExperimentConfig(experiment="conv", scale_factor=2048)))
    assert all(r.get("same_as_correct", True) for r in steps["layouts"]["rows"])
    assert "computes the same" in steps["layouts"]["verdict"]


def test_observed_output_is_matched_to_its_hypothesis():
    config = experiment.ExperimentConfig(experiment="concat_conv", scale_factor=2048)
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    # A "device" that has the legacy layout defect, plus a little noise of its own.
    bad = emulate(model.ir_xml, feed, 2048.0, layout="legacy-concat").outputs["output"]
    bad = bad + np.random.default_rng(0).normal(0, 1e-4, bad.shape).astype(np.float32)
    steps = _steps(diagnosis.ladder(config, observed=bad))
    assert steps["observed"]["hypotheses"][0]["hypothesis"] == "legacy-concat"
    assert "worse than the quantization floor" in steps["observed"]["verdict"]
    assert "reproduced by layout 'legacy-concat'" in steps["observed"]["verdict"]
    # A healthy device sits at the floor.
    good = emulate(model.ir_xml, feed, 2048.0).outputs["output"]
    steps = _steps(diagnosis.ladder(config, observed=good))
    assert steps["observed"]["hypotheses"][0]["hypothesis"] == "correct"
    assert "at the int16 quantization floor" in steps["observed"]["verdict"]


def test_explain_ranks_by_sqnr():
    truth = np.linspace(-1, 1, 100).astype(np.float32)
    ranked = diagnosis.explain(truth, {"far": truth[::-1].copy(), "near": truth + 1e-3})
    assert [r["hypothesis"] for r in ranked] == ["near", "far"]
    assert ranked[0]["sqnr_db"] > 40 > ranked[1]["sqnr_db"]


@pytest.mark.parametrize("sq, floor, expected", [
    (70.0, 72.0, "at the int16 quantization floor"),
    (10.0, 72.0, "not explained by quantization alone"),
])
def test_classify_against_floor(sq, floor, expected):
    from gnaexp.metrics import Comparison

    c = Comparison(l1=0.0, cosine=0.9, pearson=0.9, sqnr_db=sq, rmse=0.0, relative_l2=0.0, max_abs_error=0.0,
                   max_abs_error_index=[], cosine_per_channel=[])
    assert expected in diagnosis.classify(c, "measured", floor)


def test_emulated_verdict_names_saturation_instead_of_calling_it_the_floor():
    config = experiment.ExperimentConfig(experiment="conv", backends=["torch", "gna-emu"], amplitude=2.0,
                                         scale_factor=40000)  # 2·40000 does not fit int16
    verdict = experiment.run(config).diagnosis["verdicts"]["gna-emu (emulated)"]
    assert "saturation in input (" in verdict and "lower the input scale factor" in verdict
    assert "best GNA can do" not in verdict
    config.scale_factor = 2048
    assert "the best GNA can do here" in experiment.run(config).diagnosis["verdicts"]["gna-emu (emulated)"]
