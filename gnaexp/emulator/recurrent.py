"""Recurrent layers as the GNA plugin transforms them at load, before any layer is quantized.

The plugin's pipeline [S: src/plugins/intel_gna/src/gna_transformations_pipeline.cpp @2023.1.0,
``TransformationsPipeline::apply``] registers, in this order, ``ConvertSequenceToTensorIterator``,
``GRUCellDecomposition``, ``LSTMCellDecomposition`` and (after the PWL design) ``UnrollTensorIterator``; the
net it compiles holds only MatMul (affine), Add/Multiply/Subtract (eltwise and ScaleShift), Sigmoid/Tanh
(PWL), Split (crops) and data movement. This module applies the same rewrites to the ``openvino.Model`` the
emulator reads, on a clone, so the emulator's rules then quantize the result:

- a sequence becomes one cell per time step [S: src/common/transformations/src/transformations/
  op_conversions/convert_sequences_to_tensor_iterator.cpp, then control_flow/unroll_tensor_iterator.cpp]:
  X is split along its time axis (squeezed), the initial states squeezed, W/R/B squeezed on the direction
  axis; Y is the per-step outputs unsqueezed and concatenated on the time axis (in time order; a reverse
  sequence runs the steps from the last), the final states the last step's unsqueezed. Only constant
  sequence lengths equal to the time length are converted without a mask (the masked form holds Select,
  which GNA has no layer for); a bidirectional sequence is first split into a forward and a reverse one whose
  outputs are concatenated on the direction axis, by ``CommonOptimizations`` (registered before)
  [S: op_conversions/bidirectional_sequences_decomposition.cpp];
- an LSTM cell [S: op_conversions/lstm_cell_decomposition.cpp]: XHB = X·Wᵀ + (H·Rᵀ + B), split into f, i, c,
  o (clip > 0: a Clamp on each), C' = σ(f)·C + σ(i)·tanh(c), H' = σ(o)·tanh(C');
- a GRU cell [S: op_conversions/gru_cell_decomposition.cpp]: X·Wᵀ and H·Rᵀ split into z, r, h;
  z = σ(Xz + (Hz + Bz)), r = σ(Xr + (Hr + Br)); ĥ = tanh(Xh + ((r·H)·Rhᵀ + Bh)), or with linear_before_reset
  tanh(Xh + (r·(Hh + Rbh) + Wbh)); H' = (1 − z)·ĥ + z·H.
- a TensorIterator in the model is unrolled first [S: control_flow/unroll_tensor_iterator.cpp]: one copy of the
  body per iteration, sliced inputs split, merged inputs chained from copy to copy, invariant inputs shared,
  concatenated outputs joined, the others taken from their iteration.
The plugin has no RNNCell decomposition in this pipeline and no RNNCell layer: RNN sequences stay refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

SOURCE_TAG = "2023.1.0"
PIPELINE = "src/plugins/intel_gna/src/gna_transformations_pipeline.cpp"
SEQ_SOURCE = ("src/common/transformations/src/transformations/op_conversions/convert_sequences_to_tensor_iterator.cpp"
              " + control_flow/unroll_tensor_iterator.cpp (+ op_conversions/bidirectional_sequences_decomposition.cpp)")
CELL_SOURCE = {"LSTM": "src/common/transformations/src/transformations/op_conversions/lstm_cell_decomposition.cpp",
               "GRU": "src/common/transformations/src/transformations/op_conversions/gru_cell_decomposition.cpp"}
SEQUENCES = {"LSTMSequence": "LSTM", "GRUSequence": "GRU"}
CELLS = {"LSTMCell": "LSTM", "GRUCell": "GRU"}
RECURRENT_OPS = set(SEQUENCES) | set(CELLS) | {"RNNSequence", "RNNCell", "TensorIterator", "Loop"}


@dataclass
class Rewrite:
    """One op of the model replaced by what the plugin makes of it."""

    op: str
    name: str
    how: str
    source: str
    problem: str = ""  # why it could not be rewritten (then the op stays, and is refused)
    nodes: frozenset[str] = frozenset()  # friendly names of the ops that replaced it


def _ops() -> Any:
    import openvino.opset13 as ops

    return ops


def _axes(*a: int) -> Any:
    return _ops().constant(np.array(a, dtype=np.int64))


def _activation(kind: str, x: Any) -> Any:
    ops = _ops()
    return {"sigmoid": ops.sigmoid, "tanh": ops.tanh, "relu": ops.relu}[kind](x)


def _named(node: Any, name: str) -> Any:
    node.set_friendly_name(name)
    return node


def lstm_cell(x: Any, h: Any, c: Any, w: Any, r: Any, b: Any, acts: list[str], clip: float,
              name: str) -> tuple[Any, Any]:
    """LSTMCellDecomposition: (H', C') of one step; x [B, I], h/c [B, H], w [4H, I], r [4H, H], b [4H]."""
    ops = _ops()
    xt_w = _named(ops.matmul(x, w, False, True), f"{name}/Xt_W")
    ht_r = _named(ops.matmul(h, r, False, True), f"{name}/Ht_R")
    add = _named(ops.add(ht_r, b), f"{name}/Ht_R_B")
    xhb = _named(ops.add(xt_w, add), f"{name}/XHB")
    gates = _named(ops.split(xhb, _ops().constant(np.int64(1)), 4), f"{name}/gates").outputs()
    if clip > 0:
        gates = [ops.clamp(g, -clip, clip).output(0) for g in gates]
    f_t = _named(_activation(acts[0], gates[0]), f"{name}/f")
    i_t = _named(_activation(acts[0], gates[1]), f"{name}/i")
    c_t = _named(_activation(acts[1], gates[2]), f"{name}/c")
    o_t = _named(_activation(acts[0], gates[3]), f"{name}/o")
    mul1 = _named(ops.multiply(f_t, c), f"{name}/f_C")
    mul2 = _named(ops.multiply(i_t, c_t), f"{name}/i_c")
    out_c = _named(ops.add(mul1, mul2), f"{name}/C")
    h_c = _named(_activation(acts[2], out_c), f"{name}/h_C")
    out_h = _named(ops.multiply(o_t, h_c), f"{name}/H")
    return out_h.output(0), out_c.output(0)


def gru_cell(x: Any, h: Any, w: Any, r: Any, b: Any, acts: list[str], clip: float, linear_before_reset: bool,
             name: str) -> Any:
    """GRUCellDecomposition: H' of one step; x [B, I], h [B, H], w [3H, I], r [3H, H], b [3H] (or [4H])."""
    ops = _ops()
    xt_w = _named(ops.matmul(x, w, False, True), f"{name}/Xt_W")
    ht_r = _named(ops.matmul(h, r, False, True), f"{name}/Ht_R")
    x_zrh = ops.split(xt_w, ops.constant(np.int64(1)), 3).outputs()
    r_zrh = ops.split(r, ops.constant(np.int64(0)), 3).outputs()
    h_zrh = ops.split(ht_r, ops.constant(np.int64(1)), 3).outputs()
    b_zrh = ops.split(b, ops.constant(np.int64(0)), 4 if linear_before_reset else 3).outputs()
    z = _named(ops.add(x_zrh[0], _named(ops.add(h_zrh[0], b_zrh[0]), f"{name}/Hz_B")), f"{name}/z_sum")
    rr = _named(ops.add(x_zrh[1], _named(ops.add(h_zrh[1], b_zrh[1]), f"{name}/Hr_B")), f"{name}/r_sum")
    if clip > 0:
        z, rr = ops.clamp(z, -clip, clip), ops.clamp(rr, -clip, clip)
    z_t = _named(_activation(acts[0], z), f"{name}/z")
    r_t = _named(_activation(acts[0], rr), f"{name}/r")
    if linear_before_reset:
        hh = _named(ops.add(h_zrh[2], b_zrh[3]), f"{name}/Hh_Rb")
        r_hh = _named(ops.multiply(r_t, hh), f"{name}/r_Hh")
        pre = ops.add(x_zrh[2], _named(ops.add(r_hh, b_zrh[2]), f"{name}/r_Hh_Wb"))
    else:
        rt_ht = _named(ops.multiply(r_t, h), f"{name}/r_H")
        mul_h = _named(ops.matmul(rt_ht, r_zrh[2], False, True), f"{name}/rH_Rh")
        pre = ops.add(x_zrh[2], _named(ops.add(mul_h, b_zrh[2]), f"{name}/rH_Rh_B"))
    _named(pre, f"{name}/h_sum")
    if clip > 0:
        pre = ops.clamp(pre, -clip, clip)
    h_t = _named(_activation(acts[1], pre), f"{name}/h")
    one_minus_z = _named(ops.subtract(ops.constant(np.array([1.0], dtype=np.float32)), z_t), f"{name}/1-z")
    mul_1 = _named(ops.multiply(one_minus_z, h_t), f"{name}/(1-z)_h")
    mul_2 = _named(ops.multiply(z_t, h), f"{name}/z_H")
    return _named(ops.add(mul_1, mul_2), f"{name}/H").output(0)


