"""Every layer's output of an OpenVINO model on a device: each op's output added as a model output ("tapped").

A layer is keyed by its op's friendly name, with ``:PORT`` added when the op has more than one output (friendly
names survive reading, saving and NNCF; unique names change each time a model is read). Not tapped: Parameters,
Constants, Results, values computed from constants only (weights, their FakeQuantize or decompression, static
shapes) and non-float values (shapes, indices): they are the same on every backend or are not signals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

SKIPPED_OPS = ("Parameter", "Constant", "Result")


@dataclass(frozen=True)
class Tap:
    key: str  # friendly name, or "friendly:port"
    op: str  # the op's type name
    output: Any  # openvino Output


@dataclass
class TapRun:
    """The tensors of one run, and what the device said about it."""

    values: dict[str, np.ndarray]
    effective_precision: str | None = None
    fused_into: dict[str, str] = field(default_factory=dict)  # original layer → the runtime node it went into


def key_of(output: Any) -> str:
    node = output.get_node()
    name = node.get_friendly_name()
    return f"{name}:{output.get_index()}" if node.get_output_size() > 1 else name


def op_name(key: str, names: set[str]) -> str:
    """The op a layer key names, given the model's op names (``name:PORT`` keys an op with several outputs)."""
    return key.rsplit(":", 1)[0] if key not in names and ":" in key else key


def constant_valued(output: Any) -> bool:
    """Whether a value is computed from constants only (a weight, its quantizer or decompression, a static shape)."""
    from gnaexp.diagnose.layer_error import _constant

    return bool(_constant(output))


def taps(model: Any) -> list[Tap]:
    """The model's layers in topological order (the model's own order of ops)."""
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in SKIPPED_OPS:
            continue
        for out in op.outputs():
            if out.get_element_type().is_real() and not constant_valued(out):
                found.append(Tap(key_of(out), op.get_type_name(), out))
    return found


def output_keys(model: Any) -> set[str]:
    """The layers whose values leave the network (each feeds a Result)."""
    return {key_of(r.input_value(0)) for r in model.get_results()}


def run(model: Any, device: str, config: Mapping[str, str], feed: Mapping[str, np.ndarray]) -> TapRun:
    """Compile ``model`` (changed in place: every layer added as an output) on ``device`` and run ``feed``."""
    import openvino as ov

    wanted = taps(model)
    if wanted:
        model.add_outputs([t.output for t in wanted])  # an output that already is one is not added twice
    where = {key_of(o.get_node().input_value(0)): i for i, o in enumerate(model.outputs)}
    core = ov.Core()
    compiled = core.compile_model(model, device, dict(config))
    result = compiled.infer_new_request({p.any_name: np.ascontiguousarray(feed[p.any_name]) for p in model.inputs})
    values = {t.key: np.array(result[compiled.outputs[where[t.key]]], dtype=np.float32) for t in wanted}
    return TapRun(values, effective_precision(compiled), fused_layers(compiled))


def effective_precision(compiled: Any) -> str | None:
    """The inference precision the device actually runs (a CPU without f16 runs bf16 when asked for f16)."""
    try:
        return str(compiled.get_property("INFERENCE_PRECISION_HINT").to_string())
    except Exception:  # noqa: BLE001 - a device that does not report it
        return None


def fused_layers(compiled: Any) -> dict[str, str]:
    """Original layer → runtime node, for every layer a device merged into another node (its runtime model lists
    them in ``originalLayersNames``)."""
    fused: dict[str, str] = {}
    try:
        nodes = compiled.get_runtime_model().get_ordered_ops()
    except Exception:  # noqa: BLE001 - a device without a runtime model says nothing about fusion
        return fused
    for node in nodes:
        info = node.get_rt_info()
        if "originalLayersNames" not in info:
            continue
        own = node.get_friendly_name()
        for name in str(info["originalLayersNames"].astype(str)).split(","):
            if name and name != own:
                fused[name] = own
    return fused
