"""Activations in the plan: ReLU, Clamp and an activation FakeQuantize (PWLs of known shape, pwl.py), and Sigmoid,
Tanh, SoftSign, Exp, Log, Power and Sqrt as the GNA plugin builds them: a float PWL designed to an error target,
then encoded as GNA segments (docs/gna-rules.md §3.8).

Design [S: src/plugins/intel_gna/src/transformations/pwl_approximation.cpp @8d2562b, ``pwl_search``,
``pivot_search``, ``calculate_error_pct``; pwl_approximation.hpp ``details::Function``]:
- domains: Sigmoid [−10, 10] → [0, 1], Tanh [−5, 5] → [−1, 1], SoftSign [−10, 10] → [−1, 1], Exp
  [−log2 32767, log10 32767] → [0, 32767], Log [0.001, 2981] → [−11, 32767] (@2023.1.0), Power x^e
  [−16, 16] for an integer e, else [0, 16] (Sqrt is Power 0.5: ConvertSqrtToPowerIEMatcher);
- Sigmoid, Tanh, SoftSign and Power on a domain that straddles 0 are designed in two halves split at 0, Exp at
  0.045 (``EXP_BREAK``); the left half negated, the right too for Exp and Power; Exp is designed as −f (convex),
  Log as f with up to 5000 pivot iterations;
- per half, N = 1, 2, … segments: tangent pivots moved until the errors at the segment ends are equal within
  10 % (at most 2000 iterations), offset by a quarter of (max + min) error; N grows until the error is at most
  the allowed share of the function's range: ``pwl_max_error_percent`` 1.0 % (0.015 % for Power), at most 128;
- a flat segment from −∞ (Power with a fractional e: from 0) and the last point made flat; for the others
  both flats are clipped to the function's range.
Output scale [S: frontend/scale_factor_calc.cpp ``getActivationScale``]: 2048 for all but Power; for Power,
32767 / max |f(x)| over [x_min, x_max] = [max(INT32_MIN/in_sf, −16) or 0, min(INT32_MAX/in_sf, 16)].
Segments [S: backend/make_pwl.cpp ``make_gna_pwl(const T* m, …)``]: xBase = trunc(in_sf·α) & ~3 | shift index,
yBase = round(out_sf·(m·α + b)), slope = round(m·out_sf/in_sf·2^shift) (``gna_slope``), each clamped to its
type's range; the +∞ terminator is not a segment.
Input: the PWL is the activation of the 32-bit layer before it (through data movement). A 16-bit input gets a
unit diagonal first (``InsertDiagonalLayerPass``: weight 1.0 at w_sf 16384, so x·16384 at in_sf·16384).
[I: an activation reading a 32-bit layer that also feeds other activations reads it unchanged; the plugin
inserts per-activation copies (``HandleMultipleActivationsForTheLayerPass``) that we take to keep values.]
"""

from __future__ import annotations

import functools
import math

import numpy as np

from gnaexp.emulator import eltwise
from gnaexp.emulator import pwl as pw
from gnaexp.emulator.context import BuildContext
from gnaexp.emulator.ir_reader import Node, Program
from gnaexp.emulator.plan_row import Extras, Lane, PlanRow
from gnaexp.emulator.plan_types import Step, TInfo
from gnaexp.emulator.quantize import fq_scale
from gnaexp.emulator.releases import DEFAULT, PluginRelease
from gnaexp.emulator.int_ranges import INT16_MAX, INT32_MAX, INT32_MIN
from gnaexp.core.errors import BadInput

ALLOWED_ERROR_PCT = 1.0  # GNAFlags pwlMaxErrorPercent default
POWER_ERROR_PCT = 0.015
MAX_SEGMENTS = 128
MAX_ITERATIONS = 2000
LOG_MAX_ITERATIONS = 5000  # max_iterations<Log>
EXP_BREAK = 0.045  # pwl_approximation.cpp: Exp is designed in two halves split here
SPLIT_OPS = ("Sigmoid", "Tanh", "SoftSign", "Exp", "Power")
DESIGNED_OPS = ("Sigmoid", "Tanh", "SoftSign", "Exp", "Log", "Power")
POW_DOMAIN = 16.0
FQ_ACTIVATION_LEVELS = 65535  # UINT16_MAX: the levels an activation FQ's scale is computed with


