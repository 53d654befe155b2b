"""Max pooling as the GNA plugin runs it: fused after a convolution's activation, on the int16 activation outputs
[S: src/plugins/intel_gna/src/gna_graph_compiler.cpp @2023.1.0 ``PoolingPrimitive``; the pipeline's
``ReorderActivationAndPooling`` puts the activation before the pooling]. A max of int16 values is exact, so the
pooled integers are the maxima of the activation's integers over each window, at the activation's scale factor.

Emulated: 1-D pooling along the last axis (2-D pooling with a window and stride of 1 on the other spatial
axis), no padding, no dilation, floor rounding; average pooling is refused by the plugin ("not supported").
[I: a pooling that reads a 32-bit output directly gets the inserted identity first, as any 16-bit reader.]
"""

from __future__ import annotations

import numpy as np

from gnaexp.emulator.context import BuildContext
from gnaexp.emulator.ir_reader import Node
from gnaexp.emulator.plan_types import Step, TInfo


def _pool_problem(attrs: dict, rank: int) -> str:
    kernel, strides = list(attrs["kernel"]), list(attrs["strides"])
    if str(attrs.get("auto_pad", "explicit")).lower() in ("same_upper", "same_lower") or \
            any(int(p) for p in list(attrs.get("pads_begin", [])) + list(attrs.get("pads_end", []))):
        return "padded pooling: the GNA pooling has no padding"
    if any(int(d) != 1 for d in attrs.get("dilations", [])):
        return "dilated pooling: the GNA pooling has no dilation"
    if len(kernel) != rank - 2:
        return f"a {len(kernel)}-D window on a rank-{rank} tensor"
    if any(int(k) != 1 or int(s) != 1 for k, s in zip(kernel[:-1], strides[:-1])):
        return "2-D pooling (a window on more than the last axis) is not modelled by the emulator"
    return ""


def add_maxpool(ctx: BuildContext, node: Node) -> None:
    key = ctx.need16(node.inputs[0])
    ti = ctx.info[key]
    problem = _pool_problem(node.attrs, len(ti.shape))
    if problem:
        raise ValueError(f"MaxPool {node.name!r}: {problem}")
    k, s = int(node.attrs["kernel"][-1]), int(node.attrs["strides"][-1])
    width = ti.shape[-1]
    if width < k:
        raise ValueError(f"MaxPool {node.name!r}: window {k} is wider than its input ({width})")
    count = (width - k) // s + 1
    if str(node.attrs.get("rounding_type", "floor")).lower() == "ceil" and (width - k) % s:
        raise ValueError(f"MaxPool {node.name!r}: ceil rounding adds a partial window; export with floor rounding")

    def run(x, k=k, s=s, count=count):
        windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=-1)[..., :count * s:s, :]
        return windows.max(axis=-1), 0

    ctx.steps.append(Step("pool", node.name, [key], node.out, run,  # exact: the maxima keep their scale factor
                          {"layer": node.name, "op": f"MaxPool (window {k}, stride {s})", "precision": "i16",
                           "in_sf": ti.sf, "w_sf": None, "out_sf": ti.sf, "bits": 16}))
    ctx.info[node.out] = TInfo(ti.sf, 16, ti.shape[:-1] + (count,), act=ti.act, from_input=ti.from_input,
                               param=ti.param)
