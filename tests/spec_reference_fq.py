"""A plain, slow reading of the GNA plugin's FakeQuantize rules, release by release, for the differential tests
(``test_emulator_differential_fq.py``): FQ on the weights, on the input, and after a weightable layer.

Each function names the plugin file and function it reads (``src/plugins/intel_gna/src`` at the tags 2022.3.0,
2023.0.0, 2023.1.0; 2023.2 and 2023.3 compute as 2023.1). Loops and Python integers; no code shared with
``gnaexp.emulator``. [I] marks what the source leaves to the compiler or to us.

How an FQ reaches these rules (``optimizer/gna_pass_manager.cpp``): ``FuseFQIntoWeightsPass`` gives the
weightable layer the FQ's *input* constant (the float weights, not snapped) and the FQ's levels and ranges as
weight statistics; ``MoveFakeQuantizeLayerIntoQuantParamsPass`` copies an activation FQ's levels and ranges into
the destination statistics of the layer before it and into the FQ's own, whose levels it sets to UINT16_MAX. An
FQ that ends the network, or whose consumer would need an identity (its input is a 32-bit output), is not fused
away (``allowFQFuse``): it stays a layer of type FakeQuantize, an activation (``LayerInfo::isActivation``), and
is compiled as the PWL of ``kActFakeQuantize``. An input FQ only sets the input scale factor
(``gna_plugin.cpp`` ``UpdateInputScaleFromNetwork``).

``QuantizationParams::GetMinValues(bool input = true)`` (``frontend/quantized_layer_params.hpp``) returns the
*input* range by default; the weight statistics are read with ``false`` (output range) where the source says so.
"""

from __future__ import annotations

import math

import numpy as np

import spec_reference_ops as rops

F32 = np.float32
INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_VAL_4B_BIAS = 1073741824
MAX_ACTIVATION_SF = 4096.0  # scale_factor_calc.hpp max_activation_scale_factor


def scale_from_stats(levels: int, lo: float, hi: float) -> F32:
    """``frontend/scale_factor_calc.cpp`` ``CalculateScaleFactorFromStats``: hi == lo ? 1 : (levels − 1)/(hi − lo),
    a float division (size_t converted to float)."""
    lo, hi = F32(lo), F32(hi)
    return F32(1.0) if hi == lo else F32(F32(levels - 1) / F32(hi - lo))


def input_scale(levels: int, in_low: float, in_high: float) -> float:
    """``gna_plugin.cpp`` ``UpdateInputScaleFromNetwork``: levels capped at 65536, the FQ's input range."""
    return float(scale_from_stats(min(levels, 65536), in_low, in_high))


def apply_fq(v: float, il: float, ih: float, ol: float, oh: float, levels: int) -> F32:
    """``frontend/quantization.cpp`` ``ApplyFQ``, all float: ≤ min(il, ih) → ol, > max → oh, else
    nearbyint((v − il)/(ih − il)·(L − 1))/(L − 1)·(oh − ol) + ol (nearbyint: half to even)."""
    v, il, ih, ol, oh = (F32(a) for a in (v, il, ih, ol, oh))
    if v <= min(il, ih):
        return ol
    if v > max(il, ih):
        return oh
    steps = F32(levels - 1)
    return F32(F32(F32(np.rint(F32(F32(F32(v - il) / F32(ih - il)) * steps)) / steps) * F32(oh - ol)) + ol)


def quantize_fq_weights(w: np.ndarray, w_sf: F32, fq: tuple[float, float, float, float, int]) -> np.ndarray:
    """``quantization.cpp`` ``QuantizeWeights<int16_t>`` with statistics: value = ApplyFQ(w) (the FQ's input
    constant, per-tensor ranges), then SaturationCast<int16>(value·w_sf ± 0.5f) with the sign of the *float
    weight before ApplyFQ* (``rounding_value = w > 0 ? 0.5f : -0.5f``): a weight of 0 that snaps away from 0
    rounds with −0.5f. SaturationCast clamps, then truncates (``quantization.hpp``)."""
    il, ih, ol, oh, levels = fq
    q = np.zeros(w.shape, dtype=np.int64)
    for i, x in np.ndenumerate(np.asarray(w, dtype=F32)):
        value = F32(F32(apply_fq(x, il, ih, ol, oh, levels) * w_sf) + (F32(0.5) if x > 0 else F32(-0.5)))
        q[i] = INT16_MAX if value > INT16_MAX else INT16_MIN if value < INT16_MIN else int(value)
    return q


