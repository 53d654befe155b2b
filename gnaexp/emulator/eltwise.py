"""Element-wise Add and Multiply of two network tensors, as the GNA plugin runs them (docs/gna-rules.md §3.7).

GNA has no element-wise unit: the plugin runs an eltwise as a *diagonal* affine layer
[S: src/plugins/intel_gna/src/gna_graph_compiler.cpp ``EltwisePrimitive``]:
- **Sum** (Sub: negative weight): out = in_w · w + in_b, where in_b is the input connected as the layer's bias
  (the 32-bit one when there is one) and w = FloatToInt16(min(weights scale, 32767)) is one integer repeated on
  the diagonal. Scale factors [S: frontend/scale_factor_calc.cpp, ``ScaleFactorPerLayer<EltwiseLayer*>``]: the
  output takes the bias input's scale sf_b, the weights scale is sf_b / sf_w. A weights scale that is not an
  integer is rounded: the w-input is then scaled by a slightly wrong factor (the plugin warns of accuracy loss);
  below 0.5 it rounds to 0 and the w-input contributes nothing (the plugin does not refuse; the plan notes it).
  Above 32767 the plugin raises the activation feeding the w-input instead (not modelled: refused with the
  reason).
- **Prod**: out = in_a · in_b with the second operand stored as the diagonal weights and zero bias; output
  scale sf_a · sf_b, 32-bit.
- **ScaleShift** (an Add/Multiply/Subtract/Divide with one constant operand, read as data·w + b by the IR
  reader; a Multiply followed by an Add of constants is one layer): a diagonal affine layer with its own
  weights [S: gna_graph_compiler.cpp ``DiagonalPrimitive``], quantized like any weightable layer
  (``ScaleFactorPerLayerWeightable``: w_sf = 16384 / max|w|, the bias cap), always with int16 weights
  [S: frontend/layer_quantizer.cpp ``GetWeightsPrecision``, isScaleShift]; 32-bit output at w_sf·in_sf.
  On data of rank < 4 an Add of a per-element constant is instead a Sum with a 16-bit Const input
  (``const_layer``; [S: convert_mul_or_add_finally.cpp]).
- **Sub** of two tensors: the Sum above with the subtrahend as the w-input and its integer weight negated.
Both inputs must be 16-bit for a product, at most one 32-bit for a sum: the plugin inserts identities on the
others [S: transformations/insert_identity_layer.cpp ``MarkIdentityCandidates``]. [I: when both sum inputs are
32-bit the identity goes on the first input.] The output is 32-bit: a consumer needing 16-bit data gets an
identity like any affine output.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from gnaexp.emulator import pwl as pw
from gnaexp.emulator.context import BuildContext, Requantize
from gnaexp.emulator.ir_reader import Node
from gnaexp.emulator.plan_row import Extras, Lane, PlanRow
from gnaexp.emulator.plan_types import Lowered, Step, TInfo
from gnaexp.emulator.quantize import quantize_weightable
from gnaexp.emulator.int_ranges import INT16_MAX, INT32_MAX, INT32_MIN
from gnaexp.core.errors import BadInput

DIAGONAL_W_SF = 16384.0  # a weight 1.0 quantized at 16384/max|w|


def _float_to_int16(v: float | np.floating) -> int:
    f = np.float32(v)
    return int(np.float32(f + np.float32(0.5)) if f >= 0 else np.float32(f - np.float32(0.5)))


def sum_weight(sf_w: float, sf_b: float) -> int:
    """The diagonal's integer weight for the w-input of a sum: FloatToInt16(min(sf_b/sf_w, 32767))."""
    return _float_to_int16(min(np.float32(sf_b) / np.float32(sf_w), np.float32(INT16_MAX)))


def _sat32(acc: np.ndarray) -> tuple[np.ndarray, int]:
    if acc.size == 0 or (acc.min() >= INT32_MIN and acc.max() <= INT32_MAX):  # counted only when some did
        return acc, 0
    n = int(np.count_nonzero((acc < INT32_MIN) | (acc > INT32_MAX)))
    np.clip(acc, INT32_MIN, INT32_MAX, out=acc)
    return acc, n


