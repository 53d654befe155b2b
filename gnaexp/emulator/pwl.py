"""Piecewise-linear (PWL) activations: output scale choice, segment construction, integer evaluation.

Follows docs/gna-rules.md §3.4 and the plugin's identity segment builder (2023 sources): segment 0 flat at y_min from
INT32_MIN, segment 1 from x_lower with the encoded slope, an extra (0, 0) segment when segment 1 misses the
origin (F(0) = 0) with segment 1 moved left, and a flat segment at y_max on the right.

Rounding: every builder takes the plugin release whose tables it makes (``releases.py``): 2023.0 rounds the
identity's borders and slope, the ReLU's and the Clamp's through float32 before truncating; 2022.3 and 2023.1+
round them in double.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from gnaexp.emulator import kernels
from gnaexp.emulator.plan_row import PwlJson
from gnaexp.emulator.plan_types import Lowered
from gnaexp.emulator.releases import DEFAULT, PluginRelease
from gnaexp.emulator.int_ranges import INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN
from gnaexp.core.errors import BadInput

IDENTITY_SF = np.float32(2049.0)
ACTIVATION_SF = np.float32(2048.0)
MAX_ACTIVATION_SF = np.float32(4096.0)


def gna_slope(slope: float, in_sf: float, out_sf: float) -> tuple[float, int, int]:
    """Encode a real slope for GNA: returns (scaled slope s, slope_scale 2^(8(idx+1)), idx).

    s = slope·out_sf/in_sf; idx is tried 3, 2, 1 and the first whose s·2^(8(idx+1)) fits int16 wins;
    otherwise idx 0 (2^8), where the value may not fit and is clamped later.
    """
    s = float(slope) * float(out_sf) / float(in_sf)
    idx = 3
    while idx > 0:
        scale = 1 << (8 * (idx + 1))
        if INT16_MIN <= s * scale <= INT16_MAX:
            break
        idx -= 1
    return s, 1 << (8 * (idx + 1)), idx


def _wrap(value: int, bits: int) -> int:
    """A C++ cast to a narrower signed integer: the low bits, two's complement."""
    half = 1 << (bits - 1)
    return (int(value) + half) % (2 * half) - half


def slope_int(slope: float, in_sf: float, out_sf: float, release: PluginRelease = DEFAULT,
              site: str = "identity_slope") -> tuple[int, int]:
    """Integer slope and shift index as stored in a segment.

    ``identity_slope`` (``ComputeSlopeForSegment``, pwl_tools.cpp): rounded into an int64, clamped to 32767, cast
    to int16. ``relu``/``clamp`` (make_pwl.cpp): ``*ToInt16`` straight into the int16 field (wraps)."""
    s, scale, idx = gna_slope(slope, in_sf, out_sf)
    value = release.round_to_int(s * scale, site)
    if site == "identity_slope":
        value = min(value, INT16_MAX)
    return _wrap(value, 16), idx


def identity_out_scale(in_sf: float) -> float:
    """Identity output sf without statistics: 2049, or 1024.5 when it encodes a larger |slope·2^shift| (§3.4)."""
    s, scale, _ = gna_slope(1.0, in_sf, float(IDENTITY_SF))
    default = s * scale
    s, scale, _ = gna_slope(1.0, in_sf, float(IDENTITY_SF) / 2)
    extra = s * scale
    return float(IDENTITY_SF / 2) if abs(extra) > abs(default) else float(IDENTITY_SF)


def relu_out_scale(in_sf: float) -> float:
    """ReLU output sf without statistics: 2048, halved if 2048·in_sf exceeds INT32_MAX−1 (§3.4)."""
    result = ACTIVATION_SF
    if int(np.float32(result * np.float32(in_sf))) > INT32_MAX - 1:
        result = np.float32(result * np.float32(0.5))
    return float(result)


def fp32_equal(a: np.ndarray | np.floating | float, b: float, acc: float) -> np.ndarray:
    """``fp32eq`` / ``AreFpEq<float>`` (``numerical_utils.hpp``): |a − b| ≤ acc·min(|a|, |b|), in float32."""
    a = np.asarray(a, dtype=np.float32)
    b32 = np.float32(b)
    return np.abs(a - b32) <= np.float32(acc) * np.minimum(np.abs(a), np.abs(b32))


