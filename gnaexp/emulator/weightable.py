"""Convolution and fully connected layers in the plan: weight quantization (docs/gna-rules.md §3.2) and the
1-D convolution primitive on interleaved memory (§4); 2-D convolutions in ``conv2d.py``."""

from __future__ import annotations

import numpy as np

from gnaexp.emulator import conv as cv
from gnaexp.emulator import porting as porting_rules
from gnaexp.emulator import primitives
from gnaexp.emulator.context import BuildContext
from gnaexp.emulator.ir_reader import Node, Program, downstream
from gnaexp.emulator.plan_row import Extras, Lane
from gnaexp.emulator.plan_types import Lowered, Step, TInfo
from gnaexp.emulator.quantize import quantize_weightable
from gnaexp.core.errors import BadInput


def _dst_stats(prog: Program, node: Node) -> tuple[int, float, float] | None:
    down = downstream(prog, node.out)
    if len(down) == 1 and down[0].op == "FakeQuantize":
        fq = down[0]
        # calculateWeightsReducerFromDstStats reads GetMinValues()/GetMaxValues(), whose default is the FQ's
        # input range (frontend/quantized_layer_params.hpp: input = true)
        return (int(fq.attrs["levels"]), float(np.min(prog.consts[fq.inputs[1]])),
                float(np.max(prog.consts[fq.inputs[2]])))
    return None


def add_conv(ctx: BuildContext, node: Node) -> None:
    prog, info, steps, need16, notes = ctx.prog, ctx.info, ctx.steps, ctx.need16, ctx.notes
    layout, precision, porting = ctx.layout, ctx.weight_precision(node.name), ctx.porting
    a = node.attrs
    if str(a.get("auto_pad", "explicit")).lower() in ("same_upper", "same_lower"):
        raise BadInput(f"convolution {node.name!r}: auto_pad {a['auto_pad']} is not supported by GNA; export "
                         "with explicit pads")
    if any(int(d) != 1 for d in a.get("dilations", [])):
        raise BadInput(f"convolution {node.name!r}: dilation must be 1 on GNA")
    k = need16(node.inputs[0])
    pads = porting_rules.conv_pads(node)
    if pads:
        if not porting:
            raise BadInput(f"convolution {node.name!r}: Padding isn't supported by GNA (pads must be 0); "
                             f"{porting_rules.PAD_FIX}")
        k = porting_rules.zero_pad_step(node, k, pads, info, steps)
        notes.append(f"convolution {node.name!r}: pads {pads} written as zeros in front of a valid convolution "
                     "(porting rewrite; exact)")
    ti = info[k]
    if node.inputs[1] not in prog.consts:
        raise BadInput(f"convolution {node.name!r}: weights must be constant")
    w = np.asarray(prog.consts[node.inputs[1]], dtype=np.float32)
    stats = prog.stats.get(node.inputs[1])
    shape = ti.shape
    if len(shape) == 4 and not (shape[2] == 1 and w.shape[2] == 1):  # H > 1 or a taller kernel: conv2d.py
        from gnaexp.emulator.conv2d import add_conv2d

        if shape[0] != 1:
            raise BadInput(f"convolution {node.name!r}: GNA batch must be 1, model input has batch {shape[0]}")
        add_conv2d(ctx, node, k, w, stats, node.bias, _dst_stats(prog, node))
        return
    if len(shape) == 4 and shape[2] == 1 and w.shape[2] == 1:
        w3 = w[:, :, 0, :]
        stride = int(a["strides"][1])
        if int(a["strides"][0]) != 1:
            raise BadInput(f"convolution {node.name!r}: 2-D convolution supported only with H=1")
    elif len(shape) == 3:
        w3, stride = w, int(a["strides"][0])
    else:
        raise BadInput(f"convolution {node.name!r}: only 1-D convolutions (or 2-D with H=1) are supported, "
                         f"input shape {shape}")
    if shape[0] != 1:
        raise BadInput(f"convolution {node.name!r}: GNA batch must be 1, model input has batch {shape[0]}")
    f, c, kk = w3.shape
    width = shape[-1]
    if stats is not None and len(w.shape) == 4:
        from gnaexp.emulator.quantize import WeightStats
        stats = WeightStats(stats.levels, stats.out_low[:, :, 0, :], stats.out_high[:, :, 0, :], stats.source,
                            None if stats.raw is None else stats.raw[:, :, 0, :])
    bias = node.bias
    if porting and (f < cv.CONV_FILTERS_DIVIDER or f % cv.CONV_FILTERS_DIVIDER):
        w3, bias, stats = porting_rules.pad_filters(w3, bias, stats)
        notes.append(f"convolution {node.name!r}: {f} filters padded with zero filters to {w3.shape[0]} "
                     f"(GNA needs a multiple of {cv.CONV_FILTERS_DIVIDER}; porting rewrite; the extra outputs are "
                     "dropped; exact)")
    try:
        geo = cv.geometry(c, width, kk, stride, w3.shape[0])
    except ValueError as exc:  # named: the layer may come from a plugin rewrite (e.g. DecomposeMVN's _Avg2)
        raise BadInput(f"convolution {node.name!r}: {exc}") from None
    wq = quantize_weightable(w3, bias, ti.sf, kind="conv", precision=precision, stats=stats, c_in=c,
                             dst_stats=_dst_stats(prog, node), forced_out_sf=ctx.overrides.get(node.name), release=ctx.release)
    flt = cv.filter_blocks(cv.interleave_filters(wq.weights, geo.nfc), geo.step)  # prepared once, not per chunk
    legacy = layout == "legacy-concat" and ti.from_input and ti.via_concat
    out_shape = (1, f, 1, geo.logical_positions) if len(shape) == 4 else (1, f, geo.logical_positions)

    # NCW data is interleaved inside the primitive; the legacy layout reads the NCW buffer as the memory itself
    kernel = cv.ConvKernel(flt, wq.bias, geo.positions, interleave=None if legacy else (geo.channels, geo.width,
                                                                                          geo.stride))

    def run(x, kernel=kernel, geo=geo, out_shape=out_shape):
        n = x.shape[0]
        # the host's transposition drops the positions past the data
        o, sat = kernel(x.reshape(n, geo.channels * geo.width), keep=geo.logical_positions)
        if geo.filters != out_shape[1]:  # zero filters added by porting: their outputs are dropped
            o = o.reshape(n, geo.filters, -1)[:, :out_shape[1]]
        return o.reshape((n,) + out_shape), sat

    def run_into(x, dest, kernel=kernel, geo=geo):
        n = x.shape[0]
        sums = dest.view()
        sums.shape = (n, geo.filters, geo.logical_positions)  # raises rather than write into a copy
        return kernel(x.reshape(n, geo.channels * geo.width), keep=geo.logical_positions, out=sums)[1]

    row = wq.row(node.name, "Convolution", extras=Extras(
        geometry={"nfc": geo.nfc, "n_inputs": geo.n_inputs, "n_outputs": geo.n_outputs},
        input_layout="NCW buffer read as NWC (legacy, no host transpose)" if legacy else "NWC (interleaved)"))
    whole = geo.filters == out_shape[1]  # no porting filters to drop: the sums are the output as they are
    lowered = Lowered("conv", scalars=(geo.channels * geo.width, geo.logical_positions, out_shape[1]), kernel=kernel)
    steps.append(Step("conv", node.name, [k], node.out, run, row, lowered, run_into=run_into if whole else None))
    info[node.out] = TInfo(wq.out_sf, Lane.INT32, out_shape, root=node.name)


