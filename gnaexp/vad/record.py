"""The record of a silero_vad run as a typed value: per file and backend the comparison with the reference
(``TrackRow``), per backend the aggregate over all files (``BackendAggregate``), the emulator's report and what
ran. ``to_json``/``from_json`` write and read record.json as it has always been written (schema
``gnaexp.vad.stream-record/1``; records of earlier versions read too), so the bundle's reproduce.py reads it
unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.core.errors import BadInput
from gnaexp.core.records import VAD_SCHEMA
from gnaexp.vad import stream as vad

Json = dict[str, Any]  # a JSON object another part of gnaexp describes (a backend's settings, the emulator's rows)
TRUTH_KEYS = ("segments_vs_truth", "segments_vs_truth_loose")  # present where the audio has a ground truth
SEGMENT_KEYS = ("segments_vs_reference", *TRUTH_KEYS)


def _number(value: Any) -> float:
    return float(value)  # also "inf", "-inf", "nan": how record.json writes non-finite floats (files.json_safe)


@dataclass(frozen=True)
class SegmentScore:
    """Speech segments found against true ones (``metrics.segment_agreement``): matched within a tolerance."""

    found: int
    true: int
    matched: int
    precision: float
    recall: float

    @classmethod
    def pooled(cls, parts: Sequence["SegmentScore"]) -> "SegmentScore":
        """The score over several files: their segments counted together."""
        found, true, matched = (sum(getattr(p, k) for p in parts) for k in ("found", "true", "matched"))
        return cls(found, true, matched, matched / found if found else (1.0 if not true else 0.0),
                   matched / true if true else 1.0)

    def to_json(self) -> Json:
        return {"found": self.found, "true": self.true, "matched": self.matched, "precision": self.precision,
                "recall": self.recall}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SegmentScore":
        return cls(int(data["found"]), int(data["true"]), int(data["matched"]), _number(data["precision"]),
                   _number(data["recall"]))


def _segment_scores(data: Mapping[str, Any]) -> dict[str, SegmentScore | None]:
    return {k: SegmentScore.from_json(data[k]) if data.get(k) else None for k in SEGMENT_KEYS}


@dataclass(frozen=True)
class StateDrift:
    """SQNR (dB) of the LSTM state h and c per step against the reference's (``metrics.state_drift``)."""

    h: list[float]
    c: list[float]

    @property
    def lowest(self) -> float:
        return min(min(self.h), min(self.c))

    def to_json(self) -> Json:
        return {"h": list(self.h), "c": list(self.c)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StateDrift":
        return cls([_number(v) for v in data["h"]], [_number(v) for v in data["c"]])


@dataclass(frozen=True)
class TrackScores:
    """Two finite tracks compared (``metrics.compare_tracks``): probability errors, decision flips at 0.5 and
    with hysteresis, speech segments and their scores against the reference's and the ground truth's."""

    l1: float
    cosine: float
    sqnr_db: float
    max_abs_dp: float
    mean_abs_dp: float
    flips: int
    flips_near_boundary: int
    hysteresis_flips: int
    hysteresis_flips_near_boundary: int
    agreement: float
    segments: list[tuple[int, int]]
    segments_vs_reference: SegmentScore
    segments_vs_truth: SegmentScore | None = None  # None: the audio has no ground truth
    segments_vs_truth_loose: SegmentScore | None = None

    def to_json(self, chunks: int) -> Json:
        """In compare_tracks' order, which puts the chunk count among the scores."""
        out: Json = {"l1": self.l1, "cosine": self.cosine, "sqnr_db": self.sqnr_db, "max_abs_dp": self.max_abs_dp,
                     "mean_abs_dp": self.mean_abs_dp, "chunks": chunks, "flips": self.flips,
                     "flips_near_boundary": self.flips_near_boundary, "hysteresis_flips": self.hysteresis_flips,
                     "hysteresis_flips_near_boundary": self.hysteresis_flips_near_boundary,
                     "agreement": self.agreement, "segments": [list(s) for s in self.segments],
                     "segments_vs_reference": self.segments_vs_reference.to_json()}
        for key in TRUTH_KEYS:
            score = getattr(self, key)
            if score is not None:
                out[key] = score.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrackScores":
        """From compare_tracks' row of two finite tracks (or the record's, which holds it)."""
        scores = _segment_scores(data)
        reference = scores["segments_vs_reference"]
        if reference is None:
            raise KeyError("segments_vs_reference")
        return cls(l1=_number(data["l1"]), cosine=_number(data["cosine"]), sqnr_db=_number(data["sqnr_db"]),
                   max_abs_dp=_number(data["max_abs_dp"]), mean_abs_dp=_number(data["mean_abs_dp"]),
                   flips=int(data["flips"]), flips_near_boundary=int(data["flips_near_boundary"]),
                   hysteresis_flips=int(data["hysteresis_flips"]),
                   hysteresis_flips_near_boundary=int(data["hysteresis_flips_near_boundary"]),
                   agreement=_number(data["agreement"]), segments=[(int(a), int(b)) for a, b in data["segments"]],
                   segments_vs_reference=reference, segments_vs_truth=scores["segments_vs_truth"],
                   segments_vs_truth_loose=scores["segments_vs_truth_loose"])


@dataclass(frozen=True)
class TrackRow:
    """One backend's track of one file against the reference's. A track holding NaN/Inf is not scored:
    ``scores`` is None and ``non_finite`` says which track holds them."""

    chunks: int
    kind: str
    label: str
    ms_per_chunk: float | None  # None: measured elsewhere (an imported track)
    state_drift: StateDrift | None  # None for the reference, an imported track without state, or no score
    verdict: str
    scores: TrackScores | None
    non_finite: str | None = None

    def to_json(self) -> Json:
        head = self.scores.to_json(self.chunks) if self.scores is not None else {
            "chunks": self.chunks, "non_finite": self.non_finite}
        return {**head, "kind": self.kind, "label": self.label, "ms_per_chunk": self.ms_per_chunk,
                "state_drift": self.state_drift.to_json() if self.state_drift is not None else None,
                "verdict": self.verdict}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrackRow":
        scored = "non_finite" not in data
        drift, ms = data.get("state_drift"), data.get("ms_per_chunk")
        return cls(int(data["chunks"]), str(data["kind"]), str(data.get("label") or ""),
                   None if ms is None else _number(ms), StateDrift.from_json(drift) if drift else None,
                   str(data.get("verdict", "")), TrackScores.from_json(data) if scored else None,
                   None if scored else str(data["non_finite"]))


@dataclass(frozen=True)
class FileResult:
    """One audio file: its length, its rate before resampling, its ground truth and every backend's row."""

    file: str
    seconds: float
    source_rate: int
    truth: list[tuple[int, int]] | None  # speech segments in chunks; None: no (or an empty) ground truth
    backends: dict[str, TrackRow]

    def to_json(self) -> Json:
        return {"file": self.file, "seconds": self.seconds, "source_rate": self.source_rate,
                "truth": [list(t) for t in self.truth] if self.truth else None,
                "backends": {b: row.to_json() for b, row in self.backends.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FileResult":
        truth = data.get("truth")
        return cls(str(data["file"]), _number(data["seconds"]), int(data["source_rate"]),
                   [(int(a), int(b)) for a, b in truth] if truth else None,
                   {str(b): TrackRow.from_json(row) for b, row in data["backends"].items()})


@dataclass(frozen=True)
class AggregateScores:
    """A backend's scores over every file whose tracks are finite."""

    agreement: float
    flips: int
    flips_near_boundary: int
    hysteresis_flips: int
    max_abs_dp: float
    mean_abs_dp: float  # over all chunks
    mean_cosine: float  # over files
    lowest_sqnr_db: float
    lowest_state_sqnr_db: float | None  # None: no file has a state drift (the reference, imported tracks)
    segments_vs_reference: SegmentScore | None = None  # pooled over files: segments counted together
    segments_vs_truth: SegmentScore | None = None
    segments_vs_truth_loose: SegmentScore | None = None


@dataclass(frozen=True)
class BackendAggregate:
    """One backend over all files: chunks, decision agreement, flips, pooled segment precision/recall, worst
    probability error and lowest state SQNR. Files whose tracks hold NaN/Inf are not scored (``not_scored``);
    with no file left there are no ``scores``, only ``non_finite``."""

    label: str
    kind: str
    files: int
    chunks: int
    not_scored: list[str]
    scores: AggregateScores | None
    non_finite: str | None = None

    @property
    def agreement(self) -> float:
        """The share of identical decisions (1 where nothing was scored)."""
        return self.scores.agreement if self.scores is not None else 1.0

    def to_json(self) -> Json:
        out: Json = {"label": self.label, "kind": self.kind, "files": self.files, "chunks": self.chunks}
        s = self.scores
        if s is None:
            return {**out, "not_scored": self.not_scored, "non_finite": self.non_finite}
        out.update(agreement=s.agreement, flips=s.flips, flips_near_boundary=s.flips_near_boundary,
                   hysteresis_flips=s.hysteresis_flips, max_abs_dp=s.max_abs_dp, mean_abs_dp=s.mean_abs_dp,
                   mean_cosine=s.mean_cosine, lowest_sqnr_db=s.lowest_sqnr_db, not_scored=self.not_scored)
        for key in SEGMENT_KEYS:
            score = getattr(s, key)
            if score is not None:
                out[key] = score.to_json()
        out["lowest_state_sqnr_db"] = s.lowest_state_sqnr_db
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BackendAggregate":
        head = (str(data["label"]), str(data["kind"]), int(data["files"]), int(data["chunks"]),
                [str(f) for f in data.get("not_scored") or []])
        if "non_finite" in data:
            return cls(*head, None, str(data["non_finite"]))
        low = data.get("lowest_state_sqnr_db")
        return cls(*head, AggregateScores(
            _number(data["agreement"]), int(data["flips"]), int(data["flips_near_boundary"]),
            int(data["hysteresis_flips"]), _number(data["max_abs_dp"]), _number(data["mean_abs_dp"]),
            _number(data["mean_cosine"]), _number(data["lowest_sqnr_db"]), None if low is None else _number(low),
            **_segment_scores(data)))


def _pooled(scores: Sequence[TrackScores], key: str) -> SegmentScore | None:
    parts = [p for s in scores if (p := getattr(s, key)) is not None]
    return SegmentScore.pooled(parts) if parts else None


def aggregate(backends: Sequence[str], labels: Mapping[str, str],
              files: Sequence[FileResult]) -> dict[str, BackendAggregate]:
    """Per backend over all files (``BackendAggregate``): sums and extremes of the files' rows."""
    out = {}
    for b in backends:
        all_rows = [f.backends[b] for f in files]
        scored = [(r, r.scores) for r in all_rows if r.scores is not None]
        not_scored = [f.file for f in files if f.backends[b].scores is None]
        if not scored:
            out[b] = BackendAggregate(labels[b], all_rows[0].kind, len(all_rows), sum(r.chunks for r in all_rows),
                                      not_scored, None, "; ".join(f"{f.file}: {f.backends[b].non_finite}"
                                                                  for f in files))
            continue
        chunks = sum(r.chunks for r, _ in scored)
        flips = sum(s.flips for _, s in scored)
        drifts = [r.state_drift for r, _ in scored if r.state_drift is not None]
        scores = [s for _, s in scored]
        out[b] = BackendAggregate(labels[b], scored[0][0].kind, len(scored), chunks, not_scored, AggregateScores(
            agreement=1.0 - flips / chunks if chunks else 1.0, flips=flips,
            flips_near_boundary=sum(s.flips_near_boundary for s in scores),
            hysteresis_flips=sum(s.hysteresis_flips for s in scores), max_abs_dp=max(s.max_abs_dp for s in scores),
            mean_abs_dp=sum(s.mean_abs_dp * r.chunks for r, s in scored) / chunks if chunks else 0.0,
            mean_cosine=float(np.mean([s.cosine for s in scores])),
            lowest_sqnr_db=float(np.min([s.sqnr_db for s in scores])),
            lowest_state_sqnr_db=min(d.lowest for d in drifts) if drifts else None,
            segments_vs_reference=_pooled(scores, "segments_vs_reference"),
            segments_vs_truth=_pooled(scores, "segments_vs_truth"),
            segments_vs_truth_loose=_pooled(scores, "segments_vs_truth_loose")))
    return out


@dataclass(frozen=True)
class EmulatorReport:
    """What the emulator says of the streamed step: the plugin's answer per op, its plan (with the values each
    layer saturated over the whole stream), its notes and the inputs' scale factors."""

    support: list[Json]  # emulator.porting.support_report rows
    plan: list[Json]  # the plan's summary rows, with "saturations"
    notes: list[str]
    input_scale_factors: dict[str, float]

    def to_json(self) -> Json:
        return {"support": self.support, "plan": self.plan, "notes": self.notes,
                "input_scale_factors": self.input_scale_factors}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "EmulatorReport":
        return cls(list(data.get("support") or []), list(data.get("plan") or []),
                   [str(n) for n in data.get("notes") or []],
                   {str(k): _number(v) for k, v in (data.get("input_scale_factors") or {}).items()})


@dataclass
class VadRecord:
    """A silero_vad run: the backends (the first is the reference), per file every backend's track against the
    reference's, per backend the aggregate over all files, the emulator's report and what ran where."""

    backends: list[str]
    reference: str
    labels: dict[str, str]
    device_settings: dict[str, Json]  # per backend, what it says of its settings (an import: its file)
    files: list[FileResult]
    notes: list[str]
    environment: Json  # environment.capture()
    seconds: dict[str, float]  # per backend, over all files
    aggregate: dict[str, BackendAggregate]
    emulator: dict[str, EmulatorReport] = field(default_factory=dict)
    recommended_scale_factor: float | None = None  # the audio scale factor the files' peak allows
    chunk_samples: int = vad.CHUNK
    context_samples: int = vad.CONTEXT
    sample_rate: int = vad.SAMPLE_RATE
    experiment: str = "silero_vad"

    def file(self, name: str | None = None) -> FileResult:
        """The file of that name (the first one for None)."""
        return next(f for f in self.files if name in (None, f.file))

    def scale_factor_of(self, backend: str) -> float | None:
        """The audio scale factor a GNA backend (emulated) ran at; None for the others."""
        used = self.device_settings.get(backend, {}).get("scale_factors") or {}
        used = used.get("chunk") if isinstance(used, dict) else used
        return float(used) if isinstance(used, (int, float)) else None

    def emulated_settings(self) -> Json:
        """The settings of the first backend with per-input scale factors (the emulator's), or {}."""
        return next((s for s in self.device_settings.values() if s.get("scale_factors")), {})

    def plugin_release(self) -> str | None:
        """The GNA plugin release the emulator computed as, where a backend says so."""
        return next((str(s["plugin_release"]) for s in self.device_settings.values()
                     if isinstance(s, dict) and s.get("plugin_release")), None)

    def to_json(self) -> Json:
        out: Json = {"schema": VAD_SCHEMA, "experiment": self.experiment, "backends": list(self.backends),
                     "reference": self.reference, "labels": dict(self.labels),
                     "device_settings": dict(self.device_settings), "chunk_samples": self.chunk_samples,
                     "context_samples": self.context_samples, "sample_rate": self.sample_rate,
                     "files": [f.to_json() for f in self.files], "notes": list(self.notes),
                     "environment": self.environment, "seconds": dict(self.seconds)}
        if self.emulator:
            out["emulator"] = {b: e.to_json() for b, e in self.emulator.items()}
        out["aggregate"] = {b: a.to_json() for b, a in self.aggregate.items()}
        if self.recommended_scale_factor is not None:
            out["recommended_scale_factor"] = self.recommended_scale_factor
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "record.json") -> "VadRecord":
        """A record as record.json holds it (also one written before the aggregate, the emulator's notes and
        the recommended scale factor were recorded). A damaged one is refused naming ``where``."""
        try:
            files = [FileResult.from_json(f) for f in data["files"]]
            backends = [str(b) for b in data["backends"]]
            labels = {str(b): str(v) for b, v in data["labels"].items()}
            stored = data.get("aggregate")
            recommended = data.get("recommended_scale_factor")
            return cls(
                backends, str(data["reference"]), labels,
                {str(b): dict(s) for b, s in (data.get("device_settings") or {}).items()}, files,
                [str(n) for n in data.get("notes") or []], dict(data.get("environment") or {}),
                {str(b): _number(s) for b, s in (data.get("seconds") or {}).items()},
                {str(b): BackendAggregate.from_json(a) for b, a in stored.items()} if stored is not None
                else aggregate(backends, labels, files),
                {str(b): EmulatorReport.from_json(e) for b, e in (data.get("emulator") or {}).items()},
                None if recommended is None else _number(recommended),
                int(data.get("chunk_samples", vad.CHUNK)), int(data.get("context_samples", vad.CONTEXT)),
                int(data.get("sample_rate", vad.SAMPLE_RATE)), str(data.get("experiment", "silero_vad")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(f"{where} is not a whole silero_vad record ({type(exc).__name__}: {exc}): the record is "
                           "damaged; rerun it with gnaexp run silero_vad --out") from None
