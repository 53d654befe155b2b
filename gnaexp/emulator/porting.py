"""What a porting team does with layers the GNA plugin refuses as exported, and the per-op support report.

Four kinds of fix, each exact up to float32 rounding and each named in the plan's notes:
- **conversion as the model converter does it**: a layer norm written with ReduceMean inside the network is
  refused by the 2023 plugin when it reads the ONNX file itself (see ``mvn.LAYER_NORM_NOTE``). A porting team
  converts the model to IR first (``ovc``, ``openvino.convert_model``), whose MOC transformations fuse the
  pattern into an MVN [S: src/common/transformations/src/transformations/common_optimizations/mvn_fusion.cpp,
  moc_transformations.cpp]; the plugin's DecomposeMVN then decomposes it. With porting the emulator reads the
  model after the same MOC transformations (``convert_as_converter``).
- **host ops**: a reflect Pad reading the network input, and a ReduceMean whose result goes only to network
  outputs, have no GNA layer (the 2023 plugin's layer creators have no Pad or Reduce layer, so it refuses
  them at load [S: src/plugins/intel_gna/src/gna_graph_compiler.cpp, ``CreateLayerPrimitive`` creator table]).
  They run on the host in float32, before the input is quantized and after the output is dequantized. The
  result is labelled "emulated, with host pre/post-processing".
- **padded 1-D convolutions**: the 1-D primitive has no padding ("Padding isn't supported by GNA",
  ``finalizeConvolution1DPrimitive``); the plugin's ``ConvertPaddedToValidConv`` writes the pads as zeros
  concatenated around the input [S: src/plugins/intel_gna/src/transformations/
  convert_padded_to_valid_convolution.cpp]. The emulator writes the same zeros (int16 zeros are exact).
  [I: the plugin's pass matches the NHWC-transposed pattern; for an NCW export the team would export the
  zero padding explicitly, which computes the same values.]
- **filter counts** that are not a multiple of 4 (``convFiltersNumDivider``, gna_limitations.hpp): zero
  filters are appended and their outputs dropped; a zero filter does not change the weight scale (it is set by
  the largest |weight|), so the kept outputs are those of the original layer.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from gnaexp.emulator.context import BuildContext
from gnaexp.emulator.ir_reader import ACTIVATION_OPS, DYNAMIC, ELTWISE_OPS, HOST_OPS, Node, Program, root_key
from gnaexp.emulator.moves import MOVE_OPS, move_function, move_shape
from gnaexp.emulator.mvn import LAYER_NORM_NOTE
from gnaexp.emulator.plan_row import Lane, PlanRow
from gnaexp.emulator.plan_types import MOVE, Step, TInfo
from gnaexp.core.errors import BadInput

HOST_LABEL = "emulated, with host pre/post-processing"


def emulated_label(host_processing: bool) -> str:
    """How an emulated result is labelled: with the host parts named when there are any."""
    return HOST_LABEL if host_processing else "emulated"
_PORTING = "emulate with porting (--porting on gnaexp run, diagnose, sweep, bundle and emulate; porting=True in Python)"
PAD_FIX = ("export the padding as explicit zeros (e.g. torch.nn.functional.pad before a padding=0 conv), or "
           f"{_PORTING} to apply that rewrite")
HOST_FIX = (f"{_PORTING} to run it on the host "
            "before/after the GNA part, as a porting team would")


CONVERTER_NOTE = ("porting: read as the model converter writes the IR (ovc, openvino.convert_model: MOC "
                  "transformations, moc_transformations.cpp), which fuses the layer norm{names} into an MVN "
                  "(mvn_fusion.cpp) that the plugin's DecomposeMVN decomposes; the 2023 plugin refuses the "
                  "file as given")


def inner_reduce_means(prog: Program) -> list[str]:
    """ReduceMean ops inside the network (not only feeding outputs): refused even with host processing."""
    return [n.name for n in prog.nodes if n.op == "ReduceMean" and not _feeds_only_results(prog, n.out)]


def convert_as_converter(ov_model: Any) -> Any:
    """A copy of ``ov_model`` after the MOC transformations ``ovc`` applies when it writes an IR."""
    from openvino._offline_transformations import apply_moc_transformations

    converted = ov_model.clone()
    apply_moc_transformations(converted, cf=False)
    return converted


def read_as_converter(ov_model: Any, prog: Program, strict: bool = True) -> tuple[Program, str]:
    """(the program of ``ov_model`` as the converter writes it, the note saying so, naming the layer norm's
    ReduceMeans of ``prog``, the program read as given)."""
    from gnaexp.emulator.ir_reader import read_program

    names = ", ".join(inner_reduce_means(prog)[:3])
    return (read_program(convert_as_converter(ov_model), strict=strict),
            CONVERTER_NOTE.format(names=f" ({names})" if names else ""))


def host_fed_params(prog: Program) -> set[str]:
    """Network inputs that reach a host op through data movement only (quantized after the host op)."""
    out = set()
    for key, _, _ in prog.params:
        todo = [key]
        while todo:
            k = todo.pop()
            for c in prog.consumers.get(k, []):
                if c.op in HOST_OPS:
                    out.add(key)
                elif c.op in MOVE_OPS and c.inputs[0] == k:
                    todo.append(c.out)
    return out


def _feeds_only_results(prog: Program, key: str) -> bool:
    for c in prog.consumers.get(key, []):
        if c.op == "Result":
            continue
        if (c.op in MOVE_OPS or c.op in HOST_OPS) and c.inputs[0] == key and _feeds_only_results(prog, c.out):
            continue
        return False
    return True


def _host_position(prog: Program, node: Node, input_lane: Lane) -> str | None:
    if input_lane is Lane.HOST:
        return "pre"
    if _feeds_only_results(prog, node.out):
        return "post"
    return None


def host_op_problem(node: Node) -> str | None:
    """Why an op of HOST_OPS cannot run on the host as written, or None."""
    if node.op == "Pad" and str(node.attrs.get("pad_mode", "constant")) not in ("reflect", "edge", "symmetric",
                                                                                "constant"):
        return f"pad mode {node.attrs.get('pad_mode')!r} is not known"
    return None


def host_step(ctx: BuildContext, node: Node) -> None:
    """Run a Pad or ReduceMean in float32 on the host, before or after the GNA part."""
    prog, info, steps, get, porting = ctx.prog, ctx.info, ctx.steps, ctx.get, ctx.porting
    k = get(node.inputs[0])
    ti = info[k]
    where = _host_position(prog, node, ti.lane)
    if not porting:
        raise BadInput(f"{node.op} {node.name!r}: the GNA plugin has no {node.op} layer and refuses the network; "
                         + HOST_FIX)
    if where is None:
        raise BadInput(f"{node.op} {node.name!r} lies inside the network: the GNA plugin has no {node.op} layer, "
                         "and only ops right after the inputs or right before the outputs can run on the host; "
                         "remove it or move it to the edge of the network"
                         + (LAYER_NORM_NOTE if node.op == "ReduceMean" else ""))
    problem = host_op_problem(node)
    if problem:
        raise BadInput(f"{node.op} {node.name!r}: {problem}")
    args = [prog.consts.get(i) for i in node.inputs[1:]]
    if any(a is None for a in args):
        raise BadInput(f"{node.op} {node.name!r}: its parameters must be constant")
    lead_sf = 1.0 if ti.lane is Lane.HOST else ti.sf

    if node.op == "Pad":
        begin, end = (np.asarray(a, dtype=np.int64).reshape(-1) for a in args[:2])
        mode = str(node.attrs.get("pad_mode", "constant"))
        value = float(np.asarray(args[2]).reshape(-1)[0]) if len(args) > 2 else 0.0

        shape = tuple(d + int(b) + int(e) for d, b, e in zip(ti.shape, begin, end))
        widths = [(0, 0)] + [(int(b), int(e)) for b, e in zip(begin, end)]
        inside = (slice(None),) + tuple(slice(int(b), int(b) + d) for b, d in zip(begin, ti.shape))

        # np.pad's values without its per-call set-up: a filled array, or for the modes that copy values (reflect,
        # symmetric, edge, wrap) the values scaled into the inside of the output and each padded axis's margins
        # then copied from it, through the source index of each margin position along the axis, made once
        reads: list[tuple[int, tuple, np.ndarray, np.ndarray, int, int]] | None = None
        copying: dict[str, Any] = {"mode": mode}  # np.pad's mode names are literals to the type checker
        if mode in ("reflect", "symmetric", "edge", "wrap") and min(min(w) for w in widths) >= 0:
            try:
                reads = []
                for axis, (b, e) in enumerate(widths):
                    if b or e:
                        index = np.pad(np.arange(shape[axis - 1] - b - e), (b, e), **copying) + b  # in the output
                        # the margins are read over the axes padded before this one whole, the others' insides
                        region = tuple(slice(None) if a <= axis else inside[a] for a in range(len(widths)))
                        reads.append((axis, region, index[:b], index[len(index) - e:], b, e))
            except ValueError:  # e.g. an empty axis: np.pad itself says so when the step runs
                reads = None

        def pad(x, widths=widths, inside=inside, shape=shape, mode=mode, value=value, sf=lead_sf, reads=reads):
            if reads is not None:
                out = np.empty((len(x),) + shape, dtype=np.float32)
                np.divide(np.asarray(x, dtype=np.float32), np.float32(sf), out=out[inside])
                for axis, region, left, right, b, e in reads:
                    part = out[region]
                    margin = [slice(None)] * part.ndim
                    if b:
                        margin[axis] = slice(0, b)
                        part[tuple(margin)] = np.take(part, left, axis=axis)
                    if e:
                        margin[axis] = slice(part.shape[axis] - e, None)
                        part[tuple(margin)] = np.take(part, right, axis=axis)
                return out, 0
            x = np.asarray(x, dtype=np.float32) / np.float32(sf)
            if mode == "constant" and min(min(w) for w in widths) >= 0:
                out = np.full((len(x),) + shape, np.float32(value), dtype=np.float32)
                out[inside] = x
                return out, 0
            kw = {"constant_values": value} if mode == "constant" else {}
            return np.pad(x, widths, mode=mode, **kw).astype(np.float32), 0

        run: Callable[..., tuple[np.ndarray, int]] = pad
        # a pad of the input's own values (pre-processing: no scale) only moves them: a compiled plan runs it as
        # a data movement
        moves = reads is not None and lead_sf == 1.0

    else:  # ReduceMean
        axes = tuple(int(a) % len(ti.shape) for a in np.asarray(args[0]).reshape(-1))
        keep = bool(node.attrs.get("keep_dims", False))

        def mean(x, axes=axes, keep=keep, sf=lead_sf):
            x = np.asarray(x, dtype=np.float32) / np.float32(sf)
            return np.mean(x, axis=tuple(a + 1 for a in axes), keepdims=keep, dtype=np.float32), 0

        run = mean
        moves = False

        shape = tuple(1 if i in axes else d for i, d in enumerate(ti.shape) if keep or i not in axes)
    steps.append(Step("host", node.name, [k], node.out, run,
                      PlanRow(node.name, f"{node.op} (host, float32, {where}-processing)", "f32 (host)", Lane.HOST,
                              None if ti.lane is Lane.HOST else ti.sf, None, 1.0), MOVE if moves else None))
    info[node.out] = TInfo(ti.sf if ti.lane is Lane.HOST else 1.0, Lane.HOST, shape, from_input=ti.from_input,
                           param=ti.param)


def conv_pads(node: Node) -> list[tuple[int, int]]:
    """(begin, end) pads per spatial axis of a convolution, [] when it has none."""
    begin = [int(p) for p in node.attrs.get("pads_begin", [])]
    end = [int(p) for p in node.attrs.get("pads_end", [])]
    return list(zip(begin, end)) if any(begin) or any(end) else []


def zero_pad_step(node: Node, key: str, pads: list[tuple[int, int]], info: dict[str, TInfo],
                  steps: list[Step]) -> str:
    """Zeros around a 16-bit conv input (ConvertPaddedToValidConv): a data movement, exact."""
    ti = info[key]
    lead = len(ti.shape) - len(pads)
    attrs = {"pads_begin": [0] * lead + [b for b, _ in pads], "pads_end": [0] * lead + [e for _, e in pads]}
    new = f"{key}#{node.name}/pad"
    steps.append(Step("move", f"{node.name}/zero-pad", [key], new,
                      lambda x, m=move_function("ZeroPad", attrs, ti.shape, []): (m(x), 0), lowered=MOVE))
    info[new] = TInfo(ti.sf, Lane.INT16, move_shape("ZeroPad", attrs, ti.shape, []), act=ti.act,
                      from_input=ti.from_input, via_concat=ti.via_concat, param=ti.param)
    return new


def pad_filters(w: np.ndarray, bias: np.ndarray | None, stats: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    """Zero filters appended up to the next multiple of 4 (at least 4)."""
    from gnaexp.emulator.conv import CONV_FILTERS_DIVIDER as D
    f = w.shape[0]
    extra = max(D, -(-f // D) * D) - f
    w = np.concatenate([w, np.zeros((extra,) + w.shape[1:], dtype=w.dtype)])
    b = np.zeros(f, dtype=np.float32) if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    b = np.concatenate([b, np.zeros(extra, dtype=np.float32)])
    if stats is not None:  # the extra filters copy the first filter's range: the weight scale does not change
        stats = type(stats)(stats.levels, np.concatenate([stats.out_low, np.repeat(stats.out_low[:1], extra, 0)]),
                            np.concatenate([stats.out_high, np.repeat(stats.out_high[:1], extra, 0)]), stats.source)
    return w, b, stats


def _conv_status(node: Node, prog: Program) -> tuple[str, str]:
    from gnaexp.emulator.conv import CONV_FILTERS_DIVIDER as D
    fixes = []
    if conv_pads(node):
        fixes.append("pads written as zeros before a valid convolution (refused as exported: \"Padding isn't "
                     "supported by GNA\", finalizeConvolution1DPrimitive)")
    w = prog.consts.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if w is not None and (w.shape[0] < D or w.shape[0] % D):
        fixes.append(f"{w.shape[0]} filters padded to a multiple of {D} with zero filters (refused as exported: "
                     "kConvFiltersNumDivider, gna_limitations.hpp)")
    bias = " with its bias fused" if node.bias is not None else ""
    if fixes:
        return "rewritten", "GNA 1-D convolution" + bias + "; porting rewrite: " + "; ".join(fixes)
    return "native", "GNA 1-D convolution" + bias + " (finalizeConvolution1DPrimitive)"


def _conv2d_row(node: Node, shape: list, kernel: tuple, porting: bool) -> dict[str, str]:
    """A 4-D convolution's row: which way the plugin takes it (conv2d.py) and, on the 2-D primitive, the
    GNA 3.0 validator's verdict."""
    from gnaexp.emulator import conv2d
    from gnaexp.emulator.conv import GRAPH_COMPILER

    (_, c, h, w), (f, _, kh, kw) = shape, kernel
    sh, sw = (int(s) for s in node.attrs.get("strides", [1, 1])[-2:])
    how = conv2d.way(h, w, c, kh, kw, sh, sw)
    geometry = f"input H×W {h}×{w}, {c} channels, kernel {kh}×{kw}, strides {sh}×{sw}"
    if how == "swap":
        return {"op": "Convolution", "name": node.name, "status": "rewritten",
                "how": f"a 2-D convolution ({geometry}) of input width 1: H and W swapped, a 1-D convolution along H",
                "source": GRAPH_COMPILER}
    if how == "mapped":
        return {"op": "Convolution", "name": node.name, "status": "rewritten",
                "how": f"a 2-D convolution ({geometry}) mapped to a 1-D convolution (isMappableFrom2DTo1D)",
                "source": GRAPH_COMPILER}
    padded = (max(8, -(-f // 8) * 8), max(8, -(-c // 8) * 8)) if porting else (f, c)
    errors = conv2d.validator_errors(h, w, padded[1], kh, kw, padded[0], sh, sw)
    if errors:
        return {"op": "Convolution", "name": node.name, "status": "refused", "by": "plugin",
                "how": f"a 2-D convolution ({geometry}): the GNA 3.0 2-D convolution refuses it: " + "; ".join(errors)
                + ("" if porting else "; porting pads channels and kernels to multiples of 8 where only that fails"),
                "source": conv2d.LIMITS}
    rewrite = "; porting rewrite: input channels and kernels padded with zeros to multiples of 8" \
        if padded != (f, c) else ""
    return {"op": "Convolution", "name": node.name, "status": "rewritten" if rewrite else "native",
            "how": f"GNA 3.0 2-D convolution ({geometry}; finalizeConvolution2DPrimitive, k2d "
                   f"{conv2d.k2d(h, w, c, kh, kw, sh, sw):g}){rewrite}", "source": GRAPH_COMPILER}


def _blocker(problem: str) -> str:
    """Who stops an op: "input shape" (a dynamic shape to fix), else the emulator."""
    return "input shape" if DYNAMIC in problem else "emulator"


def _refused_row(prog: Program, node: Node) -> dict[str, str]:
    """An op the emulator could not read: what the 2023.1 plugin does with it, or the plugin's refusal."""
    from gnaexp.emulator.plugin_ops import PLUGIN_RUNS, plugin_refusal

    problem = prog.refused.get(node.name, "")
    if node.op in PLUGIN_RUNS:
        what, source = PLUGIN_RUNS[node.op]
        how = f"not modelled by the emulator yet ({problem}); the plugin: {what}" if problem else \
            f"not modelled by the emulator yet; the plugin: {what}"
        return {"op": node.op, "name": node.name, "status": "refused", "how": how, "source": source,
                "by": "emulator"}
    if problem:  # an op the plugin takes in another form (e.g. dynamic shapes, computed indices)
        return {"op": node.op, "name": node.name, "status": "refused", "how": problem, "source": "",
                "by": _blocker(problem)}
    message, source = plugin_refusal(node.op, node.name)
    return {"op": node.op, "name": node.name, "status": "refused", "how": f"the GNA plugin refuses it: {message}",
            "source": source, "by": "plugin"}


def _rewrite_row(rw: Any, part_rows: list[dict[str, str]]) -> dict[str, str]:
    """One row for a recurrent op the plugin rewrites: its parts' first blocker, else how it was rewritten."""
    if rw.problem:
        return {"op": rw.op, "name": rw.name, "status": "refused", "how": rw.problem, "source": rw.source,
                "by": _blocker(rw.problem) if "not modelled" in rw.problem or DYNAMIC in rw.problem else "plugin"}
    blocked = next((r for r in part_rows if r["status"] == "refused"), None)
    if blocked is not None:
        return {"op": rw.op, "name": rw.name, "status": "refused", "source": blocked.get("source", ""),
                "how": f"{rw.how}; but its part {blocked['name']!r} ({blocked['op']}) is refused: {blocked['how']}",
                "by": blocked.get("by", "")}
    counts: dict[str, int] = {}
    for r in part_rows:
        counts[r["op"]] = counts.get(r["op"], 0) + 1
    parts = ", ".join(f"{n} {op}" for op, n in sorted(counts.items()))
    return {"op": rw.op, "name": rw.name, "status": "rewritten", "how": f"{rw.how}: {parts}", "source": rw.source}


def support_report(prog: Program, porting: bool = True) -> list[dict[str, str]]:
    """Per operation of the model: what the GNA plugin does with it (native, decomposed, rewritten by the
    plugin's load-time transformations or by porting, run on the host, data movement, folded, or refused, by
    the plugin or not modelled by the emulator), and the source of that answer."""
    part_of = {n: rw for rw in prog.rewrites for n in rw.nodes}
    parts: dict[str, list[dict[str, str]]] = {rw.name: [] for rw in prog.rewrites}
    from gnaexp.emulator.state_layers import support_row

    rows: list[dict[str, str]] = [support_row(m) for m in prog.memory.values()]
    placed: set[str] = set()
    by_name = {rw.name: rw for rw in prog.rewrites}
    host_fed = host_fed_params(prog)
    for node in prog.nodes:
        if node.name in by_name and by_name[node.name].problem:  # a recurrent op left as it was: why
            rows.append(_rewrite_row(by_name[node.name], []))
            continue
        row = _node_row(prog, node, porting, host_fed)
        rw = part_of.get(node.name) or part_of.get(node.name.rsplit("/", 1)[0])
        if rw is None:
            rows.append(row)
            continue
        parts[rw.name].append(row)
        if rw.name not in placed:
            placed.add(rw.name)
            rows.append({"rewrite": rw.name})  # filled in below, at the place of its first part
    rows = [_rewrite_row(by_name[r["rewrite"]], parts[r["rewrite"]]) if "rewrite" in r else r for r in rows]
    for op, n in sorted(prog.folded.items()):
        rows.append({"op": op, "name": f"{n} on constants", "status": "folded",
                     "how": "computed once at load (constant and shape subgraphs)"})
    return rows


def _node_row(prog: Program, node: Node, porting: bool, host_fed: set[str]) -> dict[str, str]:
    from gnaexp.emulator.activations import design, exponent_of

    op = node.op
    if node.name in prog.refused:
        return _refused_row(prog, node)
    if op == "Convolution":
        w = prog.consts.get(node.inputs[1]) if len(node.inputs) > 1 else None
        shape = node.attrs.get("input_shape", [])
        if w is not None and w.ndim == 4 and len(shape) == 4 and None not in shape and \
                not (shape[2] == 1 and w.shape[2] == 1):
            return _conv2d_row(node, shape, w.shape, porting)
        status, how = _conv_status(node, prog)
        if status == "rewritten" and not porting:
            status = "refused"
    elif op == "MatMul":
        status, how = "native", "fully connected (affine) layer" + (" with its bias fused" if node.bias is not None
                                                                    else "")
    elif op == "ScaleShift":
        status, how = "native", (f"{node.attrs.get('from', 'eltwise')} with a constant: a diagonal affine (ScaleShift) "
                                 "layer, data·w + b with int16 weights (gna_graph_compiler.cpp DiagonalPrimitive)")
        op = node.attrs.get("from", op)
    elif op in ELTWISE_OPS:
        status, how = "native", ("eltwise " + {"Add": "sum", "Multiply": "product", "Subtract": "sub (a sum with a "
                                               "negative weight)"}[op] + " as a diagonal affine layer "
                                 "(gna_graph_compiler.cpp EltwisePrimitive)")
        if node.attrs.get("from") == "Divide":
            op, how = "Divide", "x·y^−1 (ConvertDivide, convert_divide.cpp): " + how
    elif op == "Relu":
        status, how = "native", "PWL activation of the layer before it (make_pwl.cpp kActRelu)"
    elif op == "MaxPool":
        from gnaexp.emulator.pooling import _pool_problem

        shape_rank = len(node.attrs.get("kernel", [])) + 2
        problem = _pool_problem(node.attrs, shape_rank)
        status, how = ("refused", problem) if problem else \
            ("native", "GNA max pooling fused after the activation (PoolingPrimitive, ReorderActivationAndPooling)")
    elif op == "PRelu":
        slope = prog.consts.get(node.inputs[1]) if len(node.inputs) > 1 else None
        one = slope is not None and np.all(np.asarray(slope) == np.asarray(slope).reshape(-1)[0])
        status, how = ("native", "a leaky ReLU: PWL with the negative slope (ConvertPReluToReluIE, make_pwl.cpp "
                                 "kActLeakyRelu)") if one else \
            ("refused", "one slope per channel: the plugin's ReLU layer takes one negative slope")
    elif op == "Clamp":
        status, how = "native", (f"PWL activation of the layer before it, slope 1 on [{node.attrs['min']:g}, "
                                 f"{node.attrs['max']:g}] (make_pwl.cpp kActKaldiLstmClipping)")
    elif op in ACTIVATION_OPS:
        e = exponent_of(node, prog)
        kind = "Power" if op in ("Power", "Sqrt") else op
        try:
            segments = len(design(kind, e)[0]) if kind != "Power" or e not in (0.0, 1.0) else 0
        except ValueError as exc:  # the plugin's PWL search fails the same way, and the load with it
            return {"op": node.attrs.get("from", op), "name": node.name, "status": "refused", "by": "plugin",
                    "how": f"{op} {e:g} has no PWL: pwl_search fails (\"{exc}\"; "
                           + ("1/y is unbounded at 0 on the design domain [-16, 16]; " if e < 0 else "")
                           + "transformations/pwl_approximation.cpp)",
                    "source": "src/plugins/intel_gna/src/transformations/pwl_approximation.cpp @2023.1.0"}
        status, how = "decomposed", (f"PWL of {segments} segments designed to a 1 % error target "
                                     "(pwl_approximation.cpp)" if kind != "Power" else
                                     f"Power {e:g} as a PWL of {segments} segments (0.015 % target, domain "
                                     f"{'[-16, 16]' if e % 1 == 0 else '[0, 16]'}; outside it the output is flat)")
    elif op == "Concat":
        status, how = "native", "memory concatenation (one scale factor across inputs)"
    elif op == "FakeQuantize":
        status, how = "native", "quantization statistics (scale factors), not a layer"
    elif op in MOVE_OPS:
        status, how = "movement", "data movement: memory offsets or copies, no arithmetic"
    elif op in HOST_OPS:
        edge = root_key(prog, node.inputs[0]) in host_fed or _feeds_only_results(prog, node.out)
        if porting and edge:
            status, how = "host", (f"no GNA {op} layer (refused at load); runs in float32 on the host "
                                   + ("before the input is quantized" if op == "Pad" else
                                      "after the output is dequantized"))
        else:
            return {"op": op, "name": node.name, "status": "refused", "by": "plugin",
                    "how": f"the GNA plugin has no {op} layer" + ("" if edge else " and it lies inside the network"
                                                                  + (LAYER_NORM_NOTE if op == "ReduceMean" else ""))
                    + ("" if porting or (op == "ReduceMean" and not edge) else "; " + HOST_FIX),
                    "source": "src/plugins/intel_gna/src/gna_graph_compiler.cpp (CreateLayerPrimitive) @2023.1.0"}
    else:
        return _refused_row(prog, node)
    return {"op": op, "name": node.name, "status": status, "how": how}
