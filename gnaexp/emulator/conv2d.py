"""2-D convolutions as the 2023.1 GNA plugin runs them on its default compile target, GNA 3.0.

``GNAGraphCompiler::ConvolutionPrimitive`` [S: src/plugins/intel_gna/src/gna_graph_compiler.cpp @2023.1.0] takes a
4-D convolution one of three ways:
- input width 1: H and W are swapped and a 1-D convolution runs along H (``swap``);
- ``isMappableFrom2DTo1D`` (kernel as wide as the input with horizontal stride 1, or kernel as tall as a one-channel
  input with vertical stride 1): flattened to a 1-D convolution (``mapped``)
  [S: src/plugins/intel_gna/src/layers/gna_convolution_layer.cpp];
- otherwise ``finalizeConvolution2DPrimitive``: the GNA 3.0 2-D convolution on NHWC memory, after
  ``Validator_30::ValidateCnn2D`` (input H 16–384, W 16–240, input channels 8–384 and a multiple of 8, kernels
  8–1024 and a multiple of 8, kernel and stride within the per-channel table, stride ≤ kernel, no padding)
  [S: src/plugins/intel_gna/src/backend/gna_limitations.cpp]. A failed check stops the load with the validator's
  message. ``Decompose2DConv`` applies only to TensorFlow-style NHWC patterns the validator rejects
  [S: transformations/decompose_2d_convolution.cpp], not to NCHW exports.

Every way computes the same integers: out[f, i, j] = sat32(bias[f] + Σ x[c, i·sh + a, j·sw + b]·w[f, c, a, b]) on
int16 inputs and weights (the 1-D mappings reorder the same products; int64 sums are exact, so the order does not
matter). The weight scale follows §3.2 with the 2-D kernel reducer k2d (``getWeightsReducer``: only for a 2-D kernel
or a 3-D input that is not mappable to 1-D). Porting (exact rewrites): zero input channels up to the validator's
multiple of 8, and zero filters up to its multiple of 8, their outputs dropped.
"""

from __future__ import annotations

import numpy as np

from gnaexp.emulator import conv as cv
from gnaexp.emulator.plan_row import Extras, Lane
from gnaexp.emulator.plan_types import Step, TInfo
from gnaexp.emulator.quantize import kernel_2d_factor, quantize_weightable
from gnaexp.emulator.int_ranges import INT32_MAX, INT32_MIN
from gnaexp.core.errors import BadInput

LIMITS = "src/plugins/intel_gna/src/backend/gna_limitations.cpp (Validator_30::ValidateCnn2D) @2023.1.0"
# Validator_30's int16 table (kKernelLimit.limit_for_int16): input channels up to → largest kernel H×W (and stride)
KERNEL_LIMIT_I16 = ((48, (7, 7)), (64, (7, 5)), (80, (7, 4)), (120, (7, 3)), (384, (7, 1)))
MULTIPLE = 8  # input channels and kernels: kInputChannelsNumberLimit, kKernelNumberLimit


def mappable(h: int, w: int, c: int, kh: int, kw: int, sh: int, sw: int) -> bool:
    """``isMappableFrom2DTo1D`` (gna_convolution_layer.cpp)."""
    if h <= 1 or w <= 1:
        return False
    return (w == kw and sw == 1) or (h == kh and c == 1 and sh == 1)


def way(h: int, w: int, c: int, kh: int, kw: int, sh: int, sw: int) -> str:
    """How the plugin takes a 4-D convolution: "1d" (H = 1), "swap", "mapped" or "2d"."""
    if h == 1 and kh == 1:
        return "1d"
    if w == 1:
        return "swap"
    return "mapped" if mappable(h, w, c, kh, kw, sh, sw) else "2d"


def k2d(h: int, w: int, c: int, kh: int, kw: int, sh: int, sw: int) -> float:
    """The 2-D weight reducer factor (getWeightsReducer): is3DInputOr2DKernel and not mappable."""
    two_d = (kh > 1 and kw > 1) or (h > 1 and w > 1 and c > 1)
    return kernel_2d_factor(kh * kw) if two_d and not mappable(h, w, c, kh, kw, sh, sw) else 1.0


def validator_errors(h: int, w: int, c: int, kh: int, kw: int, n: int, sh: int, sw: int) -> list[str]:
    """Validator_30::ValidateCnn2D's messages for an int16 input (empty when it accepts the layer)."""
    errors = []

    def in_range(what: str, value: int, low: int, high: int, multiple: int = 0) -> None:
        if not low <= value <= high:
            errors.append(f"Unsupported {what}, actual value: {value}, valid range [{low}, {high}]")
        if multiple and value % multiple:
            errors.append(f"Unsupported {what}: {value}, must be multiple of {multiple}")

    in_range("input height", h, 16, 384)
    in_range("input width", w, 16, 240)
    in_range("number of kernels", n, 8, 1024, MULTIPLE)
    in_range("number of input channels", c, 8, 384, MULTIPLE)
    limit = next((hw for up_to, hw in KERNEL_LIMIT_I16 if up_to >= c), (0, 0))
    for what, (a, b) in (("kernel", (kh, kw)), ("convolution stride", (sh, sw))):
        if not (1 <= a <= limit[0] and 1 <= b <= limit[1]):
            errors.append(f"Unsupported {what} shape, actual HxW: {a}x{b}, only rectangular shapes up to "
                          f"{limit[0]}x{limit[1]} are valid")
    in_range("kernel stride height (must be up to kernel height)", sh, 1, kh)
    in_range("kernel stride width (must be up to kernel width)", sw, 1, kw)
    return errors


