"""Comparison metrics: pure functions over arrays. No I/O, no plotting, no torch.

Conventions: ``ref`` is the reference (torch FP32 or OpenVINO CPU), ``test`` the backend under test.
``l1`` and ``cosine`` reproduce ``torch.nn.L1Loss()`` and ``torch.nn.CosineSimilarity`` over the flattened
vectors, as the forum team used them. The others say what those two cannot: cosine of non-negative
signals stays near 0.7 even for scrambled data, so Pearson correlation (centred cosine) and SQNR sit
beside it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from gnaexp.core.errors import BadInput

# torch.nn.CosineSimilarity's default eps: the norms are clamped to it.
COSINE_EPS = 1e-8


def _pair(ref: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, test = np.asarray(ref), np.asarray(test)
    if ref.shape != test.shape:
        raise BadInput(f"shape mismatch: reference {ref.shape} vs test {test.shape}; compare outputs of the same model")
    return ref, test


def l1(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean absolute error, as ``torch.nn.L1Loss()`` (reduction 'mean'), computed in float32."""
    ref, test = _pair(ref, test)
    return float(np.mean(np.abs(test.astype(np.float32) - ref.astype(np.float32)), dtype=np.float32))


def cosine(ref: np.ndarray, test: np.ndarray) -> float:
    """Cosine similarity of the flattened vectors, as ``torch.nn.CosineSimilarity`` (eps 1e-8) in float32.

    torch clamps each norm to eps, so a zero vector gives 0, not NaN; use ``cosine_checked`` to be told.
    """
    ref, test = _pair(ref, test)
    a = ref.astype(np.float32).ravel()
    b = test.astype(np.float32).ravel()
    # Same order of operations as torch: normalise each vector (norm clamped to eps), then sum products.
    na = max(np.float32(np.linalg.norm(a)), np.float32(COSINE_EPS))
    nb = max(np.float32(np.linalg.norm(b)), np.float32(COSINE_EPS))
    return float(np.sum((a / na) * (b / nb), dtype=np.float32))


def cosine_checked(ref: np.ndarray, test: np.ndarray) -> tuple[float, str | None]:
    """Cosine, or (NaN, reason) where a vector has zero norm and the angle is undefined."""
    ref, test = _pair(ref, test)
    for label, v in (("reference", ref), ("test", test)):
        if not np.any(v):
            return math.nan, f"cosine undefined: the {label} output is all zeros"
    return cosine(ref, test), None


def cosine_per_channel(ref: np.ndarray, test: np.ndarray, axis: int = 1) -> list[float]:
    """Cosine per output channel (axis 1 of NCW); NaN for an all-zero channel."""
    ref, test = _pair(ref, test)
    if ref.ndim < 2:
        return [cosine_checked(ref, test)[0]]
    r = np.moveaxis(ref, axis, 0)
    t = np.moveaxis(test, axis, 0)
    return [cosine_checked(r[c], t[c])[0] for c in range(r.shape[0])]


def max_abs_error(ref: np.ndarray, test: np.ndarray) -> tuple[float, tuple[int, ...]]:
    """Largest |test − ref| and its index."""
    ref, test = _pair(ref, test)
    err = np.abs(test.astype(np.float64) - ref.astype(np.float64))
    if err.size == 0:
        return 0.0, ()
    idx = np.unravel_index(int(np.argmax(err)), err.shape)
    return float(err[idx]), tuple(int(i) for i in idx)


def rmse(ref: np.ndarray, test: np.ndarray) -> float:
    ref, test = _pair(ref, test)
    d = test.astype(np.float64) - ref.astype(np.float64)
    return float(np.sqrt(np.mean(d * d)))


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio 10·log10(Σref² / Σ(test−ref)²); +inf when identical."""
    ref, test = _pair(ref, test)
    r = ref.astype(np.float64)
    noise = float(np.sum((test.astype(np.float64) - r) ** 2))
    signal = float(np.sum(r * r))
    if not (math.isfinite(noise) and math.isfinite(signal)):
        return math.nan  # NaN/Inf in an output: no ratio to speak of (compare names them in its notes)
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def pearson(ref: np.ndarray, test: np.ndarray) -> float:
    """Pearson correlation (cosine of the mean-removed vectors); NaN if either is constant."""
    ref, test = _pair(ref, test)
    a = ref.astype(np.float64).ravel()
    b = test.astype(np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else math.nan


def relative_l2(ref: np.ndarray, test: np.ndarray) -> float:
    """‖test − ref‖₂ / ‖ref‖₂ (inf when the reference is zero and the test is not)."""
    ref, test = _pair(ref, test)
    r = ref.astype(np.float64)
    num = float(np.linalg.norm(test.astype(np.float64) - r))
    den = float(np.linalg.norm(r))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def error_in_lsb(ref: np.ndarray, test: np.ndarray, output_scale: float) -> float:
    """Mean |error| in units of the output's least significant bit (1 / output scale factor)."""
    if not (output_scale > 0 and math.isfinite(output_scale)):
        raise BadInput(f"output scale factor must be positive and finite, got {output_scale}")
    ref, test = _pair(ref, test)
    return float(np.mean(np.abs(test.astype(np.float64) - ref.astype(np.float64))) * output_scale)


@dataclass
class Comparison:
    """Every metric for one (reference, test) pair. JSON-ready via ``to_json``."""

    l1: float
    cosine: float
    pearson: float
    sqnr_db: float
    rmse: float
    relative_l2: float
    max_abs_error: float
    max_abs_error_index: list[int]
    cosine_per_channel: list[float]
    error_lsb: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # JSON has no inf/NaN: write them as strings so that they survive a round trip unchanged.
        return {k: _encode(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Comparison":
        return cls(**{k: _decode(v) for k, v in data.items()})


def _encode(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # 'inf', '-inf', 'nan'
    if isinstance(v, list):
        return [_encode(x) for x in v]
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def compare(ref: np.ndarray, test: np.ndarray, output_scale: float | None = None) -> Comparison:
    """All metrics between two arrays of the same shape (NaN/Inf in either gives NaN metrics and a note)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return _compare(ref, test, output_scale)


def _compare(ref: np.ndarray, test: np.ndarray, output_scale: float | None) -> Comparison:
    ref, test = _pair(ref, test)
    cos, why = cosine_checked(ref, test)
    notes = [why] if why else []
    for label, arr in (("reference", ref), ("test output", test)):
        bad = ~np.isfinite(arr)
        if bad.any():  # a device that returns NaN/Inf is a finding: say where, not just "nan" everywhere
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            notes.append(f"{label} holds {int(bad.sum())} NaN/Inf value(s), the first at {list(first)}: "
                         "metrics over them are NaN")
    sq = sqnr_db(ref, test)
    if sq == math.inf:
        notes.append("outputs identical: SQNR is +inf")
    if np.all(ref >= 0) and np.all(test >= 0):
        notes.append("both signals are non-negative: cosine stays high even for unrelated data; read Pearson")
    mae, idx = max_abs_error(ref, test)
    return Comparison(
        l1=l1(ref, test),
        cosine=cos,
        pearson=pearson(ref, test),
        sqnr_db=sq,
        rmse=rmse(ref, test),
        relative_l2=relative_l2(ref, test),
        max_abs_error=mae,
        max_abs_error_index=list(idx),
        cosine_per_channel=cosine_per_channel(ref, test),
        error_lsb=error_in_lsb(ref, test, output_scale) if output_scale else None,
        notes=notes,
    )
