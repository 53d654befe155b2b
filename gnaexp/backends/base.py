"""The one small interface every backend implements.

A backend takes named float32 inputs and returns named float32 outputs plus metadata saying what ran,
where, with which settings, and whether the numbers are a reference, a device measurement, an emulation
or an import from another machine. Comparison is not a backend's job (see ``gnaexp.core.metrics``).
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
from gnaexp.core.errors import BadInput

if TYPE_CHECKING:  # the emulator is imported only where a plan is read (it is slow to import)
    from gnaexp.emulator.plan_row import PlanRow

# What kind of number a backend produced. Reports print this next to every figure so that an
# emulated value is never read as a GNA measurement.
KINDS = ("reference", "measured", "emulated", "imported")


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (device or plugin missing). The message says why and what to use."""


@dataclass
class ModelBundle:
    """One network in every form a backend may want: the torch module and/or its OpenVINO IR."""

    name: str
    ir_xml: Path | None = None
    torch_module: Any = None  # torch.nn.Module; typed loosely so that torch stays an optional import
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # how the IR was made (e.g. quantization settings)

    def require_ir(self) -> Path:
        """The IR file, for work that reads one; a bundle holding only a torch module is refused, naming it."""
        if self.ir_xml is None:
            raise BadInput(f"model {self.name!r} has no OpenVINO IR; convert it first (gnaexp.models.ir.convert_torch "
                           "+ gnaexp.models.ir.save)")
        return self.ir_xml


