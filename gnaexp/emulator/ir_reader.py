"""Read an OpenVINO model into the small graph the emulator runs: constants folded, biases fused.

Constant subgraphs (Constant/Convert/Multiply/Subtract/Add/Divide/Reshape/Squeeze/Unsqueeze/Transpose/Concat/
FakeQuantize on constants) are folded with NumPy. Two weight patterns carry statistics the plugin uses for
scale factors (docs/gna-rules.md §3.2, weight statistics):
- Constant → FakeQuantize: the FQ levels and output ranges;
- NNCF decompression, Constant(i8/u8) → Convert → (Subtract zero point) → Multiply scale: read as 8-bit
  weight statistics (255 levels for i8 without zero point, 256 otherwise) [I: levels chosen to match the
  narrow-range symmetric grid NNCF writes].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gnaexp.emulator.quantize import WeightStats, snap_fake_quantize

SUPPORTED_OPS = (
    "Parameter", "Result", "Constant", "Convolution", "MatMul", "Add (bias constant after Convolution/MatMul)",
    "Concat", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Relu", "FakeQuantize",
    "Convert/Multiply/Subtract/Divide on constants",
)
MOVE_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Transpose"}
FOLD_OPS = {"Convert", "Multiply", "Subtract", "Add", "Divide", "Reshape", "Squeeze", "Unsqueeze", "Transpose",
            "Concat", "FakeQuantize"}
GRAPH_OPS = {"Convolution", "MatMul", "Concat", "Relu", "FakeQuantize"} | MOVE_OPS


class UnsupportedOpError(ValueError):
    """The IR holds an operation the emulator (and, in this form, the GNA plugin path it models) cannot run."""


def unsupported(op_type: str, name: str, why: str = "") -> UnsupportedOpError:
    extra = f" ({why})" if why else ""
    return UnsupportedOpError(
        f"operation {op_type} '{name}' is not supported by the GNA emulator{extra}; supported: "
        + ", ".join(SUPPORTED_OPS)
    )


@dataclass
class Node:
    """One non-constant operation. ``inputs`` are tensor keys; constant inputs appear in ``consts``."""

    name: str
    op: str
    inputs: list[str]
    out: str
    attrs: dict[str, Any] = field(default_factory=dict)
    bias: np.ndarray | None = None  # fused Add constant (Convolution/MatMul)


@dataclass
class Program:
    """A parsed IR: parameters, nodes in topological order, folded constants, results."""

    params: list[tuple[str, list[str], list]]  # (tensor key, names, partial shape as list of int|None)
    nodes: list[Node]
    consts: dict[str, np.ndarray]
    stats: dict[str, WeightStats]
    results: list[tuple[str, str]]  # (output name, tensor key)
    consumers: dict[str, list[Node]]
    has_fake_quantize: bool
    source: str = ""


def _key(node, index: int = 0) -> str:
    return f"{node.get_name()}:{index}"


def _reshape_target(in_shape: tuple[int, ...], target: np.ndarray, special_zero: bool) -> tuple[int, ...]:
    out = [int(v) for v in np.asarray(target).reshape(-1)]
    if special_zero:
        out = [in_shape[i] if v == 0 else v for i, v in enumerate(out)]
    if -1 in out:
        known = int(np.prod([v for v in out if v != -1])) or 1
        out[out.index(-1)] = int(np.prod(in_shape)) // known
    return tuple(out)


def move_shape(op: str, attrs: dict[str, Any], shape: tuple[int, ...], arg: np.ndarray | None) -> tuple[int, ...]:
    """Output shape of a data-movement op on a tensor of ``shape`` (no batch axis)."""
    if op == "Reshape":
        return _reshape_target(shape, arg, bool(attrs.get("special_zero", False)))
    if op == "Transpose":
        return tuple(shape[int(p)] for p in np.asarray(arg).reshape(-1))
    if op == "Squeeze":
        if arg is None:
            return tuple(d for d in shape if d != 1)
        axes = {int(a) % len(shape) for a in np.asarray(arg).reshape(-1)}
        return tuple(d for i, d in enumerate(shape) if i not in axes)
    if op == "Unsqueeze":
        axes = np.asarray(arg).reshape(-1)
        rank = len(shape) + len(axes)
        axes = sorted(int(a) % rank for a in axes)
        out = list(shape)
        for a in axes:
            out.insert(a, 1)
        return tuple(out)
    raise ValueError(op)


def apply_move(op: str, attrs: dict[str, Any], x: np.ndarray, arg: np.ndarray | None, batched: bool) -> np.ndarray:
    """Apply a data-movement op; with ``batched`` the first axis is the emulator's sample axis."""
    lead = 1 if batched else 0
    shape = x.shape[lead:]
    if op == "Transpose":
        perm = [int(p) for p in np.asarray(arg).reshape(-1)]
        return np.transpose(x, list(range(lead)) + [p + lead for p in perm])
    new = move_shape(op, attrs, shape, arg)
    return x.reshape(x.shape[:lead] + new)


