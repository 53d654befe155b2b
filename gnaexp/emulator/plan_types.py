"""What the plan builder records per tensor and per step (shared by the graph builder and its op handlers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class TInfo:
    """What the plan knows about one tensor: scale, width, sample shape and where it comes from."""

    sf: float
    bits: int
    shape: tuple[int, ...]
    root: str | None = None  # weightable layer behind a 32-bit tensor
    act: str | None = None  # activation behind a 16-bit tensor
    from_input: bool = False  # only network-input data (moved/concatenated)
    via_concat: bool = False
    param: str | None = None  # the network input, if this is one (moved)


@dataclass
class Step:
    kind: str
    name: str
    inputs: list[str]
    out: str
    run: Callable[..., tuple[np.ndarray, int]]
    info: dict[str, Any] = field(default_factory=dict)
