"""Host-side quantization: inputs, weights, biases, and the scale-factor rules of weightable layers.

Follows docs/gna-rules.md §2, §3.1, §3.2 and §3.6. Every scale factor is a float32, as in the plugin, and every
host-side rounding is ``trunc(float32(v ± 0.5))`` after a float32 product (not float64 ``round``), so
that ties and large int32 biases come out as the plugin writes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from gnaexp.core.gna_settings import PRECISIONS
from gnaexp.emulator import kernels
from gnaexp.emulator.plan_row import Extras, Lane, PlanRow, WeightFacts
from gnaexp.emulator.releases import DEFAULT, PluginRelease
from gnaexp.emulator.int_ranges import INT8_MAX, INT8_MIN, INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN
from gnaexp.core.errors import BadInput
F32 = np.float32

MAX_VAL_2B_WEIGHT = 16384  # int16 weight target, not 32767
MAX_VAL_1B_WEIGHT = 127
MAX_OUT_MULTIPLIER = 230  # int8 compound-bias row multiplier ceiling
MAX_VAL_4B_BIAS = 1073741824  # 2**30
MAX_VAL_2B_FEAT = 16384

# Compile target the weight-precision rules follow. GNA 3.0 is the default the 2023.0 documentation names
# ("latest supported, i.e. GNA 3.0"); on it convolution weights are always int16.
DEFAULT_COMPILE_TARGET = "3.0"
INT8_NOT_APPLIED = "int8 asked, int16 used"  # starts the note; the emulator lifts such notes to its result


def round_f32(v: np.ndarray | float) -> np.ndarray:
    """Round the way the plugin does: float32 add of ±0.5 (sign of v, 0 counts as +), then truncate.

    Returns float64 holding integers (exact), not yet clamped.
    """
    v = np.asarray(v, dtype=F32)
    half = np.where(v >= 0, F32(0.5), F32(-0.5)).astype(F32)
    return np.trunc((v + half).astype(F32)).astype(np.float64)


def saturate(q: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """Clamp to [lo, hi]; return the clamped array and how many values were clamped."""
    n = int(np.count_nonzero((q < lo) | (q > hi)))
    return np.clip(q, lo, hi), n


def quantize_input(x: np.ndarray, sf: float, name: str = "", bits: int = 16) -> tuple[np.ndarray, int]:
    """Network input to int16 (or int8, the low-precision input mode): float32 product x·sf, plugin rounding,
    saturate. Returns (values, saturations).

    The plugin's ConvertFloatToInt16 / ConvertFloatToInt8 (``pre_post_processing/preprocessing.cpp``): add ±0.5f
    (−0.5f for values ≤ 0), clamp to the type's range, truncate. Values are float32 holding exact integers.
    sign(v)·floor(|v| + 0.5f) equals trunc(v ± 0.5f) exactly (float32 rounding is symmetric in sign); one
    compiled pass (native.quantize_input), or ``quantize_numpy`` before a process has loaded the compiled loops.
    """
    lo, hi = {16: (INT16_MIN, INT16_MAX), 8: (INT8_MIN, INT8_MAX)}[bits]
    x = np.asarray(x, dtype=F32)
    if x.size == 0:
        return x.copy(), 0
    flat = np.ascontiguousarray(x).reshape(1, -1)
    native = kernels.compiled(flat.size)
    if native is None:
        out, n, non_finite = quantize_numpy(flat, sf, lo, hi)
    else:
        out = np.empty(flat.shape, dtype=F32)
        n, non_finite = native.quantize_input(flat, F32(sf), out, F32(lo), F32(hi))
    if non_finite:
        raise BadInput(f"input {name + ' ' if name else ''}holds {non_finite} NaN or infinite value(s) (after "
                         f"scaling by sf {sf:g}); replace them before emulating")
    return out.reshape(x.shape), int(n)


def quantize_numpy(x: np.ndarray, sf: float, lo: int, hi: int) -> tuple[np.ndarray, int, int]:
    """``native.quantize_input`` in NumPy, the same bits: (float32 values, saturated count, non-finite count)."""
    v = x * F32(sf)  # float32 product
    q, saturated = saturate(round_f32(v), lo, hi)
    return q.astype(F32), saturated, int(np.count_nonzero(~np.isfinite(v)))


def fq_scale(levels: int, lo: float, hi: float) -> float:
    """Scale factor from FakeQuantize statistics: (L−1)/(max−min), L capped at 65536; 1 if the range is empty."""
    lv = min(int(levels), 65536)
    lo32, hi32 = F32(lo), F32(hi)
    if hi32 == lo32:
        return 1.0
    return float(F32(F32(lv - 1) / F32(hi32 - lo32)))


def conv_reducer(c_in: int, weight_range: int, k2d: float = 1.0) -> float:
    """Convolution weight reducer (§3.2 step 4, E6).

    The plugin's quotient 16384·R·C_in / INT32_MAX is C++ integer division, truncated before the multiply
    by the (double) k2d, so int16 weights give max(1, k2d·⌊C_in/8⌋) in effect.
    """
    quotient = (MAX_VAL_2B_FEAT * int(weight_range) * int(c_in)) // INT32_MAX
    return max(1.0, float(k2d) * quotient)


def kernel_2d_factor(kernel_area: int) -> float:
    """k2d for 2-D kernels that cannot be flattened to 1-D (gna_convolution_layer getWeightsReducer)."""
    for area, factor in ((49, 3.0), (36, 2.6), (21, 2.3), (14, 1.7), (9, 1.3), (7, 1.2)):
        if kernel_area >= area:
            return factor
    return 1.0


@dataclass
class WeightStats:
    """FakeQuantize-like statistics attached to a weight constant (FQ on weights, or NNCF decompression)."""

    levels: int
    out_low: np.ndarray  # broadcastable to per-output-channel
    out_high: np.ndarray
    source: str  # "fake-quantize" or "decompression"
    # The FQ's input constant (same shape as the snapped weights): QuantizeWeights<int16_t> rounds with the sign
    # of this float weight, not of the snapped value (frontend/quantization.cpp, rounding_value)
    raw: np.ndarray | None = None


@dataclass
class WeightQuant:
    """Quantized weights and bias of one weightable layer, plus the facts a plan reports."""

    kind: str  # "conv" | "fc"
    weights: np.ndarray  # integers (float64), same shape as the float weights
    bias: np.ndarray  # int32 integers (float64), one per output row
    multipliers: np.ndarray | None  # int8 compound-bias row multipliers (FC only)
    weight_precision: str  # "i16" | "i8"
    in_sf: float
    w_sf: float
    out_sf: float
    bias_cap_hit: bool = False
    reducer: float = 1.0
    dst_reducer: float = 1.0
    weight_saturations: int = 0
    bias_saturations: int = 0
    notes: list[str] = field(default_factory=list)

    def facts(self) -> WeightFacts:
        return WeightFacts(self.weight_precision, self.bias_cap_hit, self.reducer, self.dst_reducer,
                           self.weight_saturations, self.bias_saturations)

    def row(self, layer: str, op: str, precision: str | None = None, extras: Extras | None = None) -> PlanRow:
        """The plan row of the layer these weights belong to: its 32-bit output at ``out_sf``."""
        return PlanRow(layer, op, precision or self.weight_precision, Lane.INT32, self.in_sf, self.w_sf,
                       self.out_sf, dataclasses.replace(extras or Extras(), weights=self.facts()), list(self.notes))


def weight_precision_for(kind: str, precision: str, stats: WeightStats | None, target: str = DEFAULT_COMPILE_TARGET) -> str:
    """Which integer type the weights get (§2, §3.2 FQ).

    FQ/decompression statistics decide over the precision hint (≤255 levels → int8). Convolutions stay int16
    on compile targets below 3.5 whatever the statistics say [I: for an 8-bit-statistics convolution on GNA 3.0
    the weights become int16 holding the 8-bit grid].
    """
    if precision not in PRECISIONS:
        raise BadInput(f"precision must be 'i16' or 'i8', got {precision!r}")
    want = precision
    if stats is not None:
        want = "i8" if stats.levels <= 255 else "i16"
    if kind == "conv" and float(target) < 3.5:
        return "i16"
    return want


def fq_weight_scale(stats: WeightStats, int8: bool) -> float:
    """w_sf from weight statistics: min over channels of (L−1)/(high−low), ×230 for int8 compound bias."""
    lv = min(int(stats.levels), 65536)
    span = np.asarray(stats.out_high, dtype=F32) - np.asarray(stats.out_low, dtype=F32)
    span = span[span > 0]
    w_sf = F32(1.0) if span.size == 0 else F32(np.min(F32(lv - 1) / span.astype(F32)))
    if int8:
        w_sf = F32(w_sf * F32(MAX_OUT_MULTIPLIER))
    return float(w_sf)


def _int8_ratio_factor(w_sf: float, in_sf: float) -> float:
    """§3.2 step 5 for int8 FC weights (``scale_factor_calc.cpp`` ``ScaleFactorPerLayerWeightable``, the
    ``thresholds`` table): entered when uint64(float(w_sf·in_sf)·in_sf) > (INT32_MAX − 1)·30. The table's loop
    steps on while ``_dst_quant.GetScale()·in_sf/INT32_MAX`` reaches the next threshold; on a layer's first visit
    its dst scale is still the default 1.0 (``quantized_layer_params.hpp``), so for any input scale below 2·10^11
    the loop stops at the entry of threshold 100, factor 0.50 (the ++ runs before the failing comparison)."""
    tmp_dst = float(F32(F32(w_sf) * F32(in_sf)))
    if int(tmp_dst * float(F32(in_sf))) <= (INT32_MAX - 1) * 30:
        return 1.0
    ratio = float(F32(F32(1.0) * F32(in_sf)) / F32(INT32_MAX))  # the default dst scale, see above
    factor = 0.50
    for threshold, next_factor in ((100, 0.50), (150, 0.45), (200, 0.40), (200, 0.35)):
        factor = next_factor
        if not ratio >= threshold:
            break
    return factor


def quantize_weightable(
    weights: np.ndarray,
    bias: np.ndarray | None,
    in_sf: float,
    *,
    kind: str,
    precision: str = "i16",
    stats: WeightStats | None = None,
    c_in: int = 1,
    k2d: float = 1.0,
    dst_stats: tuple[int, float, float] | None = None,
    target: str = DEFAULT_COMPILE_TARGET,
    forced_out_sf: float | None = None,
    release: PluginRelease = DEFAULT,
) -> WeightQuant:
    """Quantize one convolution (kind="conv", weights [F, C, K]) or FC layer (kind="fc", weights [M, K]).

    Order of §3.2: base w_sf → bias cap → ×230 (int8) → conv reducer → int8 ratio step → out_sf = w_sf·in_sf;
    then destination statistics (an FQ after the layer, step 7) may shrink w_sf again.
    """
    w = np.asarray(weights, dtype=F32)
    rows = w.shape[0]
    b = np.zeros(rows, dtype=F32) if bias is None else np.asarray(bias, dtype=F32).reshape(rows)
    wprec = weight_precision_for(kind, precision, stats, target)
    int8 = wprec == "i8"
    compound = int8 and kind == "fc"
    in_sf32 = F32(in_sf)
    notes: list[str] = []
    if kind == "conv" and wprec == "i16" and (precision == "i8" or (stats is not None and stats.levels <= 255)):
        notes.append(f"{INT8_NOT_APPLIED}: on the GNA {target} compile target convolution weights are always "
                     "int16 (int8 from GNA 3.5)")
    reducer = 1.0
    cap_hit = False

    if stats is not None:
        w_sf = F32(fq_weight_scale(stats, int8=compound))
        notes.append(f"weight scale from {stats.source} statistics ({stats.levels} levels)")
    else:
        r = MAX_VAL_1B_WEIGHT if int8 else MAX_VAL_2B_WEIGHT
        max_w = F32(np.max(np.abs(w))) if w.size else F32(0)
        w_sf = F32(1.0) if max_w == 0 else F32(F32(r) / max_w)

    max_b = F32(np.max(np.abs(b))) if (bias is not None and b.size) else F32(0)
    b_cap = F32(F32(MAX_VAL_4B_BIAS) / max_b) if max_b > 0 else None  # ScaleFactorForQuantization(b, 2^30)
    if stats is None and b_cap is not None:
        # §3.2 step 2, as ScaleFactorPerLayerWeightable writes it: b_sf = min(w_sf·in_sf, b_cap), then always
        # w_sf = b_sf / in_sf — in float32 the round trip can move w_sf by one ulp even when the cap does not bite.
        prod = F32(w_sf * in_sf32)
        cap_hit = bool(b_cap < prod)
        w_sf = F32(min(prod, b_cap) / in_sf32)

    if stats is None:
        if compound:
            w_sf = F32(w_sf * F32(MAX_OUT_MULTIPLIER))
        if kind == "conv":
            r = MAX_VAL_1B_WEIGHT if int8 else MAX_VAL_2B_WEIGHT
            reducer = conv_reducer(c_in, r, k2d)
            if reducer > 1.0:
                w_sf = F32(w_sf / F32(reducer))
        if compound:
            factor = _int8_ratio_factor(float(w_sf), float(in_sf32))
            if factor != 1.0:
                w_sf = F32(w_sf * F32(factor))
                notes.append(f"int8 weight scale multiplied by {factor} (w_sf·in_sf² large)")

    out_sf = F32(w_sf * in_sf32)
    dst_reducer = 1.0
    if dst_stats is not None:
        _, lo, hi = dst_stats
        # The bias cap of the output-statistics branch runs only where step 2 did not set the bias scale, i.e.
        # for FQ weights (scale_factor_calc.cpp: `wl->_biases && !quant->_bias_quant.IsScaleSet()`).
        if stats is not None and b_cap is not None and b_cap < out_sf:
            cap_hit = True
            w_sf = F32(b_cap / in_sf32)
            out_sf = F32(w_sf * in_sf32)
        max_y = max(abs(float(lo)), abs(float(hi)))
        max_int = int(np.float32(max_y * float(out_sf)) + np.float32(0.5))
        red = max(1.0, max_int / INT32_MAX)
        if red > 1.0:
            dst_reducer = red
            w_sf = F32(float(w_sf) / red)  # float / double, then cast (weightsReducer is a double)
            out_sf = F32(w_sf * in_sf32)

    if forced_out_sf is not None:  # requantizeInput for an eltwise sum: dst scale set, weights scale = dst / src
        # requantizeInput sets w_sf = new / src and restarts from this layer, whose dst scale is then computed
        # again as w_sf · src (ScaleFactorPerLayerWeightable): a float product, not always the scale asked for
        w_sf = F32(F32(forced_out_sf) / in_sf32)
        out_sf = F32(w_sf * in_sf32)
        notes.append(f"weight scale lowered to {float(w_sf):g} (output sf {float(out_sf):g}) so that the eltwise sum "
                     "it feeds keeps its weight within int16 (scale_factor_calc.cpp requantizeInput)")
    multipliers = None
    if compound:
        scaled = (w * w_sf).astype(F32)
        row_max = np.max(np.abs(scaled.reshape(rows, -1)), axis=1)
        computed = np.floor(row_max / F32(MAX_VAL_1B_WEIGHT) + F32(0.5)).astype(np.float64)
        if np.any(computed > MAX_OUT_MULTIPLIER):
            raise BadInput(f"int8 row multiplier above {MAX_OUT_MULTIPLIER}: weights cannot be quantized")
        multipliers = np.where(computed == 0, 1.0, computed)  # "channel multiplier shouldn't be 0"
        per_row = multipliers.reshape((rows,) + (1,) * (w.ndim - 1)).astype(F32)
        # value · (w_sf / multiplier) ± 0.5, in that order (quantization.cpp QuantizeWeights<int8_t>)
        qw = round_f32((w * (w_sf / per_row).astype(F32)).astype(F32))
        if release.int8_zero_multiplier_saturates and np.any(computed == 0):
            # 2022.3 divides by the computed multiplier: a row whose multiplier is 0 scales its weights by ∞, so
            # each nonzero weight saturates; 0·∞ is NaN, which the x86 conversion turns into 0 [I]
            zero_rows = (computed == 0).reshape((rows,) + (1,) * (w.ndim - 1))
            qw = np.where(zero_rows & (w > 0), 1e9, np.where(zero_rows & (w < 0), -1e9, np.where(zero_rows, 0.0, qw)))
            notes.append(f"{int(np.count_nonzero(computed == 0))} int8 row(s) with a computed multiplier of 0: "
                         "plugin 2022.3 divides by it, so their nonzero weights saturate (quantization.cpp L145)")
        qw, wsat = saturate(qw, INT8_MIN, INT8_MAX)
    else:
        lo, hi = (INT8_MIN, INT8_MAX) if int8 else (INT16_MIN, INT16_MAX)
        qw = round_f32((w * w_sf).astype(F32))
        if not int8 and stats is not None and stats.raw is not None:
            # value·w_sf ± 0.5f with the sign of the weight before ApplyFQ (quantization.cpp @2023.1.0
            # QuantizeWeights<int16_t>, `ptr_float_weights[…] > 0 ? 0.5f : -0.5f`): a weight of 0 (or one that
            # snaps across 0) rounds with −0.5f
            half = np.where(np.asarray(stats.raw, dtype=F32).reshape(w.shape) > 0, F32(0.5), F32(-0.5)).astype(F32)
            qw = np.trunc(((w * w_sf).astype(F32) + half).astype(F32)).astype(np.float64)
        qw, wsat = saturate(qw, lo, hi)

    qb = round_f32((b * out_sf).astype(F32))
    qb, bsat = saturate(qb, INT32_MIN, INT32_MAX)
    return WeightQuant(
        kind=kind,
        weights=qw,
        bias=qb,
        multipliers=multipliers,
        weight_precision=wprec,
        in_sf=float(in_sf32),
        w_sf=float(w_sf),
        out_sf=float(out_sf),
        bias_cap_hit=cap_hit,
        reducer=reducer,
        dst_reducer=dst_reducer,
        weight_saturations=wsat,
        bias_saturations=bsat,
        notes=notes,
    )


def snap_fake_quantize(x: np.ndarray, levels: int, il, ih, ol, oh) -> np.ndarray:
    """FakeQuantize semantics (OpenVINO spec) in float32: clamp to the input range, snap, map to the output range."""
    x = np.asarray(x, dtype=F32)
    il, ih, ol, oh = (np.asarray(a, dtype=F32) for a in (il, ih, ol, oh))
    steps = F32(levels - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.round((x - il) / (ih - il) * steps)
        y = q / steps * (oh - ol) + ol
    y = np.where(x <= np.minimum(il, ih), ol, np.where(x > np.maximum(il, ih), oh, y))
    return y.astype(F32)