def _fold(op, t: str, vals: list[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    if t == "Convert":
        return vals[0].astype(op.get_output_element_type(0).to_dtype())
    if t in ("Multiply", "Subtract", "Add", "Divide"):
        f = {"Multiply": np.multiply, "Subtract": np.subtract, "Add": np.add, "Divide": np.divide}[t]
        return f(vals[0], vals[1]).astype(op.get_output_element_type(0).to_dtype())
    if t in MOVE_OPS:
        return apply_move(t, attrs, vals[0], vals[1] if len(vals) > 1 else None, batched=False)
    if t == "Concat":
        return np.concatenate(vals, axis=int(attrs["axis"]))
    if t == "FakeQuantize":
        return snap_fake_quantize(vals[0], int(attrs["levels"]), *vals[1:5])
    raise ValueError(t)


def read_program(model: Any) -> Program:
    """Parse an ``openvino.Model`` or an IR .xml path."""
    from gnaexp.model_files import read_model

    source = ""
    if isinstance(model, (str, Path)):
        source = str(model)
        model = read_model(model)
    params: list[tuple[str, list[str], list]] = []
    nodes: list[Node] = []
    consts: dict[str, np.ndarray] = {}
    stats: dict[str, WeightStats] = {}
    qtags: dict[str, tuple] = {}  # decompression tracking: key -> (kind, qmin, qmax, zero point)
    results: list[tuple[str, str]] = []
    alias: dict[str, str] = {}
    by_out: dict[str, Node] = {}
    has_fq = False

    def k_in(op, i: int) -> str:
        v = op.input_value(i)
        k = _key(v.get_node(), v.get_index())
        return alias.get(k, k)

    for op in model.get_ordered_ops():
        t = op.get_type_name()
        name = op.get_friendly_name()
        out = _key(op, 0)
        n_in = op.get_input_size()
        in_keys = [k_in(op, i) for i in range(n_in)]
        attrs = op.get_attributes()
        if t == "Constant":
            arr = np.array(op.get_data(), copy=True)
            consts[out] = arr
            if arr.dtype in (np.int8, np.uint8):
                info = np.iinfo(arr.dtype)
                qtags[out] = ("q", info.min, info.max, None, arr.dtype)
            continue
        if t == "Parameter":
            shape = [d.get_length() if d.is_static else None for d in op.get_output_partial_shape(0)]
            params.append((out, sorted(op.output(0).get_names()) + [name], shape))
            continue
        if t == "Result":
            v = op.input_value(0)
            names = sorted(v.get_names()) or sorted(op.output(0).get_names()) or [name]
            results.append((names[0], in_keys[0]))
            continue
        if t == "FakeQuantize":
            has_fq = True
        if n_in and all(k in consts for k in in_keys) and t in FOLD_OPS:
            vals = [consts[k] for k in in_keys]
            consts[out] = _fold(op, t, vals, attrs)
            tag = qtags.get(in_keys[0])
            if t == "Convert" and tag is not None:
                qtags[out] = tag
            elif t == "Subtract" and tag is not None and tag[0] == "q":
                qtags[out] = ("qz", tag[1], tag[2], consts[in_keys[1]], tag[4])
            elif t == "Multiply":
                tag_a, tag_b = qtags.get(in_keys[0]), qtags.get(in_keys[1])
                tag, scale = (tag_a, vals[1]) if tag_a else (tag_b, vals[0])
                if tag is not None:
                    _, qmin, qmax, zp, dt = tag
                    if dt == np.int8 and zp is None:
                        qmin, levels = -127, 255
                    else:
                        levels = 256
                    z = 0 if zp is None else np.asarray(zp, dtype=np.float32)
                    s = np.asarray(scale, dtype=np.float32)
                    shape = consts[out].shape
                    lo = np.broadcast_to((np.float32(qmin) - z) * s, shape)
                    hi = np.broadcast_to((np.float32(qmax) - z) * s, shape)
                    stats[out] = WeightStats(levels, np.minimum(lo, hi), np.maximum(lo, hi), "decompression")
            elif t == "FakeQuantize":
                shape = consts[out].shape
                ol, oh = (np.broadcast_to(consts[k].astype(np.float32), shape) for k in in_keys[3:5])
                stats[out] = WeightStats(int(attrs["levels"]), np.minimum(ol, oh), np.maximum(ol, oh), "fake-quantize")
            elif t in MOVE_OPS or t == "Convert":
                src = stats.get(in_keys[0])
                if src is not None:
                    arg = vals[1] if len(vals) > 1 else None
                    stats[out] = WeightStats(
                        src.levels,
                        apply_move(t, attrs, np.ascontiguousarray(src.out_low), arg, False) if t != "Convert" else src.out_low,
                        apply_move(t, attrs, np.ascontiguousarray(src.out_high), arg, False) if t != "Convert" else src.out_high,
                        src.source,
                    )
            continue
        if t == "Add" and n_in == 2:
            ci = [i for i, k in enumerate(in_keys) if k in consts]
            di = [i for i, k in enumerate(in_keys) if k not in consts]
            if len(ci) == 1:
                producer = by_out.get(in_keys[di[0]])
                if producer is not None and producer.op in ("Convolution", "MatMul") and producer.bias is None:
                    if len(op.input_value(di[0]).get_target_inputs()) == 1:
                        producer.bias = np.asarray(consts[in_keys[ci[0]]], dtype=np.float32)
                        alias[out] = producer.out
                        continue
            raise unsupported(t, name, "only a bias constant added to a Convolution or MatMul output is supported")
        if t == "Convert" and op.get_output_element_type(0) == op.get_input_element_type(0):
            alias[out] = in_keys[0]
            continue
        if t not in GRAPH_OPS:
            raise unsupported(t, name)
        node = Node(name, t, in_keys, out, dict(attrs))
        nodes.append(node)
        by_out[out] = node

    consumers: dict[str, list[Node]] = {}
    for n in nodes:
        for k in n.inputs:
            consumers.setdefault(k, []).append(n)
    res_nodes = {k for _, k in results}
    for k in res_nodes:
        consumers.setdefault(k, []).append(Node("Result", "Result", [k], ""))
    return Program(params, nodes, consts, stats, results, consumers, has_fq, source)
