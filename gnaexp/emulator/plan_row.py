"""One row of the emulator's plan: what one integer step computes, at which scales, with its JSON form.

``emulate(...).plan`` is a list of these, and a record keeps their JSON form (``PlanRow.to_json``) in the
emulated backend's ``info["plan"]``; ``rows_from_json`` reads it back. Where a step's output lives is a ``Lane``;
records written before the lane had a name stored it as ``"bits"`` 0/16/32, which ``from_json`` still reads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping, TypedDict, cast

from gnaexp.core.errors import BadInput

REQUANTIZED_FOR = ("concat", "memory", "eltwise")  # why a restart set a layer's scale factor (graph.build_plan)
_DAMAGED = "the record is damaged: rerun the experiment with gnaexp run --out"


class Lane(enum.Enum):
    """Where a step's output lives and how wide it is."""

    HOST = "host"  # float32 on the host, outside the GNA part (porting's pre/post-processing)
    INT16 = "int16"  # 16-bit data: network inputs, activations (PWL), data movement, concat, memory
    INT32 = "int32"  # the 32-bit accumulator of a weightable layer (affine, convolution, diagonal, eltwise)

    @classmethod
    def from_bits(cls, bits: int) -> Lane:
        """The lane an older record wrote as its width in bits (0 meant the host)."""
        return {0: cls.HOST, 16: cls.INT16, 32: cls.INT32}[bits]


class PwlSegment(TypedDict):
    x_base: int
    shift: int
    y_base: int
    slope: int


class PwlJson(TypedDict):
    """A PWL's segments as GNA stores them (``pwl.PWL.to_json``)."""

    kind: str
    in_sf: float
    out_sf: float
    segments: list[PwlSegment]


@dataclass(frozen=True)
class WeightFacts:
    """What quantizing a weightable layer's weights did (``quantize.WeightQuant``)."""

    precision: str  # "i16" | "i8"
    bias_cap_hit: bool = False
    reducer: float = 1.0
    dst_reducer: float = 1.0
    weight_saturations: int = 0
    bias_saturations: int = 0

    @property
    def reducer_applied(self) -> bool:
        return self.reducer > 1.0

    def to_json(self) -> dict[str, Any]:
        return {"weight_precision": self.precision, "bias_cap_hit": self.bias_cap_hit,
                "reducer_applied": self.reducer_applied, "reducer": self.reducer, "dst_reducer": self.dst_reducer,
                "weight_saturations": self.weight_saturations, "bias_saturations": self.bias_saturations}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> WeightFacts:
        return cls(_str(data, "weight_precision", where), bool(data.get("bias_cap_hit", False)),
                   _float(data, "reducer", where, 1.0), _float(data, "dst_reducer", where, 1.0),
                   _int(data, "weight_saturations", where), _int(data, "bias_saturations", where))


