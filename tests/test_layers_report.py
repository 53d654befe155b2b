"""The per-layer comparison's report (``gnaexp layers --out``), the layers notebook under a real batch (papermill and
nbconvert), its row in the default matrix and index, and its bundle."""

import json
import math
import os
import re
import zipfile
from pathlib import Path

import pytest
import yaml

from gnaexp.cli import main
from gnaexp.layers.results import LayerComparison, LayerDiff
from gnaexp.present import layers_report

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
ADD = "__module.1/aten::_convolution/Add"
CONV = "__module.1/aten::_convolution/Convolution"
CONCAT = "__module.0/aten::cat/Concat"
NETWORK = re.compile(r"<(script|link|img)[^>]+(src|href)=[\"']https?:", re.I)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layers-report") / "out"
    assert main(["layers", "concat_conv", "--backends", "openvino:CPU,openvino:CPU:bf16,gna-emu", "--set",
                 "scale_factor=1", "--set", "length=63", "--out", str(folder)]) == 0
    return folder


def test_the_report_leads_with_the_finding_then_the_plots_and_the_rows(out):
    text = (out / "report.html").read_text(encoding="utf-8")
    assert (out / "layers.json").exists()
    finding = text.find("gnaexp-finding")
    assert 0 < finding < text.find("<img"), "the finding comes before the first figure"
    # per backend, its first diverging layer and its worst layer, one sentence each
    assert ("<b>gna-emu (emulated)</b>: first diverging layer __module.1/aten::_convolution/Add (Add): local SQNR "
            in text) and "below the 30 dB threshold" in text
    assert "<b>openvino:CPU:bf16</b>: no layer diverges: every one of its 3 compared layers stays at or above the " \
           "30 dB threshold." in text
    assert "<b>openvino:CPU:bf16</b>: worst layer __module.1/aten::_convolution/Convolution (Convolution)" in text
    assert "quantization-limited" in text and "Next step:" in text
    # the per-layer plot (the first diverging layer named in its description) and the output overlay, inline
    images = re.findall(r"<img src='data:image/png;base64,([A-Za-z0-9+/=]+)'[^>]*alt='([^']*)'", text)
    assert len(images) == 2 and all(len(data) > 5000 for data, _ in images)
    assert images[0][1].startswith("SQNR per layer; first diverging: openvino:CPU:bf16: none; gna-emu (emulated): "
                                   + ADD)
    assert images[1][1] == f"output {ADD}: reference and backends"
    # every reference layer is a row per backend; the emulator's fused convolution is shown as such
    tables = text.split("<h3>")[1:]
    assert [t.split("<")[0] for t in tables] == ["openvino:CPU:bf16 against openvino:CPU",
                                                 "gna-emu (emulated) against openvino:CPU"]
    for t in tables:
        assert all(name in t for name in (CONCAT, CONV, ADD))
    assert re.search(r"<tr class='gnaexp-gone'><td[^>]*>1</td><td[^>]*>" + re.escape(CONV) + r"</td>.*?fused</td>",
                     tables[1])
    assert re.search(r"<tr class='gnaexp-diverging'><td[^>]*>2</td><td[^>]*>" + re.escape(ADD), tables[1])
    assert not NETWORK.search(text) and str(out.parent) not in text and str(Path.home()) not in text


def _comparison(**extra):
    rows = [LayerDiff("a", "MatMul", "nncf:int8", 30.0, 31.0, 0.999, 0.01),
            LayerDiff("b", "Add", "nncf:int8", 12.0, 14.0, 0.9, 0.2, is_output=True),
            LayerDiff("q", "FakeQuantize", "nncf:int8", status="inserted"),
            LayerDiff("a", "MatMul", "openvino:NPU (loaded)", 60.0, None, 1.0, 0.001),
            LayerDiff("b", "Add", "openvino:NPU (loaded)", status="missing", is_output=True)]
    return LayerComparison("openvino:CPU", ["nncf:int8", "openvino:NPU (loaded)"],
                           {"nncf:int8": "b", "openvino:NPU (loaded)": None},
                           {"nncf:int8": 20.0, "openvino:NPU (loaded)": 80.0}, {}, rows, "net", "f", **extra)


