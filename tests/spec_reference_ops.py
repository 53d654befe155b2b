"""A plain, slow reading of the GNA plugin's PWL, eltwise and int8 rules, release by release, for the
differential tests (``test_emulator_differential_ops.py``).

Each function names the plugin file and function it reads (``src/plugins/intel_gna/src`` at the tags 2022.3.0,
2023.0.0, 2023.1.0; 2023.2 and 2023.3 compute as 2023.1) or the intel/gna library kernel. Loops and Python
integers; no code shared with ``gnaexp.emulator`` (the float PWL designs are taken from
``gnaexp.emulator.activations.design`` by the tests, held to the plugin's own code elsewhere). [I] marks what
the source leaves to the compiler or to us.

Rounding per release (``common/numerical_utils.hpp``): 2022.3's ``FLOAT_TO_INT*`` macros keep a double argument
a double; 2023.0's ``FloatToInt*(float)`` round the value to float32 first and add ±0.5f in float; 2023.1 adds
``DoubleToInt*(double)`` and uses them at the same places. A place that hands a float expression to the macro or
function (eltwise weight, leaky yBase) rounds in float in every release.
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32
INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
RELEASES = ("2022.3", "2023.0", "2023.1", "2023.2", "2023.3")


def to_int(v: float, release: str) -> int:
    """``FLOAT_TO_INT*`` (2022.3, double argument), ``FloatToInt*`` (2023.0, float), ``DoubleToInt*`` (2023.1+):
    ±0.5 by sign, truncate. The integer is not narrowed here."""
    if release == "2023.0":
        return to_int_f32(v)
    return int(v - 0.5) if v < 0 else int(v + 0.5)


def to_int_f32(v: float) -> int:
    """``FloatToInt*(float a)``: static_cast<T>(a < 0 ? a - 0.5f : a + 0.5f) in float32."""
    f = F32(v)
    return int(F32(f - F32(0.5))) if f < 0 else int(F32(f + F32(0.5)))


def narrow(v: int, bits: int) -> int:
    """static_cast to a narrower signed integer. [I] Out of range it is undefined in C++; x86-64 gcc converts a
    double through a 32-bit register and keeps the low bits, which is what this returns."""
    return (v + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))


def gna_slope(slope: float, in_sf: float, out_sf: float) -> tuple[float, int, int]:
    """``gna_slope_scale.cpp`` ``gna_slope``: s = slope·out/in (double); index 3, 2, 1 tried, the first whose
    s·2^(8(i+1)) lies in int16 kept, else index 0. Returns (s, slope_scale, index)."""
    s = slope * out_sf / in_sf
    index = 3
    while index > 0:
        if INT16_MIN <= s * (1 << (8 * (1 + index))) <= INT16_MAX:
            break
        index -= 1
    return s, 1 << (8 * (1 + index)), index


# ---- activation output scale factors, frontend/scale_factor_calc.cpp getActivationScale (no statistics) ----

def identity_out_sf(in_sf: float) -> float:
    """Identity: 2049, or 1024.5 when |s·scale| for 1024.5 is strictly larger (the ``#else`` branch)."""
    s, scale, _ = gna_slope(1.0, in_sf, 2049.0)
    s2, scale2, _ = gna_slope(1.0, in_sf, 1024.5)
    return 1024.5 if abs(s2 * scale2) > abs(s * scale) else 2049.0


def activation_out_sf(op: str, in_sf: float, exponent: float = 1.0) -> float:
    """2048 (``activation_scale_factor``) for every activation but: ReLU halves it when
    uint64(2048·in_sf) (float product) > INT32_MAX − 1 (``isRelu``, type "relu" only: a Clamp keeps 2048);
    Power: float(32767 / max(|x_min^e|, |x_max^e|)), x_min = max(INT32_MIN/in_sf, −16) for an integer e else 0,
    x_max = min(INT32_MAX/in_sf, 16) (``pow_domain``), unless that is ∞."""
    result = F32(2048.0)
    if op == "Relu":
        if int(F32(result * F32(in_sf))) > INT32_MAX - 1:
            result = F32(result * F32(0.5))
    elif op == "Power":
        x_min = max(INT32_MIN / in_sf, -16.0) if math.fmod(exponent, 1.0) == 0.0 else 0.0
        x_max = min(INT32_MAX / in_sf, 16.0)
        peak = max(abs(x_min ** exponent), abs(x_max ** exponent))
        if peak != 0 and not math.isinf(32767.0 / peak):
            result = F32(32767.0 / peak)
    return float(result)


# ---- segments: (xBase with the index in its 2 low bits, yBase, slope) ----

def _xbase(x: int, index: int) -> int:
    """``pwl_tools.cpp`` ``ComputeXBaseForSegment``: (x & XBASEMASK) | index, as a signed int32."""
    return narrow((x & ~3) | index, 32)


def _seg(x_base: int) -> tuple[int, int]:
    """(xBase value, slope_scale) of a stored xBase (``ConvertSegmentTo64``)."""
    return x_base & ~3, 1 << (8 * ((x_base & 3) + 1))


def identity_segments(in_sf: float, out_sf: float, release: str,
                      fq: tuple[float, float] | None = None) -> list[tuple[int, int, int]]:
    """``backend/pwl_border_values_counter_identity.cpp`` ``CreateBorderValues`` (``…WithFakeQuantize`` when the
    identity has FQ statistics: borders int64(lo·in_sf), int32(lo·out_sf), truncated, clamped to the defaults)
    and ``pwl_segments_creator_identity.cpp`` ``CreateSegments``: segment 0 at INT32_MIN, segment 1 from
    x_lower with the unit slope (``pwl_tools.cpp`` ``ComputeSlopeForSegment``: rounded into an int64, clamped to
    32767), a segment (0, 0) when segment 1 misses the origin with segment 1 moved left
    (``UpdateSegmentOnTheLeftOf0_0``), a flat right segment when x_upper < INT32_MAX
    (``CreateSegmentOnTheRight``). C++ integer division truncates toward zero."""
    x_lower, x_upper, y_lower, y_upper = INT32_MIN, INT32_MAX, INT16_MIN, INT16_MAX
    if fq is not None:
        lo, hi = fq
        x_lower = max(int(lo * in_sf), x_lower)
        x_upper = min(int(hi * in_sf), x_upper)
        y_lower = max(int(lo * out_sf), y_lower)
        y_upper = min(int(hi * out_sf), y_upper)
    else:
        if x_lower < y_lower * in_sf / out_sf:
            x_lower = narrow(to_int(y_lower * in_sf / out_sf, release), 32)
        if x_upper > y_upper * in_sf / out_sf:
            x_upper = narrow(to_int(y_upper * in_sf / out_sf, release), 32)
        if y_lower < x_lower * out_sf / in_sf:
            y_lower = narrow(to_int(x_lower * out_sf / in_sf, release), 16)
        if y_upper > x_upper * out_sf / in_sf:
            y_upper = narrow(to_int(x_upper * out_sf / in_sf, release), 16)
    assert not (x_lower == x_upper == y_lower == y_upper == 0), "AreValuesValid: the plugin refuses these scales"
    s, scale, index = gna_slope(1.0, in_sf, out_sf)
    slope = narrow(min(to_int(s * scale, release), INT16_MAX), 16)
    segs = [(_xbase(INT32_MIN, 0), y_lower, 0), (_xbase(x_lower, index), y_lower, slope)]
    x1, sc1 = _seg(segs[1][0])
    y0 = _tdiv((0 - x1) * slope, sc1) + y_lower  # ComputePWL(segment 1, 0)
    assert y_lower <= y0 <= y_upper, "CountYAndValidateForX0: the plugin throws"
    if y0 != 0:
        segs.append((_xbase(0, index), 0, slope))
        x0 = segs[0][0] & ~3
        new_x1 = x1 - _tdiv((y_lower - y_lower - y0) * sc1, slope)
        if new_x1 < x0 and new_x1 + 1 < 0:
            new_x1 = x0 + 1
        segs[1] = (_xbase(_tdiv(new_x1, 4) * 4, index), y_lower, slope)
    if INT32_MAX > x_upper:
        xb, sc = _seg(segs[-1][0])
        right = xb + _tdiv((y_upper - segs[-1][1]) * sc, segs[-1][2])
        right = min(right, INT32_MAX)
        segs.append((_xbase(_tdiv(right, 4) * 4, 0), y_upper, 0))
    return segs


def _tdiv(a: int, b: int) -> int:
    """C++ integer division: the quotient truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def relu_segments(in_sf: float, out_sf: float, release: str) -> list[tuple[int, int, int]]:
    """``backend/make_pwl.cpp`` ``make_gna_pwl(const DnnActivation&…)`` case kActRelu without FQ statistics and
    negative_slope 0: x_lower = *ToInt32(−32768·in/out) when above INT32_MIN, y_lower back from x_lower when
    larger; segment 0 (x_lower | index of gna_slope(0) = 3, yBase max(FloatToInt32(y_lower·0.0f), −32768) = 0,
    slope 0), segment 1 (0 | index, 0, *ToInt16 of the unit slope, not clamped: narrowed)."""
    x_lower, y_lower = INT32_MIN, INT16_MIN
    if x_lower < y_lower * in_sf / out_sf:
        x_lower = narrow(to_int(y_lower * in_sf / out_sf, release), 32)
    if y_lower < x_lower * out_sf / in_sf:
        y_lower = narrow(to_int(x_lower * out_sf / in_sf, release), 16)
    _, _, index0 = gna_slope(0.0, in_sf, out_sf)
    y0 = max(to_int_f32(F32(y_lower) * F32(0.0)), INT16_MIN)
    s, scale, index = gna_slope(1.0, in_sf, out_sf)
    return [(_xbase(x_lower, index0), y0, 0), (_xbase(0, index), 0, narrow(to_int(s * scale, release), 16))]


def clamp_segments(in_sf: float, out_sf: float, low: float, high: float, release: str) -> list[tuple[int, int, int]]:
    """``make_pwl.cpp`` case kActKaldiLstmClipping without FQ statistics, bounds as the legacy ClampLayer holds
    them (float [I]): x_lower = *ToInt32(low·in), y_lower = *ToInt16(low·out) when low·out > −32768, else x_lower
    = *ToInt32(y_lower·in/out) (same for the upper side); segments (INT32_MIN, y_lower, 0), (x_lower | index,
    y_lower, unit slope narrowed to int16) and, when x_upper < INT32_MAX, (x_upper, y_upper, 0)."""
    l_bound, u_bound = float(F32(low)), float(F32(high))
    x_lower, x_upper, y_lower, y_upper = INT32_MIN, INT32_MAX, INT16_MIN, INT16_MAX
    if x_lower < l_bound * in_sf:
        if y_lower < l_bound * out_sf:
            x_lower = narrow(to_int(l_bound * in_sf, release), 32)
            y_lower = narrow(to_int(l_bound * out_sf, release), 16)
        else:
            x_lower = narrow(to_int(y_lower * in_sf / out_sf, release), 32)
    if x_upper > u_bound * in_sf:
        if y_upper > u_bound * out_sf:
            x_upper = narrow(to_int(u_bound * in_sf, release), 32)
            y_upper = narrow(to_int(u_bound * out_sf, release), 16)
        else:
            x_upper = narrow(to_int(y_upper * in_sf / out_sf, release), 32)
    s, scale, index = gna_slope(1.0, in_sf, out_sf)
    segs = [(_xbase(INT32_MIN, 0), y_lower, 0),
            (_xbase(x_lower, index), y_lower, narrow(to_int(s * scale, release), 16))]
    if INT32_MAX > x_upper:
        segs.append((_xbase(x_upper, 0), y_upper, 0))
    return segs


def _cast_check(v: float, lo: int, hi: int, release: str | None) -> int:
    """``make_pwl.cpp`` ``cast_check_overflow<T>``: ±∞ or past T's range → its end; else rounded
    (*ToInt32 of the release) or, for xBase, truncated."""
    if v == math.inf or v > hi:
        return hi
    if v == -math.inf or v < lo:
        return lo
    return to_int(v, release) if release else int(v)


def _mul(a: float, b: float) -> float:
    """``mul_check_overflow``: 0 when a factor is 0 (0·∞ = 0)."""
    return 0.0 if a == 0 or b == 0 else a * b


def designed_segments(m, b, alpha, in_sf: float, out_sf: float, release: str) -> list[tuple[int, int, int]]:
    """``make_pwl.cpp`` ``make_gna_pwl(const T* m, const T* b, const T* alpha, count, …)``: per float segment,
    xBase = trunc(in·α) (cast_check, no rounding) & mask | index, yBase = round((m·α + b)·out), slope =
    round(s·scale), the two rounded as the release rounds (``cast_check_overflow`` calls *ToInt32)."""
    segs = []
    for mi, bi, ai in zip(m, b, alpha):
        s, scale, index = gna_slope(float(mi), in_sf, out_sf)
        x = _cast_check(_mul(in_sf, float(ai)), INT32_MIN, INT32_MAX, None)
        y = _cast_check(_mul(_mul(float(mi), float(ai)) + float(bi), out_sf), INT16_MIN, INT16_MAX, release)
        k = _cast_check(_mul(s, float(scale)), INT16_MIN, INT16_MAX, release)
        segs.append((_xbase(x, index), y, k))
    return segs


def pwl_eval(segs: list[tuple[int, int, int]], x: np.ndarray) -> np.ndarray:
    """intel/gna ``src/gna-lib/kernels/pwl.cpp`` (``pwlKernelImplAllLinear`` read as the reference): x ≤ xBase0
    → yBase0; else the last segment with xBase ≤ x (walking down from the last), ((x − xBase)·slope) >> shift
    (arithmetic: floor) + yBase, saturated to int16 (``pwlSaturateStoreOut``)."""
    out = np.zeros(np.shape(x), dtype=np.int64)
    x0 = segs[0][0] & ~3
    for i, v in np.ndenumerate(np.asarray(x)):
        v = int(v)
        if v - x0 <= 0:
            y = segs[0][1]
        else:
            k = len(segs) - 1
            while v - (segs[k][0] & ~3) < 0 and k > 0:
                k -= 1
            xb, yb, slope = segs[k]
            y = (((v - (xb & ~3)) * slope) >> (8 * ((xb & 3) + 1))) + yb
        out[i] = min(max(y, INT16_MIN), INT16_MAX)
    return out


# ---- int8 FC with the compound bias: frontend/scale_factor_calc.cpp ScaleFactorPerLayerWeightable,
# frontend/quantization.cpp QuantizeWeights<int8_t>, QuantizeBiases<gna_compound_bias_t>; intel/gna
# kernels/igemm8_generic-sat.cpp AffineKernelImpl1B2B ----

def int8_fc_scales(w: np.ndarray, b: np.ndarray, in_sf: float) -> tuple[F32, F32]:
    """(w_sf, out_sf) of an FC with int8 weights, int16 inputs, a bias and no statistics, all float32:
    w_sf = 127/max|W| (``ScaleFactorForQuantization``); the bias cap b_sf = min(w_sf·in, 2^30/max|B|),
    w_sf = b_sf/in; ×230 (``MAX_OUT_MULTIPLIER``, compound bias); then, when uint64(w_sf·in·in) >
    (INT32_MAX − 1)·30, w_sf ×= the factor of the ``thresholds`` entry the loop stops at. The loop steps on
    while ``_dst_quant.GetScale()·in/INT32_MAX`` reaches the next threshold, and on this first visit the
    layer's dst scale is still its default 1.0 (``quantized_layer_params.hpp``), so it stops at the entry of
    threshold 100: factor 0.50 [I: read from the code; a restart from a later layer would visit again]."""
    in32 = F32(in_sf)
    w_sf = F32(F32(127.0) / F32(np.max(np.abs(w))))
    if np.max(np.abs(b)) > 0:
        b_sf = min(F32(w_sf * in32), F32(F32(2.0**30) / F32(np.max(np.abs(b)))))
        w_sf = F32(b_sf / in32)
    w_sf = F32(w_sf * F32(230.0))
    tmp_dst = float(F32(w_sf * in32))
    if int(tmp_dst * float(in32)) > (INT32_MAX - 1) * 30:
        dst_scale = F32(1.0)  # the default, see the docstring
        thresholds = ((30, 0.50), (100, 0.50), (150, 0.45), (200, 0.40), (200, 0.35))
        itt = 0  # while ((itt + 1) != end && dst·in/limit >= get<0>(*(++itt))) {}: ++ even when it fails
        while itt + 1 != len(thresholds):
            itt += 1
            if not F32(F32(dst_scale * in32) / F32(INT32_MAX)) >= thresholds[itt][0]:
                break
        w_sf = F32(w_sf * F32(thresholds[itt][1]))
    return w_sf, F32(w_sf * in32)


def int8_fc_quantize(w: np.ndarray, b: np.ndarray, w_sf: F32, out_sf: F32, release: str):
    """(q int8 [M, K], multipliers [M], compound bias [M]). Row multiplier uint32(max_row|w·w_sf|/127 + 0.5f)
    (> 230 throws), stored as 1 when 0; q = SaturationCast<int8>(w·(w_sf/multiplier) ± 0.5f), the sign from
    w > 0. 2022.3 divides by the computed multiplier (0 gives ±∞: ±127/−128; 0·∞ is NaN, [I] 0 as x86 converts
    it); 2023.0+ by the stored one. Bias SaturationCast<int32>(b·out_sf ± 0.5f)."""
    rows, cols = w.shape
    q = np.zeros((rows, cols), dtype=np.int64)
    mult = np.zeros(rows, dtype=np.int64)
    for r in range(rows):
        row_max = F32(0.0)
        for c in range(cols):
            row_max = max(row_max, abs(F32(F32(w[r, c]) * w_sf)))
        computed = int(F32(F32(row_max / F32(127.0)) + F32(0.5)))
        assert computed <= 230, "invalid channel multiplier: the plugin throws"
        mult[r] = computed or 1
        divisor = F32(computed if release == "2022.3" else mult[r])
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = F32(w_sf / divisor)
            for c in range(cols):
                v = F32(F32(F32(w[r, c]) * scale) + (F32(0.5) if w[r, c] > 0 else F32(-0.5)))
                q[r, c] = 0 if np.isnan(v) else (127 if v > 127 else -128 if v < -128 else int(v))
    bias = np.zeros(rows, dtype=np.int64)
    for r in range(rows):
        v = F32(F32(F32(b[r]) * out_sf) + (F32(0.5) if b[r] > 0 else F32(-0.5)))
        bias[r] = INT32_MAX if v > INT32_MAX else INT32_MIN if v < INT32_MIN else int(v)
    return q, mult, bias


def int8_fc(x: np.ndarray, q: np.ndarray, mult: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``AffineKernelImpl1B2B``: sat32(bias + multiplier·Σ q·x) (one partial sum for short rows)."""
    out = np.zeros(q.shape[0], dtype=np.int64)
    for r in range(q.shape[0]):
        acc = sum(int(a) * int(c) for a, c in zip(q[r], x))
        out[r] = min(max(int(bias[r]) + int(mult[r]) * acc, INT32_MIN), INT32_MAX)
    return out


# ---- eltwise: frontend/scale_factor_calc.cpp ScaleFactorPerLayerEltwise, requantizeInput;
# gna_graph_compiler.cpp EltwisePrimitive; optimizer/gna_pass_manager.cpp InsertDiagonalLayerPass;
# intel/gna kernels/isbmm16.cpp (diagonal affine: sat32(bias + w·x)) ----

def sum_weight(sf_bias: float, sf_input: float) -> tuple[int, float]:
    """(integer weight, weights scale) of a Sum: scale = float(sf_bias/sf_input); weight =
    FloatToInt16(min(scale, 32767.f)) (float in every release: ``FLOAT_TO_INT16`` of a float in 2022.3). Below
    0.5 the weight is 0 and the plugin computes the sum without that input: ``ScaleFactorPerLayerEltwise``
    requantizes only above 32767."""
    scale = F32(F32(sf_bias) / F32(sf_input))
    return narrow(to_int_f32(min(scale, F32(32767.0))), 16), float(scale)


def needs_requantize(scale: float, release: str) -> bool:
    """The weights scale is above 32767 and not equal to it: ``common::fp32eq`` (float, accuracy 1e-5,
    2022.3 ``numerical_utils.hpp``) or ``AreFpEq<float>`` (the float epsilon, 2023.0+)."""
    s, m = F32(scale), F32(32767.0)
    accuracy = F32(1e-5) if release == "2022.3" else np.finfo(F32).eps
    return bool(s > m and not abs(s - m) <= accuracy * min(abs(s), abs(m)))


def diagonal_requantized(sf_src: float, w_sf: float, new_out: float) -> float:
    """``requantizeInput`` on a weightable identity (the inserted unit diagonal): reducer = max(1, dst/new),
    w_sf = trunc(max(1, w_sf/reducer)), all float. Returns the new w_sf."""
    dst = F32(F32(w_sf) * F32(sf_src))
    reducer = max(F32(1.0), F32(dst / F32(new_out)))
    return float(np.trunc(max(F32(1.0), F32(F32(w_sf) / reducer))))


def diagonal(x: np.ndarray, w: int, bias: np.ndarray | int = 0) -> np.ndarray:
    """Diagonal affine, isbmm16: sat32(bias + w·x) element by element (w an integer or an array)."""
    ws = np.broadcast_to(np.asarray(w), np.shape(x))
    bs = np.broadcast_to(np.asarray(bias), np.shape(x))
    out = np.zeros(np.shape(x), dtype=np.int64)
    for i, v in np.ndenumerate(np.asarray(x)):
        out[i] = min(max(int(bs[i]) + int(ws[i]) * int(v), INT32_MIN), INT32_MAX)
    return out
