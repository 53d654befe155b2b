"""The per-layer table for Model Explorer (``gnaexp.present.explorer``): the checked reader of layers.json, the IR
as a graph, the node data, the server (started, asked for the graph through Model Explorer's own extension
mechanism, stopped) and what happens without the package. The page itself, in a browser with the network
closed: tests/test_browser_model_explorer.py."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from gnaexp.core.errors import BadInput
from gnaexp.present.explorer.layers_file import check_layers, read_layers

ROOT = Path(__file__).resolve().parent.parent
BACKEND = "openvino:CPU:bf16"


def _row(layer, sqnr=40.0, local=40.0, status="compared", backend=BACKEND):
    return {"layer": layer, "op": "Relu", "backend": backend, "sqnr_db": sqnr, "local_sqnr_db": local,
            "cosine": 1.0, "max_abs": 0.01, "status": status, "is_output": False}


def _table(rows, threshold=30.0):
    return {"reference": "openvino:CPU", "backends": [BACKEND], "first_diverging": {BACKEND: None},
            "threshold_db": {BACKEND: threshold}, "environment": {}, "rows": rows}


def _relus(tmp_path, names=("a", "b")):
    """An IR of Relus in a chain, with the given friendly names, and a constant added to the first."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 4], np.float32, name="input")
    y = ops.add(x, ops.constant(np.ones((1, 4), np.float32), name="bias"), name="add")
    for name in names:
        y = ops.relu(y, name=name)
    path = tmp_path / "relus.xml"
    ov.save_model(ov.Model([y], [x], "relus"), path, compress_to_fp16=False)
    return path


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.pop("rows"), "layers.json: 'rows' is missing; the table is damaged"),
    (lambda d: d.update(backends=[]), "'backends' must list each compared backend once"),
    (lambda d: d["threshold_db"].pop(BACKEND), "'threshold_db' gives no finite threshold for 'openvino:CPU:bf16'"),
    (lambda d: d["rows"][0].update(backend="openvino:GPU"), "rows[0] (a) is of backend 'openvino:GPU', which "
                                                             "'backends' does not list (openvino:CPU:bf16)"),
    (lambda d: d["rows"][0].update(sqnr_db="high"), "rows[0] (a): 'sqnr_db' is 'high', not a number or null"),
    (lambda d: d["rows"][0].pop("local_sqnr_db"), "rows[0] (a) has no 'local_sqnr_db'"),
    (lambda d: d["rows"][0].update(status="skipped"), "'status' is 'skipped'; one of compared, fused, missing"),
    (lambda d: d["rows"][0].update(layer=""), "rows[0] has no 'layer' name"),
])
def test_a_damaged_table_is_refused_naming_the_file_the_problem_and_the_fix(tmp_path, mutate, words):
    data = _table([_row("a")])
    mutate(data)
    path = tmp_path / "layers.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BadInput) as err:
        read_layers(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert str(err.value).endswith("write it again with gnaexp layers --json (or --out DIR)")


def test_a_table_that_is_not_json_or_not_an_object_is_refused(tmp_path):
    (tmp_path / "layers.json").write_text("{rows: [", encoding="utf-8")
    with pytest.raises(BadInput, match=r"layers.json is not JSON \(.*\): write it again with gnaexp layers"):
        read_layers(tmp_path / "layers.json")
    with pytest.raises(BadInput, match="holds a JSON list, not a per-layer table"):
        check_layers([], "layers.json")


def test_non_finite_numbers_written_as_strings_read_back_as_floats():
    data = check_layers(_table([_row("a", sqnr="inf", local="nan")]))
    assert data["rows"][0]["sqnr_db"] == math.inf and math.isnan(data["rows"][0]["local_sqnr_db"])


def test_the_graph_has_one_node_per_op_named_by_its_friendly_name(tmp_path):
    from gnaexp.models.model_files import read_model
    from gnaexp.present.explorer.graph import build_graph

    graph = build_graph(read_model(_relus(tmp_path, names=("block/relu", "block/relu"))), "relus")
    nodes = {n.id: n for n in graph.nodes}
    # the constant is no node; a repeated friendly name gets a number; '/' makes the namespace
    assert list(nodes) == ["input", "add", "block/relu", "block/relu#2", nodes[list(nodes)[-1]].id]
    assert nodes[list(nodes)[-1]].label == "Result"
    assert nodes["block/relu#2"].namespace == "block" and nodes["block/relu"].label == "Relu"
    assert [(e.sourceNodeId, e.targetNodeInputId) for e in nodes["block/relu#2"].incomingEdges] == [("block/relu", "0")]
    add = nodes["add"]
    assert [(e.sourceNodeId, e.targetNodeInputId) for e in add.incomingEdges] == [("input", "0")]
    constant = {a.key: a.value for a in add.inputsMetadata[1].attrs}
    assert constant == {"tensor_shape": "f32[1,4]", "constant": "bias"}
    assert {a.key: a.value for a in nodes["input"].attrs}["shape"] == "[1, 4]"
    assert {a.key: a.value for a in add.outputsMetadata[0].attrs}["tensor_shape"] == "f32[1,4]"


def test_node_data_colour_each_layer_by_the_threshold_and_name_what_has_no_number(tmp_path):
    from gnaexp.models.model_files import read_model
    from gnaexp.present.explorer.node_data import FIRST, FIRST_TEXT, GREEN, GREY, RED, write_node_data

    rows = [_row("input", sqnr=math.inf, local=math.inf), _row("add", sqnr=29.996, local=30),
            _row("a", sqnr=math.nan, local=12.5), _row("b", sqnr=None, local=None, status="fused"),
            _row("bias", sqnr=1.0, local=1.0), _row("input", sqnr=math.inf, local=45.0)]  # a second output
    table = _table(rows)
    table["first_diverging"][BACKEND] = "a"
    written = write_node_data(check_layers(table), read_model(_relus(tmp_path)), tmp_path / "nd")
    assert [p.name for p in written.paths] == ["openvino_CPU_bf16.sqnr_db.json",
                                               "openvino_CPU_bf16.local_sqnr_db.json"]
    assert written.unmatched == ["bias"]  # a constant is no node: said, not dropped unseen
    accumulated, local = (json.loads(p.read_text(encoding="utf-8")) for p in written.paths)
    assert accumulated["name"] == "openvino:CPU:bf16 accumulated SQNR dB (red < 30)"
    assert accumulated["results"] == {"input": {"value": "identical", "bgColor": GREEN},
                                      "add": {"value": 30.0, "bgColor": RED},  # 29.996: shown 30.0, still below
                                      "a": {"value": "NaN", "bgColor": RED},
                                      "b": {"value": "fused", "bgColor": GREY}}
    assert local["results"]["add"] == {"value": 30.0, "bgColor": GREEN}
    assert local["results"]["input"] == {"value": 45.0, "bgColor": GREEN}  # the worse of its two outputs
    assert local["results"]["a"] == {"value": 12.5, "bgColor": FIRST, "textColor": FIRST_TEXT}
    assert local["name"] == "openvino:CPU:bf16 local SQNR dB (red < 30, dark red: first diverging)"
    assert [t["bgColor"] for t in local["thresholds"]] == [RED, GREEN] and local["thresholds"][0]["value"] < 30.0
    assert local["hideAggregatedStats"] == ["sum"] and local["hideInChildrenStatsTable"] is True


def test_a_served_model_reaches_the_adapter_and_the_server_stops(tmp_path):
    """A model that is not an IR (an .onnx) is saved as one beside the node data; Model Explorer's server loads
    the IR adapter as an extension and answers with the graph; a second view replaces the first's files."""
    pytest.importorskip("model_explorer", reason="needs ai-edge-model-explorer (pip install 'gnaexp[explorer]')")
    from test_bad_input_readers import _onnx_relu

    from gnaexp.models.model_files import read_model
    from gnaexp.present.explorer.graph import node_ids
    from gnaexp.present.explorer.viewer import start

    model = _onnx_relu(tmp_path / "relu.onnx")
    names = list(node_ids(read_model(model)).values())
    out = tmp_path / "out"
    out.mkdir()
    (out / "layers.json").write_text(json.dumps(_table([_row(n) for n in names])), encoding="utf-8")
    with start(out / "layers.json", model) as viewer:
        query = json.loads(urllib.parse.unquote(viewer.url.split("?data=", 1)[1]))
        xml = Path(query["models"][0]["url"])
        assert xml == out / "explorer" / "model.xml" and xml.with_suffix(".bin").is_file()
        assert query["nodeData"] == [str(p) for p in viewer.node_data.paths]
        cmd = {"extensionId": query["models"][0]["adapterId"], "cmdId": "convert", "modelPath": str(xml),
               "settings": {}, "deleteAfterConversion": False}
        origin = viewer.url.split("/?")[0]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{origin}/api/v1/send_command?json={urllib.parse.quote(json.dumps(cmd))}") as resp:
            graphs = json.loads(resp.read())
        assert [n["id"] for n in graphs["graphs"][0]["nodes"]] == names, graphs
        first = viewer.process
    assert first.poll() is not None
    with start(out / "layers.json", model) as viewer:
        assert viewer.process.poll() is None
    assert sorted(p.name for p in (out / "explorer").iterdir() if not p.name.startswith(".")) == [
        "model.bin", "model.xml", "openvino_CPU_bf16.local_sqnr_db.json", "openvino_CPU_bf16.sqnr_db.json",
        "server.log"]
    assert "explorer" in json.loads((out / ".gnaexp-manifest.json").read_text(encoding="utf-8"))["entries"]


def test_a_folder_of_the_users_or_a_busy_port_is_refused_before_anything_starts(tmp_path):
    pytest.importorskip("model_explorer", reason="needs ai-edge-model-explorer (pip install 'gnaexp[explorer]')")
    from gnaexp.present.explorer.viewer import start

    model = _relus(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "layers.json").write_text(json.dumps(_table([_row("conv"), _row("relu")])), encoding="utf-8")
    with pytest.raises(BadInput, match="none of the 2 layers of the table is an op of relus.xml "
                                       r"\(e.g. 'conv'\): give the model the table was made from"):
        start(out / "layers.json", model)
    assert not (out / "explorer").exists() and not (out / ".gnaexp-manifest.json").exists()
    (out / "layers.json").write_text(json.dumps(_table([_row("a")])), encoding="utf-8")
    (out / "explorer").mkdir()
    (out / "explorer" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(BadInput, match="holds files gnaexp did not write there under the names this command "
                                       r"writes \(explorer\)"):
        start(out / "layers.json", model)
    assert (out / "explorer" / "notes.txt").read_text(encoding="utf-8") == "mine"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        with pytest.raises(BadInput, match=f"port {port} on 127.0.0.1 is in use: give another port, or none"):
            start(out / "layers.json", model, port=port)


def test_without_model_explorer_the_view_says_what_to_install(tmp_path):
    """The package's absence simulated in a fresh interpreter (``sys.modules[name] = None`` fails its import)."""
    (tmp_path / "layers.json").write_text(json.dumps(_table([_row("a")])), encoding="utf-8")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["model_explorer"] = None
        from gnaexp.core.errors import BadInput
        from gnaexp.present.explorer.viewer import view
        try:
            view({str(tmp_path / 'layers.json')!r}, {str(_relus(tmp_path))!r})
        except BadInput as exc:
            print(exc)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.stdout.strip() == ("the Model Explorer view needs ai-edge-model-explorer, which is not installed "
                                  "here: pip install 'gnaexp[explorer]' (requirements.txt installs it too)"), res
    assert not (tmp_path / "explorer").exists()


def test_the_page_is_served_without_the_remote_fonts():
    pytest.importorskip("model_explorer", reason="needs ai-edge-model-explorer (pip install 'gnaexp[explorer]')")
    from model_explorer import server

    from gnaexp.present.explorer.serve import offline_index

    html = (Path(server.OSS_WEB_APP_DIR) / "index.html").read_text(encoding="utf-8")
    assert "fonts.gstatic.com" in html  # what is removed is there to remove
    page = offline_index(html)
    assert "fonts.gstatic.com" not in page and "styles-" in page  # the package's own font faces are in its styles
    assert "Google Sans Text" in (Path(server.OSS_WEB_APP_DIR) / next(
        p.name for p in Path(server.OSS_WEB_APP_DIR).iterdir() if p.name.startswith("styles-"))).read_text()


def test_the_package_metadata_names_the_explorer_extra():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith(("ai-edge-model-explorer", "model-explorer-onnx")) for d in meta["dependencies"])
    assert any(d.startswith("ai-edge-model-explorer") for d in meta["optional-dependencies"]["explorer"])


def test_gnaexp_layers_view_serves_the_table_until_ctrl_c(tmp_path):
    """``gnaexp layers … --out DIR --view``: the table is written, the viewer's URL printed and served on
    127.0.0.1 with the node data beside layers.json, and Ctrl+C ends the command cleanly; --view without --out is
    refused before any work."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from gnaexp.cli import main

    assert main(["layers", "conv", "--backends", "openvino:CPU,openvino:CPU:bf16", "--view"]) == 2
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gnaexp", "layers", "conv", "--backends",
                             "openvino:CPU,openvino:CPU:bf16", "--out", str(out), "--view"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        url = ""
        for line in proc.stdout:
            if line.startswith("Model Explorer: "):
                url = line.split()[2]
                break
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200
        assert (out / "layers.json").is_file()
        assert sorted(p.name for p in (out / "explorer").glob("*.json"))  # the node data beside the table
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_layers_notebook_shows_the_table_in_model_explorer(tmp_path, monkeypatch):
    """The layers notebook with view=True: its comparison served on 127.0.0.1 (the page answers), the node data in
    record_dir beside layers.json, shown inline with its link."""
    import re
    import urllib.request

    from gnaexp.present import layers_view
    from gnaexp.present.explorer import viewer

    monkeypatch.chdir(tmp_path)
    r = layers_view.run({"experiment": "conv", "backends": "openvino:CPU,openvino:CPU:bf16", "record_dir": "rec"})
    html = str(layers_view.explorer(r))
    url = re.search(r"href='([^']+)'", html).group(1).replace("&amp;", "&")
    try:
        assert url.startswith("http://127.0.0.1:") and "<iframe" in html
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200
        assert list((tmp_path / "rec" / "explorer").glob("*.json"))
    finally:
        viewer.stop(url)