def _constant_value(output: Any) -> np.ndarray | None:
    node = output.get_node()
    if node.get_type_name() == "Constant":
        return np.asarray(node.get_data())
    return None


def _folded_lengths(model: Any) -> dict[str, np.ndarray]:
    """The sequence lengths of every sequence, by op name, where constant folding computes them (from static
    shapes, as the plugin's CommonOptimizations fold them before ConvertSequenceToTensorIterator)."""
    from openvino.passes import ConstantFolding, Manager

    folded = model.clone()
    manager = Manager()
    manager.register_pass(ConstantFolding())
    manager.run_passes(folded)
    out = {}
    for op in folded.get_ordered_ops():
        if op.get_type_name() in SEQUENCES:
            value = _constant_value(op.input_value(_lengths_index(op.get_type_name())))
            if value is not None:
                out[op.get_friendly_name()] = value
    return out


def _lengths_index(op_type: str) -> int:
    return 3 if op_type == "LSTMSequence" else 2


def _seq_problem(op: Any, lengths: dict[str, np.ndarray]) -> str:
    """Why ConvertSequenceToTensorIterator would not produce a maskless unrolled sequence here, or ''."""
    attrs = op.get_attributes()
    if op.get_input_partial_shape(0).is_dynamic:
        return "its input shape is dynamic: give the input shape (an input file or --shape) to reshape the model"
    # (the wording ends as ir_reader.DYNAMIC: the support report counts these as waiting for a shape)
    steps = op.get_input_partial_shape(0)[1].get_length()
    value = lengths.get(op.get_friendly_name())
    if value is None or np.any(np.asarray(value).reshape(-1) != steps):
        return ("its sequence lengths are not the constant time length: the converted TensorIterator masks the "
                "steps with Select, which GNA has no layer for")
    return _activation_problem(attrs)