def adjust_scale_factor(sf: float, in_sf: float, release: PluginRelease = DEFAULT) -> float:
    """Fine-tune an identity/FQ/ReLU output sf downward (within 10 %) for the most exact slope (§3.4, FQ).

    Mirrors the plugin's search (``adjustScaleFactor``, ``selectBestOutputScaleFactors``): a float32 grid from
    ⌊sf⌋ down to ⌊0.9·sf⌋, the first value whose encoded slope reproduces 1 to 1e-6 wins, else the one with the
    smallest slope error; the slope rounds as the release rounds it (float32 in 2023.0). The found value replaces
    ``sf`` only when the two differ by more than the release's equality accuracy, and is neither 0 nor ∞.
    """
    start = np.float32(int(sf)) if sf > 1.0 else np.float32(sf)
    end = np.float32(start - start / np.float32(10))
    end = np.float32(int(end)) if end > 1.0 else end
    steps = 10000
    range_size = int(start - end)
    if range_size >= 1:
        rank = len(str(range_size))
        steps *= range_size // 10 ** (rank - 1)
    step = np.float32(np.float32(end - start) / np.float32(steps))
    grid = (start + step * np.arange(steps + 1, dtype=np.float32)).astype(np.float32)
    grid = grid[~np.isnan(grid)]
    g = grid.astype(np.float64)
    s = g / float(in_sf)
    scale = np.full_like(s, 256.0)
    for idx in (1, 2, 3):
        cand = float(1 << (8 * (idx + 1)))
        fits = (s * cand <= INT16_MAX) & (s * cand >= INT16_MIN)
        better = fits & (scale < cand)
        scale = np.where(better, cand, scale)
    raw: np.ndarray
    if "best_output_sf" in release.float32_sites:
        raw = (s * scale).astype(np.float32)
        rounded = np.trunc(raw + np.where(raw < 0, np.float32(-0.5), np.float32(0.5)))
    else:
        raw = s * scale
        rounded = np.trunc(raw + np.where(raw < 0, -0.5, 0.5))
    # then int16 wrap-around, as the C++ cast does
    slope = ((rounded.astype(np.int64) + 32768) % 65536 - 32768).astype(np.float64)
    test = slope / scale * float(in_sf) / g
    exact = fp32_equal(test.astype(np.float32), 1.0, 1e-6)
    if np.any(exact):
        found = grid[int(np.argmax(exact))]
    else:
        err = np.sqrt(((test - 1.0) ** 2).astype(np.float32))
        found = grid[int(np.argmin(err))]
    acc = release.sf_equal_accuracy
    if (fp32_equal(np.float32(sf), float(found), acc) or fp32_equal(found, 0.0, acc) or not np.isfinite(found)):
        return float(np.float32(sf))
    return float(found)


