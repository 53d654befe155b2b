"""Every notebook executed for real with papermill (small parameters) and exported to HTML by ``gnaexp batch``."""

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from gnaexp.batch import runner as batch
from gnaexp.batch.matrix import load_matrix, notebook_parameters
from gnaexp.present.index_entry import IndexEntry

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SMALL = {"length": 31, "seed": 3}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """One batch over every notebook; concat_conv asks for GNA, which is absent here."""
    root = tmp_path_factory.mktemp("nb")
    runs = [
        {"notebook": str(NOTEBOOKS / "conv"), "name": "conv-small", "parameters": {**SMALL, "scale_factor": 1}},
        {"notebook": str(NOTEBOOKS / "concat"), "name": "concat-small",
         "parameters": {"length": 31, "scale_factor": 2048, "layout": "legacy-concat", "plugin_release": "2023.0"}},
        {"notebook": str(NOTEBOOKS / "concat_conv"), "name": "concat_conv-gna",
         "parameters": {**SMALL, "backends": "torch,openvino:GNA,gna-emu", "layout": "legacy-concat"}},
        {"notebook": str(NOTEBOOKS / "explorer"), "name": "explorer-small",
         "parameters": {"length": 31, "experiment": "concat_conv", "channel": 2}},
    ]
    matrix = root / "m.yaml"
    matrix.write_text(yaml.safe_dump({"defaults": {"backends": "torch,openvino:CPU,gna-emu"}, "runs": runs}))
    out = root / "reports"
    outcomes = batch.run_batch(load_matrix(matrix), out, jobs=2, echo=lambda s: None)
    return root, out, {o.name: o for o in outcomes}