def _activation_problem(attrs: dict[str, Any]) -> str:
    if attrs.get("activations_alpha") or attrs.get("activations_beta"):
        return "activations with alpha/beta parameters have no PWL in the plugin"
    other = sorted({str(a).lower() for a in attrs.get("activations", [])} - {"sigmoid", "tanh", "relu"})
    if other:
        return f"activation(s) {', '.join(other)}: the decomposition makes only sigmoid, tanh and relu"
    return ""


def stable_name(op: Any, ordinal: int) -> str:
    """The op's friendly name, or when OpenVINO made one up (``Type_N``, numbered anew on every read of a model
    in a process) ``Type[ordinal]``, its place among the model's ops of that type: the names of the ops a
    rewrite adds are built on it, and must match between two reads of the model (the per-layer table reads it
    twice)."""
    name = op.get_friendly_name()
    t = op.get_type_name()
    made_up = name.startswith(t + "_") and name[len(t) + 1:].isdigit()
    return f"{t}[{ordinal}]" if made_up else name


def _direction(op: Any, kind: str, name: str, d: int, count: int, reverse: bool, xs: list[Any]) -> list[Any]:
    """(Y, Ho[, Co]) of one direction d of ``count``: its states and weights split out of the sequence's
    (BidirectionalSequenceDecomposition), the steps unrolled and each cell decomposed."""
    ops = _ops()
    attrs = op.get_attributes()
    acts = [str(a).lower() for a in attrs.get("activations", ["sigmoid", "tanh", "tanh"])]
    clip = float(attrs.get("clip", 0.0))
    lstm = kind == "LSTM"
    wi = 4 if lstm else 3

    def part(i: int, axis: int) -> Any:  # direction d of input i, the direction axis squeezed
        v = op.input_value(i)
        if count > 1:
            v = ops.split(v, ops.constant(np.int64(axis)), count).outputs()[d]
        return ops.squeeze(v, _axes(axis)).output(0)

    h = part(1, 1)
    c = part(2, 1) if lstm else None
    w, r, b = (part(i, 0) for i in (wi, wi + 1, wi + 2))
    steps = len(xs)
    hs: dict[int, Any] = {}
    prefix = name if count == 1 else f"{name}/{'reverse' if reverse else 'forward'}"
    for n, t in enumerate(reversed(range(steps)) if reverse else range(steps)):
        x_t = ops.squeeze(xs[t], _axes(1)).output(0)
        cell = f"{prefix}/t{n}"
        if lstm:
            h, c = lstm_cell(x_t, h, c, w, r, b, acts, clip, cell)
        else:
            h = gru_cell(x_t, h, w, r, b, acts, clip, bool(attrs.get("linear_before_reset", False)), cell)
        hs[t] = h
    ys = [ops.unsqueeze(hs[t], _axes(1, 2)).output(0) for t in range(steps)]
    y = ops.concat(ys, 2).output(0) if steps > 1 else ys[0]
    return [y, ops.unsqueeze(h, _axes(1)).output(0)] + ([ops.unsqueeze(c, _axes(1)).output(0)] if lstm else [])


