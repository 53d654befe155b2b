"""The emulated quantization floor of one run, as a typed value with a JSON round trip: what the verdicts, the
plots, the ladder and the record read (``emulator.sweep.floor_sweep`` makes it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class LayoutTrace:
    """One layout path's figures at every swept scale factor ("" in ``refused`` where the emulator runs it)."""

    sqnr_db: list[float]
    cosine: list[float]
    l1: list[float]
    input_saturations: list[int]
    accumulator_saturations: list[int]
    refused: list[str]


@dataclass
class FloorSweep:
    """The floor (correct layout) and any other layout asked for, at every sweep scale factor plus the configured
    one; the floor at the configured sf, the best sf and where inputs saturate."""

    scale_factors: list[float]
    scale_factor: float  # the configured one (the main input's, with one per input)
    precision: str
    plugin_release: str
    layouts: dict[str, LayoutTrace]  # "correct" always, first
    floor_sqnr_db: float
    floor_cosine: float
    best_scale_factor: float
    best_sqnr_db: float
    input_saturation_sf: float
    recommended_scale_factor: float
    refused_at_scale_factor: str  # why the configured sf is refused ("" where it runs)
    recommended_note: str = ""
    per_input: dict[str, float] | None = None  # the run's scale factor per input (the others held in the sweep)
    emulated: bool = field(default=True, init=False)

    @property
    def floor_trace(self) -> LayoutTrace:
        return self.layouts["correct"]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not self.recommended_note:
            del data["recommended_note"]
        if self.per_input is None:
            del data["per_input"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FloorSweep":
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        values = {k: v for k, v in data.items() if k in names}
        values["layouts"] = {k: LayoutTrace(**v) for k, v in data["layouts"].items()}
        values.setdefault("plugin_release", "2023.3")  # records written before the release was recorded
        return cls(**values)