@dataclass
class PWL:
    """Segments as GNA stores them. xbase holds the value with the shift index in its 2 LSBs."""

    xbase: np.ndarray  # int64 encoded (value | idx)
    ybase: np.ndarray  # int16 values
    slope: np.ndarray  # int16 values
    in_sf: float
    out_sf: float
    kind: str = "identity"
    y_lower: int = INT16_MIN
    y_upper: int = INT16_MAX

    @property
    def x_values(self) -> np.ndarray:
        return self.xbase & ~3

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(xBase values, yBase, slope, 2^−shift) as contiguous float64 arrays, for the compiled evaluation."""
        return (np.ascontiguousarray(self.x_values, dtype=np.float64),
                np.ascontiguousarray(self.ybase, dtype=np.float64),
                np.ascontiguousarray(self.slope, dtype=np.float64),
                np.ascontiguousarray(1.0 / (2.0 ** self.shifts.astype(np.float64))))

    @property
    def shifts(self) -> np.ndarray:
        return 8 * ((self.xbase & 3) + 1)

    def to_json(self) -> PwlJson:
        return {
            "kind": self.kind,
            "in_sf": self.in_sf,
            "out_sf": self.out_sf,
            "segments": [
                {"x_base": int(x), "shift": int(s), "y_base": int(y), "slope": int(k)}
                for x, s, y, k in zip(self.x_values, self.shifts, self.ybase, self.slope)
            ],
        }


def _xbase(value: int, idx: int) -> int:
    return (int(value) & ~3) | int(idx)


def _seg_value(xbase: int, ybase: int, slope: int, x: int) -> int:
    """Plugin-side ComputePWL (C++ int64 division truncates toward zero)."""
    xv = xbase & ~3
    scale = 1 << (8 * ((xbase & 3) + 1))
    num = (x - xv) * slope
    q = abs(num) // scale
    return (q if num >= 0 else -q) + ybase


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def border_values(in_sf: float, out_sf: float, fq_range: tuple[float, float] | None = None,
                  release: PluginRelease = DEFAULT) -> tuple[int, int, int, int]:
    """(x_lower, x_upper, y_lower, y_upper) of an identity-like PWL (border-values counter).

    Refused, as the plugin refuses it, when every border is 0 (``AreValuesValid`` in
    ``backend/pwl_border_values_counter_identity.cpp`` throws "Unacceptable scale factors"): the PWL would map
    every input to 0. Without statistics that happens when out_sf/in_sf > 2·32768 (±32768·in/out rounds to 0).
    """
    xl, xu, yl, yu = _borders(in_sf, out_sf, fq_range, release)
    if xl == xu == yl == yu == 0:
        raise BadInput(f"Unacceptable scale factors for an identity PWL: in_sf {in_sf:g} → out_sf {out_sf:g} "
                         "leaves every border value 0, so every output would be 0; the GNA plugin refuses this "
                         "network (the scale factors differ too much)")
    return xl, xu, yl, yu


def _borders(in_sf: float, out_sf: float, fq_range: tuple[float, float] | None,
             release: PluginRelease) -> tuple[int, int, int, int]:
    xl, xu, yl, yu = INT32_MIN, INT32_MAX, INT16_MIN, INT16_MAX
    if fq_range is not None:
        lo, hi = fq_range
        xl = max(int(lo * in_sf), INT32_MIN)
        xu = min(int(hi * in_sf), INT32_MAX)
        yl = max(int(lo * out_sf), INT16_MIN)
        yu = min(int(hi * out_sf), INT16_MAX)
        return xl, xu, yl, yu
    # CreateBorderValues: the plugin writes y·in/out and x·out/in (left to right, in double)
    def rounded(v: float, bits: int) -> int:
        return _wrap(release.round_to_int(v, "identity_borders"), bits)

    if xl < yl * in_sf / out_sf:
        xl = rounded(yl * in_sf / out_sf, 32)
    if xu > yu * in_sf / out_sf:
        xu = rounded(yu * in_sf / out_sf, 32)
    if yl < xl * out_sf / in_sf:
        yl = rounded(xl * out_sf / in_sf, 16)
    if yu > xu * out_sf / in_sf:
        yu = rounded(xu * out_sf / in_sf, 16)
    return xl, xu, yl, yu


def build_identity(in_sf: float, out_sf: float, fq_range: tuple[float, float] | None = None,
                   release: PluginRelease = DEFAULT) -> PWL:
    """Identity (or FakeQuantize-as-identity) segments for int32 input at in_sf → int16 at out_sf."""
    xl, xu, yl, yu = border_values(in_sf, out_sf, fq_range, release)
    k, idx = slope_int(1.0, in_sf, out_sf, release)
    segs = [[_xbase(INT32_MIN, 0), yl, 0], [_xbase(xl, idx), yl, k]]
    y0 = _seg_value(segs[1][0], segs[1][1], segs[1][2], 0)
    if y0 > yu or y0 < yl:
        raise BadInput(f"identity PWL invalid: F(0)={y0} outside [{yl}, {yu}] (in_sf={in_sf}, out_sf={out_sf})")
    if y0 != 0:
        segs.append([_xbase(0, idx), 0, k])
        if k == 0:
            raise BadInput("identity PWL slope is 0")
        s0x = segs[0][0] & ~3
        s1x = segs[1][0] & ~3
        scale = 1 << (8 * (idx + 1))
        new_x = s1x - _trunc_div((segs[0][1] - segs[1][1] - y0) * scale, k)
        if new_x < s0x and new_x + 1 < 0:
            new_x = s0x + 1
        new_x = _trunc_div(new_x, 4) * 4
        segs[1][0] = _xbase(new_x, idx)
    if INT32_MAX > xu:
        last = segs[-1]
        lx = last[0] & ~3
        scale = 1 << (8 * ((last[0] & 3) + 1))
        if last[2] == 0:
            raise BadInput("identity PWL slope is 0")
        right = lx + _trunc_div((yu - last[1]) * scale, last[2])
        right = min(right, INT32_MAX)
        right = _trunc_div(right, 4) * 4
        segs.append([_xbase(right, 0), yu, 0])
    arr = np.array(segs, dtype=np.int64)
    kind = "identity" if fq_range is None else "fake-quantize"
    return PWL(arr[:, 0], arr[:, 1], arr[:, 2], float(in_sf), float(out_sf), kind, yl, yu)


def build_relu(in_sf: float, out_sf: float, negative_slope: float = 0.0, release: PluginRelease = DEFAULT) -> PWL:
    """ReLU as the plugin builds it without FakeQuantize statistics: two segments (``backend/make_pwl.cpp``,
    ``make_gna_pwl``, case kActRelu).

    Segment 0 starts at x_lower = round(−32768·in_sf/out_sf) (as the release rounds, site ``relu``) (INT32_MIN if that is smaller) with
    yBase 0 and slope 0 (negative slope 0); segment 1 starts at 0 with yBase 0 and the encoded slope 1. There
    is no flat right segment: past the int16 range the kernel saturates (and counts it). The extra trailing
    segment comes only from ``insert_extra_pwl_segments``, for activations fused into a 2-D convolution
    (GNA 3.5), which this rule-set's 1-D convolutions are not.
    """
    x_lower, y_lower = INT32_MIN, INT16_MIN
    if x_lower < y_lower * in_sf / out_sf:
        x_lower = _wrap(release.round_to_int(y_lower * in_sf / out_sf, "relu"), 32)
    if y_lower < x_lower * out_sf / in_sf:
        y_lower = _wrap(release.round_to_int(x_lower * out_sf / in_sf, "relu"), 16)
    # A leaky ReLU (PRelu with one slope, as ReLUIE's negative_slope): segment 0 keeps that slope from
    # y_lower·slope (at least −32768); a plain ReLU has slope 0 and yBase 0 there. int16 × float is a float
    # product, so every release rounds it through float32.
    y0 = max(release.round_to_int(float(np.float32(y_lower * np.float32(negative_slope))), "leaky_ybase"), INT16_MIN)
    k0, idx0 = slope_int(negative_slope, in_sf, out_sf, release, "relu")
    k, idx = slope_int(1.0, in_sf, out_sf, release, "relu")
    segs = [[_xbase(x_lower, idx0), y0, k0], [_xbase(0, idx), 0, k]]
    arr = np.array(segs, dtype=np.int64)
    return PWL(arr[:, 0], arr[:, 1], arr[:, 2], float(in_sf), float(out_sf), "relu" if not negative_slope else
               f"leaky relu {negative_slope:g}", min(0, y0), INT16_MAX)


def build_clamp(in_sf: float, out_sf: float, low: float, high: float, release: PluginRelease = DEFAULT) -> PWL:
    """Clamp as the plugin builds it (``backend/make_pwl.cpp`` @2023.1.0, ``make_gna_pwl``, case
    kActKaldiLstmClipping): a flat segment at y_lower from −∞, slope 1 from x_lower, and a flat segment at
    y_upper from x_upper; the borders are the clamp bounds (round(bound·in_sf) into int32, round(bound·out_sf)
    into int16, as the release rounds at site ``clamp``) where they lie inside the int16 output range, else the
    range's ends."""
    def rounded(v: float, bits: int) -> int:
        return _wrap(release.round_to_int(v, "clamp"), bits)

    x_lower, x_upper, y_lower, y_upper = INT32_MIN, INT32_MAX, INT16_MIN, INT16_MAX
    if x_lower < low * in_sf:
        if y_lower < low * out_sf:
            x_lower, y_lower = rounded(low * in_sf, 32), rounded(low * out_sf, 16)
        else:
            x_lower = rounded(y_lower * in_sf / out_sf, 32)
    if x_upper > high * in_sf:
        if y_upper > high * out_sf:
            x_upper, y_upper = rounded(high * in_sf, 32), rounded(high * out_sf, 16)
        else:
            x_upper = rounded(y_upper * in_sf / out_sf, 32)
    k, idx = slope_int(1.0, in_sf, out_sf, release, "clamp")
    segs = [[_xbase(INT32_MIN, 0), y_lower, 0], [_xbase(x_lower, idx), y_lower, k]]
    if x_upper < INT32_MAX:
        segs.append([_xbase(x_upper, 0), y_upper, 0])
    arr = np.array(segs, dtype=np.int64)
    return PWL(arr[:, 0], arr[:, 1], arr[:, 2], float(in_sf), float(out_sf), "clamp", int(y_lower), int(y_upper))