def _domain(op: str, exponent: float) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """(lower, upper) bounds of the design, and the function's (min, max) value where the plugin clips to it
    (``Function<T>::lower_bound/upper_bound/min_value/max_value``; Power: no clipping)."""
    if op == "Sigmoid":
        return (-10.0, 10.0), (0.0, 1.0)
    if op == "Tanh":
        return (-5.0, 5.0), (-1.0, 1.0)
    if op == "SoftSign":
        return (-10.0, 10.0), (-1.0, 1.0)
    if op == "Exp":
        return (-math.log2(INT16_MAX), math.log10(INT16_MAX)), (0.0, float(INT16_MAX))
    if op == "Log":
        return (0.001, 2981.0), (-11.0, float(INT16_MAX))
    return (-POW_DOMAIN if math.fmod(float(exponent), 1.0) == 0.0 else 0.0, POW_DOMAIN), None


def _search(op: str, e: float, lo: float, hi: float, allowed: float, integer_exp: bool,
            fp_eq: bool) -> list[list[float]]:
    """``pwl_search`` over [lo, hi]: split at the break bound where the plugin splits (the left half negated, the
    right too for Exp and Power), else the compiled search (pwl_search.py). Rows m, b, α, β."""
    brk = EXP_BREAK if op == "Exp" else 0.0
    if op in SPLIT_OPS and lo < brk < hi:
        left = [[-m, -b, a, -beta] for m, b, a, beta in _search(op, e, lo, brk, allowed, integer_exp, fp_eq)]
        right = _search(op, e, brk, hi, allowed, integer_exp, fp_eq)
        if op in ("Power", "Exp"):
            right = [[-m, -b, a, -beta] for m, b, a, beta in right]
        return left[:-1] + right
    # is_negative: design −f where f is convex
    negative = integer_exp if op == "Power" else (op == "Exp" or (op != "Log" and hi == 0.0))
    iterations = LOG_MAX_ITERATIONS if op == "Log" else MAX_ITERATIONS
    from gnaexp.emulator import pwl_search  # compiled (numba): loaded only by a net that needs a search

    rows = pwl_search.search(op, e, lo, hi, negative, allowed, iterations, MAX_SEGMENTS, fp_eq)
    return [[float(v) for v in row] for row in rows]


def design(op: str, exponent: float = 1.0, allowed_pct: float = ALLOWED_ERROR_PCT,
           release: PluginRelease = DEFAULT) -> tuple[np.ndarray, ...]:
    """The float PWL (m, b, α) of an activation, α one longer (its +∞ terminator), before any scaling."""
    return _design(op, float(exponent), float(allowed_pct), release.pivot_fp_eq)


@functools.lru_cache(maxsize=None)
def _design(op: str, exponent: float, allowed_pct: float, fp_eq: bool) -> tuple[np.ndarray, ...]:
    (lo, hi), rng = _domain(op, exponent)
    integer_exp = op == "Power" and math.fmod(float(exponent), 1.0) == 0.0
    allowed = min(allowed_pct, POWER_ERROR_PCT) if op == "Power" else allowed_pct
    segs = _search(op, exponent, lo, hi, allowed, integer_exp, fp_eq)
    if len(segs) <= 2:  # pwl_search returns false: the activation is not turned into a PWL
        raise BadInput(f"the {op} PWL search gives {len(segs) - 1} segment(s), which the plugin does not use")
    if op == "Power":
        segs.insert(0, [0.0, segs[0][3], -math.inf if integer_exp else 0.0, 0.0])
        segs[-1][1] = segs[-1][3]
    elif rng is not None:  # every other function is clipped to its range
        lo_v, hi_v = rng
        if segs[0][3] < lo_v:
            segs[0][2] += (lo_v - segs[0][3]) / segs[0][0]
        segs.insert(0, [0.0, max(segs[0][3], lo_v), -math.inf, 0.0])
        if segs[-1][3] > hi_v:
            segs[-1][2] += (hi_v - segs[-1][3]) / segs[-2][0]
        segs[-1][1] = min(segs[-1][3], hi_v)
    segs.append([0.0, 0.0, math.inf, 0.0])
    arr = np.array(segs, dtype=np.float64)
    return arr[:-1, 0], arr[:-1, 1], arr[:, 2]


