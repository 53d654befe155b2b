"""The GNA settings every part of gnaexp speaks of, defined once: the forum nets, their generated input kinds,
weight precisions, the quantizer's bit widths, the emulator's layout paths and the plugin's execution modes, and
the one check of each device setting every experiment, the command line and the batch matrix use. Plain Python
only: the command line builds its help from these names without loading NumPy."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from gnaexp.core.excerpt import excerpt
from gnaexp.core.errors import BadInput

FORUM_NETS = ("conv", "concat", "concat_conv")
INPUT_KINDS = ("uniform01", "uniform11", "normal", "sines")  # generated inputs (core.inputs.generate)
QUANTIZE_BITS = (8, 16)  # activation and weight bits of an NNCF quantization: the GNA's int8 and int16
PRECISIONS = ("i16", "i8")  # GNA_PRECISION I16 / I8 (weights)
LAYOUTS = ("correct", "legacy-concat")  # emulator layout paths (docs/gna-rules.md §4.3)
EXECUTION_MODES = ("AUTO", "HW", "HW_WITH_SW_FBACK", "SW_EXACT", "SW_FP32")  # GNA_DEVICE_MODE without "GNA_"
# The GNA plugin releases the emulator computes as (emulator/releases.py); 2023.3 LTS was the last with the plugin
PLUGIN_RELEASES = ("2022.3", "2023.0", "2023.1", "2023.2", "2023.3")
DEFAULT_PLUGIN_RELEASE = "2023.3"
# An input scale factor maps floats onto int16. Above 1e9 an input saturates beyond 3.3e-5 already, and the
# scale factors the GNA rules derive from it (times the weights' and the activations') leave float32's range
# long before 1e30: the emulator would compute with inf and NaN.
MAX_SCALE_FACTOR = 1e9


def check_scale_factor(value: Any, name: str = "scale_factor") -> float:
    """A scale factor (a number: not a bool, not text) as a float, or ValueError giving the valid range."""
    try:
        number = math.nan if isinstance(value, (bool, str, bytes)) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and 0 < number <= MAX_SCALE_FACTOR):
        raise BadInput(f"{name} must be positive and at most {MAX_SCALE_FACTOR:g} (valid: 0 < {name} ≤ "
                         f"{MAX_SCALE_FACTOR:g}), got {excerpt(value)}")
    return number


def check_precision(value: Any) -> str:
    if not (isinstance(value, str) and value in PRECISIONS):
        raise BadInput(f"precision must be {' or '.join(PRECISIONS)}, got {excerpt(value)}")
    return str(value)


def check_layout(value: Any, name: str = "layout") -> str:
    if not (isinstance(value, str) and value in LAYOUTS):
        raise BadInput(f"{name} must be {' or '.join(LAYOUTS)}, got {excerpt(value)}")
    return str(value)


def check_plugin_release(value: Any, name: str = "plugin_release") -> str:
    """A plugin release as the emulator names it: "2023.3"; a patch release ("2023.0.2") computes as its minor
    release; empty → the default."""
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    if text == "":
        return DEFAULT_PLUGIN_RELEASE
    parts = (text or "").split(".")
    minor = ".".join(parts[:2])
    if minor in PLUGIN_RELEASES and len(parts) <= 3 and all(p.isdigit() for p in parts[2:]):
        return minor
    raise BadInput(f"{name} {excerpt(value)} is not a GNA plugin release the emulator follows; use one of "
                     f"{', '.join(PLUGIN_RELEASES)} (default {DEFAULT_PLUGIN_RELEASE}; a patch release such as "
                     "2023.0.2 computes as its minor release)")


def check_execution_mode(value: Any) -> str:
    if not isinstance(value, str) or value.upper().removeprefix("GNA_") not in EXECUTION_MODES:
        raise BadInput(f"execution_mode must be one of {', '.join(EXECUTION_MODES)}, got {excerpt(value)}")
    return value



def parse_scale_factors(value: Any, name: str = "scale_factor") -> float | dict[str, float]:
    """One scale factor for every input (``2048``) or one per input (``chunk=2048,state=1024``, or a mapping), each
    checked; the one reader of both forms for every command and notebook. Inputs a mapping leaves out keep the
    plugin's default 1."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str) and "=" in value:
        pairs = [part.partition("=")[::2] for part in value.split(",") if part.strip()]
    else:
        return check_scale_factor(float(value) if isinstance(value, str) and _number(value) else value, name)
    out: dict[str, float] = {}
    for key, number in pairs:
        key = str(key).strip()
        if not key or key in out:
            raise BadInput(f"{name} takes one number, or input=number,... with each input named once; got "
                             f"{excerpt(value)}")
        out[key] = check_scale_factor(float(number) if isinstance(number, str) and _number(number) else number,
                                      f"{name} of input {key!r}")
    if not out:
        raise BadInput(f"{name} is empty; give a number or input=number,...")
    return out


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main_scale_factor(value: float | dict[str, float]) -> float:
    """The scale factor a sweep varies and a table shows: the only one, or the first input's of a per-input set."""
    return float(next(iter(value.values()))) if isinstance(value, dict) else float(value)


