"""The models notebook through the real batch: every corpus row of notebooks/models-matrix.yaml gives a report
with the verdict first, the support table and emulated labels, and dtln_2 without porting (which the plugin refuses)
shows its refusal instead of failing; with porting it runs."""

import json
import re
import shutil
from pathlib import Path

import pytest

from gnaexp import cli

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture(scope="module")
def batch(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "report"
    assert cli.main(["batch", str(NOTEBOOKS / "models-matrix.yaml"), "--out", str(out), "--jobs", "2"]) == 0
    return out


def test_a_model_the_emulator_runs_has_verdict_first_support_metrics_sweep_and_layers(batch, corpus):
    html = (batch / "models-dtln_1.html").read_text(encoding="utf-8")
    verdict, first_image = html.find("gnaexp-verdict"), html.find("<img")
    assert 0 <= verdict < first_image, "the verdict comes before the first figure"
    order = [html.find(f"gnaexp-{part}") for part in ("verdict", "support", "metrics")]
    assert order == sorted(order) and order[-1] < first_image < html.find("gnaexp-layers")
    assert "gna-emu (emulated)" in html and "Per layer (emulated)" in html
    assert "Traceback" not in html and str(corpus["dtln_1"].parent) not in html
    entry = json.loads((batch / "models-dtln_1.record" / "index-entry.json").read_text(encoding="utf-8"))
    assert entry["rows"] and any(line.startswith("**support**") for line in entry["verdict"])


def test_a_refused_model_shows_its_support_table_and_the_refusal(batch):
    html = (batch / "models-dtln_2-portingFalse.html").read_text(encoding="utf-8")
    assert "Traceback" not in html
    assert 0 <= html.find("gnaexp-verdict") < html.find("gnaexp-support")
    assert re.search(r"<td[^>]*>refused</td><td[^>]*>ReduceMean</td>", html)
    entry = json.loads((batch / "models-dtln_2-portingFalse.record" / "index-entry.json").read_text(encoding="utf-8"))
    assert entry["verdict"][0].startswith("**refused**") and "ReduceMean" in entry["verdict"][0]
    index = (batch / "index.html").read_text(encoding="utf-8")
    assert all(f"models-{name}" in index for name in ("dtln_1", "dtln_2-portingFalse", "dtln_2-portingTrue", "nsnet2",
                                                        "silero_vad-portingTrue"))


def test_dtln_2_with_porting_runs_as_the_converter_writes_it(batch):
    html = (batch / "models-dtln_2-portingTrue.html").read_text(encoding="utf-8")
    assert "Traceback" not in html and ">refused</td>" not in html
    assert "fuses the layer norm" in html and "gna-emu (emulated)" in html
    entry = json.loads((batch / "models-dtln_2-portingTrue.record" / "index-entry.json").read_text(encoding="utf-8"))
    assert entry["rows"] and not entry["verdict"][0].startswith("**refused**")


def test_a_streamed_corpus_row_carries_its_state_and_says_so(batch):
    html = (batch / "models-silero_vad-portingTrue-state_stateN-sfinput_64_state_1024.html").read_text(encoding="utf-8")
    assert "Traceback" not in html and "streamed over 48 steps, state state←stateN" in html
    assert html.find("streamed over") < html.find("gnaexp-support")  # with the verdict, before the evidence
    record = json.loads((batch / "models-silero_vad-portingTrue-state_stateN-sfinput_64_state_1024.record" /
                         "record.json").read_text(encoding="utf-8"))
    assert {r["info"]["streamed"]["steps"] for r in record["backends"]} == {48}


@pytest.mark.parametrize("params, named", [({"model": ""}, "parameter model is empty"),
                                           ({"model": "dtln_1", "scale_factor": "input_2=abc"}, "scale_factor")])
def test_a_bad_models_parameter_stops_the_batch_before_any_run(tmp_path, capsys, params, named):
    shutil.copy(NOTEBOOKS / "models.ipynb", tmp_path / "models.ipynb")
    rows = "\n".join(f"      {k}: {json.dumps(v)}" for k, v in params.items())
    (tmp_path / "m.yaml").write_text(f"runs:\n  - notebook: models\n    parameters:\n{rows}\n", encoding="utf-8")
    assert cli.main(["batch", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