def _cast_check(v: float, lo: int, hi: int, release: PluginRelease | None) -> int:
    """``cast_check_overflow``: ±∞ and out-of-range values clamp, else round half away as the release rounds
    (float32 in 2023.0), or truncate when no release is given (xBase)."""
    if v == math.inf or v > hi:
        return hi
    if v == -math.inf or v < lo:
        return lo
    if release is not None:
        return release.round_to_int(v, "pwl_design")
    return int(v)


def _mul(a: float, b: float) -> float:
    """``mul_check_overflow``: 0 if either factor is 0 (so 0·∞ is 0), ±∞ past the double range."""
    return 0.0 if a == 0 or b == 0 else a * b


def encode(m: np.ndarray, b: np.ndarray, alpha: np.ndarray, in_sf: float, out_sf: float, kind: str,
           release: PluginRelease = DEFAULT) -> pw.PWL:
    """GNA segments of a float PWL (one per slope; the α terminator is dropped)."""
    rows = []
    for mi, bi, ai in zip(m, b, alpha[:len(m)]):
        s, scale, idx = pw.gna_slope(float(mi), in_sf, out_sf)
        x = _cast_check(_mul(in_sf, float(ai)), INT32_MIN, INT32_MAX, None)
        y = _cast_check(_mul(_mul(float(mi), float(ai)) + float(bi), out_sf), pw.INT16_MIN, pw.INT16_MAX,
                        release)
        k = _cast_check(_mul(s, float(scale)), pw.INT16_MIN, pw.INT16_MAX, release)
        rows.append(((x & ~3) | idx, y, k))
    arr = np.array(rows, dtype=np.int64)
    return pw.PWL(arr[:, 0], arr[:, 1], arr[:, 2], float(in_sf), float(out_sf), kind,
                  int(arr[:, 1].min()), int(arr[:, 1].max()))


def output_scale(op: str, exponent: float, in_sf: float) -> float:
    """getActivationScale without statistics: 2048, or for Power 32767 / max |x^e| on the reachable domain."""
    if op != "Power":
        return float(pw.ACTIVATION_SF)
    e = float(exponent)
    x_min = max(INT32_MIN / in_sf, -POW_DOMAIN) if math.fmod(e, 1.0) == 0.0 else 0.0
    x_max = min(INT32_MAX / in_sf, POW_DOMAIN)
    peak = max(abs(x_min ** e), abs(x_max ** e))
    return float(np.float32(32767.0 / peak)) if peak > 0 else float(pw.ACTIVATION_SF)


def _clipped_domain(op: str, exponent: float, curve: pw.PWL) -> tuple[int | None, int | None]:
    """Integer inputs below / above which an unbounded function's PWL is flat (None where f itself levels off
    or has no values: Sigmoid, Tanh, SoftSign, eˣ to the left, √x below 0): the first designed segment's xBase and
    the last (flat) segment's."""
    if op not in ("Power", "Exp", "Log"):
        return None, None
    xs = curve.x_values
    lower = int(xs[1]) if op == "Log" or (op == "Power" and math.fmod(float(exponent), 1.0) == 0.0) else None
    return lower, int(xs[-1])


def exponent_of(node: Node, prog: Program) -> float:
    if node.op == "Sqrt":
        return 0.5
    if node.op == "Power":
        return float(np.asarray(prog.consts[node.inputs[1]]).reshape(-1)[0])
    return 1.0


# The designs a recurrent net usually needs (LSTM/GRU gates, |x|² and √ of a spectrum): designed ahead by
# long-lived processes that fork kernels, so a kernel finds them in ``design``'s cache (about 1 s of search).
COMMON_DESIGNS = (("Sigmoid", 1.0), ("Tanh", 1.0), ("Power", 2.0), ("Power", 0.5))


