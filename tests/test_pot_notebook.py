"""The POT side-by-side: library rows, and the notebook under papermill exported to offline HTML."""

import os
import re
from pathlib import Path

import papermill

from gnaexp.batch.runner import export_html
from gnaexp.present import pot_view as pot
from gnaexp.present.index_entry import IndexEntry

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "pot.ipynb"


def test_study_rows_show_the_fq_override(tmp_path):
    study = pot.run({"experiments": "conv", "scale_factors": "1,2048", "layouts": "correct",
                           "calibration_size": 4, "weight_bits": 8, "record_dir": str(tmp_path / "rec")})
    emu = {(r["ir"], r["scale_factor"]): r for r in study.rows if r["kind"] == "emulated"}
    assert emu[("nncf", 1.0)]["cosine"] == emu[("nncf", 2048.0)]["cosine"]
    assert emu[("nncf", 1.0)]["sf_overridden"] and not emu[("default", 1.0)]["sf_overridden"]
    assert emu[("nncf", 1.0)]["l1"] < 0.1 * emu[("default", 1.0)]["l1"]
    assert emu[("nncf", 2048.0)]["forum_cosine"] == 0.9999
    summary = IndexEntry.load(tmp_path / "rec")
    assert summary is not None and summary.verdict and all("(emulated)" in r.backend for r in summary.rows)
    assert (tmp_path / "rec" / "conv-nncf-sf1-correct" / "ir" / "model.xml").exists()


def test_pot_notebook_runs_and_exports_offline_html(tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        papermill.execute_notebook(str(NOTEBOOK), "pot.ipynb", kernel_name="python3", progress_bar=False,
                                   parameters={"experiments": "concat_conv", "calibration_size": 4,
                                               "weight_bits": 8}, cwd=str(tmp_path))
        export_html(Path("pot.ipynb"), Path("pot.html"), title="pot")
    finally:
        os.chdir(cwd)
    text = (tmp_path / "pot.html").read_text(encoding="utf-8")
    assert "quantization settings cannot repair a layout defect" in text
    assert "emulated" in text and "(FQ)" in text
    # the forum's POT figure for concat+conv (cosine 0.60) sits in the forum column of the quantized-IR rows
    assert re.search(r"<td[^>]*>concat_conv</td><td[^>]*>nncf</td>.*?<td[^>]*>0\.6</td></tr>", text)
    assert not re.search(r"<script[^>]+src=['\"]?https?:", text)
    assert not re.search(r"<link[^>]+href=['\"]?https?:", text)
    assert str(tmp_path) not in text and "/root/" not in text and "/home/" not in text
