"""The diagnosis ladder's result as typed values with a JSON round trip: one class per step, the diagnosis that
holds them. ``to_json`` writes what ``diagnosis.json`` and ``gnaexp diagnose --json`` have always held;
``from_json`` reads it back (``Diagnosis.from_json(d.to_json()) == d``).

Values only: the ladder (``ladder.py``) fills them, the verdict module words them, the views and the finding read
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping

from gnaexp.core.floor_sweep import FloorSweep


@dataclass
class RecordVerdicts:
    """The verdict per backend label of a record, and the emulated floor they were judged against."""

    verdicts: dict[str, str] = field(default_factory=dict)
    floor_sqnr_db: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"floor_sqnr_db": self.floor_sqnr_db, "verdicts": dict(self.verdicts)} if self.verdicts or \
            self.floor_sqnr_db is not None else {}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RecordVerdicts":
        floor = data.get("floor_sqnr_db")
        return cls(dict(data.get("verdicts") or {}), None if floor is None else float(floor))


@dataclass
class WhatRan:
    """What produced a measured or imported output (``measurement.describe``): device, class (fp32 |
    reduced-float | gna-integer | unknown), execution mode, precision, OpenVINO version."""

    device: str | None
    klass: str
    mode: str | None = None
    precision: str | None = None
    openvino: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "class": self.klass, "mode": self.mode, "precision": self.precision,
                "openvino": self.openvino}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "WhatRan":
        return cls(data.get("device"), str(data.get("class", "unknown")), data.get("mode"), data.get("precision"),
                   data.get("openvino"))


@dataclass
class LayerRow:
    """One emulated layer: accumulated SQNR against FP32 (errors of every layer before it) and local SQNR (the
    layer fed exact inputs); NaN where no FP32 tensor holds its output."""

    layer: str
    op: str | None
    out_sf: float
    saturations: int
    accumulated_sqnr_db: float
    local_sqnr_db: float

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LayerRow":
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass
class LayoutRow:
    """What one plugin layout path outputs, at the configured sf and (not for "correct") at a second one."""

    layout: str
    sqnr_db: float
    cosine: float
    pearson: float
    cosine_at_other_sf: float | None = None
    sqnr_at_other_sf: float | None = None
    other_sf: float | None = None
    same_as_correct: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in ("layout", "sqnr_db", "cosine", "pearson") or self.layout != "correct"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LayoutRow":
        return cls(str(data["layout"]), float(data["sqnr_db"]), float(data["cosine"]), float(data["pearson"]),
                   data.get("cosine_at_other_sf"), data.get("sqnr_at_other_sf"), data.get("other_sf"),
                   data.get("same_as_correct"))


@dataclass
class OutputFloor:
    """The floor of one output of a net with several."""

    sqnr_db: float
    cosine: float
    l1: float


@dataclass
class Thresholds:
    """When a hypothesis explains an observed output (``verdicts.explains``), as the step was judged."""

    explain_min_db: float
    floor_margin_db: float
    margin_over_next_db: float


@dataclass
class HypothesisScore:
    """One hypothesis scored against the observed output: what a diagnosis keeps of ``hypotheses.Scored``."""

    hypothesis: str
    family: str
    mechanism: str
    sqnr_db: float
    cosine: float
    aliases: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"hypothesis": self.hypothesis, "family": self.family, "mechanism": self.mechanism,
                "sqnr_db": self.sqnr_db, "cosine": self.cosine, "aliases": list(self.aliases)}


@dataclass
class Step:
    """A step of the ladder: its verdict, and the output it studies where the net has several."""

    NAME: ClassVar[str] = ""
    # fields written only when set (the others always, null included)
    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    verdict: str
    output: str | None = field(default=None, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"output": self.output} if self.output is not None else {}
        data["step"] = self.NAME
        for f in fields(self):
            if f.name in ("output", "verdict"):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self.OPTIONAL:
                continue
            data[f.name] = _plain(value)
        data["verdict"] = self.verdict
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Step":
        kind = STEP_TYPES[data["step"]]
        values = {f.name: data.get(f.name) for f in fields(kind)}
        return kind(**kind.decode(values))

    @classmethod
    def decode(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The nested values of ``values`` (read from JSON) as their types."""
        return values


