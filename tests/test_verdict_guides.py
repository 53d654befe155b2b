"""When the configured scale factor is the cause, the first line of a finding says so and gives the one to use."""

import math
from pathlib import Path

from gnaexp.cli import main
from gnaexp.core.floor_sweep import FloorSweep, LayoutTrace
from gnaexp.diagnose import verdicts as diagnosis
from gnaexp.diagnose.ladder import format_ladder, ladder
from gnaexp.experiment import ExperimentConfig
from gnaexp.vad import run as vad_run

SPEECH = Path(__file__).resolve().parent.parent / "data" / "speech"


def _sweep(sf, trace, recommended, sfs=(1.0, 2048.0, 16384.0, 32768.0)):
    best = max(range(len(sfs)), key=lambda i: trace[i])
    n = len(sfs)
    correct = LayoutTrace(list(trace), [1.0] * n, [0.0] * n, [0] * n, [0] * n, [""] * n)
    return FloorSweep(list(sfs), sf, "i16", "2023.3", {"correct": correct}, trace[list(sfs).index(sf)], 1.0,
                      sfs[best], trace[best], math.inf, recommended, "")


def test_the_cause_names_the_best_scale_factor_that_keeps_headroom():
    sweep = _sweep(1.0, [4.8, 71.1, 85.7, 87.0], recommended=16386.9)
    assert diagnosis.scale_factor_cause(sweep) == (
        "the scale factor is the cause: at sf 1 the emulated GNA floor is SQNR 4.8 dB, at sf 16384 it is 85.7 dB "
        "— set scale_factor=16384")
    # no headroom bound in the sweep: the best overall
    assert "set scale_factor=32768" in diagnosis.scale_factor_cause(_sweep(1.0, [4.8, 71.1, 85.7, 87.0], None))


def test_no_cause_where_the_floor_is_usable_or_no_scale_factor_helps():
    assert diagnosis.scale_factor_cause(_sweep(2048.0, [4.8, 71.1, 85.7, 87.0], 16386.9)) is None  # 71 dB is fine
    assert diagnosis.scale_factor_cause(_sweep(1.0, [4.0, 8.0, 9.0, 9.5], 16386.9)) is None  # structural: sf can't fix
    assert diagnosis.scale_factor_cause(_sweep(1.0, [25.0, 31.0, 33.0, 34.0], 16386.9)) is None  # < 10 dB gained
    assert diagnosis.scale_factor_cause(_sweep(1.0, [math.nan, 71.0, 80.0, 81.0], 16386.9)).startswith(
        "the scale factor is the cause: at sf 1 the emulated GNA floor is no usable output")
    assert diagnosis.scale_factor_cause(None) is None  # no floor made: no finding


def test_input_range_cause():
    # sf 1 for audio whose peak allows 29752.5: 1/29752.5 = 0.0034 % of the range
    assert diagnosis.input_range_cause(1.0, 29752.5, "the audio") == (
        "the scale factor is the cause: at sf 1 the audio uses 0.0034 % of the int16 range its peak allows — set "
        "scale_factor=recommended (29752.5, from the peak with 6 dB headroom)")
    assert diagnosis.input_range_cause(2048.0, 29752.5) is None  # 6.9 % of the range: enough levels
    assert diagnosis.input_range_cause(1.0, 0.0) is None


def test_diagnose_at_sf_1_leads_with_the_scale_factor(capsys):
    result = ladder(ExperimentConfig().with_settings({"experiment": "conv", "scale_factor": 1.0}))
    assert result.headline.startswith("the scale factor is the cause: at sf 1 ")
    assert "set scale_factor=16384" in result.headline
    assert format_ladder(result).splitlines()[1] == f"→ {result.headline}"
    good = ladder(ExperimentConfig().with_settings({"experiment": "conv", "scale_factor": 2048.0}))
    assert good.headline is None
    assert main(["run", "conv", "--backends", "torch,gna-emu"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("→ the scale factor is the cause: at sf 1 ")


def test_a_vad_run_at_sf_1_says_the_scale_factor_is_the_cause(tmp_path):
    wav = SPEECH / "speech_snr20.wav"
    low = vad_run.run([wav], ["torch", "gna-emu"], tmp_path / "low", {"scale_factor": 1.0})
    assert low.aggregate["gna-emu"].agreement < vad_run.AGREEMENT_OK
    assert vad_run.finding(low).startswith("the scale factor is the cause: at sf 1 the audio uses ")
    assert vad_run.table(low).splitlines()[0] == f"→ {vad_run.finding(low)}"
    good = vad_run.run([wav], ["torch", "gna-emu"], tmp_path / "good", {"scale_factor": "recommended"})
    assert vad_run.finding(good) is None