def test_the_finding_names_each_backends_first_and_worst_layer_and_a_dump_judged_on_the_accumulated():
    result = _comparison()
    assert layers_report.finding_lines(result) == [
        "**nncf:int8**: first diverging layer b (Add): local SQNR 14.0 dB, below the 20 dB threshold (accumulated "
        "12.0 dB).",
        "**nncf:int8**: worst layer b (Add): local SQNR 14.0 dB, accumulated 12.0 dB.",
        "**openvino:NPU (loaded)**: no layer diverges: every one of its 1 compared layers stays at or above the 80 dB "
        "threshold.",
        "**openvino:NPU (loaded)**: worst layer a (MatMul): accumulated SQNR 60.0 dB (no local error measured)."]
    found = layers_report.finding(result)
    assert found.status == "quantization-limited"
    assert found.verdict == ("nncf:int8 diverges first at b (local SQNR 14.0 dB, threshold 20 dB); openvino:NPU "
                             "(loaded) stays above its threshold at every layer")
    assert "ignored_scope" in found.next_step
    page = layers_report.page(result)  # no output values: the report says so and still draws the plot
    assert "No output values with this table" in page and page.count("data:image/png;base64,") == 1
    assert "<tr class='gnaexp-gone'><td style='text-align:left'>+</td>" in page  # the inserted quantizer
    entry = layers_report.index_entry(result)
    assert [(r.backend, r.output, r.kind) for r in entry.rows] == [("nncf:int8", "b", "measured")]


def test_an_output_that_is_not_finite_is_a_defect():
    result = _comparison()
    result.rows[1].sqnr_db = math.nan
    found = layers_report.finding(result)
    assert found.status == "defect" and found.verdict.startswith("nncf:int8: output b holds values that are not finite")


def test_a_bisection_in_the_comparison_is_rendered_step_by_step():
    class WithBisection(LayerComparison):
        def to_json(self):
            return {**super().to_json(), "bisection": {"nncf:int8": {"target_db": 30.0, "steps": [
                {"kept": ["b"], "output_sqnr_db": 24.5}, {"kept": ["a", "b"], "output_sqnr_db": 33.25}]}}}

    base = _comparison()
    result = WithBisection(**{f: getattr(base, f) for f in base.__dataclass_fields__})
    page = layers_report.page(result)
    assert "<h2>Precision bisection</h2>" in page and "output_sqnr_db" in page and "33.25" in page
    assert "a, b" in page and page.index("Precision bisection") < page.index("<h2>Per layer</h2>")
    assert "the precision bisection below lists" in layers_report.finding(result).next_step


def test_the_default_batch_has_a_cheap_per_layer_row():
    from gnaexp.batch.matrix import default_matrix, load_matrix

    rows = [r for r in load_matrix(default_matrix()) if r.notebook.stem == "layers"]
    assert len(rows) == 1
    backends = rows[0].parameters["backends"].split(",")
    assert backends[0] == "openvino:CPU" and "gna-emu" in backends and not any(b.startswith("nncf") for b in backends)


def test_the_layers_notebook_says_when_nothing_can_be_compared(tmp_path, monkeypatch):
    from gnaexp.present import layers_view

    monkeypatch.chdir(tmp_path)
    run = layers_view.run({"experiment": "concat_conv", "backends": "openvino:CPU,openvino:NPU", "length": 31,
                           "record_dir": "r"})
    assert run.result is None and run.entry.finding.status == "failed to run"
    assert run.entry.finding.verdict == "nothing compared: no backend to compare with openvino:CPU is available here"
    html = layers_view.finding(run)._repr_html_()
    assert "openvino:NPU is not available here and was left out" in html and layers_view.show(run) == []


