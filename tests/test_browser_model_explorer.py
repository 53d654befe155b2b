"""The per-layer table on the graph in Model Explorer, in Debian's headless Chromium with the network closed.

A forum net's IR and a per-layer table of real numbers (OpenVINO CPU bf16 against f32, every op's output made
a model output; the local error from each op run alone on the f32 run's inputs), served by
``gnaexp.present.explorer.viewer``: the page loads without one request leaving 127.0.0.1, the graph has the IR's
ops, the node data table carries each layer's numbers coloured by the threshold, and a node found by its name
shows its id (the friendly name), attributes and both SQNRs. The screenshot goes to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from browser import ConsoleLog, browser, offline_page, require_browser, screenshot

pytest.importorskip("model_explorer", reason="the Model Explorer view needs ai-edge-model-explorer "
                                             "(pip install 'gnaexp[explorer]')")

BACKEND = "openvino:CPU:bf16"
RED, GREEN, GREY, FIRST = "rgb(244, 166, 166)", "rgb(168, 220, 171)", "rgb(221, 221, 221)", "rgb(198, 40, 40)"
NODE = "__module.1/aten::_convolution/Convolution"


def _outputs(xml, precision, x):
    """Every op's output (constants and results aside) of the IR run on CPU at ``precision``, by friendly name."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(xml)
    model.add_outputs([op.output(0) for op in model.get_ordered_ops() if op.get_type_name() not in
                       ("Constant", "Result")])
    names = [o.get_node().input_value(0).get_node().get_friendly_name() for o in model.outputs]
    res = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})([x])
    return {n: res[k] for k, n in enumerate(names)}


def _alone(xml, name, precision, ref):
    """Op ``name`` of the IR run alone at ``precision``, fed the f32 run's tensors for its inputs."""
    import openvino as ov
    import openvino.opset13 as ops

    core = ov.Core()
    model = core.read_model(xml)
    op = next(o for o in model.get_ordered_ops() if o.get_friendly_name() == name)
    params, feed = [], []
    for port in op.inputs():
        source = port.get_source_output()
        if source.get_node().get_type_name() != "Constant":
            params.append(ops.parameter(source.get_partial_shape(), source.get_element_type()))
            feed.append(ref[source.get_node().get_friendly_name()])
            port.replace_source_output(params[-1].output(0))
    alone = ov.Model([op.output(0)], params)
    return core.compile_model(alone, "CPU", {"INFERENCE_PRECISION_HINT": precision})(feed)[0]


def _table(xml, order, result):
    """layers.json of bf16 against f32 for the IR; the threshold halfway between its best and worst layer, the
    first diverging layer the first in ``order`` whose local SQNR is below it; the Result op (named ``result``:
    OpenVINO numbers it) as fused."""
    from gnaexp.core.metrics import cosine, max_abs_error, sqnr_db

    x = np.random.default_rng(0).standard_normal((1, 2, 255)).astype(np.float32)
    ref, test = _outputs(xml, "f32", x), _outputs(xml, "bf16", x)
    rows = []
    for name in ref:
        op = "Parameter" if name == "input" else name.rsplit("/", 1)[-1]
        local = test[name] if op == "Parameter" else _alone(xml, name, "bf16", ref)
        rows.append({"layer": name, "op": op, "backend": BACKEND, "sqnr_db": sqnr_db(ref[name], test[name]),
                     "local_sqnr_db": sqnr_db(ref[name], local), "cosine": cosine(ref[name], test[name]),
                     "max_abs": max_abs_error(ref[name], test[name])[0], "status": "compared",
                     "is_output": name.endswith("/Add")})
    finite = sorted(r["sqnr_db"] for r in rows if np.isfinite(r["sqnr_db"]))
    assert len(finite) >= 2 and finite[0] < finite[-1], rows  # bf16 differs, and not equally on every layer
    threshold = (finite[0] + finite[-1]) / 2
    rows.append({"layer": result, "op": "Result", "backend": BACKEND, "sqnr_db": None, "local_sqnr_db": None,
                 "cosine": None, "max_abs": None, "status": "fused", "is_output": False})
    local = {r["layer"]: r["local_sqnr_db"] for r in rows}
    first = next(name for name in order if local[name] is not None and local[name] < threshold)
    return {"reference": "openvino:CPU", "backends": [BACKEND], "first_diverging": {BACKEND: first},
            "threshold_db": {BACKEND: threshold}, "environment": {}, "rows": rows}