def add_fc(ctx: BuildContext, node: Node) -> None:
    prog, info, steps, need16, precision = ctx.prog, ctx.info, ctx.steps, ctx.need16, ctx.weight_precision(node.name)
    a = node.attrs
    if node.inputs[1] not in prog.consts or node.inputs[0] in prog.consts:
        raise BadInput(f"MatMul {node.name!r}: only data × constant weights (fully connected) is supported")
    if a.get("transpose_a"):
        raise BadInput(f"MatMul {node.name!r}: transpose_a is not supported")
    k = need16(node.inputs[0])
    ti = info[k]
    b = np.asarray(prog.consts[node.inputs[1]], dtype=np.float32)
    if b.ndim != 2:
        raise BadInput(f"MatMul {node.name!r}: weights must be 2-D, got {b.shape}")
    rows = b if a.get("transpose_b") else b.T
    stats = prog.stats.get(node.inputs[1])
    if stats is not None and not a.get("transpose_b"):
        from gnaexp.emulator.quantize import WeightStats
        stats = WeightStats(stats.levels, stats.out_low.T, stats.out_high.T, stats.source,
                            None if stats.raw is None else stats.raw.T)
    wq = quantize_weightable(rows, node.bias, ti.sf, kind="fc", precision=precision, stats=stats,
                             dst_stats=_dst_stats(prog, node), forced_out_sf=ctx.overrides.get(node.name), release=ctx.release)
    out_shape = ti.shape[:-1] + (rows.shape[0],)
    layer = primitives.Affine(wq.weights, wq.bias, wq.multipliers)  # weights prepared once, not per chunk

    def run(x, layer=layer):
        acc, sat = layer(x.reshape(-1, x.shape[-1]))
        return acc.reshape(x.shape[:-1] + (acc.shape[-1],)), sat

    lowered = None
    if layer.exact_in_float64 and layer.mult is None:  # the float64 sums are exact in any order
        lowered = Lowered("fc", (cv.compact(np.ascontiguousarray(layer.wt.T)), layer.bias))
    steps.append(Step("fc", node.name, [k], node.out, run, wq.row(node.name, "FullyConnected"), lowered))
    info[node.out] = TInfo(wq.out_sf, Lane.INT32, out_shape, root=node.name)
