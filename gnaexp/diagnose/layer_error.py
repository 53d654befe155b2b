"""Per-layer error: every emulated layer against OpenVINO CPU FP32's tensor of the same name.

Two numbers per layer:
- accumulated: the emulated layer output (dequantized) against the FP32 tensor, error of everything above
  included;
- local: the same layer fed with the FP32 input quantized at its input scale factor, i.e. the error this
  layer alone adds.
The first layer whose accumulated SQNR falls below ``USABLE_FLOOR_DB`` is where the error appears. Emulated:
a device returns only network outputs, so nothing here is measured per layer on a device.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from gnaexp.core import metrics
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.diagnose.results import LayerRow
from gnaexp.diagnose.verdicts import USABLE_FLOOR_DB

if TYPE_CHECKING:  # the emulator is imported where it runs (it is slow to import)
    from gnaexp.emulator.plan_row import Lane
    from gnaexp.emulator.plan_types import Step

INT32 = (-(2**31), 2**31 - 1)


def _reference_tensors(model_xml: Path, friendly: Mapping[str, str], feed: Mapping[str, np.ndarray],
                       sources: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """FP32 values of op outputs from OpenVINO CPU, batched: {emulator key: array}.

    friendly: emulator key → the op's friendly name (unique names change each time a model is read, friendly
    names do not). sources, when given, is filled with emulator key → the friendly name of the op whose output
    was read (a bias Add for a convolution that carries its bias).
    """
    import openvino as ov

    from gnaexp.emulator.recurrent import transform

    from gnaexp.emulator.support import reshape_inputs

    core = ov.Core()
    model = core.read_model(str(model_xml))
    if model.is_dynamic():  # as the emulator reshaped it, from the inputs (one sample each)
        reshape_inputs(model, {k: v.shape[1:] for k, v in feed.items()}, "from the inputs")
    model, _ = transform(model)  # the ops the emulator reads, recurrent ones unrolled
    ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    bias_add: dict[str, Any] = {}
    for op in model.get_ordered_ops():  # the emulator fuses a bias Add into its conv/MatMul: read the Add
        if op.get_type_name() == "Add":
            for i in range(2):
                src = op.input_value(i).get_node()
                if src.get_type_name() in ("Convolution", "MatMul") and _constant(op.input_value(1 - i)):
                    bias_add[src.get_friendly_name()] = op
    wanted: dict[str, Any] = {}
    for key, name in friendly.items():
        op = bias_add.get(name, ops.get(name))
        if op is not None and op.get_type_name() not in ("Parameter", "Result", "Constant"):
            wanted[key] = op.output(0)
            if sources is not None:
                sources[key] = op.get_friendly_name()
    if wanted:
        model.add_outputs(list(wanted.values()))  # an output that already is one is not added twice
    where = {}
    for key, out in wanted.items():
        node = out.get_node().get_friendly_name()
        where[key] = next(i for i, o in enumerate(model.outputs)  # each output is a Result: look behind it
                          if o.get_node().input_value(0).get_node().get_friendly_name() == node)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})  # never bf16/f16
    names = [p.any_name for p in model.inputs]
    n = next(iter(feed.values())).shape[0]
    got: dict[str, list[np.ndarray]] = {k: [] for k in wanted}
    request = compiled.create_infer_request()
    for i in range(n):
        request.infer({name: feed[name][i] for name in names})
        for key, idx in where.items():
            got[key].append(np.array(request.get_output_tensor(idx).data))
    return {k: np.stack(v) for k, v in got.items()}


def _constant(output: Any) -> bool:
    """Whether a value is computed from constants only (a bias), not from the network's data."""
    node = output.get_node()
    if node.get_type_name() in ("Constant", "ShapeOf"):  # a static shape is a constant too
        return True
    if node.get_type_name() in ("Parameter", "ReadValue") or node.get_input_size() == 0:
        return False
    return all(_constant(node.input_value(i)) for i in range(node.get_input_size()))