def test_the_layers_notebook_of_a_forum_net_whose_reference_is_cached_imports_no_torch(tmp_path):
    """It runs no torch backend: once a run of the same net and input cached the reference, a fresh process (a batch
    kernel) takes the net's IR from there, the very IR torch converts, without importing torch (a second of CPU)."""
    import hashlib
    import subprocess
    import sys

    from gnaexp import experiment

    config = experiment.ExperimentConfig(experiment="concat_conv", length=47, seed=6)
    experiment.reference_run(config)  # what an earlier run of the batch left in the cache (torch runs here)
    script = ("import hashlib, sys\nfrom gnaexp.present import layers_view\n"
              "r = layers_view.run({'experiment': 'concat_conv', 'length': 47, 'seed': 6, 'record_dir': 'r', "
              "'backends': 'openvino:CPU,gna-emu'})\n"
              "print('torch' in sys.modules, r.result.rows[-1].status, hashlib.sha256(r.model_xml.read_bytes())"
              ".hexdigest())")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(NOTEBOOKS.parent)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    torch_loaded, status, digest = proc.stdout.split()
    converted = experiment.build_model(config).require_ir()  # the IR torch converts (cached too)
    assert torch_loaded == "False" and status == "compared"
    assert digest == hashlib.sha256(converted.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """The layers notebook in one real batch (papermill, nbconvert): an absent device among its backends."""
    from gnaexp.batch import runner
    from gnaexp.batch.matrix import load_matrix

    root = tmp_path_factory.mktemp("layers-batch")
    (root / "m.yaml").write_text(yaml.safe_dump({"runs": [{
        "notebook": str(NOTEBOOKS / "layers"), "name": "layers-small",
        "parameters": {"experiment": "concat_conv", "backends": "openvino:CPU,openvino:CPU:bf16,openvino:NPU,gna-emu",
                       "scale_factor": 1, "length": 63}}]}))
    outcomes = runner.run_batch(load_matrix(root / "m.yaml"), root / "reports", jobs=1, echo=lambda s: None)
    assert outcomes[0].status == "ok", outcomes[0].error
    return root, root / "reports"


def test_the_notebook_report_and_its_index_row_carry_the_finding(batch):
    root, reports = batch
    text = (reports / "layers-small.html").read_text(encoding="utf-8")
    assert "openvino:NPU is not available here and was left out" in text and "Traceback" not in text
    assert 0 < text.find("gnaexp-finding") < text.find("<img")
    assert text.count("data:image/png;base64,") >= 2 and "gnaexp-layers" in text and "(emulated)" in text
    assert not NETWORK.search(text) and str(root) not in text
    record = reports / "layers-small.record"
    assert {"layers.json", "report.html", "index-entry.json"} <= {p.name for p in record.iterdir()}
    index = (reports / "index.html").read_text(encoding="utf-8")
    row = re.search(r"<tr class='gnaexp-run'[^>]*data-status='quantization-limited'>.*?</tr>", index, re.S)
    assert row, "the layers run is in the index with its status"
    assert f"gna-emu (emulated) diverges first at {ADD}" in row.group(0)
    assert "href='layers-small.record/layers.json'>per-layer table</a>" in row.group(0)


def test_the_bundle_of_the_notebooks_record_holds_the_table_and_its_report(batch, capsys):
    root, reports = batch
    zip_path = root / "support.zip"
    assert main(["bundle", str(reports / "layers-small.record"), "--out", str(zip_path)]) == 0
    assert "no diagnosis ladder for a per-layer comparison" in capsys.readouterr().err
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["README.txt", "layers.json", "report.html"]
        table = json.loads(z.read("layers.json"))
        readme = z.read("README.txt").decode()
        texts = [z.read(n).decode("utf-8") for n in z.namelist()]
    assert table["first_diverging"]["gna-emu"] == ADD
    assert "Make it again: gnaexp layers concat_conv --backends openvino:CPU,openvino:CPU:bf16,gna-emu" in readme
    for t in texts:  # nothing of this machine's folders leaks into the bundle
        assert str(root) not in t and str(Path.home()) not in t and (os.environ.get("USER") or "\0") not in t