def warm_up() -> None:
    for op, e in COMMON_DESIGNS:
        design(op, e)  # the default release's; another release designs its own on first use


def add_step(ctx: BuildContext, node: Node) -> None:
    """Plan a Sigmoid/Tanh/SoftSign/Exp/Log/Power/Sqrt PWL on the tensor before it."""
    op = "Power" if node.op in ("Power", "Sqrt") else node.op
    e = exponent_of(node, ctx.prog)
    if op == "Power" and e == 1.0:
        raise BadInput(f"Power {node.name!r} with exponent 1 is an affine layer in the plugin; fold it before export")
    if op == "Power" and e == 0.0:
        raise BadInput(f"Power {node.name!r} with exponent 0 is a constant; fold it before export")
    k = ctx.get(node.inputs[0])
    ti = ctx.info[k]
    if ti.lane is Lane.INT16:  # InsertDiagonalLayerPass: a unit diagonal makes the 32-bit input a PWL needs
        k = eltwise.unit_diagonal(node.name, k, ctx.info, ctx.steps, ctx.overrides)
        ti = ctx.info[k]
    in_sf = ti.sf
    out_sf = ctx.overrides.get(node.name, output_scale(op, e, in_sf))
    try:
        m, b, alpha = design(op, e, release=ctx.release)
    except ValueError as exc:  # the plugin's pwl_search throws the same at load: the network is refused
        what = f"{op} {e:g}" if op == "Power" else op
        via = " (ConvertDivide made the division x·y^-1)" if node.attrs.get("from") == "Divide" else ""
        raise BadInput(f"{node.name!r}: the GNA plugin's PWL search for {what}{via} fails (\"{exc}\", "
                         "pwl_approximation.cpp), so the plugin refuses the network") from None
    curve = encode(m, b, alpha, in_sf, out_sf, op.lower() if op != "Power" else f"power {e:g}", ctx.release)
    lo, hi = _clipped_domain(op, e, curve)
    (d_lo, d_hi), _ = _domain(op, e)

    def run(x, c=pw.evaluator(curve), lo=lo, hi=hi):
        y, n = c(x)
        # Past its design domain the PWL is flat while f goes on (x² beyond ±16, eˣ beyond 4.5): the output is
        # held at the domain's end, a saturation the layer's count includes (counted when the extremes pass it)
        x = np.asarray(x)
        if lo is not None and x.size and x.min() < lo:
            n += int(np.count_nonzero(x < lo))
        if hi is not None and x.size and x.max() > hi:
            n += int(np.count_nonzero(x > hi))
        return y, n

    ctx.steps.append(Step("pwl", node.name, [k], node.out, run,
                          PlanRow(node.name, f"{node.op} (PWL, {len(m)} segments)", "i16", Lane.INT16, in_sf, None,
                                  out_sf, Extras(pwl=curve.to_json(),
                                                 domain=(d_lo, d_hi) if (lo, hi) != (None, None) else None)),
                          pw.lowered(curve, lo, hi)))
    ctx.info[node.out] = TInfo(out_sf, Lane.INT16, ti.shape, act=node.name)


def add_relu(ctx: BuildContext, node: Node) -> None:
    """A ReLU, or a PRelu with one slope (a leaky ReLU: ConvertPReluToReluIE gives ReLUIE its negative_slope):
    the PWL of the layer before it (make_pwl.cpp kActRelu/kActLeakyRelu)."""
    k = ctx.get(node.inputs[0])
    ti = ctx.info[k]
    slope = 0.0
    if node.op == "PRelu":
        values = np.asarray(ctx.prog.consts.get(node.inputs[1], np.zeros(2)) if len(node.inputs) > 1 else [0, 0])
        if values.size != 1 and not np.all(values == values.reshape(-1)[0]):
            raise BadInput(f"PRelu {node.name!r}: one slope per channel; the plugin's ReLU layer takes one "
                             "negative slope (ConvertPReluToReluIE)")
        slope = float(values.reshape(-1)[0])
    out_sf = ctx.overrides.get(node.name, pw.relu_out_scale(ti.sf))
    curve = pw.build_relu(ti.sf, out_sf, slope, ctx.release)
    ctx.steps.append(Step("pwl", node.name, [k], node.out, pw.evaluator(curve),
                          PlanRow(node.name, "Relu" if node.op == "Relu" else f"PRelu (leaky, {slope:g})", "i16",
                                  Lane.INT16, ti.sf, None, out_sf, Extras(pwl=curve.to_json())), pw.lowered(curve)))
    ctx.info[node.out] = TInfo(out_sf, Lane.INT16, ti.shape, act=node.name)