@dataclass
class BackendResult:
    backend: str  # e.g. "torch", "openvino:CPU", "gna-emu", "import"
    kind: str  # one of KINDS
    outputs: dict[str, np.ndarray]
    settings: dict[str, Any] = field(default_factory=dict)  # what the user asked for
    info: dict[str, Any] = field(default_factory=dict)  # what actually ran (versions, plan, overrides)
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BadInput(f"backend kind {self.kind!r} is not one of {KINDS}")

    @property
    def emulated(self) -> bool:
        return self.kind == "emulated"

    @property
    def label(self) -> str:
        """Name for tables and plots; emulations and imports say so in the name itself."""
        suffix = {"emulated": " (emulated)", "imported": " (imported)"}.get(self.kind, "")
        return self.backend + suffix

    def plan_rows(self) -> list[PlanRow]:
        """The emulator's plan this result followed (none for other kinds), read back from ``info``."""
        from gnaexp.emulator.plan_row import rows_from_json

        return rows_from_json(self.info.get("plan"), f"the plan of {self.label}")

    def to_json(self) -> dict[str, Any]:
        """Metadata only; arrays are stored separately (see ``gnaexp.core.records``)."""
        return {
            "backend": self.backend,
            "kind": self.kind,
            "emulated": self.emulated,
            "settings": self.settings,
            "info": self.info,
            "duration_s": self.duration_s,
            "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in self.outputs.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> "BackendResult":
        return cls(
            backend=data["backend"],
            kind=data["kind"],
            outputs={k: np.asarray(v) for k, v in outputs.items()},
            settings=dict(data.get("settings", {})),
            info=dict(data.get("info", {})),
            duration_s=float(data.get("duration_s", 0.0)),
        )


class Backend(abc.ABC):
    """One runner. Subclasses set ``name`` and ``kind`` and implement ``_run``."""

    name: str = ""
    kind: str = "measured"

    def settings(self) -> dict[str, Any]:
        return {}

    def check_available(self) -> None:
        """Raise BackendUnavailable with a helpful message if this backend cannot run here."""

    def run(self, model: ModelBundle, inputs: Mapping[str, np.ndarray]) -> BackendResult:
        self.check_available()
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        start = time.perf_counter()
        outputs, info = self._run(model, feed)
        duration = time.perf_counter() - start
        outputs = {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}
        kind = info.pop("kind", self.kind)  # a runner may learn only from the model what its numbers are
        return BackendResult(self.name, kind, outputs, self.settings(), info, duration)

    def stepper(self, model: ModelBundle) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
        """A function for streaming: one step's inputs → its outputs, with whatever is prepared once (a compiled
        model) kept between steps. The caller carries any recurrent state from outputs to inputs."""
        self.check_available()
        return lambda inputs: {k: np.asarray(v, dtype=np.float32) for k, v in self._run(model, inputs)[0].items()}

    def stream(self, model: ModelBundle, frames: Mapping[str, np.ndarray], pairs: Mapping[str, str],
               initial: Mapping[str, np.ndarray]) -> tuple[BackendResult, dict[str, np.ndarray]]:
        """Stream frames through the model, this backend carrying its own state (``stream_steps``): (result
        with outputs per step ``(T, ...)``, the inputs each step received). What ran (versions, plan) is described
        by a run on ``described_inputs``."""
        step = self.stepper(model)
        start = time.perf_counter()
        outputs, fed = stream_steps(step, frames, pairs, initial)
        fed.update(self.fed_state())  # memory layers the backend carries itself: the state each step read
        duration = time.perf_counter() - start
        described = self.run(model, self.described_inputs(fed))
        info = dict(described.info, streamed={"steps": len(next(iter(fed.values()))), "state": dict(pairs)})
        return BackendResult(self.name, described.kind, outputs, described.settings, info, duration), fed

    def fed_state(self) -> dict[str, np.ndarray]:
        """The memory-layer state (ReadValue/Assign) each step of the last stream read, per variable
        (``memory:VAR``: (steps, *shape)), where the backend can tell; {} otherwise."""
        return {}

    def described_inputs(self, fed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs whose run describes a stream: its first step (a backend that takes every step at once as a
        batch overrides this, so that counts such as saturations cover the whole stream)."""
        return {k: v[0] for k, v in fed.items()}

    @abc.abstractmethod
    def _run(
        self, model: ModelBundle, inputs: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Return (outputs by name, info)."""


def stream_steps(step: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], frames: Mapping[str, Any],
                 pairs: Mapping[str, str], initial: Mapping[str, np.ndarray],
                 keep_fed: bool = True) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run ``step`` over the frames, carrying each state output to its input (the streaming engine: every
    stateful model streams through it, ``gnaexp.backends.streaming``).

    Frames may carry a second axis of independent streams after the step axis, ``(T, N, *shape)``, for a step that
    takes many streams at once (the emulator's); ``initial`` then has the same stream axis. A frame source may
    also be any sequence that makes step t's frame when asked (``len`` and ``[t]``), so that a long signal is
    not cut into frames up front.
    Returns (outputs per step ``(T, ...)``, the inputs each step received ``(T, ...)``, states included; {} with
    ``keep_fed`` False). Each is filled in place as the steps run: memory holds the tracks, not a list of steps."""
    steps = len(next(iter(frames.values())))
    state = {k: np.asarray(v, dtype=np.float32) for k, v in initial.items()}
    outs: dict[str, np.ndarray] = {}
    fed: dict[str, np.ndarray] = {}
    for t in range(steps):
        feed = {k: v[t] for k, v in frames.items()} | state
        if keep_fed:
            _put(fed, feed, t, steps)
        result = step(feed)
        _put(outs, result, t, steps)
        state = {k: np.asarray(result[out], dtype=np.float32).reshape(state[k].shape) for k, out in pairs.items()}
    return outs, fed


def _put(tracks: dict[str, np.ndarray], values: Mapping[str, Any], t: int, steps: int) -> None:
    """Step t's values into their float32 tracks ``(steps, *shape)``, made at the first step."""
    for k, v in values.items():
        v = np.asarray(v, dtype=np.float32)
        if k not in tracks:
            tracks[k] = np.empty((steps,) + v.shape, dtype=np.float32)
        elif tracks[k].shape[1:] != v.shape:
            raise BadInput(f"the step's {k!r} has shape {list(v.shape)} at step {t}, {list(tracks[k].shape[1:])} "
                           "before; streaming needs the same shape at every step (export the model with static shapes)")
        tracks[k][t] = v
