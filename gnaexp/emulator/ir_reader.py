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

from gnaexp.emulator.moves import apply_move, MOVE_OPS
from gnaexp.emulator.quantize import snap_fake_quantize, WeightStats
from gnaexp.core.errors import BadInput

SUPPORTED_OPS = (
    "Parameter", "Result", "Constant", "Convolution (1-D; 2-D as GNA 3.0 takes it)", "MatMul", "Add", "Multiply",
    "Subtract",
    "Add/Multiply/Subtract/Divide with a constant (ScaleShift)",
    "LSTM/GRU sequences and cells, TensorIterator (unrolled)", "MVN (decomposed as DecomposeMVN does)",
    "Concat", "Reshape", "Squeeze", "Unsqueeze",
    "Transpose", "Gather/Slice/Split/VariadicSplit with constant indices", "Relu", "PRelu (one slope)", "Clamp",
    "Sigmoid", "Tanh", "SoftSign", "Exp", "Log", "Sqrt", "Power (constant exponent)", "FakeQuantize",
    "MaxPool (1-D; 2-D within GNA 3.0's window rule)", "Pad and ReduceMean (on the host, with porting)",
    "constant subgraphs (Convert/Multiply/Subtract/Divide/ShapeOf/Gather/…)",
)
FOLD_OPS = {"Convert", "Multiply", "Subtract", "Add", "Divide", "Mod", "Greater", "Broadcast", "Gather", "Slice",
            "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "FakeQuantize", "MatMul"}
ACTIVATION_OPS = {"Relu", "Sigmoid", "Tanh", "Sqrt", "Power", "Exp", "Log", "SoftSign"}
ELTWISE_OPS = {"Add", "Multiply", "Subtract"}
SCALESHIFT_OPS = {"Add", "Multiply", "Subtract", "Divide"}  # with one constant operand: a ScaleShift layer
HOST_OPS = {"Pad", "ReduceMean"}
GRAPH_OPS = ({"Convolution", "MatMul", "Concat", "FakeQuantize", "ScaleShift", "Clamp", "PRelu", "MaxPool"}
             | ACTIVATION_OPS
             | ELTWISE_OPS | HOST_OPS | MOVE_OPS)


DYNAMIC = "give the input shape (an input file or --shape) to reshape the model"


class UnsupportedOpError(BadInput):
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
    folded: dict[str, int] = field(default_factory=dict)  # op type → how many were computed on constants
    refused: dict[str, str] = field(default_factory=dict)  # node name → why the emulator cannot read it
    rewrites: list[Any] = field(default_factory=list)  # recurrent.Rewrite: ops replaced as the plugin does
    notes: list[str] = field(default_factory=list)  # how the model was made readable (e.g. reshaped)
    memory: dict[str, Any] = field(default_factory=dict)  # state parameter key → state_layers.Memory
    memory_writes: dict[str, str] = field(default_factory=dict)  # state parameter key → tensor its Assign writes


def downstream(prog: Program, key: str) -> list[Node]:
    """Consumers of a tensor, looking through data-movement ops."""
    out: list[Node] = []
    for c in prog.consumers.get(key, []):
        if c.op in MOVE_OPS and c.inputs[0] == key:
            out += downstream(prog, c.out)
        else:
            out.append(c)
    return out


def root_key(prog: Program, key: str, through: set[str] = MOVE_OPS) -> str:
    """Walk back through data movement (and any other ops in ``through``) to the tensor behind ``key``."""
    by_out = {n.out: n for n in prog.nodes}
    node = by_out.get(key)
    while node is not None and node.op in through:
        key = node.inputs[0]
        node = by_out.get(key)
    return key


def _data_consumers(output: Any) -> int:
    """Consumers of an output that read its values (a ShapeOf reads only its static shape: folded)."""
    return sum(t.get_node().get_type_name() != "ShapeOf" for t in output.get_target_inputs())


def _key(node, index: int = 0) -> str:
    return f"{node.get_name()}:{index}"


def _fold(op, t: str, vals: list[np.ndarray], attrs: dict[str, Any]) -> np.ndarray:
    if t == "Convert":
        return vals[0].astype(op.get_output_element_type(0).to_dtype())
    dtype = op.get_output_element_type(0).to_dtype()
    if t == "Divide" and np.issubdtype(vals[0].dtype, np.integer):
        f = np.floor_divide if attrs.get("m_pythondiv", True) else lambda a, b: np.trunc(a / b)
        return f(vals[0], vals[1]).astype(dtype)
    if t in ("Multiply", "Subtract", "Add", "Divide", "Mod", "Greater"):
        f = {"Multiply": np.multiply, "Subtract": np.subtract, "Add": np.add, "Divide": np.divide, "Mod": np.mod,
             "Greater": np.greater}[t]
        return np.asarray(f(vals[0], vals[1])).astype(dtype)
    if t == "Broadcast" and str(attrs.get("mode", "numpy")).lower() in ("numpy", "bidirectional"):
        target = tuple(int(v) for v in np.asarray(vals[1]).reshape(-1))
        return (np.broadcast_to(vals[0], target) if attrs.get("mode", "numpy") == "numpy"
                else vals[0] * np.ones(target, dtype=vals[0].dtype))
    if t in MOVE_OPS:
        return apply_move(t, attrs, vals[0], vals[1:], batched=False)
    if t == "Concat":
        return np.concatenate(vals, axis=int(attrs["axis"]))
    if t == "MatMul":
        a, b = (np.swapaxes(v, -1, -2) if attrs.get(f"transpose_{s}") and v.ndim > 1 else v
                for v, s in zip(vals, "ab"))
        return np.matmul(a, b).astype(dtype)
    if t == "FakeQuantize":
        return snap_fake_quantize(vals[0], int(attrs["levels"]), *vals[1:5])
    raise BadInput(t)


def _split_nodes(op, t: str, name: str, in_keys: list[str], consts: dict[str, np.ndarray]) -> list[Node]:
    """A Split/VariadicSplit as one Crop per output (each output keeps its own tensor key)."""
    if any(k not in consts for k in in_keys[1:]):
        raise unsupported(t, name, "axis and lengths must be constant")
    shape = list(op.get_input_shape(0))
    axis = int(np.asarray(consts[in_keys[1]]).reshape(-1)[0]) % len(shape)
    if t == "Split":
        n = int(op.get_attributes()["num_splits"])
        lengths = [shape[axis] // n] * n
    else:
        lengths = [int(v) for v in np.asarray(consts[in_keys[2]]).reshape(-1)]
        if -1 in lengths:
            lengths[lengths.index(-1)] = shape[axis] - (sum(lengths) + 1)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return [Node(f"{name}/{i}", "Crop", in_keys[:1], _key(op, i),
                 {"axis": axis, "start": int(starts[i]), "stop": int(starts[i + 1])}) for i in range(len(lengths))]


def _const_eltwise(op: Any, t: str, in_keys: list[str], consts: dict[str, np.ndarray]) -> bool:
    """An Add of data and a constant of more than one value, or data minus one, on data of rank < 4: the plugin's
    ConvertMulOrAddFinally keeps it an Eltwise with a Const input (``check_constant`` gives SCALE_SHIFT and the
    output rank is below 4; a scalar is a Power layer, computed as the ScaleShift)."""
    ci = 0 if in_keys[0] in consts else 1
    if t == "Subtract" and ci == 0:
        return False  # c − x: a Power(x, −1) then the sum [I: not read here, left a ScaleShift]
    shape = op.get_input_partial_shape(1 - ci)
    return np.asarray(consts[in_keys[ci]]).size > 1 and shape.rank.is_static and shape.rank.get_length() < 4


def _scaleshift(t: str, in_keys: list[str], consts: dict[str, np.ndarray]) -> tuple[str, np.ndarray, np.ndarray]:
    """An eltwise op with one constant operand as data·w + b (the plugin's ScaleShift layer)."""
    ci = 0 if in_keys[0] in consts else 1
    c = np.asarray(consts[in_keys[ci]], dtype=np.float32)
    one, zero = np.ones_like(c), np.zeros_like(c)
    if t == "Add":
        w, b = one, c
    elif t == "Multiply":
        w, b = c, zero
    elif t == "Subtract":
        w, b = (one, -c) if ci == 1 else (-one, c)
    else:  # Divide by a constant (a constant numerator divided by data is ConvertDivide's, in read_program)
        w, b = np.float32(1.0) / c, zero
    return in_keys[1 - ci], w, b


def read_program(model: Any, strict: bool = True) -> Program:
    """Parse an ``openvino.Model`` or an IR .xml path, after the plugin's recurrent rewrites (``recurrent.py``).

    ``strict``: an operation the emulator cannot run raises ``UnsupportedOpError``; otherwise it is kept as a
    node and its reason recorded in ``Program.refused`` (for the support report)."""
    from gnaexp.emulator import mvn, recurrent, state_layers
    from gnaexp.models.model_files import read_model

    source = ""
    if isinstance(model, (str, Path)):
        source = str(model)
        model = read_model(model)
    model, memory = state_layers.explicit(model)  # ReadValue/Assign: a state input and the tensor written
    model, mvn_rewrites = mvn.transform(model)  # first in the plugin's pipeline
    model, rewrites = recurrent.transform(model)
    reader = _Reader(model, strict, mvn_rewrites + rewrites)
    for op in model.get_ordered_ops():
        reader.read(op)
    return reader.program(source, memory)


class _Reader:
    """The graph as ``read_program`` reads it, op by op in topological order: constants folded (with the weight
    statistics they carry), biases fused, eltwise ops with a constant as ScaleShift layers, the rest as nodes."""

    def __init__(self, model: Any, strict: bool, rewrites: list) -> None:
        self.model, self.strict, self.rewrites = model, strict, rewrites
        self.refused: dict[str, str] = {}
        self.dynamic: set[str] = set()  # outputs computed from a dynamic shape
        self.data: set[str] = set()  # outputs computed from the network inputs' values (not only their shapes)
        self.not_rewritten = {rw.name: rw.problem for rw in rewrites if rw.problem}
        self.params: list[tuple[str, list[str], list]] = []
        self.nodes: list[Node] = []
        self.consts: dict[str, np.ndarray] = {}
        self.stats: dict[str, WeightStats] = {}
        self.qtags: dict[str, tuple] = {}  # decompression tracking: key -> (kind, qmin, qmax, zero point)
        self.results: list[tuple[str, str]] = []
        self.memory_writes: dict[str, str] = {}  # memory:VAR → tensor key
        self.result_order = {r.get_name(): i for i, r in enumerate(model.get_results())}  # the model's order
        self.result_index: dict[str, int] = {}
        self.alias: dict[str, str] = {}
        self.by_out: dict[str, Node] = {}
        self.has_fq = False
        self.folded: dict[str, int] = {}

    def add(self, node: Node) -> None:
        self.nodes.append(node)
        self.by_out[node.out] = node

    def refuse(self, op: Any, t: str, name: str, in_keys: list[str], out: str, attrs: Any, why: str = "") -> None:
        if self.strict:
            raise unsupported(t, name, why)
        self.refused[name] = why
        if DYNAMIC in why:
            self.dynamic.update(_key(op, i) for i in range(op.get_output_size()))
        node = Node(name, t, in_keys, out, dict(attrs))
        self.nodes.append(node)
        for i in range(op.get_output_size()):
            self.by_out[_key(op, i)] = node

    def k_in(self, op: Any, i: int) -> str:
        v = op.input_value(i)
        k = _key(v.get_node(), v.get_index())
        return self.alias.get(k, k)

    def read(self, op: Any) -> None:
        """One op, in the order the model lists them."""
        from gnaexp.emulator import state_layers

        t = op.get_type_name()
        name = op.get_friendly_name()
        out = _key(op, 0)
        n_in = op.get_input_size()
        in_keys = [self.k_in(op, i) for i in range(n_in)]
        attrs = op.get_attributes()
        consts = self.consts
        if t == "Constant":
            arr = np.array(op.get_data(), copy=True)
            consts[out] = arr
            if arr.dtype in (np.int8, np.uint8):
                info = np.iinfo(arr.dtype)
                self.qtags[out] = ("q", info.min, info.max, None, arr.dtype)
            return
        if t == "Parameter":
            self.data.add(out)
            shape = [d.get_length() if d.is_static else None for d in op.get_output_partial_shape(0)]
            self.params.append((out, sorted(op.output(0).get_names()) + [name], shape))
            return
        if t == "Result" and name.startswith(state_layers.MEMORY_PREFIX):
            self.memory_writes[name] = in_keys[0]  # what the Assign writes: not a network output
            return
        if t == "Result":
            self.result(op, name, in_keys)
            return
        if t == "FakeQuantize":
            self.has_fq = True
        if t != "ShapeOf" and any(k in self.data for k in in_keys):
            self.data.update(_key(op, i) for i in range(op.get_output_size()))
        if n_in and all(k in consts for k in in_keys) and t in FOLD_OPS:
            self.fold(op, t, out, in_keys, attrs)
            return
        if t == "ShapeOf" and op.get_input_partial_shape(0).is_static:  # static shapes: a constant
            self.folded[t] = self.folded.get(t, 0) + 1
            consts[out] = np.array(list(op.get_input_shape(0)), dtype=op.get_output_element_type(0).to_dtype())
            return
        if t == "Add" and n_in == 2 and self.bias_fused(op, out, in_keys):
            return
        if t == "Convert" and op.get_output_element_type(0) == op.get_input_element_type(0):
            self.alias[out] = in_keys[0]
            return
        if t in ("Split", "VariadicSplit"):
            self.split(op, t, name, in_keys, out, attrs)
            return
        problem = self.problem(t, in_keys, attrs)
        if problem is not None:
            self.refuse(op, t, name, in_keys, out, attrs, problem)
            return
        if t == "Pad" and str(attrs.get("pad_mode", "constant")) == "constant" and len(in_keys) > 1 and \
                all(k in consts for k in in_keys[1:]) and \
                (len(in_keys) < 4 or not np.any(consts[in_keys[3]])):
            t, attrs = "ZeroPad", {"pads_begin": [int(v) for v in consts[in_keys[1]]],
                                   "pads_end": [int(v) for v in consts[in_keys[2]]]}
            in_keys = in_keys[:1]
        if t == "Power" and (n_in < 2 or in_keys[1] not in consts or np.asarray(consts[in_keys[1]]).size != 1):
            self.refuse(op, t, name, in_keys, out, attrs, "the exponent must be one constant")
            return
        if t == "Divide" and n_in == 2 and in_keys[1] not in consts:
            self.divide_by_data(name, in_keys, out)
            return
        if t in SCALESHIFT_OPS and n_in == 2 and sum(k in consts for k in in_keys) == 1:
            self.scaleshift(op, t, name, in_keys, out)
            return
        if t not in GRAPH_OPS:
            self.refuse(op, t, name, in_keys, out, attrs, self.not_rewritten.get(name, ""))
            return
        node = Node(name, t, in_keys, out, dict(attrs))
        if t == "Convolution":  # the support report tells a 2-D convolution from a 1-D one by it
            node.attrs["input_shape"] = [d.get_length() if d.is_static else None
                                         for d in op.get_input_partial_shape(0)]
        self.add(node)

    def result(self, op: Any, name: str, in_keys: list[str]) -> None:
        """A network output, under the name OpenVINO's runtime gives it, in the model's order."""
        v = op.input_value(0)
        names = sorted(v.get_names()) or sorted(op.output(0).get_names()) or [name]
        index = self.result_order.get(op.get_name(), len(self.result_order))
        if index < len(self.model.outputs) and self.model.outputs[index].get_names():
            names = [self.model.outputs[index].get_any_name()]
        self.results.append((names[0], in_keys[0]))
        self.result_index[names[0]] = index

    def fold(self, op: Any, t: str, out: str, in_keys: list[str], attrs: Any) -> None:
        """An op on constants only, computed here, and the weight statistics its value carries along."""
        consts, qtags, stats = self.consts, self.qtags, self.stats
        self.folded[t] = self.folded.get(t, 0) + 1
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
            stats[out] = WeightStats(int(attrs["levels"]), np.minimum(ol, oh), np.maximum(ol, oh), "fake-quantize",
                                     np.broadcast_to(np.asarray(vals[0], dtype=np.float32), shape))
        elif t in MOVE_OPS or t == "Convert":
            src = stats.get(in_keys[0])
            if src is not None:
                def moved(a: np.ndarray) -> np.ndarray:
                    return a if t == "Convert" else apply_move(t, attrs, np.ascontiguousarray(a), vals[1:], False)

                stats[out] = WeightStats(src.levels, moved(src.out_low), moved(src.out_high), src.source,
                                         None if src.raw is None else moved(src.raw))

    def bias_fused(self, op: Any, out: str, in_keys: list[str]) -> bool:
        """An Add of a constant to a Convolution/MatMul that has no bias yet and feeds nothing else: its bias."""
        ci = [i for i, k in enumerate(in_keys) if k in self.consts]
        di = [i for i, k in enumerate(in_keys) if k not in self.consts]
        if len(ci) != 1:
            return False
        producer = self.by_out.get(in_keys[di[0]])
        if producer is None or producer.op not in ("Convolution", "MatMul") or producer.bias is not None or \
                _data_consumers(op.input_value(di[0])) != 1:
            return False
        producer.bias = np.asarray(self.consts[in_keys[ci[0]]], dtype=np.float32)
        self.alias[out] = producer.out
        return True

    def split(self, op: Any, t: str, name: str, in_keys: list[str], out: str, attrs: Any) -> None:
        if any(k not in self.consts for k in in_keys[1:]):
            self.refuse(op, t, name, in_keys, out, attrs, "axis and lengths must be constant")
            return
        nodes_split = _split_nodes(op, t, name, in_keys, self.consts)
        if in_keys[0] in self.consts:  # a split constant (GRU weights): one folded constant per output
            self.folded[t] = self.folded.get(t, 0) + 1
            for n in nodes_split:
                self.consts[n.out] = apply_move("Crop", n.attrs, self.consts[in_keys[0]], [], batched=False)
            return
        for n in nodes_split:
            self.add(n)

    def problem(self, t: str, in_keys: list[str], attrs: Any) -> str | None:
        """Why the emulator cannot take this op as given (a shape or index that is not constant), or None."""
        if t == "ShapeOf":
            return "the shape is dynamic: " + DYNAMIC
        if any(k in self.dynamic for k in in_keys) and not any(k in self.data for k in in_keys):
            return "computed from a dynamic shape: " + DYNAMIC
        if t in ("Gather", "Slice") and any(k not in self.consts for k in in_keys[1:]):
            return "indices must be constant"
        if t == "Gather" and int(attrs.get("batch_dims", 0)) != 0:
            return "batch_dims must be 0"
        return None

    def divide_by_data(self, name: str, in_keys: list[str], out: str) -> None:
        """ConvertDivide (CommonOptimizations): x / y = x · Power(y, −1) for a divisor that is data."""
        inv_key, minus_one = f"{name}/inverse:0", f"{name}/minus_one"
        self.consts[minus_one] = np.array(-1.0, dtype=np.float32)
        self.add(Node(f"{name}/inverse", "Power", [in_keys[1], minus_one], inv_key, {"from": "Divide"}))
        self.data.add(inv_key)
        if in_keys[0] in self.consts:  # c / y: a ScaleShift of y^−1
            c = np.asarray(self.consts[in_keys[0]], dtype=np.float32)
            self.add(Node(name, "ScaleShift", [inv_key], out, {"w": c, "b": np.zeros_like(c), "from": "Divide"}))
        else:
            self.add(Node(name, "Multiply", [in_keys[0], inv_key], out, {"from": "Divide"}))

    def scaleshift(self, op: Any, t: str, name: str, in_keys: list[str], out: str) -> None:
        """An eltwise op with one constant operand: merged into the ScaleShift before it, an Eltwise with a Const
        layer, or a ScaleShift layer of its own."""
        consts = self.consts
        src, w, b = _scaleshift(t, in_keys, consts)
        producer = self.by_out.get(src)
        if t in ("Add", "Subtract") and producer is not None and producer.op == "ScaleShift" and \
                not np.any(producer.attrs["b"]) and _data_consumers(op.input_value(in_keys.index(src))) == 1:
            # Multiply then Add of constants: one ScaleShift (ConvertMulAddToScaleShiftOrPower)
            producer.attrs["b"] = producer.attrs["b"] + b * np.ones_like(producer.attrs["w"])
            producer.attrs["w"] = producer.attrs["w"] * w
            del self.by_out[producer.out]  # the layer now computes the Add's value: it takes its name and tensor
            producer.name, producer.out = name, out
            self.by_out[out] = producer
            return
        if t in ("Add", "Subtract") and _const_eltwise(op, t, in_keys, consts):
            # ConvertMulOrAddFinally (legacy/src/transformations/convert_opset1_to_legacy/
            # convert_mul_or_add_finally.cpp @2023.1.0): a per-element constant on data of rank < 4 is no
            # ScaleShift but an Eltwise with a Const layer; ConvertSubtract (convert_opset1_to_legacy.cpp) first
            # writes x − c as x + (−c); an Add of zeros is dropped as useless.
            c = b if t == "Add" else -np.asarray(consts[in_keys[1]], dtype=np.float32)
            if not np.any(c):
                self.alias[out] = src
                return
            ckey = f"{name}/const"
            consts[ckey] = c
            self.add(Node(name, "Add", [ckey if k in consts else k for k in in_keys], out, {"from": t}))
            return
        self.add(Node(name, "ScaleShift", [src], out, {"w": w, "b": b, "from": t}))

    def program(self, source: str, memory: dict[str, Any]) -> Program:
        """The read graph, its outputs in the model's order and every tensor's consumers."""
        results = sorted(self.results, key=lambda r: self.result_index[r[0]])
        consumers: dict[str, list[Node]] = {}
        for n in self.nodes:
            for k in n.inputs:
                consumers.setdefault(k, []).append(n)
        res_nodes = {k for _, k in results} | set(self.memory_writes.values())
        for k in res_nodes:
            consumers.setdefault(k, []).append(Node("Result", "Result", [k], ""))
        by_name = {names[0]: key for key, names, _ in self.params}
        return Program(self.params, self.nodes, self.consts, self.stats, results, consumers, self.has_fq, source,
                       self.folded, self.refused, self.rewrites,
                       memory={by_name[n]: m for n, m in memory.items()},
                       memory_writes={by_name[n]: self.memory_writes[n] for n in memory})
