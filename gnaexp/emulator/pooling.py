"""Max pooling as the GNA plugin runs it: fused after a convolution's activation, on the int16 activation outputs
[S: src/plugins/intel_gna/src/gna_graph_compiler.cpp @2023.1.0 ``PoolingPrimitive``; the pipeline's
``ReorderActivationAndPooling`` puts the activation before the pooling]. A max of int16 values is exact, so the
pooled integers are the maxima of the activation's integers over each window, at the activation's scale factor.

Emulated: 1-D pooling along the last axis, and 2-D pooling after a 2-D convolution within GNA 3.0's window rule
(``Validator_30::ValidatePooling2D``: a square window up to 3×3, stride up to the window [S:
src/plugins/intel_gna/src/backend/gna_limitations.cpp @2023.1.0]); no padding, no dilation. GNA 3.0 counts 2-D
pooling outputs with ceil rounding (``outputFromPooling``, layers/gna_convolution_layer.cpp): a window that would
hang over the edge is refused rather than guessed [I]. Average pooling is refused by the plugin ("not supported").
[I: a pooling that reads a 32-bit output directly gets the inserted identity first, as any 16-bit reader.]
"""

from __future__ import annotations

import numpy as np

from gnaexp.emulator.context import BuildContext
from gnaexp.emulator.ir_reader import Node
from gnaexp.emulator.plan_row import Lane, PlanRow
from gnaexp.emulator.plan_types import Step, TInfo
from gnaexp.core.errors import BadInput


def _pool_problem(attrs: dict, rank: int) -> str:
    kernel, strides = list(attrs["kernel"]), list(attrs["strides"])
    if str(attrs.get("auto_pad", "explicit")).lower() in ("same_upper", "same_lower") or \
            any(int(p) for p in list(attrs.get("pads_begin", [])) + list(attrs.get("pads_end", []))):
        return "padded pooling: the GNA pooling has no padding"
    if any(int(d) != 1 for d in attrs.get("dilations", [])):
        return "dilated pooling: the GNA pooling has no dilation"
    if len(kernel) != rank - 2:
        return f"a {len(kernel)}-D window on a rank-{rank} tensor"
    if any(int(k) != 1 or int(s) != 1 for k, s in zip(kernel[:-2], strides[:-2])):
        return "pooling over more than two axes: GNA pools along W, or H and W"
    if len(kernel) >= 2 and (int(kernel[-2]) != 1 or int(strides[-2]) != 1):
        (kh, kw), (sh, sw) = (int(k) for k in kernel[-2:]), (int(s) for s in strides[-2:])
        square_or_vector = kh == kw <= 3 or (kw == 1 and kh <= 1) or (kh == 1 and kw <= 1)  # kPoolingWindowLimit
        if not square_or_vector or sh > kh or sw > kw:
            return (f"2-D pooling window {kh}x{kw}, stride {sh}x{sw}: GNA 3.0 takes a square window up to 3x3 with "
                    "a stride up to the window (Validator_30::ValidatePooling2D, gna_limitations.cpp)")
    return ""


def add_maxpool(ctx: BuildContext, node: Node) -> None:
    key = ctx.need16(node.inputs[0])
    ti = ctx.info[key]
    problem = _pool_problem(node.attrs, len(ti.shape))
    if problem:
        raise BadInput(f"MaxPool {node.name!r}: {problem}")
    two_d = len(node.attrs["kernel"]) >= 2 and int(node.attrs["kernel"][-2]) > 1
    axes = 2 if two_d else 1
    ks = tuple(int(k) for k in node.attrs["kernel"][-axes:])
    ss = tuple(int(s) for s in node.attrs["strides"][-axes:])
    sizes = ti.shape[-axes:]
    if any(d < k for d, k in zip(sizes, ks)):
        raise BadInput(f"MaxPool {node.name!r}: window {ks} is larger than its input {sizes}")
    counts = tuple((d - k) // s + 1 for d, k, s in zip(sizes, ks, ss))
    partial = any((d - k) % s for d, k, s in zip(sizes, ks, ss))
    if partial and (two_d or str(node.attrs.get("rounding_type", "floor")).lower() == "ceil"):
        raise BadInput(f"MaxPool {node.name!r}: the windows do not tile the input (a partial window at the edge"
                         + (", which GNA 3.0's 2-D pooling counts with ceil rounding" if two_d else "")
                         + "); export with a window and stride that fit the input exactly")
    spatial = tuple(range(-axes, 0))

    def run(x, ks=ks, ss=ss, counts=counts, spatial=spatial):
        windows = np.lib.stride_tricks.sliding_window_view(x, ks, axis=spatial)
        for axis, (s, c) in enumerate(zip(ss, counts)):  # the window starts along each pooled axis
            index = [slice(None)] * windows.ndim
            index[x.ndim - len(ks) + axis] = slice(0, c * s, s)
            windows = windows[tuple(index)]
        return windows.max(axis=tuple(range(-len(ks), 0))), 0

    label = "x".join(map(str, ks))
    ctx.steps.append(Step("pool", node.name, [key], node.out, run,  # exact: the maxima keep their scale factor
                          PlanRow(node.name, f"MaxPool (window {label}, stride {'x'.join(map(str, ss))})", "i16",
                                  Lane.INT16, ti.sf, None, ti.sf)))
    ctx.info[node.out] = TInfo(ti.sf, Lane.INT16, ti.shape[:-axes] + counts, act=ti.act, from_input=ti.from_input,
                               param=ti.param)