def add_step(ctx: BuildContext, node: Node) -> None:
    """Plan one eltwise Add/Multiply of two non-constant inputs."""
    prog, info, steps, get, need16, notes = ctx.prog, ctx.info, ctx.steps, ctx.get, ctx.need16, ctx.notes
    if any(k in prog.consts for k in node.inputs):
        if node.op != "Add" or all(k in prog.consts for k in node.inputs):
            raise BadInput(f"{node.op} {node.name!r} with a constant operand is not supported by the emulator: the "
                           "plugin folds it into the neighbouring affine layer (fuse it into the weights before "
                           "export)")
    keys = [const_layer(ctx, node, k) if k in prog.consts else k for k in node.inputs]
    shapes = [info[get(k)].shape for k in keys]
    if shapes[0] != shapes[1]:
        raise BadInput(f"{node.op} {node.name!r}: inputs of shapes {shapes[0]} and {shapes[1]}; the GNA eltwise "
                         "needs equal shapes (broadcast before export)")
    if node.op == "Multiply":
        a, b = need16(keys[0]), need16(keys[1])
        ta, tb = info[a], info[b]
        out_sf = float(np.float32(ta.sf) * np.float32(tb.sf))

        def product(x, y):
            return _sat32(np.asarray(x, dtype=np.float64) * np.asarray(y, dtype=np.float64))

        run: Callable[..., tuple[np.ndarray, int]] = product
        lowered = Lowered("prod")

        row = PlanRow(node.name, "Eltwise Prod (diagonal affine)", "i16", Lane.INT32, [ta.sf, tb.sf], tb.sf, out_sf)
        ins = [a, b]
    else:
        wide = [info[get(k)].lane is Lane.INT32 for k in keys]
        sub = node.op == "Subtract"
        if sub:  # a − b: b is the w-input (weight negated), a the bias input [I: a 32-bit b gets an identity]
            w_key = need16(keys[1])
            b_key = keys[0] if wide[0] else unit_diagonal(node.name, need16(keys[0]), info, steps, ctx.overrides)
        elif all(wide):
            w_key, b_key = need16(keys[0]), keys[1]  # [I] identity on the first input
        elif wide[0]:
            w_key, b_key = need16(keys[1]), keys[0]
        elif wide[1]:  # 16 + 32: the 32-bit input 1 is the bias as it is (ScaleFactorPerLayerEltwise swaps only
            # when input 0 is 32-bit; MarkIdentityCandidates and InsertDiagonalLayerPass leave one 32-bit input)
            w_key, b_key = need16(keys[0]), keys[1]
        else:  # 16 + 16: a unit diagonal makes input 0 the 32-bit bias (SyntheticScaleShift)
            w_key, b_key = need16(keys[1]), unit_diagonal(node.name, need16(keys[0]), info, steps, ctx.overrides)
        b_key = get(b_key)
        tw, tb = info[w_key], info[b_key]
        weights_scale = float(np.float32(tb.sf) / np.float32(tw.sf))
        # the release's float equality (fp32eq / AreFpEq), as ScaleFactorPerLayerEltwise compares with 32767
        if weights_scale > INT16_MAX and not pw.fp32_equal(weights_scale, INT16_MAX, ctx.release.sf_equal_accuracy):
            _lower_bias_input(ctx, node, b_key, float(np.float32(tw.sf) * np.float32(INT16_MAX)), weights_scale)
        w = sum_weight(tw.sf, tb.sf)
        if sub:
            w = -w
        if w == 0:
            # Below 0.5 the plugin neither requantizes (only above 32767) nor warns: FloatToInt16 stores 0 and the
            # sum is the bias input alone [S: frontend/scale_factor_calc.cpp ScaleFactorPerLayerEltwise, sum case;
            # gna_graph_compiler.cpp EltwisePrimitive].
            source = next((st.name for st in reversed(steps) if st.out == w_key), w_key)  # the layer, not the key
            notes.append(f"{node.op} {node.name!r}: weights scale {weights_scale:g} rounds to 0: input {source!r} "
                         "contributes nothing (the plugin computes without it)")
        elif abs(abs(w) - weights_scale) > 1e-6 * max(1.0, weights_scale):
            notes.append(f"Add {node.name!r}: weights scale {weights_scale:g} is not an integer; stored as {w}, so "
                         f"one input is scaled by {abs(w) / weights_scale:.4f} (the plugin warns of this accuracy "
                         "loss)")
        out_sf = tb.sf

        def weighted_sum(x, y, w=w):
            return _sat32(np.asarray(x, dtype=np.float64) * w + np.asarray(y, dtype=np.float64))

        run = weighted_sum
        lowered = Lowered("sum", scalars=(float(w),))

        row = PlanRow(node.name, "Eltwise " + ("Sub" if sub else "Sum") + " (diagonal affine)", "i16", Lane.INT32,
                      [tw.sf, tb.sf], weights_scale, out_sf, Extras(weight_int=w))
        ins = [w_key, b_key]
    steps.append(Step("eltwise", node.name, ins, node.out, run, row, lowered))
    info[node.out] = TInfo(out_sf, Lane.INT32, info[ins[0]].shape, root=node.name)