def correlate(x: np.ndarray, w: np.ndarray, bias: np.ndarray, sh: int, sw: int) -> tuple[np.ndarray, int]:
    """int16 (N, C, H, W) ⋆ int16 (F, C, KH, KW) + int32 bias, summed exactly in int64, saturated to int32."""
    kh, kw = w.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(x, dtype=np.int64), (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw]  # (N, C, OH, OW, KH, KW)
    out = np.einsum("ncijab,fcab->nfij", windows, np.asarray(w, dtype=np.int64), optimize=True)
    out += np.asarray(bias, dtype=np.int64).reshape(1, -1, 1, 1)
    sat = int(np.count_nonzero((out < INT32_MIN) | (out > INT32_MAX)))
    return np.clip(out, INT32_MIN, INT32_MAX), sat


def _pad_to(count: int) -> int:
    return max(MULTIPLE, -(-count // MULTIPLE) * MULTIPLE)


def add_conv2d(ctx, node, key: str, w: np.ndarray, stats, bias, dst_stats) -> None:
    """A 4-D convolution with H > 1 or a kernel taller than 1, the way the plugin takes it (module docstring)."""
    ti = ctx.info[key]
    _, c, h, width = ti.shape
    f, _, kh, kw = w.shape
    sh, sw = (int(s) for s in node.attrs["strides"][-2:])
    how = way(h, width, c, kh, kw, sh, sw)
    notes = ctx.notes
    if how in ("swap", "mapped"):  # the 1-D primitive's filter rules (§4.2), on the flattened geometry
        filters = f
        if ctx.porting and (f < cv.CONV_FILTERS_DIVIDER or f % cv.CONV_FILTERS_DIVIDER):
            filters = max(cv.CONV_FILTERS_DIVIDER, -(-f // cv.CONV_FILTERS_DIVIDER) * cv.CONV_FILTERS_DIVIDER)
        flat: tuple[int, int, int] = (h, kh, sh) if how == "swap" else \
            (h * width, kh * kw, sw * (sh * kh if (h == kh and c == 1 and sh == 1) else sh * kw))
        try:
            cv.geometry(c, *flat, filters)
        except ValueError as exc:
            raise BadInput(f"convolution {node.name!r}: {exc}") from None
        target = (f, c)
        label = "swapped H/W, 1-D" if how == "swap" else "mapped 2-D → 1-D (isMappableFrom2DTo1D)"
    else:
        if ctx.porting:
            target = (_pad_to(f), _pad_to(c))
        else:
            target = (f, c)
        errors = validator_errors(h, width, target[1], kh, kw, target[0], sh, sw)
        if errors:
            fix = "" if ctx.porting else ("; porting pads input channels and kernels to multiples of 8 with zeros "
                                          "where that is all that fails")
            raise BadInput(f"convolution {node.name!r}: the GNA 3.0 2-D convolution refuses it (Convolution2D: "
                             + "; ".join(errors) + f") [{LIMITS}]{fix}")
        label = "GNA 3.0 2-D convolution (finalizeConvolution2DPrimitive)"
    wf, cf = max(target[0], f), max(target[1], c)
    wp = np.zeros((wf, cf, kh, kw), dtype=np.float32)
    wp[:f, :c] = w
    b = np.zeros(wf, dtype=np.float32)
    if bias is not None:
        b[:f] = np.asarray(bias, dtype=np.float32).reshape(-1)
    if (wf, cf) != (f, c):
        notes.append(f"convolution {node.name!r}: {f} kernels × {c} input channels padded with zeros to {wf} × {cf} "
                     f"(GNA 3.0 needs multiples of {MULTIPLE}; porting rewrite; the extra outputs are dropped; exact)")
    if stats is not None:  # per-filter ranges: the padded filters copy the first one's (the scale is unchanged)
        from gnaexp.emulator.quantize import WeightStats

        lo = np.reshape(stats.out_low, (f, -1))[:, :1]
        hi = np.reshape(stats.out_high, (f, -1))[:, :1]
        stats = WeightStats(stats.levels, np.concatenate([lo, np.repeat(lo[:1], wf - f, 0)])[:, :, None],
                            np.concatenate([hi, np.repeat(hi[:1], wf - f, 0)])[:, :, None], stats.source)
    factor = k2d(h, width, c, kh, kw, sh, sw)
    wq = quantize_weightable(wp.reshape(wf, cf, kh * kw), b, ti.sf, kind="conv", precision=ctx.weight_precision(node.name),
                             stats=stats, c_in=c, k2d=factor, dst_stats=dst_stats,
                             forced_out_sf=ctx.overrides.get(node.name), release=ctx.release)
    wint = np.asarray(wq.weights).reshape(wf, cf, kh, kw)
    oh, ow = (h - kh) // sh + 1, (width - kw) // sw + 1
    out_shape = (1, f, oh, ow)

    def run(x, wint=wint, bias=wq.bias, c=c, cf=cf, f=f, out_shape=out_shape):
        n = x.shape[0]
        x4 = x.reshape(n, c, h, width)
        if cf != c:
            x4 = np.concatenate([x4, np.zeros((n, cf - c, h, width), dtype=x4.dtype)], axis=1)
        o, sat = correlate(x4, wint, bias, sh, sw)
        return o[:, :f].reshape((n,) + out_shape), sat

    row = wq.row(node.name, "Convolution", extras=Extras(geometry={"way": label, "k2d": factor}))
    ctx.steps.append(Step("conv", node.name, [key], node.out, run, row))
    ctx.info[node.out] = TInfo(wq.out_sf, Lane.INT32, out_shape, root=node.name)