@dataclass(frozen=True)
class Extras:
    """What only some ops record."""

    weights: WeightFacts | None = None  # affine, convolution, ScaleShift
    weight_int: int | None = None  # eltwise Sum/Sub: the integer weight of its w input
    geometry: dict[str, int | float | str] | None = None  # convolution: how the plugin lays it out
    input_layout: str | None = None  # 1-D convolution: how it reads its input buffer
    pwl: PwlJson | None = None  # PWL layers: the segments
    domain: tuple[float, float] | None = None  # a PWL designed on a bounded range: inputs past it are saturated
    axis: int | None = None  # concat: the sample axis it joins on
    rank: int | None = None  # concat: the rank of its output sample

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = self.weights.to_json() if self.weights else {}
        for key, value in (("weight_int", self.weight_int), ("geometry", self.geometry),
                           ("input_layout", self.input_layout), ("pwl", self.pwl),
                           ("domain", list(self.domain) if self.domain else None), ("axis", self.axis),
                           ("rank", self.rank)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> Extras:
        domain = data.get("domain")
        if domain is not None and not (isinstance(domain, list) and len(domain) == 2):
            raise BadInput(f"{where}: 'domain' is not a [low, high] pair; {_DAMAGED}")
        pwl, geometry = data.get("pwl"), data.get("geometry")
        if pwl is not None and not (isinstance(pwl, dict) and isinstance(pwl.get("segments"), list)):
            raise BadInput(f"{where}: 'pwl' has no segments; {_DAMAGED}")
        if geometry is not None and not isinstance(geometry, dict):
            raise BadInput(f"{where}: 'geometry' is not an object; {_DAMAGED}")
        return cls(WeightFacts.from_json(data, where) if "weight_precision" in data else None,
                   _opt_int(data, "weight_int", where), geometry, _opt_str(data, "input_layout", where),
                   cast(PwlJson, pwl) if pwl is not None else None,
                   (_num(domain[0], "domain", where), _num(domain[1], "domain", where)) if domain else None,
                   _opt_int(data, "axis", where), _opt_int(data, "rank", where))


@dataclass(frozen=True)
class PlanRow:
    """One step of the plan (not the data movements): its layer, op, arithmetic and scale factors."""

    layer: str
    op: str
    precision: str  # the step's arithmetic: "i16", "i8" (8-bit weights), "f32 (host)"
    lane: Lane
    in_sf: float | list[float] | None  # None: no integer input (a network input, host float data); eltwise: both
    w_sf: float | None
    out_sf: float
    extras: Extras = field(default_factory=Extras)
    notes: list[str] = field(default_factory=list)  # what the plugin says of this layer (quantize.WeightQuant)
    requantized_for: str | None = None  # one of REQUANTIZED_FOR: a restart of the plan set this layer's scale
    saturations: int = 0  # values clipped in the run (``emulate``)
    values: int = 0  # values computed in the run

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "op": self.op, "precision": self.precision,
                               "lane": self.lane.value, "in_sf": self.in_sf, "w_sf": self.w_sf,
                               "out_sf": self.out_sf, **self.extras.to_json()}
        if self.notes:
            out["notes"] = list(self.notes)
        if self.requantized_for:
            out[f"requantized_for_{self.requantized_for}"] = True
        out["saturations"], out["values"] = self.saturations, self.values
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "plan row") -> PlanRow:
        """A row from its JSON form, or from an older record's (``"bits"`` for the lane); BadInput naming the
        field when the row is not one."""
        if not isinstance(data, Mapping):
            raise BadInput(f"{where} is a JSON {type(data).__name__}, not an object; {_DAMAGED}")
        if "lane" in data:
            try:
                lane = Lane(data["lane"])
            except ValueError:
                raise BadInput(f"{where}: 'lane' is {data['lane']!r}, not one of "
                               f"{', '.join(x.value for x in Lane)}; {_DAMAGED}") from None
        elif data.get("bits") in (0, 16, 32):
            lane = Lane.from_bits(int(data["bits"]))
        else:
            raise BadInput(f"{where}: no 'lane' (nor an older record's 'bits' 0, 16 or 32); {_DAMAGED}")
        in_sf = data.get("in_sf")
        notes = data.get("notes") or []
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise BadInput(f"{where}: 'notes' is not a list of strings; {_DAMAGED}")
        return cls(_str(data, "layer", where), _str(data, "op", where), str(data.get("precision", "")), lane,
                   [_num(v, "in_sf", where) for v in in_sf] if isinstance(in_sf, list) else
                   _opt_float(data, "in_sf", where), _opt_float(data, "w_sf", where), _float(data, "out_sf", where),
                   Extras.from_json(data, where), list(notes),
                   next((why for why in REQUANTIZED_FOR if data.get(f"requantized_for_{why}")), None),
                   _int(data, "saturations", where), _int(data, "values", where))


def rows_from_json(data: Any, where: str = "the plan") -> list[PlanRow]:
    """The rows of a plan's JSON form (a list of ``PlanRow.to_json``; None or missing: no plan)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise BadInput(f"{where} is a JSON {type(data).__name__}, not a list of rows; {_DAMAGED}")
    return [PlanRow.from_json(row, f"{where}, row {i}") for i, row in enumerate(data)]


# --- field readers: a value of the wanted JSON type, or BadInput naming the field ---------------------------

def _num(value: Any, key: str, where: str) -> float:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):  # how files.json_safe writes them
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{where}: {key!r} is {value!r}, not a number; {_DAMAGED}")
    return float(value)


def _float(data: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    if key not in data and default is not None:
        return default
    if key not in data:
        raise BadInput(f"{where}: {key!r} is missing; {_DAMAGED}")
    return _num(data[key], key, where)


def _opt_float(data: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if data.get(key) is None else _num(data[key], key, where)


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{where}: {key!r} is {value!r}, not a whole number; {_DAMAGED}")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if data.get(key) is None else _int(data, key, where)


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise BadInput(f"{where}: {key!r} is {'missing' if key not in data else repr(value)}, not a text; "
                       f"{_DAMAGED}")
    return value


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if data.get(key) is None else _str(data, key, where)