def const_layer(ctx: BuildContext, node: Node, key: str) -> str:
    """The Const input of an eltwise Add (ir_reader: a per-element constant on data of rank < 4): 16-bit data in
    memory at sf = 32767 / max|c| (1.0 for zeros) [S: frontend/scale_factor_calc.cpp ``ScaleFactorPerLayer``,
    type "Const", no statistics: levels INT16_MAX], each value SaturationCast<int16>(c·sf), a float product
    truncated toward 0 [S: frontend/layer_quantizer.cpp ``FP32ToPrecisionBlob``, frontend/quantization.hpp]."""
    data = ctx.get(next(k for k in node.inputs if k != key))
    shape = ctx.info[data].shape
    c = np.broadcast_to(np.asarray(ctx.prog.consts[key], dtype=np.float32), shape)
    peak = np.float32(np.max(np.abs(c)))
    sf = np.float32(1.0) if peak == 0 else np.float32(np.float32(INT16_MAX) / peak)
    if not np.isfinite(sf):
        sf = np.float32(1.0)
    q = np.trunc(np.clip(c * sf, -INT16_MAX - 1, INT16_MAX)).astype(np.float64)
    name = f"{node.name}/const"
    ctx.steps.append(Step("const", name, [data], key, lambda x, q=q: (np.broadcast_to(q, x.shape[:1] + q.shape), 0),
                          PlanRow(name, "Const (eltwise input)", "i16", Lane.INT16, None, None, float(sf)),
                          Lowered("const", (np.ascontiguousarray(q).reshape(-1),))))
    ctx.info[key] = TInfo(float(sf), Lane.INT16, shape, root=name)
    return key


def unit_diagonal(layer: str, key: str, info: dict[str, TInfo], steps: list[Step],
                  overrides: Mapping[str, float] | None = None) -> str:
    """A diagonal affine with weight 1.0 (integer 16384) on 16-bit data: x·16384 at sf·16384, 32-bit
    [S: optimizer/gna_pass_manager.cpp ``InsertDiagonalLayerPass``, SyntheticScaleShift]. An eltwise sum that
    needs its output scale lower sets it (``requantizeInput``, a weightable identity): the weight becomes
    trunc(max(1, 16384 / reducer)), reducer = max(1, current / wanted output scale)."""
    ti = info[key]
    name = f"{layer}/SyntheticScaleShift"
    new = f"{key}#{name}"
    w = int(DIAGONAL_W_SF)
    if overrides and name in overrides:
        # scale_factor_calc.cpp requantizeInput: reducer, new weights scale and dst scale are all float
        reducer = max(np.float32(1.0), np.float32(np.float32(ti.sf * DIAGONAL_W_SF) / np.float32(overrides[name])))
        w = int(max(np.float32(1.0), np.float32(np.float32(DIAGONAL_W_SF) / reducer)))
    out_sf = float(np.float32(np.float32(w) * np.float32(ti.sf)))  # _dst_quant = w_sf · src, a float product
    steps.append(Step("eltwise", name, [key], new, lambda x, w=w: (np.asarray(x, dtype=np.float64) * w, 0),
                      PlanRow(name, f"Diagonal (inserted, weight {w / DIAGONAL_W_SF:.6g}"
                                    + (".0)" if w == DIAGONAL_W_SF else ")"), "i16", Lane.INT32, ti.sf,
                              DIAGONAL_W_SF if w == DIAGONAL_W_SF else float(w), out_sf),
                      Lowered("scale", scalars=(float(w),))))
    info[new] = TInfo(out_sf, Lane.INT32, ti.shape, root=name)
    return new