def _unroll(op: Any, kind: str, name: str) -> None:
    """Replace the outputs of one LSTM/GRU sequence by its unrolled, decomposed steps (a bidirectional one as a
    forward and a reverse sequence whose outputs are concatenated on the direction axis)."""
    ops = _ops()
    direction = str(op.get_attributes().get("direction", "forward")).lower()
    x = op.input_value(0)
    steps = op.get_input_partial_shape(0)[1].get_length()
    xs = ops.split(x, ops.constant(np.int64(1)), steps).outputs() if steps > 1 else [x]
    if direction == "bidirectional":
        both = [_direction(op, kind, name, d, 2, d == 1, xs) for d in (0, 1)]
        outs = [ops.concat([f, r], 1).output(0) for f, r in zip(*both)]
    else:
        outs = _direction(op, kind, name, 0, 1, direction == "reverse", xs)
    for i, new in enumerate(outs):
        replace_output(op.output(i), new)


def _how(kind: str, op: Any) -> str:
    steps = op.get_input_partial_shape(0)[1].get_length()
    if str(op.get_attributes().get("direction")).lower() == "bidirectional":  # CommonOptimizations, before
        return ("split into a forward and a reverse sequence (BidirectionalSequenceDecomposition), each "
                + _how_one(kind, steps))
    return _how_one(kind, steps)


def _how_one(kind: str, steps: int) -> str:
    cell = ("C' = σ(f)·C + σ(i)·tanh(c), H' = σ(o)·tanh(C')" if kind == "LSTM" else
            "H' = (1 − z)·tanh(ĥ) + z·H")
    return (f"unrolled into {steps} {kind} cells (ConvertSequenceToTensorIterator, UnrollTensorIterator), each "
            f"decomposed into MatMul/Add/Split/Sigmoid/Tanh/Multiply ({kind}CellDecomposition: {cell})")


def replace_output(old: Any, new: Any) -> None:
    """Every consumer of ``old`` reads ``new``; the tensor names move along (a Result is named by them)."""
    names = old.get_names()
    for target in list(old.get_target_inputs()):
        target.replace_source_output(new)
    if names:
        old.set_names(set())
        new.set_names(names)


def _unroll_tensor_iterator(op: Any, name: str) -> None:
    """UnrollTensorIterator: one copy of the body per iteration, named NAME/<iteration>/<op>; sliced inputs
    split along their axis (the last slice first for a negative stride), merged inputs chained from one copy's
    result to the next copy's parameter, invariant inputs shared; concatenated outputs joined, the others taken
    from their iteration (−1: the last)."""
    ops = _ops()
    n = op.get_num_iterations()
    bodies = [op.get_function().clone() for _ in range(n)]
    for j, body in enumerate(bodies):
        for node in body.get_ops():
            node.set_friendly_name(f"{name}/{j + 1}/{node.get_friendly_name()}")

    def feed(body: Any, index: int, value: Any) -> None:
        param = body.get_parameters()[index]
        for target in list(param.output(0).get_target_inputs()):
            target.replace_source_output(value)

    def result(body: Any, index: int) -> Any:
        return body.get_results()[index].input_value(0)

    for d in op.get_input_descriptions():
        kind = type(d).__name__
        data = op.input_value(d.input_index)
        if kind == "SliceInputDescription":
            parts = ops.split(data, ops.constant(np.int64(d.axis)), n).outputs() if n > 1 else [data]
            for j, body in enumerate(bodies):
                feed(body, d.body_parameter_index, parts[j if d.stride > 0 else n - j - 1])
        elif kind == "MergedInputDescription":
            feed(bodies[0], d.body_parameter_index, data)
            for j in range(1, n):
                feed(bodies[j], d.body_parameter_index, result(bodies[j - 1], d.body_value_index))
        else:  # InvariantInputDescription
            for body in bodies:
                feed(body, d.body_parameter_index, data)
    for d in op.get_output_descriptions():
        if type(d).__name__ == "ConcatOutputDescription":
            parts = [result(bodies[j if d.stride > 0 else n - j - 1], d.body_value_index) for j in range(n)]
            new = ops.concat(parts, d.axis).output(0) if n > 1 else parts[0]
        else:  # BodyOutputDescription
            new = result(bodies[d.iteration if d.iteration >= 0 else n - 1], d.body_value_index)
        replace_output(op.output(d.output_index), new)