def _html(out: Path, name: str) -> str:
    return (out / f"{name}.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["conv-small", "concat-small", "concat_conv-gna", "explorer-small"])
def test_report_is_offline_readable_and_shareable(executed, name):
    root, out, outcomes = executed
    assert outcomes[name].status == "ok", outcomes[name].error
    text = _html(out, name)
    assert len(text.encode()) <= 2_000_000
    assert not re.search(r"<script[^>]+src=[\"']https?:", text), "a script is fetched from the network"
    assert not re.search(r"<link[^>]+href=[\"']https?:", text), "a stylesheet is fetched from the network"
    assert text.count("data:image/png;base64,") >= (2 if name.startswith("explorer") else 4)
    if name.startswith("explorer"):  # the snapshot carries the verdict of the state on screen
        assert "gnaexp-verdict" in text and "Explorer snapshot" in text
    else:
        assert "gnaexp-verdict" in text and "gnaexp-status" in text and "Next step:" in text
        assert 0 < text.find("gnaexp-finding") < text.find("<img")  # the finding precedes the first figure
    # no absolute paths or user names: neither the temp folder nor the home folder appears
    for secret in (str(root), str(Path.home()), os.environ.get("USER") or "\0", "/tmp/"):
        assert secret not in text, secret
    # code is hidden by default
    assert "report.run(" not in text and "explorer.show" not in text and "highlight hl-ipython3" not in text
    # environment block and relative artifact paths
    assert "Environment" in text and "openvino_devices" in text
    assert f"{name}.record/ir/model.xml" in text and f"{name}.record/outputs.npz" in text


def test_the_plugin_release_the_emulator_followed_is_in_the_report_and_the_record(executed):
    root, out, outcomes = executed
    text = _html(out, "concat-small")
    assert re.search(r"plugin_release</t[dh]>\s*<td[^>]*>2023\.0<", text), "the settings table names the release"
    record = json.loads((out / "concat-small.record" / "record.json").read_text())
    assert record["config"]["plugin_release"] == "2023.0"
    assert {b["settings"].get("plugin_release") for b in record["backends"] if b["kind"] == "emulated"} == {"2023.0"}


def test_record_saved_next_to_report(executed):
    _, out, _ = executed
    record = json.loads((out / "conv-small.record" / "record.json").read_text())
    assert record["config"]["length"] == 31 and record["config"]["scale_factor"] == 1
    assert (out / "conv-small.record" / record["artifacts"]["ir"]).exists()
    assert record["environment"]["gnaexp"]  # the kernel ran this environment's gnaexp
    summary = IndexEntry.load(out / "conv-small.record")
    assert summary is not None and summary.verdict and summary.rows


def test_absent_gna_is_reduced_with_a_visible_note(executed):
    _, out, _ = executed
    text = _html(out, "concat_conv-gna")
    assert "openvino:GNA is not available here and was left out" in text
    record = json.loads((out / "concat_conv-gna.record" / "record.json").read_text())
    assert "openvino:GNA" not in record["config"]["backends"]
    assert "(emulated)" in text
    assert "gna-emu" in record["config"]["backends"]


def test_metrics_table_has_forum_column(executed):
    _, out, _ = executed
    text = _html(out, "conv-small")
    assert "forum cosine" in text and "SQNR dB" in text
    # conv at sf 1: the forum measured cosine 0.75 on GNA; the figure sits in the emulated row's forum column
    row = re.search(r"<tr><td[^>]*>gna-emu \(emulated\)</td>.*?</tr>", text)
    assert row and re.search(r"<td[^>]*>0\.75</td></tr>$", row.group(0)), row and row.group(0)


def test_explorer_exports_a_static_snapshot(executed):
    _, out, _ = executed
    text = _html(out, "explorer-small")
    assert "Explorer snapshot" in text
    assert "channel 2" in text
    assert "application/vnd.jupyter.widget-view+json" not in text  # no empty widget area


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_are_clean(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "record_dir" in notebook_parameters(path)


def test_cached_reference_gives_the_same_record(tmp_path, monkeypatch):
    """The torch reference taken from the cache yields the same numbers as running torch."""
    import numpy as np

    from gnaexp.present import report

    monkeypatch.chdir(tmp_path)
    params = {"experiment": "concat_conv", "length": 23, "seed": 11, "backends": "torch,openvino:CPU,gna-emu",
              "scale_factor": 64.0, "layout": "legacy-concat"}
    fresh = report.run_setting(report.setting_from({**params, "record_dir": "a"}), use_cache=False)
    first = report.run_setting(report.setting_from({**params, "record_dir": "b"}))  # fills the cache
    cached = report.run_setting(report.setting_from({**params, "record_dir": "c"}))
    assert cached.record.result("torch").info.get("cached") is True
    for other in (first, cached):
        assert other.record.input_fingerprint == fresh.record.input_fingerprint
        assert other.record.model_fingerprint == fresh.record.model_fingerprint
        for r in fresh.record.results:
            np.testing.assert_array_equal(other.record.result(r.label).outputs["output"], r.outputs["output"])
        assert {k: {o: c.to_json() for o, c in v.items()} for k, v in other.record.metrics.items()} == \
               {k: {o: c.to_json() for o, c in v.items()} for k, v in fresh.record.metrics.items()}
    from gnaexp.diagnose import verdicts as diagnosis

    assert diagnosis.verdict_lines(cached.record) == diagnosis.verdict_lines(fresh.record)


def test_index_and_show_code(executed, tmp_path):
    _, out, _ = executed
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.count("data-batch='ok'") == 4
    assert "href='conv-small.html'" in index and "href='conv-small.record/record.json'" in index
    assert "Verdict" not in index and "<b>openvino:CPU</b>: matches the FP32 reference" in index
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?:", index)
    with_code = tmp_path / "code.html"
    batch.export_html(out / "conv-small.ipynb", with_code, show_code=True)
    assert "globals" in with_code.read_text(encoding="utf-8")  # highlighted, so split into spans


def test_experiment_notebook_refuses_another_experiment(tmp_path):
    """conv.ipynb -p experiment concat must not silently run the conv net (nor the concat one)."""
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(NOTEBOOKS / "conv.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"experiment": "concat", "length": 17}, cwd=str(tmp_path),
                                   progress_bar=False)
    assert "this notebook runs the 'conv' experiment, not 'concat'" in str(err.value)


def test_matrix_with_a_broken_parameters_cell_is_a_usage_error(tmp_path, capsys):
    import json as json_mod

    import yaml

    from gnaexp import cli

    nb = json_mod.loads((NOTEBOOKS / "conv.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    cell["source"] = ["length = (17\n"]
    (tmp_path / "broken.ipynb").write_text(json_mod.dumps(nb))
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"runs": [{"notebook": "broken"}]}))
    assert cli.main(["batch", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "broken.ipynb: its parameters cell cannot be read" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_explorer_snaps_a_typed_scale_factor_to_the_sliders_power_of_two(tmp_path, monkeypatch):
    from gnaexp.present.widgets import Explorer

    monkeypatch.chdir(tmp_path)
    ex = Explorer(experiment="conv", backends="torch,gna-emu", scale_factor=64.0, length=31)
    ex.scale_factor.value = 2048.0000000000027  # what typing 2048 in the readout stores
    assert ex.scale_factor.value == 2048.0 and ex.parameters()["scale_factor"] == 2048.0
    assert "scale_factor=2048.0," in ex.snapshot_html()
    assert ex.run_.setting.config.scale_factor == 2048.0


def test_explorer_precision_control_says_it_has_no_effect_on_the_forum_nets(tmp_path, monkeypatch):
    from gnaexp.present.widgets import Explorer

    monkeypatch.chdir(tmp_path)
    ex = Explorer(experiment="concat", backends="torch,gna-emu", precision="i8", length=31)
    assert ex.precision.disabled and ex.parameters()["precision"] == "i16"
    assert "no effect" in ex.precision_note.value and "i8 was asked" in ex.precision_note.value
    assert "int8 floor" not in ex.verdict.value
