"""The local error of each layer: the layer alone on the test backend, fed the reference's own tensors.

For a layer X of the test model, a small model is cut out of it: X, with each input that the reference has a
tensor for replaced by a Parameter fed that tensor. What stands between X and such a tensor in the test model
but not in the reference (NNCF's FakeQuantize or Convert on an activation) stays in the small model, so an
inserted quantizer counts in its consumer's local error; values computed from constants (weights with their
quantizer or decompression) stay too. The error X adds on its own is then its output against the reference's.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from gnaexp.core import metrics
from gnaexp.layers import taps

NOT_CUT = ("ReadValue", "Assign")  # a memory layer has no value of its own outside its stream


def cut(model: Any, name: str, reference: Mapping[str, np.ndarray],
        inputs: Mapping[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray]] | None:
    """(the small model of the op named ``name``, its feed), from a clone of ``model``; None where it cannot
    stand alone. ``inputs``: the network inputs by tensor name (a layer next to the input reads them)."""
    import openvino as ov

    model = model.clone()
    op = next((o for o in model.get_ordered_ops() if o.get_friendly_name() == name), None)
    if op is None or op.get_type_name() in NOT_CUT:
        return None
    params: list[Any] = []
    feed: dict[str, np.ndarray] = {}
    seen: set[str] = set()  # unique names: each call hands out a new Python wrapper of a node
    fed: dict[str, Any] = {}  # the Parameter standing for each reference tensor

    def free(node: Any) -> bool:
        """Give each input of ``node`` its reference value; False where one has none and cannot be computed."""
        if node.get_name() in seen:
            return True
        seen.add(node.get_name())
        for port in node.inputs():
            source = port.get_source_output()
            src = source.get_node()
            key = taps.key_of(source)
            if taps.constant_valued(source):
                _freeze_shapes(source, set())  # a static shape read off the data becomes a constant
                continue
            if src.get_type_name() == "Parameter":
                param_name = source.get_any_name()
                if param_name not in inputs:
                    return False
                if param_name not in feed:
                    params.append(src)
                    feed[param_name] = np.asarray(inputs[param_name])
                continue
            if key in reference:
                param_name = f"reference:{key}"
                if param_name not in fed:  # one Parameter per tensor, however many ports read it (x·x)
                    value = np.asarray(reference[key])
                    fed[param_name] = ov.op.Parameter(source.get_element_type(), ov.PartialShape(list(value.shape)))
                    fed[param_name].output(0).get_tensor().set_names({param_name})
                    params.append(fed[param_name])
                    feed[param_name] = value
                port.replace_source_output(fed[param_name].output(0))
                continue
            if src.get_type_name() in NOT_CUT or not free(src):  # in the test model only: it stays, fed in turn
                return False
        return True

    if not free(op):
        return None
    outputs = [o for o in op.outputs() if o.get_element_type().is_real()]
    try:
        return ov.Model(outputs, params, f"local:{name}"), feed
    except RuntimeError:  # a value the cut could not give (e.g. a dynamic shape): no local error for this layer
        return None


def _freeze_shapes(output: Any, seen: set[str]) -> None:
    """Replace every ShapeOf above ``output`` (a constant-valued value) with a Constant of its input's static shape,
    so that the cut does not reach back into the network for it."""
    import openvino as ov

    node = output.get_node()
    if node.get_name() in seen or node.get_type_name() == "Constant":
        return
    seen.add(node.get_name())
    if node.get_type_name() in ("ShapeOf",) and node.get_input_partial_shape(0).is_static:
        dtype = np.int32 if node.get_output_element_type(0).get_type_name() == "i32" else np.int64
        shape = ov.op.Constant(np.array(list(node.get_input_shape(0)), dtype=dtype))
        for target in list(output.get_target_inputs()):
            target.replace_source_output(shape.output(0))
        return
    for port in node.inputs():
        _freeze_shapes(port.get_source_output(), seen)


def local_errors(model: Any, names: list[str], reference: Mapping[str, np.ndarray],
                 inputs: Mapping[str, np.ndarray], compile_run: Callable[[Any, dict[str, np.ndarray]], list[np.ndarray]],
                 ) -> dict[str, float | None]:
    """Local SQNR per layer key (None: the layer cannot be cut out, or the device refused it alone).

    ``compile_run(small model, feed)``: its outputs, compiled on the test backend's device and precision."""
    ops = {o.get_friendly_name(): o for o in model.get_ordered_ops()}
    result: dict[str, float | None] = {}
    for key in names:
        piece = cut(model, taps.op_name(key, set(ops)), reference, inputs)
        if piece is None:
            result[key] = None
            continue
        small, feed = piece
        try:
            outs = compile_run(small, feed)
        except Exception:  # noqa: BLE001 - a device may refuse a lone op (OpenVINO raises RuntimeError)
            result[key] = None
            continue
        keys = [taps.key_of(o.get_node().input_value(0)) for o in small.outputs]
        for k, value in zip(keys, outs):
            if k in reference and reference[k].shape == value.shape:
                result[k] = metrics.sqnr_db(reference[k], value)
        result.setdefault(key, None)
    return result


def openvino_runner(device: str, config: Mapping[str, str]) -> Callable[[Any, dict[str, np.ndarray]], list[np.ndarray]]:
    """compile_run for ``local_errors``: one small model on ``device`` with ``config``."""
    import openvino as ov

    core = ov.Core()

    def compile_run(small: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        compiled = core.compile_model(small, device, dict(config))
        result = compiled.infer_new_request({p.any_name: np.ascontiguousarray(feed[p.any_name]) for p in small.inputs})
        return [np.array(result[o], dtype=np.float32) for o in compiled.outputs]
    return compile_run
