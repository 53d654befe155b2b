"""Reports as a reader gets them, opened from disk in Debian's headless Chromium with every request that is not
for a local file blocked: the batch index and its reports, and each route that turns a notebook into HTML.

Routes: ``gnaexp batch`` (its own export), and ``papermill`` + ``jupyter nbconvert --to html`` (the command line
tools, as the README gives them). The notebook saved by JupyterLab and exported with nbconvert is tested in
``test_browser_explorer.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from browser import ConsoleLog, browser, offline_page, screenshot

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory):
    from gnaexp import cli

    work = tmp_path_factory.mktemp("reports")
    matrix = work / "m.yaml"
    matrix.write_text(yaml.safe_dump({"runs": [
        {"notebook": str(NOTEBOOKS / "concat_conv"), "name": "concat_conv-legacy",
         "parameters": {"length": 31, "layout": "legacy-concat", "scale_factor": 2048}},
        {"notebook": str(NOTEBOOKS / "explorer"), "name": "explorer-small",
         "parameters": {"experiment": "conv", "length": 31, "channel": 1}},
    ]}))
    out = work / "out"
    assert cli.main(["batch", str(matrix), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def cli_route(tmp_path_factory):
    """papermill then nbconvert, as command lines: the explorer and an experiment notebook."""
    out = tmp_path_factory.mktemp("cli-route")
    pages = {}
    for name, params in (("explorer", {"experiment": "conv", "length": 31, "channel": 1}),
                         ("conv", {"length": 31, "scale_factor": 1})):
        nb = out / f"{name}.ipynb"
        subprocess.run([str(BIN / "papermill"), str(NOTEBOOKS / f"{name}.ipynb"), str(nb), "-k", "python3", "--cwd",
                        str(out), "-y", json.dumps(params), "--no-progress-bar"], check=True, capture_output=True)
        subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "html", str(nb)], check=True, capture_output=True)
        pages[name] = nb.with_suffix(".html")
    return pages


def test_cli_route_exports_the_explorer_snapshot(cli_route):
    """Without a browser: the page nbconvert writes holds the snapshot with its plot inline."""
    text = cli_route["explorer"].read_text(encoding="utf-8")
    snapshot = re.search(r"<div class=[\"']gnaexp-explorer-snapshot[\"']>.*?</div></div>", text, re.S)
    assert snapshot, "the explorer snapshot is missing from the nbconvert page"
    assert "experiment=conv" in snapshot.group(0) and "channel 1" in snapshot.group(0)
    assert re.search(r"src=[\"']data:image/png;base64,[A-Za-z0-9+/]{1000}", snapshot.group(0))


def _read_offline(chromium, path: Path, name: str) -> dict:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page, blocked, failed = offline_page(context)
    console = ConsoleLog(page)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("() => [...document.images].filter(i => i.offsetParent !== null)"
                           ".map(i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])")
    seen = {"images": images, "blocked": blocked, "failed": [u for u in failed if u not in blocked],
            "errors": console.errors, "text": page.inner_text("body"), "page": page, "context": context}
    screenshot(page, name)
    return seen


def test_index_and_reports_read_offline(batch_out):
    with browser() as chromium:
        index = _read_offline(chromium, batch_out / "index.html", "reports-1-index")
        assert not index["blocked"] and not index["failed"], "the index needs nothing from the network"
        assert "concat_conv-legacy" in index["text"] and "explorer-small" in index["text"]
        page = index["page"]
        links = page.locator("table.gnaexp-runs a[href$='.html']")
        assert links.count() == 2
        with page.expect_navigation():
            page.locator("table.gnaexp-runs a[href='concat_conv-legacy.html']").click()
        assert page.url.endswith("concat_conv-legacy.html")
        assert page.locator(".gnaexp-metrics").first.is_visible()

        report = _read_offline(chromium, batch_out / "concat_conv-legacy.html", "reports-2-concat_conv-legacy")
        assert not report["failed"], report["failed"]
        assert not report["blocked"], "a batch report asks nothing of the network"
        assert len(report["images"]) >= 4 and all(w > 0 and h > 0 for w, h, _ in report["images"])
        # figures are drawn at twice the size they are shown at, so they stay sharp
        assert all(w >= 1.9 * shown for w, _, shown in report["images"]), report["images"]
        page = report["page"]
        assert page.locator(".gnaexp-metrics").first.is_visible()
        assert page.locator(".gnaexp-verdict").first.is_visible()
        assert "legacy" in page.locator(".gnaexp-verdict").first.inner_text()

        explorer = _read_offline(chromium, batch_out / "explorer-small.html", "reports-3-explorer-batch")
        snap = explorer["page"].locator(".gnaexp-explorer-snapshot")
        assert snap.count() == 1 and snap.is_visible() and "channel 1" in snap.inner_text()
        assert explorer["images"] and all(w > 0 for w, _, _ in explorer["images"])


@pytest.fixture(scope="module")
def status_batch(tmp_path_factory):
    """Three forum runs whose findings differ: quantization-limited (sf 1), matches (sf 2048), defect (the legacy
    concat layout)."""
    from gnaexp import cli

    work = tmp_path_factory.mktemp("statuses")
    matrix = work / "m.yaml"
    runs = [("conv", "conv-sf1", {"scale_factor": 1}), ("conv", "conv-sf2048", {"scale_factor": 2048}),
            ("concat_conv", "concat_conv-legacy", {"scale_factor": 2048, "layout": "legacy-concat"})]
    matrix.write_text(yaml.safe_dump({"runs": [
        {"notebook": str(NOTEBOOKS / nb), "name": name, "parameters": {"length": 63, **params}}
        for nb, name, params in runs]}))
    out = work / "out"
    assert cli.main(["batch", str(matrix), "--out", str(out)]) == 0
    return out


def test_the_index_tells_good_from_bad_and_reports_open_with_the_finding(status_batch):
    with browser() as chromium:
        index = _read_offline(chromium, status_batch / "index.html", "statuses-1-index")
        page = index["page"]
        statuses = {row.locator("td").nth(1).locator("b").inner_text(): row.get_attribute("data-status")
                    for row in page.locator("tr.gnaexp-run").all()}
        assert statuses == {"conv-sf1": "quantization-limited", "conv-sf2048": "matches",
                            "concat_conv-legacy": "defect"}
        summary = page.locator(".gnaexp-summary").inner_text()
        assert all(f"{s} 1" in summary for s in ("quantization-limited", "matches", "defect")), summary
        # the forum's figures are measurements: no forum cell calls itself emulated
        forum_cells = page.locator("table.gnaexp-runs tr.gnaexp-run td:nth-child(5)").all_inner_texts()
        assert any("0.75" in c for c in forum_cells) and not any("emulated" in c for c in forum_cells)
        assert "next:" in page.locator("tr.gnaexp-run").first.inner_text().lower()
        for name in ("conv-sf1", "concat_conv-legacy"):
            report = _read_offline(chromium, status_batch / f"{name}.html", f"statuses-2-{name}")
            finding = report["page"].locator(".gnaexp-finding").first
            assert finding.is_visible() and statuses[name] in finding.inner_text()
            assert "Next step:" in finding.inner_text()
            first_image_y = report["page"].evaluate(
                "() => Math.min(...[...document.images].map(i => i.getBoundingClientRect().top + window.scrollY))")
            assert finding.bounding_box()["y"] < first_image_y, "the finding comes before the first figure"
        assert "scale_factor=" in report["page"].locator(".gnaexp-finding").first.inner_text() or name != "conv-sf1"


def test_cli_route_reads_offline(cli_route):
    """papermill + nbconvert pages: readable with the network blocked (the lab template's CDN scripts fail,
    nothing needed for reading does); the explorer shows its snapshot, not an empty widget area."""
    with browser() as chromium:
        explorer = _read_offline(chromium, cli_route["explorer"], "reports-4-explorer-nbconvert")
        snap = explorer["page"].locator(".gnaexp-explorer-snapshot")
        assert snap.count() == 1 and snap.is_visible()
        assert "experiment=conv" in snap.inner_text()
        assert explorer["images"] and all(w > 0 for w, _, _ in explorer["images"])
        assert all(u.startswith("http") for u in explorer["blocked"])  # only CDN scripts were asked for
        conv = _read_offline(chromium, cli_route["conv"], "reports-5-conv-nbconvert")
        assert len(conv["images"]) >= 4 and all(w > 0 for w, _, _ in conv["images"])
        assert conv["page"].locator(".gnaexp-metrics").first.is_visible()


def test_the_per_layer_report_reads_offline(tmp_path):
    """gnaexp layers --out: report.html opened from disk with the network blocked — the finding first, the plots
    sharp, the table's rows there."""
    from gnaexp import cli

    out = tmp_path / "layers"
    assert cli.main(["layers", "concat_conv", "--backends", "openvino:CPU,openvino:CPU:bf16,gna-emu", "--set",
                     "scale_factor=1", "--set", "length=63", "--out", str(out)]) == 0
    with browser() as chromium:
        report = _read_offline(chromium, out / "report.html", "layers-1-report")
        assert not report["blocked"] and not report["failed"] and not report["errors"]
        assert len(report["images"]) == 2 and all(w >= 1.9 * shown > 0 for w, _, shown in report["images"])
        page = report["page"]
        finding = page.locator(".gnaexp-finding").first
        assert finding.is_visible() and "gna-emu (emulated) diverges first at" in finding.inner_text()
        first_image_y = page.evaluate(
            "() => Math.min(...[...document.images].map(i => i.getBoundingClientRect().top + window.scrollY))")
        assert finding.bounding_box()["y"] < first_image_y, "the finding comes before the first figure"
        assert page.locator("table.gnaexp-layers tr.gnaexp-diverging").count() == 1
        assert page.locator("table.gnaexp-layers tr.gnaexp-gone").first.inner_text().strip().endswith("fused")
