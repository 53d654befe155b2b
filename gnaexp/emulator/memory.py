"""Memory layers in the plan: data movement (views, crops, copies) and Concat with the plugin's
ConcatAlignFilter and its one-scale-factor rule (docs/gna-rules.md §3.5)."""

from __future__ import annotations

import numpy as np

from gnaexp.emulator import plugin_checks
from gnaexp.emulator import pwl as pw
from gnaexp.emulator.context import BuildContext, Requantize
from gnaexp.emulator.ir_reader import Node, Program, root_key
from gnaexp.emulator.moves import MOVE_OPS, move_function, move_shape
from gnaexp.emulator.plan_row import Extras, Lane, PlanRow
from gnaexp.emulator.plan_types import MOVE, Step, TInfo
from gnaexp.core.errors import BadInput

ALIGN_FILTER_W_SF = 16384.0  # ScaleFactorForQuantization(unit weights, MAX_VAL_2B_WEIGHT) = 16384/1


def add_move(ctx: BuildContext, node: Node) -> None:
    """A data movement: the values and their scale factor pass unchanged."""
    src = ctx.info[ctx.get(node.inputs[0])]
    args = [ctx.prog.consts.get(k) for k in node.inputs[1:]]
    shape = move_shape(node.op, node.attrs, src.shape, args)
    move = move_function(node.op, node.attrs, src.shape, args)
    ctx.steps.append(Step("move", node.name, [ctx.get(node.inputs[0])], node.out, lambda x, m=move: (m(x), 0),
                          lowered=MOVE))
    ctx.info[node.out] = TInfo(src.sf, src.lane, shape, src.root, src.act, src.from_input, src.via_concat, src.param)


def _producer_op(prog: Program, key: str) -> str | None:
    """The op that computed a tensor, skipping what fuses with a convolution (activations, data movement)."""
    root = root_key(prog, key, MOVE_OPS | {"Relu", "FakeQuantize"})
    return next((n.op for n in prog.nodes if n.out == root), None)


def _align_filter(ctx: BuildContext, node: Node, i: int, key: str, offset: int, size: int) -> str:
    """The ConcatAlignFilter the plugin puts before concat input i (§3.5): an affine layer with unit weights
    (w_sf 16384, or 1 with FakeQuantize: scale_factor_calc.cpp), then the identity that takes back the input's
    sf (getActivationScale: a ConcatAlignFilter on the way back sets noChange). Exact with w_sf 16384; with
    w_sf 1 the identity's last flat segment starts at 32764, so 32764–32766 come out as 32767."""
    ti = ctx.info[key]
    w_sf = 1.0 if ctx.prog.has_fake_quantize else ALIGN_FILTER_W_SF
    curve = pw.build_identity(ti.sf * w_sf, ti.sf, release=ctx.release)
    name = f"{node.name}/ConcatAlignFilter_{i}"
    new = f"{key}#{name}"
    ctx.steps.append(Step("pwl", name, [key], new, lambda x, c=pw.evaluator(curve), m=w_sf: c(x * m),
                          PlanRow(name, "ConcatAlignFilter (inserted)", "i16", Lane.INT16, ti.sf, w_sf, ti.sf,
                                  Extras(pwl=curve.to_json())), pw.lowered(curve, scale=w_sf)))
    ctx.info[new] = TInfo(ti.sf, Lane.INT16, ti.shape, act=ti.act)
    ctx.notes.append(f"concat {node.name!r}: input {i} sits at byte {offset} with {size} bytes, so the GNA plugin "
                     f"inserts a ConcatAlignFilter (unit-weight affine layer, w_sf {w_sf:g}, then an identity back "
                     f"to sf {ti.sf:g}); emulated")
    return new


def add_concat(ctx: BuildContext, node: Node) -> None:
    prog, info = ctx.prog, ctx.info
    keys = [ctx.need16(k) for k in node.inputs]
    for i, offset, size in plugin_checks.concat_align_filter_inputs([info[k] for k in keys]):
        keys[i] = _align_filter(ctx, node, i, keys[i], offset, size)
    tis = [info[k] for k in keys]
    axis = int(node.attrs["axis"]) % len(tis[0].shape)
    sfs = [t.sf for t in tis]
    if len(set(sfs)) > 1:
        inputs = [t for t in tis if t.param is not None]
        if len({t.sf for t in inputs}) > 1:
            raise BadInput(
                f"Two Input layers feeding concat {node.name!r} have different scales in concat "
                f"({sorted({t.sf for t in inputs})}): give every network input of a concat the same scale factor"
            )
        if inputs:
            src = inputs[0].sf
        elif prog.has_fake_quantize and any(s != 1.0 for s in sfs):
            src = min(s for s in sfs if s != 1.0)
        else:
            cand = [t.sf for t in tis if t.act is None and t.sf != 1.0] or [s for s in sfs if s != 1.0] or sfs
            src = cand[0]
        for t in tis:
            if t.sf != src:
                if t.act is None:
                    raise BadInput(f"cannot requantize input to concat {node.name!r}: no activation above it")
                raise Requantize(t.act, src, f"concat {node.name!r}: requantized {t.act!r} from sf {t.sf:g} to "
                                             f"{src:g} (one scale factor across a concat's inputs)")
    shape = list(tis[0].shape)
    shape[axis] = sum(t.shape[axis] for t in tis)
    ctx.steps.append(Step("concat", node.name, keys, node.out,
                          lambda *xs, a=axis: (np.concatenate(xs, axis=a + 1), 0),
                          PlanRow(node.name, "Concat", "i16", Lane.INT16, sfs[0], None, sfs[0],
                                  Extras(axis=axis, rank=len(shape))), MOVE))
    info[node.out] = TInfo(sfs[0], Lane.INT16, tuple(shape), from_input=all(t.from_input for t in tis), via_concat=True)
    ctx.notes.extend(plugin_checks.concat_axis_warning(node, [info[ctx.get(k)] for k in node.inputs]))
    ctx.notes.extend(plugin_checks.conv_concat_axis_warning(
        node, info[ctx.get(node.inputs[0])].shape, [_producer_op(prog, k) == "Convolution" for k in node.inputs]))