def add_clamp(ctx: BuildContext, node: Node) -> None:
    """A Clamp: the PWL of the layer before it, slope 1 between the bounds (make_pwl.cpp kActKaldiLstmClipping).
    Output scale 2048: ``getActivationScale`` halves it only for a layer of type "relu" (``isRelu``), and a
    Clamp is of type "clamp" (scale_factor_calc.cpp @2023.1.0 L411-418, same in 2022.3 and 2023.0). [I: 16-bit input is read directly,
    as for a ReLU.]"""
    k = ctx.get(node.inputs[0])
    ti = ctx.info[k]
    low, high = float(node.attrs["min"]), float(node.attrs["max"])
    out_sf = ctx.overrides.get(node.name, float(pw.ACTIVATION_SF))
    curve = pw.build_clamp(ti.sf, out_sf, low, high, ctx.release)
    ctx.steps.append(Step("pwl", node.name, [k], node.out, pw.evaluator(curve),
                          PlanRow(node.name, f"Clamp [{low:g}, {high:g}] (PWL)", "i16", Lane.INT16, ti.sf, None,
                                  out_sf, Extras(pwl=curve.to_json())), pw.lowered(curve)))
    ctx.info[node.out] = TInfo(out_sf, Lane.INT16, ti.shape, act=node.name)


def add_fake_quantize(ctx: BuildContext, node: Node) -> None:
    """A FakeQuantize on network data: after an input it only sets the input's scale factor (graph.py);
    elsewhere it stays a layer of type FakeQuantize, an activation, and runs as the plugin's kActFakeQuantize PWL
    with the FQ borders (``pwl.build_fake_quantize``). Output scale (``getActivationScale`` with destination
    statistics): (65535 − 1)/(high − low) whatever the FQ's levels, since ``MoveFakeQuantizeLayerIntoQuantParamsPass``
    sets the FQ's own levels to UINT16_MAX (optimizer/gna_pass_manager.cpp, every release), capped at 4096 and
    fine-tuned (``adjustScaleFactor``)."""
    if node.name in ctx.input_fq:
        ctx.alias[node.out] = ctx.get(node.inputs[0])
        return
    prog = ctx.prog
    k = ctx.get(node.inputs[0])
    ti = ctx.info[k]
    # the ranges the plugin reads are the FQ's input range (QuantizationParams::GetMinValues(input = true))
    il, ih, ol, oh = (float(np.min(prog.consts[node.inputs[i]])) if i % 2 else float(np.max(prog.consts[node.inputs[i]]))
                      for i in (1, 2, 3, 4))
    if node.name in ctx.overrides:
        out_sf = ctx.overrides[node.name]
    else:
        out_sf = fq_scale(FQ_ACTIVATION_LEVELS, il, ih)
        if not np.isfinite(out_sf) or max(abs(il), abs(ih)) == 0:
            out_sf = float(pw.MAX_ACTIVATION_SF)
        out_sf = min(out_sf, float(pw.MAX_ACTIVATION_SF))
        out_sf = pw.adjust_scale_factor(out_sf, ti.sf, ctx.release)
    curve = pw.build_fake_quantize(ti.sf, out_sf, il, ih, release=ctx.release)
    ctx.steps.append(Step("pwl", node.name, [k], node.out, pw.evaluator(curve),
                          PlanRow(node.name, "FakeQuantize (as PWL)", "i16", Lane.INT16, ti.sf, None, out_sf,
                                  Extras(pwl=curve.to_json())), pw.lowered(curve)))
    ctx.info[node.out] = TInfo(out_sf, Lane.INT16, ti.shape, act=node.name)
