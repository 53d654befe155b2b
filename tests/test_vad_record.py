"""The silero_vad run's typed settings and record: checked once, the emulator's settings built from them, and
record.json written and read back as it always was (what reproduce.py and earlier records rely on)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gnaexp.cli import main
from gnaexp.core.errors import BadInput
from gnaexp.core.files import dumps
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.present import vad_view
from gnaexp.vad.options import StreamSettings, VadOptions, audio_scale_factor
from gnaexp.vad.record import VadRecord

SPEECH = Path(__file__).resolve().parent.parent / "data" / "speech"
RECORD_KEYS = ["schema", "experiment", "backends", "reference", "labels", "device_settings", "chunk_samples",
               "context_samples", "sample_rate", "files", "notes", "environment", "seconds", "emulator", "aggregate",
               "recommended_scale_factor"]
ROW_KEYS = ["l1", "cosine", "sqnr_db", "max_abs_dp", "mean_abs_dp", "chunks", "flips", "flips_near_boundary",
            "hysteresis_flips", "hysteresis_flips_near_boundary", "agreement", "segments", "segments_vs_reference",
            "segments_vs_truth", "segments_vs_truth_loose", "kind", "label", "ms_per_chunk", "state_drift", "verdict"]
AGGREGATE_KEYS = ["label", "kind", "files", "chunks", "agreement", "flips", "flips_near_boundary", "hysteresis_flips",
                  "max_abs_dp", "mean_abs_dp", "mean_cosine", "lowest_sqnr_db", "not_scored", "segments_vs_reference",
                  "segments_vs_truth", "segments_vs_truth_loose", "lowest_state_sqnr_db"]


@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    """The notebook's run (no plugin release given: the default one) on one file of the speech sample."""
    folder = tmp_path_factory.mktemp("vad-record") / "run"
    return vad_view.run({"audio": str(SPEECH / "speech_snr20.wav"), "backends": "torch,openvino:CPU,gna-emu",
                         "scale_factor": 2048.0, "state_scale_factor": 1024.0, "precision": "i16",
                         "plugin_release": "", "record_dir": str(folder)}), folder


def test_the_record_written_is_the_records_json_and_reads_back_equal(shown):
    result, folder = shown
    record = result.record
    on_disk = json.loads((folder / "record.json").read_text())
    assert on_disk == json.loads(dumps(record.to_json()))
    assert VadRecord.from_json(on_disk) == record == VadRecord.from_json(record.to_json())
    # the format reproduce.py and earlier records know, key by key and in order
    assert list(on_disk) == RECORD_KEYS
    assert list(on_disk["files"][0]) == ["file", "seconds", "source_rate", "truth", "backends"]
    assert list(on_disk["files"][0]["backends"]["gna-emu"]) == ROW_KEYS
    assert list(on_disk["aggregate"]["gna-emu"]) == AGGREGATE_KEYS
    assert list(on_disk["emulator"]["gna-emu"]) == ["support", "plan", "notes", "input_scale_factors"]
    assert on_disk["files"][0]["backends"]["torch"]["sqnr_db"] == "inf"  # the reference against itself
    assert record.files[0].backends["torch"].scores.sqnr_db == np.inf
    assert on_disk["device_settings"]["gna-emu"] == GnaSettings({"chunk": 2048.0, "state": 1024.0},
                                                                porting=True).to_json()


def test_a_record_of_an_earlier_version_reads_with_its_aggregate_computed(shown):
    result, folder = shown
    old = json.loads((folder / "record.json").read_text())
    for key in ("aggregate", "recommended_scale_factor"):
        del old[key]
    for key in ("notes", "input_scale_factors"):
        del old["emulator"]["gna-emu"][key]
    read = VadRecord.from_json(old)
    assert read.aggregate == result.record.aggregate
    assert read.recommended_scale_factor is None and "recommended_scale_factor" not in read.to_json()
    assert read.emulator["gna-emu"].plan == result.record.emulator["gna-emu"].plan


def test_the_notebook_view_shows_a_run_given_no_plugin_release(shown):
    """Before: the notebook's default plugin_release "" became None, which the settings check refused."""
    result, folder = shown
    record = result.record
    assert record.plugin_release() == "2023.3" and record.emulated_settings()["scale_factors"]["chunk"] == 2048.0
    assert vad_view.figure(result, record.files[0].file) is not None
    assert vad_view.drift_figure(record) is not None
    assert "speech_snr20.wav" in str(vad_view.metrics_table(record))
    assert "rewritten" in str(vad_view.support_table(record)) and "Sqrt" in str(vad_view.plan_table(record))
    assert "GNA plugin release (emulated)" in vad_view.finding(record)._repr_html_()
    entry = json.loads((folder / "index-entry.json").read_text())
    assert [row["backend"] for row in entry["rows"]] == [record.labels["openvino:CPU"], record.labels["gna-emu"]]


def test_a_damaged_vad_record_is_refused_by_the_bundle_naming_it(shown, tmp_path, capsys):
    _, folder = shown
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    data = json.loads((copy / "record.json").read_text())
    del data["files"][0]["backends"]["gna-emu"]["flips"]
    (copy / "record.json").write_text(json.dumps(data))
    assert main(["bundle", str(copy), "--out", str(tmp_path / "b.zip")]) == 2
    err = capsys.readouterr().err
    assert "record.json is not a whole silero_vad record" in err and "rerun it with gnaexp run silero_vad" in err
    assert "Traceback" not in err and not (tmp_path / "b.zip").exists()


def test_the_options_are_checked_once_and_give_the_emulators_settings():
    given = VadOptions.from_json({"scale_factor": "2048", "precision": "i8", "plugin_release": "2023.0.2",
                                  "state_scale_factor": None})
    assert given.to_json() == {"scale_factor": 2048.0, "precision": "i8", "plugin_release": "2023.0"}
    assert VadOptions.from_json(given.to_json()) == given == VadOptions.from_json(given)
    audio = [np.array([0.25, -0.5], np.float32)]
    assert given.resolve(audio) == StreamSettings(GnaSettings({"chunk": 2048.0, "state": 1024.0}, "i8", porting=True,
                                                              plugin_release="2023.0"))
    assert given.resolve(audio).backend_options() == {"gna": given.resolve(audio).gna}
    loud = VadOptions.from_json({"scale_factor": "recommended", "execution_mode": "SW_FP32"}).resolve(audio)
    assert loud.gna.per_input == {"chunk": audio_scale_factor(audio), "state": 1024.0}
    assert loud.backend_options()["execution_mode"] == "SW_FP32"
    for bad, said in (({"precision": None}, "precision must be"), ({"state_scale_factor": "recommended"},
                                                                   "state_scale_factor must be a number, got"),
                      ({"layout": "correct"}, "unknown silero_vad setting")):
        with pytest.raises(BadInput, match=said):
            VadOptions.from_json(bad)
