"""The results that pass between modules are typed values whose JSON form reads back as the same value: the
diagnosis ladder (every step), what ran for a measurement, a record's verdicts and a notebook's index entry."""

import json

import pytest

from gnaexp import experiment
from gnaexp.core.files import decode_floats, dumps
from gnaexp.core.records import Record
from gnaexp.diagnose import ladder
from gnaexp.diagnose.measurement import describe, openvino_release, plugin_release_of
from gnaexp.diagnose.results import (Diagnosis, FloorStep, LayerRow, LayoutsStep, ObservedStep, PerLayerStep,
                                     RecordVerdicts, WhatRan)
from gnaexp.diagnose.status import Finding
from gnaexp.emulator import emulate
from gnaexp.present.index_entry import IndexEntry, MetricRow


def _reread(data):
    return decode_floats(json.loads(dumps(data)))


@pytest.fixture(scope="module")
def diagnosed():
    config = experiment.ExperimentConfig(experiment="concat_conv", scale_factor=2048, length=33)
    model = experiment.build_model(config)
    observed = emulate(model.ir_xml, experiment.make_inputs(config, model), 2048.0, layout="legacy-concat")
    return ladder.ladder(config, observed.outputs["output"])


def test_the_ladder_returns_typed_steps(diagnosed):
    d = diagnosed
    assert [s.NAME for s in d.steps] == ["fp32", "floor", "sensitivity", "layouts", "observed", "per-layer"]
    assert isinstance(d.floor, FloorStep) and d.floor.sweep is not None and d.floor.sweep.emulated
    assert isinstance(d.observed, ObservedStep) and d.observed.explained_by == "legacy-concat"
    assert d.observed.hypotheses[0].hypothesis == "legacy-concat" and d.observed.thresholds is not None
    assert isinstance(d.per_layer, PerLayerStep) and all(isinstance(r, LayerRow) for r in d.per_layer.rows)
    layouts = d.step("layouts")
    assert isinstance(layouts, LayoutsStep) and layouts.rows[0].layout == "correct"
    assert d.step("no such step") is None


def test_a_diagnosis_reads_back_from_its_json_as_the_same_diagnosis(diagnosed):
    text = dumps(diagnosed.to_json())
    again = Diagnosis.from_json(_reread(diagnosed.to_json()))
    assert dumps(again.to_json()) == text  # NaN per-layer figures included
    assert again.observed == diagnosed.observed and again.floor.sweep == diagnosed.floor.sweep
    assert again.headline == diagnosed.headline and [s.verdict for s in again.steps] == \
        [s.verdict for s in diagnosed.steps]


def test_the_json_keeps_the_keys_diagnosis_files_have_always_had(diagnosed):
    steps = {s["step"]: s for s in diagnosed.to_json()["steps"]}
    assert set(steps["observed"]) >= {"source", "sqnr_db", "cosine", "pearson", "explained_by", "thresholds",
                                      "hypotheses", "verdict"}
    assert "measured_as" not in steps["observed"]  # written only for a measurement that says what ran
    assert set(steps["layouts"]["rows"][0]) == {"layout", "sqnr_db", "cosine", "pearson"}
    assert {"other_sf", "same_as_correct"} <= set(steps["layouts"]["rows"][1])
    assert "outputs" not in steps["floor"]  # one output: no per-output floors


def test_what_ran_round_trips_and_the_version_is_read_one_way():
    ran = describe({"device": "GNA", "plugin_config": {"GNA_DEVICE_MODE": "GNA_SW_EXACT", "GNA_PRECISION": "I16"},
                    "openvino": "2023.0.2-11065-e662b1a3301-releases/2023/0"})
    assert ran == WhatRan("GNA", "gna-integer", "GNA_SW_EXACT", "I16", "2023.0.2-11065-e662b1a3301-releases/2023/0")
    assert WhatRan.from_json(_reread(ran.to_json())) == ran and ran.to_json()["class"] == "gna-integer"
    assert openvino_release(ran.openvino) == "2023.0.2" and plugin_release_of(ran.openvino) == "2023.0"
    assert plugin_release_of("2024.1.0") is None and openvino_release(None) == ""


def test_record_verdicts_survive_the_record_file(tmp_path):
    config = experiment.ExperimentConfig(experiment="conv", length=17, backends=["torch", "gna-emu"])
    record = experiment.run(config, out_dir=tmp_path / "rec")
    assert isinstance(record.diagnosis, RecordVerdicts) and "gna-emu (emulated)" in record.diagnosis.verdicts
    loaded = Record.load(tmp_path / "rec")
    assert loaded.diagnosis == record.diagnosis
    assert RecordVerdicts.from_json({}).to_json() == {}  # a record written without verdicts stays without


def test_an_index_entry_is_written_and_read_one_way(tmp_path):
    entry = IndexEntry("conv", ["**gna-emu (emulated)**: at the floor."],
                       [MetricRow("gna-emu (emulated)", cosine=0.99, sqnr_db=31.5, kind="emulated", forum_l1="n×1e-2")],
                       ["a note"], Finding("matches", "at the floor", "nothing to change"))
    entry.save(tmp_path / "rec")
    assert IndexEntry.load(tmp_path / "rec") == entry
    assert IndexEntry.load(tmp_path / "nothing here") is None
    (tmp_path / "rec" / "index-entry.json").write_text("{not json")
    assert IndexEntry.load(tmp_path / "rec") is None  # a damaged entry shows as a run without figures