def weightable_scales(levels: int, w_low: float, w_high: float, in_sf: float, b: np.ndarray | None,
                      dst: tuple[float, float] | None) -> tuple[F32, F32]:
    """(w_sf, out_sf) of an FC with FQ weights, ``scale_factor_calc.cpp`` ``ScaleFactorPerLayerWeightable``:
    w_sf = min over channels of CalculateScaleFactorFromStats(levels, out_low, out_high) (no ×230: int16);
    the no-statistics block (bias cap, reducer) is skipped; dst = w_sf·in_sf. With destination statistics
    ``dst`` (the FQ after the layer, its input range): the bias cap, as the bias scale is not set on this path
    (b_sf = ScaleFactorForQuantization(b, 2^30) = 2^30/max|b|, −1 for a zero bias; w_sf = b_sf/in_sf when
    b_sf < dst); then ``calculateWeightsReducerFromDstStats``: int64(max|y|·dst + 0.5f) (float) over INT32_MAX
    (double), at least 1; w_sf = float(w_sf / reducer) when > 1; dst = w_sf·in_sf."""
    in32 = F32(in_sf)
    w_sf = scale_from_stats(levels, w_low, w_high)
    out = F32(w_sf * in32)
    if dst is not None:
        if b is not None and np.max(np.abs(b)) > 0:
            b_sf = F32(F32(MAX_VAL_4B_BIAS) / F32(np.max(np.abs(np.asarray(b, F32)))))
            if b_sf < out:
                w_sf = F32(b_sf / in32)
                out = F32(w_sf * in32)
        max_abs = max(abs(F32(dst[0])), abs(F32(dst[1])))
        max_int = int(F32(F32(max_abs * out) + F32(0.5)))
        reducer = max(1.0, max_int / INT32_MAX)
        if reducer > 1.0:
            w_sf = F32(float(w_sf) / reducer)
        out = F32(w_sf * in32)
    return w_sf, out


def _fp_eq(a: float, b: float, accuracy: float) -> bool:
    """``AreFpEq`` / 2022.3 ``fp32eq`` in float: |a − b| ≤ accuracy·min(|a|, |b|)."""
    a, b = F32(a), F32(b)
    return bool(abs(F32(a - b)) <= F32(accuracy) * min(abs(a), abs(b)))


def _best_output_sf(in_sf: float, candidates: list[F32], release: str) -> F32:
    """``scale_factor_calc.cpp`` ``selectBestOutputScaleFactors`` for the one slope 1.0 (``getPWLSlopes`` of an
    FQ): the first candidate whose rounded slope (*ToInt16, ``best_output_sf`` site) gives back 1 within 1e-6
    (float), else the first with the smallest float error sqrtf((test − 1)²)."""
    errors = []
    for out_sf in candidates:
        s, scale, _ = rops.gna_slope(1.0, float(in_sf), float(out_sf))
        slope = rops.narrow(rops.to_int(s * scale, release), 16)
        test = slope / scale * float(in_sf) / float(out_sf)
        if _fp_eq(test, 1.0, 1e-6):
            return out_sf
        errors.append(F32(math.sqrt(F32((test - 1.0) ** 2))))
    return candidates[int(np.argmin(errors))]  # argmin: the first of equal minima, as the strict < loop