def _plain(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return value


@dataclass
class Fp32Step(Step):
    """OpenVINO CPU FP32 on the IR against torch: is the IR the same net?"""

    NAME = "fp32"
    ok: bool = False
    cosine: float = 0.0
    l1: float = 0.0


@dataclass
class FloorStep(Step):
    """The emulated floor at the configured scale factor, and the best the scale factor can do (the run's sweep)."""

    NAME = "floor"
    OPTIONAL = ("outputs",)
    scale_factor: float = 0.0
    input_scale_factors_used: dict[str, float] = field(default_factory=dict)
    input_sf_source: dict[str, str] = field(default_factory=dict)
    sqnr_db: float = 0.0
    cosine: float = 0.0
    l1: float = 0.0
    notes: list[str] = field(default_factory=list)
    best_scale_factor: float = 0.0
    best_sqnr_db: float = 0.0
    sweep: FloorSweep | None = None
    recommended_scale_factor: float = 0.0
    outputs: dict[str, OutputFloor] | None = None  # every output's floor, for a net with several

    @classmethod
    def decode(cls, values: dict[str, Any]) -> dict[str, Any]:
        values["sweep"] = FloorSweep.from_json(values["sweep"]) if values.get("sweep") else None
        if values.get("outputs") is not None:
            values["outputs"] = {k: OutputFloor(**v) for k, v in values["outputs"].items()}
        return values


@dataclass
class SensitivityStep(Step):
    """Does the error react to the scale factor? Quantization error must; structural error does not."""

    NAME = "sensitivity"
    sqnr_spread_db: float = 0.0


@dataclass
class LayoutsStep(Step):
    """What each plugin layout path would output."""

    NAME = "layouts"
    rows: list[LayoutRow] = field(default_factory=list)

    @classmethod
    def decode(cls, values: dict[str, Any]) -> dict[str, Any]:
        values["rows"] = [LayoutRow.from_json(r) for r in values.get("rows") or []]
        return values


@dataclass
class ObservedStep(Step):
    """The observed device output against the family of mistakes; figures None where it is not finite."""

    NAME = "observed"
    OPTIONAL = ("sqnr_db", "cosine", "pearson", "thresholds", "measured_as", "measured_status")
    source: str | None = None
    sqnr_db: float | None = None
    cosine: float | None = None
    pearson: float | None = None
    explained_by: str | None = None
    thresholds: Thresholds | None = None
    hypotheses: list[HypothesisScore] = field(default_factory=list)
    measured_as: WhatRan | None = None
    measured_status: str | None = None  # set where an FP32 or reduced-float measurement was judged as such

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.sqnr_db is None:  # a non-finite output: no figures, no explanation
            data.pop("explained_by", None)
        return data

    @classmethod
    def decode(cls, values: dict[str, Any]) -> dict[str, Any]:
        values["hypotheses"] = [HypothesisScore(**h) for h in values.get("hypotheses") or []]
        if values.get("thresholds") is not None:
            values["thresholds"] = Thresholds(**values["thresholds"])
        if values.get("measured_as") is not None:
            values["measured_as"] = WhatRan.from_json(values["measured_as"])
        return values


@dataclass
class PerLayerStep(Step):
    """Per layer (emulated), in the layout that explains the observed output, or with the mistake that does."""

    NAME = "per-layer"
    layout: str = "correct"
    mistake: str | None = None
    rows: list[LayerRow] = field(default_factory=list)
    first_bad_layer: str | None = None

    @classmethod
    def decode(cls, values: dict[str, Any]) -> dict[str, Any]:
        values["rows"] = [LayerRow.from_json(r) for r in values.get("rows") or []]
        return values


STEP_TYPES: dict[str, type[Step]] = {t.NAME: t for t in (Fp32Step, FloorStep, SensitivityStep, LayoutsStep,
                                                         ObservedStep, PerLayerStep)}


@dataclass
class Diagnosis:
    """The ladder on one experiment: every step with its verdict, and the finding that leads them (None where the
    scale factor is not the cause). GNA figures in it are emulated."""

    experiment: str
    config: dict[str, Any]
    reference: str
    headline: str | None
    steps: list[Step]
    emulated: bool = True

    def step(self, name: str) -> Step | None:
        """The step called ``name`` ("fp32", "floor", …), None where the ladder did not take it."""
        return next((s for s in self.steps if s.NAME == name), None)

    @property
    def floor(self) -> FloorStep | None:
        s = self.step("floor")
        return s if isinstance(s, FloorStep) else None

    @property
    def observed(self) -> ObservedStep | None:
        s = self.step("observed")
        return s if isinstance(s, ObservedStep) else None

    @property
    def per_layer(self) -> PerLayerStep | None:
        s = self.step("per-layer")
        return s if isinstance(s, PerLayerStep) else None

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "config": self.config, "reference": self.reference,
                "emulated": self.emulated, "headline": self.headline, "steps": [s.to_json() for s in self.steps]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Diagnosis":
        return cls(data["experiment"], dict(data["config"]), data["reference"], data.get("headline"),
                   [Step.from_json(s) for s in data["steps"]], bool(data.get("emulated", True)))