def per_layer(model_xml: Path, feed: Mapping[str, np.ndarray], settings: GnaSettings,
              edit: Callable[[Any], Any] | None = None,
              tensors: dict[str, tuple[str, np.ndarray]] | None = None,
              network_outputs: dict[str, np.ndarray] | None = None) -> list[LayerRow]:
    """One row per emulated layer, in plan order: accumulated and local SQNR against FP32, saturations.

    edit: Plan → Plan, a mistake applied inside the net (``hypotheses.Hypothesis.edit``), so the table shows
    where that mistake puts the error. tensors, when given, is filled with the emulated values of the compared
    rows, dequantized: the friendly name of the OpenVINO op whose FP32 tensor a row was compared with → (row
    layer, values shaped as that tensor, batched) — for a per-layer comparison with other backends; network_outputs, when given, with
    the emulated network outputs by output name (dequantized, batched)."""
    from gnaexp.emulator.api import load_program, prepare_inputs
    from gnaexp.emulator.graph import build_plan
    from gnaexp.emulator.plan_row import Lane
    from gnaexp.emulator.primitives import dequantize

    prog = load_program(Path(model_xml), feed, settings.porting)
    feeds, shapes, _ = prepare_inputs(prog, feed)
    plan = build_plan(prog, shapes, settings)
    if edit is not None:
        plan = edit(plan)
    outputs, sats, ints = plan.run(feeds, keep_ints=True)
    base = lambda key: key.split("#", 1)[0]  # noqa: E731 - "conv:0#conv/identity" carries conv:0's value
    keys = {base(st.out) for st in plan.steps} | {base(k) for st in plan.steps for k in st.inputs}
    friendly = {n.out: n.name for n in prog.nodes if n.out in keys}
    sources: dict[str, str] = {}
    ref = _reference_tensors(Path(model_xml), friendly, {names[0]: feeds[k] for k, names, _ in prog.params}, sources)
    ref.update(feeds)
    lanes: dict[str, Lane] = {}  # where every tensor the plan holds lives, for feeding one layer on its own
    rows = []
    for st in plan.steps:
        if st.row is None:  # a data movement: its values stay where its input's were
            lanes[st.out] = lanes.get(st.inputs[0], Lane.INT16)
            continue
        lanes[st.out] = st.row.lane
        out_sf = float(st.row.out_sf)
        target = ref.get(base(st.out))
        row = LayerRow(st.name, st.row.op, out_sf, int(sats.get(st.name, 0)), math.nan, math.nan)
        if target is not None and st.name in ints and target.size == ints[st.name].size:  # not host steps
            emulated = dequantize(ints[st.name], out_sf).reshape(target.shape)
            row.accumulated_sqnr_db = metrics.sqnr_db(target, emulated)
            if tensors is not None and base(st.out) in sources:
                tensors[sources[base(st.out)]] = (st.name, emulated)
            local = _local(st, ref, lanes, base, target)
            if local is not None:
                row.local_sqnr_db = local
        rows.append(row)
    if network_outputs is not None:
        network_outputs.update(outputs)
    return rows


def _local(st: Step, ref: Mapping[str, np.ndarray], lanes: Mapping[str, Lane], base: Callable[[str], str],
           target: np.ndarray) -> float | None:
    """SQNR of one layer fed with its FP32 input quantized at the layer's input sf (None where undefined)."""
    from gnaexp.emulator.plan_row import Lane
    from gnaexp.emulator.primitives import dequantize, quantize_input

    if st.kind == "input" or st.row is None:
        return None
    in_sf = st.row.in_sf
    if len(st.inputs) != 1 or in_sf is None or isinstance(in_sf, list):
        return None
    src = ref.get(base(st.inputs[0]))
    if src is None or "#" in st.inputs[0] and st.inputs[0].rsplit("/", 1)[-1] == "pad":
        return None  # no FP32 tensor holds a porting rewrite's zero-padded input
    if lanes.get(st.inputs[0]) is Lane.INT32:  # an ideal int32 accumulator value (no host rounding rule applies)
        q = np.clip(np.round(src.astype(np.float64) * float(in_sf)), *INT32)
    else:  # int16 data, quantized as the host quantizes network inputs
        q, _ = quantize_input(src, float(in_sf))
    val, _ = st.run(q)
    return metrics.sqnr_db(target, dequantize(val, st.row.out_sf).reshape(target.shape))


def first_bad_layer(rows: list[LayerRow]) -> LayerRow | None:
    """The first layer whose accumulated SQNR is below USABLE_FLOOR_DB: where the error appears."""
    return next((r for r in rows if math.isfinite(r.accumulated_sqnr_db) and
                 r.accumulated_sqnr_db < USABLE_FLOOR_DB), None)


def table(rows: list[LayerRow]) -> str:
    lines = [f"{'layer':<44} {'op':<26} {'acc SQNR':>9} {'local':>9} {'sat':>6}"]
    for r in rows:
        lines.append(f"{r.layer[:44]:<44} {str(r.op)[:26]:<26} {r.accumulated_sqnr_db:>9.1f} "
                     f"{r.local_sqnr_db:>9.1f} {r.saturations:>6d}")
    return "\n".join(lines)