def adjust_scale_factor(sf: F32, in_sf: float, release: str) -> F32:
    """``scale_factor_calc.cpp`` ``adjustScaleFactor``: start = uint32(sf) (sf > 1), end = start − start/10
    (uint32 when > 1), all float; steps = 10000·(range / 10^(rank(range) − 1)) for an integer range ≥ 1
    (``get_rank``: its number of digits); candidates start + (end − start)/steps·i, i = 0…steps, in float
    (``generateScaleFactors``); the best replaces sf unless equal (AreFpEq, float epsilon; 2022.3 fp32eq 1e-5),
    0 or ∞."""
    sf = F32(sf)
    start = F32(int(sf)) if sf > 1 else sf
    end = F32(start - F32(start / F32(10)))
    end = F32(int(end)) if end > 1 else end
    steps = 10000
    size = int(F32(start - end))
    if size >= 1:
        steps *= size // 10 ** (len(str(size)) - 1)
    step = F32(F32(end - start) / F32(steps))
    candidates = [F32(start + F32(step * F32(i))) for i in range(steps + 1)]
    best = _best_output_sf(in_sf, [c for c in candidates if not np.isnan(c)], release)
    accuracy = 1e-5 if release == "2022.3" else float(np.finfo(F32).eps)
    if not _fp_eq(sf, best, accuracy) and not _fp_eq(best, 0.0, accuracy) and not np.isinf(best):
        return best
    return sf


def activation_out_sf(in_sf: float, in_low: float, in_high: float, release: str) -> float:
    """``scale_factor_calc.cpp`` ``getActivationScale`` for a FakeQuantize layer with destination statistics:
    levels min(UINT16_MAX, 65536) = 65535 (``MoveFakeQuantizeLayerIntoQuantParamsPass`` sets the FQ's own levels
    to UINT16_MAX, whatever the FQ's), the input range; ∞ or max|range| = 0 → 4096; capped at 4096 (no 2048 cap:
    isFakeQuantize); then ``adjustScaleFactor``. (The previous layer is not a weightable identity.)"""
    result = scale_from_stats(65535, in_low, in_high)
    if np.isinf(result) or _fp_eq(max(abs(F32(in_low)), abs(F32(in_high))), 0.0, float(np.finfo(F32).eps)):
        result = F32(MAX_ACTIVATION_SF)
    result = min(result, F32(MAX_ACTIVATION_SF))
    return float(adjust_scale_factor(result, in_sf, release))


def fq_segments(in_sf: float, out_sf: float, in_low: float, in_high: float, release: str) -> list[tuple[int, int, int]]:
    """``backend/make_pwl.cpp`` ``make_gna_pwl(const DnnActivation&…)`` case kActFakeQuantize (shared with
    kActKaldiLstmClipping; ``kActIdentity`` alone goes to the identity creator), ``fqParams`` from the FQ's
    destination statistics (``gna_graph_compiler.cpp`` ``PWLPrimitive``, input range): x_lower =
    int32(max(int64(low·in), INT32_MIN)), y_lower = max(int32(low·out), −32768) stored in an int16 (both
    truncated, double products of the float bound; same for the upper side); segments (INT32_MIN, y_lower, 0),
    (x_lower & ~3 | index, y_lower, unit slope *ToInt16 of the release) and, when x_upper < INT32_MAX,
    (x_upper & ~3, y_upper, 0). No segment through the origin."""
    lo, hi = float(F32(in_low)), float(F32(in_high))
    x_lower = max(int(lo * in_sf), INT32_MIN)
    x_upper = min(int(hi * in_sf), INT32_MAX)
    y_lower = rops.narrow(max(int(lo * out_sf), INT16_MIN), 16)
    y_upper = rops.narrow(min(int(hi * out_sf), INT16_MAX), 16)
    s, scale, index = rops.gna_slope(1.0, in_sf, out_sf)
    segs = [(INT32_MIN, y_lower, 0), (rops.narrow((x_lower & ~3) | index, 32), y_lower,
                                      rops.narrow(rops.to_int(s * scale, release), 16))]
    if INT32_MAX > x_upper:
        segs.append((rops.narrow(x_upper & ~3, 32), y_upper, 0))
    return segs
