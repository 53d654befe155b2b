"""The per-layer comparison as typed values with a JSON round trip (``gnaexp layers --json``, ``layers.json``).

Schema (``gnaexp.layers/1``)::

    {
      "schema": "gnaexp.layers/1",
      "reference": "openvino:CPU",                       # the backend every other one is compared with
      "backends": ["openvino:CPU:bf16", "nncf:int8"],   # the backends under test, in the order given
      "first_diverging": {"openvino:CPU:bf16": "conv1" | null},  # first layer (topological order) whose
                                                         #   local SQNR is below the threshold
      "threshold_db": {"openvino:CPU:bf16": 30.0},      # that threshold, per backend
      "environment": {...},                              # gnaexp.core.environment.capture()
      "model": "conv", "input_fingerprint": "…",        # what ran
      "notes": {"openvino:CPU:f16": ["…"]},              # per backend: what the numbers need said with them
      "bisection": {                                     # only with --bisect: per backend under test
        "nncf:int8": {
          "target_sqnr_db": 30.0,                        # the network outputs' SQNR to reach (the lowest output)
          "how": "ignored_scope",                        # ignored_scope (NNCF) | precision marks (OpenVINO)
                                                         #   | int16 weights (gna-emu) | none (nothing to keep)
          "steps": [{"kept": [], "output_sqnr_db": 24.1, "phase": "start"},   # start | add | prune
                    {"kept": ["conv1"], "output_sqnr_db": 33.0, "phase": "add"}],
          "kept": ["conv1"],                             # the smallest set found, kept at the reference's precision
          "reached": true,                               # the target was reached with "kept"
          "honoured": null,                              # precision marks: whether the device changed its numbers
          "notes": ["…"]}},
      "rows": [                                          # per backend, one row per reference layer, in the
        {"layer": "conv1",                               #   reference model's topological order
         "op": "Convolution",
         "backend": "openvino:CPU:bf16",
         "sqnr_db": 41.2,          # accumulated: the whole net ran on the backend; its tensor of this name
         "local_sqnr_db": 44.0,    # local: this layer alone, fed the reference's own inputs (null: not known)
         "cosine": 0.99999,
         "max_abs": 0.0031,
         "status": "compared",     # compared | fused | missing | inserted
         "is_output": false}       # the layer feeds a network output
      ]
    }

Status: ``fused`` — the backend merged the layer into another one (its runtime model lists it among that node's
original layers; for gna-emu, the emulator's plan folds it into a neighbour; for torch, as reference or under
test, the layer is one of a module's ops and the module's output is its last op's), so it has no tensor of its own;
``missing`` — the backend has no tensor of that name and does not say it fused it; ``inserted`` — the backend's
model has a layer the reference has not (e.g. NNCF's FakeQuantize), folded into its consumer's local error.
Non-finite numbers are written as the strings "inf", "-inf", "nan" (JSON has none) and read back as floats;
``null`` means not measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

SCHEMA = "gnaexp.layers/1"
STATUSES = ("compared", "fused", "missing", "inserted")


def _number(value: Any) -> float | None:
    """A JSON number (or "inf"/"-inf"/"nan") as a float; None stays None."""
    return None if value is None else float(value)


def _encode(value: float | None) -> float | str | None:
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


@dataclass
class LayerDiff:
    """One layer of the reference on one backend under test."""

    layer: str
    op: str
    backend: str
    sqnr_db: float | None = None  # accumulated
    local_sqnr_db: float | None = None
    cosine: float | None = None
    max_abs: float | None = None
    status: str = "compared"
    is_output: bool = False

    def to_json(self) -> dict[str, Any]:
        return {f.name: _encode(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LayerDiff":
        status = str(data.get("status", "compared"))
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        return cls(str(data["layer"]), str(data["op"]), str(data["backend"]), _number(data.get("sqnr_db")),
                   _number(data.get("local_sqnr_db")), _number(data.get("cosine")), _number(data.get("max_abs")),
                   status, bool(data.get("is_output", False)))


@dataclass
class BisectStep:
    """One configuration the bisection ran: these layers kept at the reference precision, the output SQNR."""

    kept: list[str]
    output_sqnr_db: float
    phase: str = "add"  # start (nothing kept) | add | prune

    def to_json(self) -> dict[str, Any]:
        return {"kept": list(self.kept), "output_sqnr_db": _encode(self.output_sqnr_db), "phase": self.phase}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BisectStep":
        return cls([str(k) for k in data["kept"]], float(data["output_sqnr_db"]), str(data.get("phase", "add")))


@dataclass
class Bisection:
    """The smallest set of layers that, kept at the reference precision, brings the outputs above a target."""

    target_sqnr_db: float
    how: str
    steps: list[BisectStep] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    reached: bool = False
    honoured: bool | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"target_sqnr_db": _encode(self.target_sqnr_db), "how": self.how,
                "steps": [s.to_json() for s in self.steps], "kept": list(self.kept), "reached": self.reached,
                "honoured": self.honoured, "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Bisection":
        honoured = data.get("honoured")
        return cls(float(data["target_sqnr_db"]), str(data["how"]), [BisectStep.from_json(s) for s in data["steps"]],
                   [str(k) for k in data["kept"]], bool(data["reached"]), None if honoured is None else bool(honoured),
                   [str(n) for n in data.get("notes") or []])


@dataclass
class LayerComparison:
    """Every backend under test against the reference, layer by layer."""

    reference: str
    backends: list[str]
    first_diverging: dict[str, str | None]
    threshold_db: dict[str, float]
    environment: dict[str, Any]
    rows: list[LayerDiff]
    model: str = ""
    input_fingerprint: str = ""
    notes: dict[str, list[str]] = field(default_factory=dict)
    bisection: dict[str, Bisection] = field(default_factory=dict)  # per backend, with --bisect

    def rows_of(self, backend: str) -> list[LayerDiff]:
        return [r for r in self.rows if r.backend == backend]

    def worst(self, backend: str) -> LayerDiff | None:
        """The compared layer with the lowest local SQNR (accumulated where no local is known)."""
        def key(r: LayerDiff) -> float:
            value = r.local_sqnr_db if r.local_sqnr_db is not None else r.sqnr_db
            return math.inf if value is None or math.isnan(value) else value
        compared = [r for r in self.rows_of(backend) if r.status == "compared"]
        return min(compared, key=key) if compared else None

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "reference": self.reference, "backends": list(self.backends),
                "first_diverging": dict(self.first_diverging),
                "threshold_db": {k: _encode(v) for k, v in self.threshold_db.items()},
                "environment": self.environment, "model": self.model, "input_fingerprint": self.input_fingerprint,
                "notes": {k: list(v) for k, v in self.notes.items()}, "rows": [r.to_json() for r in self.rows],
                **({"bisection": {k: b.to_json() for k, b in self.bisection.items()}} if self.bisection else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LayerComparison":
        if data.get("schema", SCHEMA) != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r} is not {SCHEMA}")
        return cls(str(data["reference"]), [str(b) for b in data["backends"]],
                   {str(k): (None if v is None else str(v)) for k, v in data["first_diverging"].items()},
                   {str(k): float(v) for k, v in data["threshold_db"].items()}, dict(data.get("environment") or {}),
                   [LayerDiff.from_json(r) for r in data["rows"]], str(data.get("model", "")),
                   str(data.get("input_fingerprint", "")),
                   {str(k): [str(n) for n in v] for k, v in (data.get("notes") or {}).items()},
                   {str(k): Bisection.from_json(v) for k, v in (data.get("bisection") or {}).items()})

    def dumps(self) -> str:
        from gnaexp.core.files import dumps

        return dumps(self.to_json())
