"""OpenVINO's per-node precision marks: layers kept at f32 while the rest of the model runs at a lower
inference precision (bf16, f16).

The mark is the runtime attribute OpenVINO's own passes set with ``ov::disable_fp16_compression`` (IR name
``precise``, version 0; transformations/rt_info/disable_fp16_compression.hpp). The CPU plugin reads it when it
lowers a graph to bf16: ``Graph::EnforceInferencePrecision`` skips every node whose ``keepOrigPrecision()`` is set,
and a node sets it from that attribute (intel_cpu/src/node.cpp). Python cannot create the attribute (an rt_info
value set from Python is a string, and the plugin's cast of it fails), so the mark is written into the IR text as
OpenVINO writes it and the model read back from memory: no file is written.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from gnaexp.layers import taps

MARK = ("precise", "0")  # the IR attribute of ov::DisableFP16Compression (its RTTI name and version)


def marked_model(xml: Path, keys: Iterable[str]) -> tuple[Any, list[str]]:
    """(the model of ``xml`` with the layers ``keys`` marked to stay at f32, the keys OpenVINO did not take the
    mark on: unknown names, or an OpenVINO that does not read the attribute)."""
    import openvino as ov

    tree = ET.parse(xml)
    layers = {el.get("name", ""): el for el in tree.getroot().iter("layer")}
    wanted = {taps.op_name(k, set(layers)) for k in keys}
    for name in wanted & set(layers):
        info = layers[name].find("rt_info")
        if info is None:
            info = ET.SubElement(layers[name], "rt_info")
        ET.SubElement(info, "attribute", {"name": MARK[0], "version": MARK[1]})
    weights = ov.Tensor(np.fromfile(xml.with_suffix(".bin"), dtype=np.uint8))
    model = ov.Core().read_model(ET.tostring(tree.getroot(), encoding="unicode"), weights)
    taken = {op.get_friendly_name() for op in model.get_ordered_ops() if _marked(op)}
    return model, sorted(wanted - taken)


def _marked(op: Any) -> bool:
    """Whether OpenVINO read the mark into the op's runtime info (as ``DisablePrecisionConversion`` in 2025+,
    ``precise`` before)."""
    return any(k.startswith(("DisablePrecisionConversion", "precise")) for k in op.get_rt_info().keys())