def build_fake_quantize(in_sf: float, out_sf: float, low: float, high: float,
                        release: PluginRelease = DEFAULT) -> PWL:
    """An activation FakeQuantize as the plugin builds it: ``backend/make_pwl.cpp`` ``make_gna_pwl``, case
    kActFakeQuantize, shared with kActKaldiLstmClipping (only kActIdentity goes to the identity segments
    creator; same in 2022.3.0, 2023.0.0, 2023.1.0). Borders from the FQ's input range, truncated:
    x = int64(bound·in_sf) and y = int32(bound·out_sf) clamped to the int32 / int16 range; a flat segment at
    y_lower from −∞, the unit slope from x_lower, a flat segment at y_upper from x_upper. No segment through the
    origin, so 0 need not map to 0."""
    x_lower, x_upper = max(int(low * in_sf), INT32_MIN), min(int(high * in_sf), INT32_MAX)
    y_lower = _wrap(max(int(low * out_sf), INT16_MIN), 16)  # int32 max/min stored in an int16
    y_upper = _wrap(min(int(high * out_sf), INT16_MAX), 16)
    k, idx = slope_int(1.0, in_sf, out_sf, release, "clamp")
    segs = [[_xbase(INT32_MIN, 0), y_lower, 0], [_xbase(x_lower, idx), y_lower, k]]
    if x_upper < INT32_MAX:
        segs.append([_xbase(x_upper, 0), y_upper, 0])
    arr = np.array(segs, dtype=np.int64)
    return PWL(arr[:, 0], arr[:, 1], arr[:, 2], float(in_sf), float(out_sf), "fake-quantize", int(y_lower),
               int(y_upper))