def _record_new(model: Any, before: set[str], rewrites: list[Rewrite]) -> set[str]:
    """Give the last rewrite the names of the ops it added; return the model's op names now."""
    now = {op.get_friendly_name() for op in model.get_ordered_ops()}
    rewrites[-1] = replace(rewrites[-1], nodes=frozenset(now - before))
    return now


def transform(model: Any) -> tuple[Any, list[Rewrite]]:
    """A clone of ``model`` with its TensorIterators unrolled and its recurrent sequences and cells unrolled and
    decomposed, and what was done to each recurrent op (one that cannot be rewritten stays, with the reason)."""
    found = [op for op in model.get_ordered_ops() if op.get_type_name() in RECURRENT_OPS]
    if not found:
        return model, []
    lengths = _folded_lengths(model) if any(op.get_type_name() in SEQUENCES for op in found) else {}
    model = model.clone()
    rewrites: list[Rewrite] = []
    names = {op.get_friendly_name() for op in model.get_ordered_ops()}
    seen: dict[str, int] = {}

    def name_of(op: Any) -> str:
        t = op.get_type_name()
        seen[t] = seen.get(t, -1) + 1
        return stable_name(op, seen[t])

    for op in [op for op in model.get_ordered_ops() if op.get_type_name() == "TensorIterator"]:
        name = name_of(op)  # first: the cells in the bodies are decomposed below, as the plugin's order has it
        _unroll_tensor_iterator(op, name)
        rewrites.append(Rewrite("TensorIterator", name, f"unrolled into {op.get_num_iterations()} copies of its "
                                "body (UnrollTensorIterator)", f"{PIPELINE}; src/common/transformations/src/"
                                f"transformations/control_flow/unroll_tensor_iterator.cpp @{SOURCE_TAG}"))
        names = _record_new(model, names, rewrites)
    for op in model.get_ordered_ops():
        t = op.get_type_name()
        if t not in RECURRENT_OPS:
            continue
        name = name_of(op)
        if t in SEQUENCES:
            kind = SEQUENCES[t]
            source = f"{PIPELINE}; {SEQ_SOURCE}; {CELL_SOURCE[kind]} @{SOURCE_TAG}"
            problem = _seq_problem(op, lengths)
            if problem:  # the op stays: named as the reader will name it
                rewrites.append(Rewrite(t, op.get_friendly_name(), "", source, problem))
                continue
            how = _how(kind, op)
            _unroll(op, kind, name)
            rewrites.append(Rewrite(t, name, how, source))
        elif t in CELLS:
            kind = CELLS[t]
            a = op.get_attributes()
            problem = _activation_problem(a)
            if problem:
                rewrites.append(Rewrite(t, op.get_friendly_name(), "", f"{PIPELINE}; {CELL_SOURCE[kind]} "
                                                                       f"@{SOURCE_TAG}", problem))
                continue
            acts = [str(v).lower() for v in a.get("activations", ["sigmoid", "tanh", "tanh"])]
            ins = [op.input_value(i) for i in range(op.get_input_size())]
            new: tuple[Any, ...]  # the cell's outputs in order: (H', C') of an LSTM, (H',) of a GRU
            if kind == "LSTM":
                x, h, c, w, r, b = ins[:6]
                new = lstm_cell(x, h, c, w, r, b, acts, float(a.get("clip", 0.0)), name)
            else:
                x, h, w, r, b = ins[:5]
                new = (gru_cell(x, h, w, r, b, acts, float(a.get("clip", 0.0)), bool(a.get("linear_before_reset")),
                                name),)
            for i, out in enumerate(new):
                replace_output(op.output(i), out)
            rewrites.append(Rewrite(t, name, f"decomposed into MatMul/Add/Split/Sigmoid/Tanh/Multiply "
                                             f"({kind}CellDecomposition)", f"{PIPELINE}; {CELL_SOURCE[kind]} "
                                                                            f"@{SOURCE_TAG}"))
        else:
            why = ("the pipeline has no RNNCell decomposition and the plugin has no RNNCell layer (\"The plugin "
                   "does not support layer\", backend/gna_limitations.cpp)" if t.startswith("RNN") else
                   "not modelled by the emulator yet (the plugin's UnrollTensorIterator also unrolls a Loop of known "
                   "trip count)")
            rewrites.append(Rewrite(t, op.get_friendly_name(), "", f"{PIPELINE} @{SOURCE_TAG}", why))
            continue
        names = _record_new(model, names, rewrites)
    model.validate_nodes_and_infer_types()
    return model, rewrites