def _shown(value):
    """A number as the page writes it (rounded to 0.01; JavaScript drops a trailing .0)."""
    r = round(value, 2)
    return str(int(r)) if r == int(r) else repr(r)


def _expected(row, key, table):
    value, threshold = row[key], table["threshold_db"][BACKEND]
    if key == "local_sqnr_db" and row["layer"] == table["first_diverging"][BACKEND]:
        return _shown(value), FIRST
    if row["status"] != "compared":
        return row["status"], GREY
    if np.isinf(value):
        return "identical", GREEN
    return _shown(value), RED if value < threshold else GREEN


def test_the_per_layer_table_on_the_graph_offline(tmp_path):
    require_browser()
    from gnaexp.models.forum_nets import NetSpec, build_net
    from gnaexp.models.ir import convert_torch, save
    from gnaexp.models.model_files import read_model
    from gnaexp.present.explorer.graph import node_ids
    from gnaexp.present.explorer.viewer import start

    xml = save(convert_torch(*build_net("concat_conv", NetSpec())), tmp_path / "concat_conv.xml")
    ops = {op.get_type_name(): name for op, name in node_ids(read_model(xml)).items()}
    assert ops["Convolution"] == NODE
    table = _table(xml, list(ops.values()), ops["Result"])
    rows = {r["layer"]: r for r in table["rows"]}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "layers.json").write_text(json.dumps(table), encoding="utf-8")

    with start(tmp_path / "out" / "layers.json", xml) as viewer, browser() as chromium:
        assert viewer.url.startswith("http://127.0.0.1:") and not viewer.node_data.unmatched
        origin = viewer.url.split("/?")[0]
        context = chromium.new_context(viewport={"width": 1400, "height": 900})
        page, blocked, _ = offline_page(context, origin + "/")
        console = ConsoleLog(page)
        page.goto(viewer.url)
        page.wait_for_function("(n) => document.querySelectorAll('td.node-label').length === n", arg=len(ops),
                               timeout=90_000)

        # the graph: every op of the IR but the constants, by type
        info = page.evaluate("() => document.body.innerText")
        assert re.search(r"op node count\s+(\d+)", info).group(1) == str(len(ops)), info[:2000]
        assert sorted(page.locator("td.node-label").all_inner_texts()) == sorted(t for t in ops), \
            page.locator("td.node-label").all_inner_texts()
        # the node data table: each layer's accumulated and local SQNR, coloured by the threshold
        cells = page.evaluate("""() => [...document.querySelectorAll('td.node-label')].map(td => {
            const v = [...td.parentElement.querySelectorAll('td.value-col')];
            return [td.innerText.trim(), ...v.map(c => [c.innerText.trim(), c.style.backgroundColor])]; })""")
        seen = {}
        for label, accumulated, local in cells:
            row = rows[ops[label]]
            seen[label] = (tuple(accumulated), tuple(local))
            assert tuple(accumulated) == _expected(row, "sqnr_db", table), (label, accumulated, row)
            assert tuple(local) == _expected(row, "local_sqnr_db", table), (label, local, row)
        assert {c for pair in seen.values() for _, c in pair} >= {RED, GREEN, GREY, FIRST}, seen
        screenshot(page, "model-explorer-layers-1-graph")

        # a node found by name: its id is the layer's friendly name, and it carries the layer's two numbers
        page.fill("input[placeholder*='Search']", "Convolution")
        page.keyboard.press("Enter")
        page.locator("mat-tree-node .node-label", has_text="Convolution").click(modifiers=["Alt"])
        page.wait_for_selector("text=NODE INFO", timeout=30_000)
        panel = page.evaluate("() => document.body.innerText")
        panel = panel[panel.index("NODE INFO"):]
        assert NODE in panel and "strides" in panel and "f32[1,4,127]" in panel, panel
        for key in ("sqnr_db", "local_sqnr_db"):
            assert _shown(rows[NODE][key]) in panel, (key, panel)
        shot = screenshot(page, "model-explorer-layers-2-node")
        assert shot.stat().st_size > 20_000

        assert not blocked, f"requests left the machine: {blocked}"
        assert not console.errors, console.errors