def _lower_bias_input(ctx: BuildContext, node: Node, b_key: str, wanted: float, weights_scale: float) -> None:
    """The weights scale of a sum is above 32767: the plugin lowers the output scale of the layer behind the
    bias input to sf_w·32767 and starts over [S: frontend/scale_factor_calc.cpp ``ScaleFactorPerLayerEltwise``,
    ``requantizeInput``]: a weightable layer takes a lower weights scale, an activation a lower output scale
    [I: a ScaleShift is requantized as a weightable layer]. Behind an eltwise Sum the plugin goes on into that
    sum's bias (32-bit) input, the wanted scale times that input's scale over the sum's (``requantizeInput``,
    isEltwiseSum; 1 here, a sum's output takes its bias input's scale). Anything else stops with the layers
    named."""
    ti = ctx.info[b_key]
    layer = ti.root or ti.act
    kinds = {st.name: st for st in ctx.steps}
    step = kinds.get(layer) if layer else None
    while step is not None and step.kind == "eltwise" and step.row and step.row.op == "Eltwise Sum (diagonal affine)":
        below = ctx.info[step.inputs[1]]
        wanted = float(np.float32(np.float32(wanted) * np.float32(np.float32(below.sf) / np.float32(ti.sf))))
        ti, layer = below, below.root or below.act
        step = kinds.get(layer) if layer else None
    lowerable = step is not None and layer is not None and (
        step.kind in ("fc", "conv", "pwl") or layer.endswith("/SyntheticScaleShift")
        or bool(step.row and step.row.op.startswith("ScaleShift")))
    if lowerable and layer is not None and ctx.overrides.get(layer) != wanted:
        raise Requantize(layer, wanted, f"{node.op} {node.name!r}: the input scales differ by {weights_scale:.0f}× "
                                        f"(> 32767): output scale of {layer!r} lowered from {ti.sf:g} to {wanted:g}")
    raise BadInput(f"{node.op} {node.name!r}: the input scales differ by {weights_scale:.0f}× (> 32767) and the "
                     f"layer behind its bias input ({layer or b_key!r}) cannot take a lower scale; the GNA plugin "
                     "warns of saturated weights here")


def add_scaleshift(ctx: BuildContext, node: Node) -> None:
    """A ScaleShift: data·w + b with constant w and b per element, as a diagonal affine layer."""
    k = ctx.need16(node.inputs[0])
    ti = ctx.info[k]
    shape = ti.shape
    try:
        w = np.broadcast_to(np.asarray(node.attrs["w"], dtype=np.float32), shape).reshape(-1)
        b = np.broadcast_to(np.asarray(node.attrs["b"], dtype=np.float32), shape).reshape(-1)
    except ValueError:
        raise BadInput(f"{node.attrs.get('from', 'eltwise')} {node.name!r}: its constant of shape "
                         f"{np.shape(node.attrs['w'])} does not broadcast to the data shape {shape}; GNA's diagonal "
                         "layer scales each value of the data") from None
    wq = quantize_weightable(w[:, None], b if np.any(b) else None, ti.sf, kind="fc", precision="i16",
                             forced_out_sf=ctx.overrides.get(node.name), release=ctx.release)
    wi = np.asarray(wq.weights, dtype=np.float64).reshape(-1)
    bi = np.asarray(wq.bias, dtype=np.float64).reshape(-1)

    def run(x, wi=wi, bi=bi):
        n = x.shape[0]
        acc = np.asarray(x, dtype=np.float64).reshape(n, -1) * wi + bi
        acc, sat = _sat32(acc)
        return acc.reshape(x.shape), sat

    op = f"ScaleShift ({node.attrs.get('from', 'eltwise')} with a constant, diagonal affine)"
    ctx.steps.append(Step("eltwise", node.name, [k], node.out, run, wq.row(node.name, op, precision="i16"),
                          Lowered("scaleshift", (wi, bi))))
    ctx.info[node.out] = TInfo(wq.out_sf, Lane.INT32, shape, root=node.name)