def evaluate(pwl: PWL, x: np.ndarray) -> tuple[np.ndarray, int]:
    """Run a PWL on integer inputs (any shape) the way the GNA kernel does.

    An input at or below the first segment's xBase gives that segment's yBase (intel/gna
    ``src/gna-lib/kernels/pwl.cpp``, every kernel variant: ``if (I > xBase0) … else O = yBase0``; the first
    segment's line is not extended leftwards). Otherwise the last segment with xBase ≤ x,
    y = ((x − xBase)·slope) >> shift (floor), + yBase, saturate to int16. Returns (float64 array of int16
    values, number of saturated outputs). All intermediate values stay below 2^53, so float64 is exact. The
    loop runs compiled (``native.pwl_rows``, the same arithmetic); ``evaluate_numpy`` is its reference and runs
    instead before a process has loaded the compiled loops (``kernels.compiled``).
    """
    return _run_tables(pwl, pwl.tables(), x)


def lowered(pwl: PWL, lo: float | None = None, hi: float | None = None, scale: float = 1.0) -> Lowered:
    """The compiled plan's form of ``evaluator(pwl)`` on the inputs times ``scale`` (values past a design domain
    [lo, hi] counted too)."""
    return Lowered("pwl", pwl.tables(), (np.nan if lo is None else float(lo), np.nan if hi is None else float(hi),
                                         float(scale)))


def evaluator(pwl: PWL) -> Callable[[np.ndarray], tuple[np.ndarray, int]]:
    """``evaluate(pwl, ·)`` with the segment tables made once: what a plan step calls on every run."""
    tables = pwl.tables()
    return lambda x: _run_tables(pwl, tables, x)


def _run_tables(pwl: PWL, tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                x: np.ndarray) -> tuple[np.ndarray, int]:
    native = kernels.compiled(np.size(x))
    if native is None:  # before the process loads the compiled loops: the same values in NumPy
        return evaluate_numpy(pwl, x)
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    n = native.pwl_rows(flat, *tables, out)
    return out.reshape(np.shape(x)), int(n)


def evaluate_numpy(pwl: PWL, x: np.ndarray) -> tuple[np.ndarray, int]:
    """``evaluate`` in NumPy: the reference the compiled loop is tested against."""
    x = np.asarray(x, dtype=np.float64)
    xv = pwl.x_values.astype(np.float64)
    seg = np.searchsorted(xv, x, side="right") - 1
    np.clip(seg, 0, len(xv) - 1, out=seg)
    inv_scale = 1.0 / (2.0 ** pwl.shifts.astype(np.float64))
    y = np.floor((x - xv[seg]) * pwl.slope.astype(np.float64)[seg] * inv_scale[seg]) + pwl.ybase.astype(np.float64)[seg]
    np.copyto(y, float(pwl.ybase[0]), where=x <= xv[0])
    n = int(np.count_nonzero((y < INT16_MIN) | (y > INT16_MAX)))
    if n:
        np.clip(y, INT16_MIN, INT16_MAX, out=y)
    return y, n
