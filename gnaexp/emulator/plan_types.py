"""What the plan builder records per tensor and per step (shared by the graph builder and its op handlers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from gnaexp.emulator.plan_row import Lane, PlanRow


@dataclass
class TInfo:
    """What the plan knows about one tensor: scale, width, sample shape and where it comes from."""

    sf: float
    lane: Lane
    shape: tuple[int, ...]
    root: str | None = None  # weightable layer behind an INT32 tensor
    act: str | None = None  # activation behind an INT16 tensor
    from_input: bool = False  # only network-input data (moved/concatenated)
    via_concat: bool = False
    param: str | None = None  # the network input, if this is one (moved)


@dataclass(frozen=True)
class Lowered:
    """What a step computes in the terms of the compiled plan (plan_compile.py), for a step whose run is one of
    these exact forms: ``pwl`` (arrays: the PWL's tables; scalars: its design domain, NaN where open), ``sum``
    sat32(x·w + y), ``prod`` sat32(x·y), ``scale`` x·w, ``scaleshift`` sat32(x·w[j] + b[j]) (arrays: w, b),
    ``fc`` (arrays: the weights (M, K), the bias (M,)), ``const`` (arrays: the values of one sample),
    ``move``: a data movement (a move or a concat), whose value map is read by running it on value indices,
    ``conv``: a convolution's sums (``kernel``: its ``conv.ConvKernel``; scalars: the input's values a sample, the
    positions and the filters kept: porting's zero filters are dropped)."""

    op: str
    arrays: tuple[np.ndarray, ...] = ()
    scalars: tuple[float, ...] = ()
    kernel: Any = None


MOVE = Lowered("move")


@dataclass
class Step:
    """One integer (or host) computation of the plan: ``run`` maps its inputs to (output, values saturated)."""

    kind: str
    name: str
    inputs: list[str]
    out: str
    run: Callable[..., tuple[np.ndarray, int]]
    row: PlanRow | None = None  # what the plan reports of it; None for a data movement
    lowered: Lowered | None = None  # its compiled form; None: it runs as Python (``run``)
    # ``run`` writing its output into a given (N, values) array instead, returning the count: a compiled plan
    # hands it the output's columns of its work array (no copy); None: the plan copies ``run``'s output
    run_into: Callable[..., int] | None = None


@dataclass
class Pools:
    """A compiled plan's parameter pools (plan_compile.py): index (int64), floats (float64) and int16 weights,
    each a list of arrays concatenated at the end, and their sizes so far."""

    index: list[np.ndarray]
    floats: list[np.ndarray]
    weights16: list[np.ndarray]
    sizes: list[int]
    seen: dict[tuple[int, bytes], int] = field(default_factory=dict)

    def add(self, which: int, values: np.ndarray) -> int:
        """Append values to pool ``which`` (0 index, 1 floats, 2 int16 weights); their offset. Values already
        there are kept once: an unrolled recurrent layer's steps share their weights, which then stay in
        the cache from one step to the next."""
        flat = np.ascontiguousarray(values, dtype=(np.int64, np.float64, np.int16)[which]).reshape(-1)
        key = (which, flat.tobytes())
        if key not in self.seen:
            (self.index, self.floats, self.weights16)[which].append(flat)
            self.seen[key] = self.sizes[which]
            self.sizes[which] += flat.size
        return self.seen[key]
