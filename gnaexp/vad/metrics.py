"""Metrics for a streaming speech detector: pure functions over probability tracks and states, no I/O.

A track is one speech probability per chunk. Decisions come from a threshold (0.5) or from silero's hysteresis
(speech starts at ≥ 0.5, ends below 0.35). Segments are runs of speech decisions, in chunks.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from gnaexp.core import metrics

THRESHOLD = 0.5
HYSTERESIS = (0.5, 0.35)  # (on, off), as silero-vad's get_speech_timestamps uses threshold and threshold − 0.15
TOLERANCE_CHUNKS = 1  # a segment boundary within ±1 chunk counts as the same boundary
# Against ground truth a detector's onset latency and hangover move boundaries by more than one chunk (a 4-chunk
# hangover measured on data/speech), so the truth is also scored at ±8 chunks (256 ms).
TRUTH_TOLERANCE_CHUNKS = 8
# silero-vad's defaults (min_silence_duration_ms 100, min_speech_duration_ms 250) in 32 ms chunks
MIN_SILENCE_CHUNKS = 4  # a gap of 3 chunks (96 ms) is closed, 4 (128 ms) splits
MIN_SPEECH_CHUNKS = 8  # 256 ms


def decisions(p: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    return np.asarray(p) >= threshold


def hysteresis_decisions(p: np.ndarray, on: float = HYSTERESIS[0], off: float = HYSTERESIS[1]) -> np.ndarray:
    out = np.zeros(len(p), dtype=bool)
    speaking = False
    for i, v in enumerate(np.asarray(p, dtype=np.float64)):
        speaking = v >= on if not speaking else v >= off
        out[i] = speaking
    return out


def segments(d: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) chunk index pairs of the runs of True."""
    d = np.concatenate([[False], np.asarray(d, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(d.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def speech_segments(p: np.ndarray, min_silence: int = MIN_SILENCE_CHUNKS,
                    min_speech: int = MIN_SPEECH_CHUNKS) -> list[tuple[int, int]]:
    """Segments as silero-vad's ``get_speech_timestamps`` makes them, read at chunk resolution: hysteresis
    decisions, gaps shorter than ``min_silence`` chunks closed, segments shorter than ``min_speech`` dropped."""
    merged: list[tuple[int, int]] = []
    for a, b in segments(hysteresis_decisions(p)):
        if merged and a - merged[-1][1] < min_silence:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(a, b) for a, b in merged if b - a >= min_speech]


def seconds_to_chunks(segs: Sequence[Sequence[float]], chunk_seconds: float) -> list[tuple[int, int]]:
    return [(int(round(a / chunk_seconds)), int(round(b / chunk_seconds))) for a, b in segs]


def segment_agreement(found: Sequence[tuple[int, int]], truth: Sequence[tuple[int, int]],
                      tolerance: int = TOLERANCE_CHUNKS) -> dict[str, Any]:
    """Precision and recall of segments: a found segment matches a true one when both boundaries lie within
    ``tolerance`` chunks (each true segment is matched at most once)."""
    free = list(truth)
    hits = 0
    for a, b in found:
        match = next((t for t in free if abs(t[0] - a) <= tolerance and abs(t[1] - b) <= tolerance), None)
        if match is not None:
            free.remove(match)
            hits += 1
    precision = hits / len(found) if found else (1.0 if not truth else 0.0)
    recall = hits / len(truth) if truth else 1.0
    return {"found": len(found), "true": len(truth), "matched": hits, "precision": precision, "recall": recall}


def flips(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chunk indices where two decision tracks disagree."""
    return np.flatnonzero(np.asarray(a) != np.asarray(b))


def near_boundary(idx: np.ndarray, segs: Sequence[tuple[int, int]], tolerance: int = TOLERANCE_CHUNKS) -> int:
    """How many of the chunk indices lie within ``tolerance`` chunks of a segment boundary."""
    edges = np.array([e for s in segs for e in (s[0], s[1] - 1)], dtype=np.int64)
    if not len(edges):
        return 0
    return int(sum(np.min(np.abs(edges - i)) <= tolerance for i in idx))


def state_drift(reference: np.ndarray, other: np.ndarray) -> dict[str, list[float]]:
    """SQNR (dB) of h and c per step: does the error accumulate through the recurrence? (steps, 2, hidden)"""
    return {name: [metrics.sqnr_db(reference[t, i], other[t, i]) for t in range(len(reference))]
            for i, name in enumerate(("h", "c"))}


def non_finite(tracks: Sequence[tuple[str, np.ndarray]]) -> str | None:
    """What holds NaN/Inf among named tracks, in words (None when every value is finite)."""
    parts: list[tuple[str, str]] = []
    for name, p in tracks:
        bad = ~np.isfinite(np.asarray(p, dtype=np.float64))
        if bad.any() and name not in (n for n, _ in parts):
            parts.append((name, f"{name} holds {int(bad.sum())} NaN/Inf value(s) of {len(bad)}, the first at chunk "
                                f"{int(np.argmax(bad))}"))
    return "; ".join(text for _, text in parts) or None


def compare_tracks(p_ref: np.ndarray, p: np.ndarray, truth: Sequence[tuple[int, int]] | None = None,
                   names: tuple[str, str] = ("the reference", "the track")) -> dict[str, Any]:
    """Everything that matters between a reference track and another one (JSON-ready). A track holding NaN/Inf
    is not scored: NaN compares false at every threshold, so two such tracks would read as "identical"; the row
    says which track holds them (``non_finite``) instead."""
    p_ref, p = np.asarray(p_ref, dtype=np.float32), np.asarray(p, dtype=np.float32)
    bad = non_finite([(names[0], p_ref), (names[1], p)])
    if bad:
        return {"chunks": int(len(p)), "non_finite": bad}
    c = metrics.compare(p_ref, p)
    d_ref, d = decisions(p_ref), decisions(p)
    h_ref, h = hysteresis_decisions(p_ref), hysteresis_decisions(p)
    seg_ref, seg = speech_segments(p_ref), speech_segments(p)
    flip = flips(d_ref, d)
    hflip = flips(h_ref, h)
    out = {
        "l1": c.l1, "cosine": c.cosine, "sqnr_db": c.sqnr_db,
        "max_abs_dp": float(np.max(np.abs(p - p_ref))) if len(p) else 0.0,
        "mean_abs_dp": float(np.mean(np.abs(p - p_ref))) if len(p) else 0.0,
        "chunks": int(len(p)),
        "flips": int(len(flip)), "flips_near_boundary": near_boundary(flip, segments(d_ref)),
        "hysteresis_flips": int(len(hflip)),
        "hysteresis_flips_near_boundary": near_boundary(hflip, segments(h_ref)),
        "agreement": 1.0 - len(flip) / len(p) if len(p) else 1.0,
        "segments": [list(s) for s in seg],
        "segments_vs_reference": segment_agreement(seg, seg_ref),
    }
    if truth is not None:
        out["segments_vs_truth"] = segment_agreement(seg, truth)
        out["segments_vs_truth_loose"] = segment_agreement(seg, truth, TRUTH_TOLERANCE_CHUNKS)
    return out


def verdict(row: dict[str, Any]) -> str:
    """One sentence on decisions, e.g. "decisions identical on 99.7 % of chunks; 2 flips, both within one chunk
    of a segment boundary"."""
    if "non_finite" in row:
        return not_scored_verdict(row["non_finite"])
    return decisions_verdict(row["chunks"], row["flips"], row["flips_near_boundary"], row["agreement"])


def not_scored_verdict(non_finite: str | None) -> str:
    return f"no verdict, not scored: {non_finite}"


def decisions_verdict(n: int, f: int, near: int, agreement: float) -> str:
    """``verdict`` of n chunks with f flips, ``near`` of them within one chunk of a segment boundary."""
    text = f"decisions identical on {100 * agreement:.1f} % of chunks"
    if f == 0:
        return text + "; no flips"
    head = f"{text}; {f} flip{'s' if f != 1 else ''} at 0.5 over {n} chunks"
    if near == f:
        who = "" if f == 1 else " both" if f == 2 else " all"
        return head + f",{who} within one chunk of a segment boundary"
    if near == 0:
        return head + ", none near a segment boundary"
    return head + f", {near} of them within one chunk of a segment boundary"
