"""A per-layer table (``layers.json``) as Model Explorer node data: for each compared backend, one file of the
accumulated SQNR per node and one of the local SQNR, keyed by node id (the layer's friendly name).

A node is coloured by the backend's threshold: red below it, green at or above it (Model Explorer's threshold
colouring, and the same colour set on each value: a value is shown to 0.01 dB, and a layer just under the
threshold that rounds to it stays red, as the table counts it). A layer the table has no number for shows what
it is instead: "fused", "missing" or "inserted" (grey), "identical" (green: no difference at all, an infinite
SQNR) or "NaN" (red). The backend's first diverging layer is dark red with white text in the local SQNR. Where a
layer has several rows for one backend (one per output), its node shows the worst.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gnaexp.core.files import staged_files
from gnaexp.present.explorer import require

RED, GREEN, GREY = "#f4a6a6", "#a8dcab", "#dddddd"
FIRST, FIRST_TEXT = "#c62828", "#ffffff"  # the first diverging layer
METRICS = (("sqnr_db", "accumulated SQNR"), ("local_sqnr_db", "local SQNR"))
DECIMALS = 2


@dataclass
class NodeDataFiles:
    """What ``write_node_data`` wrote: the files (in the order to offer them) and the layers of the table that
    are not nodes of the graph (e.g. a constant, which the graph does not draw), so that none is lost unseen."""

    paths: list[Path] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def file_stem(backend: str) -> str:
    """A file name for a backend ('openvino:CPU:bf16' → 'openvino_CPU_bf16')."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", backend).strip("_") or "backend"


def _result(row: Mapping[str, Any], key: str, threshold: float, node_data_builder: Any) -> Any:
    """The node data result of a row for metric ``key``: the number, or a word where there is none."""
    nd = node_data_builder
    value = row[key]
    if row["status"] != "compared":
        return nd.NodeDataResult(value=row["status"], bgColor=GREY)
    if value is None:
        return None
    if math.isnan(value):
        return nd.NodeDataResult(value="NaN", bgColor=RED)
    if math.isinf(value):
        return nd.NodeDataResult(value="identical" if value > 0 else "no signal", bgColor=GREEN if value > 0 else RED)
    return nd.NodeDataResult(value=round(float(value), DECIMALS), bgColor=RED if value < threshold else GREEN)


_WORDS = {"NaN": -math.inf, "no signal": -math.inf, "identical": math.inf}  # as SQNRs, to find the worst


def _worse(new: Any, old: Any) -> bool:
    """Whether result ``new`` of a layer is worse (a lower SQNR) than ``old``; a status word is never compared."""
    a, b = (r.value if isinstance(r.value, float) else _WORDS.get(r.value) for r in (new, old))
    return a is not None and b is not None and a < b


def _results(rows: list[Mapping[str, Any]], key: str, threshold: float, nd: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for row in rows:
        res = _result(row, key, threshold, nd)
        if res is not None and (row["layer"] not in results or _worse(res, results[row["layer"]])):
            results[row["layer"]] = res
    return results


def unmatched_layers(layers: Mapping[str, Any], nodes: set[str]) -> list[str]:
    """The layers of the table that are not among ``nodes`` (node ids), sorted."""
    return sorted({row["layer"] for row in layers["rows"]} - nodes)


def build_node_data(layers: Mapping[str, Any], nodes: set[str]) -> tuple[dict[str, Any], list[str]]:
    """(file name → ``GraphNodeData``, layers not in ``nodes``) for a checked table (``layers_file``)."""
    require()
    from model_explorer import node_data_builder as nd

    files: dict[str, Any] = {}
    unmatched = unmatched_layers(layers, nodes)
    for backend in layers["backends"]:
        threshold = float(layers["threshold_db"][backend])
        # thresholds colour values at or below each bound: red up to just under the threshold, green above
        thresholds = [nd.ThresholdItem(value=math.nextafter(threshold, -math.inf), bgColor=RED),
                      nd.ThresholdItem(value=sys.float_info.max, bgColor=GREEN)]
        rows = [r for r in layers["rows"] if r["backend"] == backend and r["layer"] in nodes]
        first = layers["first_diverging"].get(backend)
        for key, label in METRICS:
            results = _results(rows, key, threshold, nd)
            name = f"{backend} {label} dB (red < {threshold:g})"
            if key == "local_sqnr_db" and first in results:
                results[first].bgColor, results[first].textColor = FIRST, FIRST_TEXT
                name = f"{backend} {label} dB (red < {threshold:g}, dark red: first diverging)"
            # the sum of dB values and each child's share of it mean nothing: only min, max and mean are shown
            files[f"{file_stem(backend)}.{key}.json"] = nd.GraphNodeData(
                results=results, name=name, thresholds=thresholds, hideAggregatedStats=["sum"],
                hideInChildrenStatsTable=True)
    return files, unmatched


def write_node_data(layers: Mapping[str, Any], model: Any, folder: str | Path) -> NodeDataFiles:
    """Write the node data of a checked table for ``model`` (an ``openvino.Model``) into ``folder``: all files
    or none (written to temporary names, renamed when all are written)."""
    from gnaexp.present.explorer.graph import node_ids

    files, unmatched = build_node_data(layers, set(node_ids(model).values()))
    folder = Path(folder)
    with staged_files() as stage:
        for name, data in files.items():
            stage(folder / name, data.to_json_string(indent=1).encode("utf-8"))
    return NodeDataFiles([folder / name for name in files], unmatched)