def at_scale_factor(value: float | dict[str, float], sf: float) -> float | dict[str, float]:
    """``value`` with its main scale factor (``main_scale_factor``) set to ``sf``; the other inputs' are held."""
    if isinstance(value, dict):
        return {**value, next(iter(value)): float(sf)}
    return float(sf)


def format_scale_factors(value: float | dict[str, float]) -> str:
    """``2048`` or ``chunk=2048,state=1024``: the form ``parse_scale_factors`` reads back."""
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" for k, v in value.items())
    return f"{float(value):g}"


def check_porting(value: Any) -> bool:
    """The porting setting (host pre/post-processing and the exact rewrites a porting team makes) as a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLS:
        return _BOOLS[value.strip().lower()]
    raise BadInput(f"porting must be true or false, got {excerpt(value)}")


_BOOLS = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}


@dataclass(frozen=True)
class GnaSettings:
    """What the GNA emulator computes with, built and checked once: input scale factors (one, or one per input),
    weight precision, layout path, porting, plugin release. The one value passed from a backend to ``emulate``,
    plan building, sweeps, the ladder, the hypotheses and per-layer error; its JSON is the backend's settings."""

    scale_factors: float | Mapping[str, float] = 1.0
    precision: str = "i16"
    layout: str = "correct"
    porting: bool = False
    plugin_release: str = DEFAULT_PLUGIN_RELEASE
    # Layers whose weights stay int16 under precision i8: the per-layer choice the plugin makes from a weight
    # FakeQuantize's levels (> 255 → int16; emulator/quantize.py weight_precision_for), here by name.
    int16_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        sfs = self.scale_factors
        if isinstance(sfs, Mapping) and not all(isinstance(k, str) for k in sfs):  # keyed by input index too
            sfs = {k: check_scale_factor(v, f"scale_factor of input {k!r}") for k, v in sfs.items()}
        else:
            sfs = parse_scale_factors(dict(sfs) if isinstance(sfs, Mapping) else sfs)
        object.__setattr__(self, "scale_factors", sfs)
        check_precision(self.precision)
        check_layout(self.layout)
        object.__setattr__(self, "porting", check_porting(self.porting))
        object.__setattr__(self, "plugin_release", check_plugin_release(self.plugin_release or ""))
        object.__setattr__(self, "int16_layers", tuple(str(n) for n in self.int16_layers))

    @property
    def main_scale_factor(self) -> float:
        return main_scale_factor(self.scale_factors)  # type: ignore[arg-type]

    @property
    def per_input(self) -> dict[str, float] | None:
        """The scale factor of each input, when they were given per input."""
        return dict(self.scale_factors) if isinstance(self.scale_factors, Mapping) else None

    def at(self, sf: float) -> "GnaSettings":
        """These settings with the main scale factor set to ``sf`` (the other inputs' held)."""
        return replace(self, scale_factors=at_scale_factor(self.scale_factors, sf))  # type: ignore[arg-type]

    def with_layout(self, layout: str) -> "GnaSettings":
        return replace(self, layout=layout)

    def to_json(self) -> dict[str, Any]:
        data = {"scale_factors": self.per_input or self.main_scale_factor, "precision": self.precision,
                "layout": self.layout, "porting": self.porting, "plugin_release": self.plugin_release}
        return {**data, "int16_layers": list(self.int16_layers)} if self.int16_layers else data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "GnaSettings":
        return cls(data.get("scale_factors", 1.0), data.get("precision", "i16"), data.get("layout", "correct"),
                   bool(data.get("porting", False)), data.get("plugin_release") or DEFAULT_PLUGIN_RELEASE,
                   tuple(data.get("int16_layers") or ()))
