"""The GNA settings every part of gnaexp speaks of, defined once: the forum nets, weight precisions, the emulator's
layout paths and the plugin's execution modes, and the one check of each device setting every experiment, the
command line and the batch matrix use."""

from __future__ import annotations

import math
from typing import Any

from gnaexp.excerpt import excerpt

FORUM_NETS = ("conv", "concat", "concat_conv")
PRECISIONS = ("i16", "i8")  # GNA_PRECISION I16 / I8 (weights)
LAYOUTS = ("correct", "legacy-concat")  # emulator layout paths (docs/gna-rules.md §4.3)
EXECUTION_MODES = ("AUTO", "HW", "HW_WITH_SW_FBACK", "SW_EXACT", "SW_FP32")  # GNA_DEVICE_MODE without "GNA_"
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
        raise ValueError(f"{name} must be positive and at most {MAX_SCALE_FACTOR:g} (valid: 0 < {name} ≤ "
                         f"{MAX_SCALE_FACTOR:g}), got {excerpt(value)}")
    return number


def check_precision(value: Any) -> str:
    if not (isinstance(value, str) and value in PRECISIONS):
        raise ValueError(f"precision must be {' or '.join(PRECISIONS)}, got {excerpt(value)}")
    return str(value)


def check_layout(value: Any, name: str = "layout") -> str:
    if not (isinstance(value, str) and value in LAYOUTS):
        raise ValueError(f"{name} must be {' or '.join(LAYOUTS)}, got {excerpt(value)}")
    return str(value)


def check_execution_mode(value: Any) -> str:
    if not isinstance(value, str) or value.upper().removeprefix("GNA_") not in EXECUTION_MODES:
        raise ValueError(f"execution_mode must be one of {', '.join(EXECUTION_MODES)}, got {excerpt(value)}")
    return value

