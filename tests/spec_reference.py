"""A plain, slow reading of docs/gna-rules.md §2–§4, to hold the emulator to the written rules.

Written to be read next to the document, one rule per function, with no code shared with ``gnaexp.emulator``:
loops and Python integers where the emulator vectorises. Covers int16 inputs and weights without FakeQuantize:
input quantization (§3.1, §3.6), weight and bias scales in the documented order (§3.2 steps 1, 2, 4, 6), the
integer convolution on NCW data (§4.1–§4.3, both layouts) and FC, int32 saturation and float32 dequantization.
The PWLs (identity included, release by release), eltwise and int8 layers are read in ``spec_reference_ops.py``.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
R_WEIGHT_I16 = 16384  # §2: int16 weights target max |q|
BIAS_TARGET = 1073741824  # §3.2 step 2: 2^30
FEATURE_MAX = 16384  # §3.2 step 4: MAX_VAL_2B_FEAT


def round_half_away_f32(v: np.ndarray) -> np.ndarray:
    """§3.6: trunc(float32(v ± 0.5f)) in float32."""
    v = np.asarray(v, dtype=F32)
    out = np.empty(v.shape, dtype=np.float64)
    for i, x in np.ndenumerate(v):
        half = F32(0.5) if x >= 0 else F32(-0.5)
        out[i] = np.trunc(F32(x + half))
    return out


def clamp(q: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.minimum(np.maximum(q, lo), hi).astype(np.int64)


def quantize_input(x: np.ndarray, sf: float) -> np.ndarray:
    """§3.1 and §3.6: float32 product with the input sf, round half away, saturate to int16."""
    return clamp(round_half_away_f32(np.asarray(x, F32) * F32(sf)), INT16_MIN, INT16_MAX)


def weight_scales(w: np.ndarray, b: np.ndarray | None, in_sf: float, conv_in_channels: int | None) -> tuple[F32, F32]:
    """§3.2 for int16 weights without statistics: (w_sf, out_sf), all float32."""
    in_sf = F32(in_sf)
    max_w = F32(np.max(np.abs(w)))
    w_sf = F32(1.0) if max_w == 0 else F32(F32(R_WEIGHT_I16) / max_w)  # step 1
    if b is not None and np.max(np.abs(b)) > 0:  # step 2, applied whether or not the cap bites
        b_cap = F32(F32(BIAS_TARGET) / F32(np.max(np.abs(b))))
        b_sf = min(F32(w_sf * in_sf), b_cap)
        w_sf = F32(b_sf / in_sf)
    if conv_in_channels is not None:  # step 4: the quotient is integer arithmetic, k2d = 1 for 1-D
        red = max(1.0, float((FEATURE_MAX * R_WEIGHT_I16 * conv_in_channels) // INT32_MAX))
        w_sf = F32(w_sf / F32(red))
    return w_sf, F32(w_sf * in_sf)  # step 6


def quantize_weights(w: np.ndarray, w_sf: F32) -> np.ndarray:
    return clamp(round_half_away_f32(np.asarray(w, F32) * w_sf), INT16_MIN, INT16_MAX)


def quantize_bias(b: np.ndarray, out_sf: F32) -> np.ndarray:
    return clamp(round_half_away_f32(np.asarray(b, F32) * out_sf), INT32_MIN, INT32_MAX)


def conv_ncw(x: np.ndarray, wq: np.ndarray, bq: np.ndarray, stride: int) -> np.ndarray:
    """§4.1 read back in logical NCW terms: out[f, j] = sat32(bias[f] + Σ_c Σ_k x[c, j·S + k]·w[f, c, k])."""
    filters, channels, kernel = wq.shape
    positions = (x.shape[1] - kernel) // stride + 1
    out = np.zeros((filters, positions), dtype=np.int64)
    for f in range(filters):
        for j in range(positions):
            acc = int(bq[f])
            for c in range(channels):
                for k in range(kernel):
                    acc += int(x[c, j * stride + k]) * int(wq[f, c, k])
            out[f, j] = min(max(acc, INT32_MIN), INT32_MAX)
    return out


def legacy_read(x: np.ndarray) -> np.ndarray:
    """§4.3: the conv reads the channel-major (C, W) buffer as if it were interleaved (W, C)."""
    c, w = x.shape
    return x.reshape(-1).reshape(w, c).T


def fc(x: np.ndarray, wq: np.ndarray, bq: np.ndarray) -> np.ndarray:
    out = np.zeros(wq.shape[0], dtype=np.int64)
    for m in range(wq.shape[0]):
        acc = int(bq[m]) + sum(int(a) * int(b) for a, b in zip(x, wq[m]))
        out[m] = min(max(acc, INT32_MIN), INT32_MAX)
    return out


def dequantize(q: np.ndarray, sf: float) -> np.ndarray:
    """§3.6: host dequantization is a float32 division."""
    return (np.asarray(q, dtype=F32) / F32(sf)).astype(F32)
