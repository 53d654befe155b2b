"""What one backend gave a per-layer comparison: its tensors by layer, its local errors, what it fused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Measured:
    label: str  # the backend as tables and JSON name it
    kind: str  # openvino | nncf | gna-emu | loaded
    values: dict[str, np.ndarray]  # layer key → tensor (the whole net ran on the backend)
    local: dict[str, float | None] | None  # layer key → local SQNR; None: not measurable here (a loaded dump)
    fused_into: dict[str, str] = field(default_factory=dict)  # layer the backend merged → where it went
    inserted: list[tuple[str, str]] = field(default_factory=list)  # (key, op) of layers the reference lacks
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # device, precision asked and run, OpenVINO version
