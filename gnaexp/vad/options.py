"""The device settings of a silero_vad run: as given (``VadOptions``, checked once, before any audio is read) and
as the backends stream with them (``StreamSettings``: the emulator's ``GnaSettings`` with both inputs' scale
factors, and openvino:GNA's execution mode)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnaexp.core.errors import BadInput
from gnaexp.core.excerpt import excerpt
from gnaexp.core.gna_settings import (GnaSettings, check_execution_mode, check_plugin_release, check_precision,
                                      check_scale_factor)

# gna-emu, openvino:GNA (plugin_release: the GNA plugin release the emulator computes as)
DEVICE_SETTINGS = ("scale_factor", "state_scale_factor", "precision", "execution_mode", "plugin_release")
RECOMMENDED = "recommended"  # scale_factor: from the loudest sample of all files, as for any input
STATE_SCALE_FACTOR = 1024.0  # h stays in (−1, 1) and c within ±24 on speech: ±32 fits int16 at 1024
# A value's check; None is "not given" for the scale factors only (given as None, these three are refused).
_CHECKS: dict[str, Callable[[Any], str]] = {"precision": check_precision, "execution_mode": check_execution_mode,
                                            "plugin_release": check_plugin_release}


@dataclass(frozen=True)
class VadOptions:
    """The device settings a run was given, each checked as every experiment's are (``gna_settings``): the two
    scale factors numbers in range (numbers as text are read; scale_factor may be "recommended"), precision,
    execution_mode and plugin_release valid values. None: not given (the default)."""

    scale_factor: float | str | None = None
    state_scale_factor: float | None = None
    precision: str | None = None
    execution_mode: str | None = None
    plugin_release: str | None = None

    def __post_init__(self) -> None:
        for key in ("scale_factor", "state_scale_factor"):
            value = getattr(self, key)
            if value is None or (key == "scale_factor" and value == RECOMMENDED):
                continue
            if isinstance(value, str):
                try:
                    value = float(value.strip())
                except ValueError:
                    raise BadInput(f"{key} must be a number{' or recommended' if key == 'scale_factor' else ''}, "
                                   f"got {excerpt(value)}") from None
            object.__setattr__(self, key, check_scale_factor(value, key))
        for key, check in _CHECKS.items():
            if getattr(self, key) is not None:
                object.__setattr__(self, key, check(getattr(self, key)))

    @classmethod
    def from_json(cls, data: "Mapping[str, Any] | VadOptions | None") -> "VadOptions":
        """The settings of a mapping (the command line's ``--set`` words, a notebook's parameters), checked; a
        setting silero_vad does not take is refused, naming the valid ones."""
        if isinstance(data, VadOptions):
            return data
        given = dict(data or {})
        unknown = sorted(set(given) - set(DEVICE_SETTINGS))
        if unknown:
            raise BadInput(f"unknown silero_vad setting(s) {excerpt(unknown)}; valid: {', '.join(DEVICE_SETTINGS)}")
        for key, check in _CHECKS.items():
            if key in given and given[key] is None:
                check(None)  # refused, naming the valid values
        return cls(**given)

    def to_json(self) -> dict[str, Any]:
        """The settings given (those left at their default are left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def resolve(self, audios: Sequence[np.ndarray]) -> "StreamSettings":
        """What the backends stream with: the audio input's scale factor (a number, or "recommended": from the
        loudest sample of all files) and the state's; the emulator runs the host parts (reflect pad, mean) and the
        exact conv rewrites (``porting``)."""
        sf = 1.0 if self.scale_factor is None else self.scale_factor
        chunk = audio_scale_factor(audios) if sf == RECOMMENDED else float(sf)
        state = STATE_SCALE_FACTOR if self.state_scale_factor is None else float(self.state_scale_factor)
        gna = GnaSettings({"chunk": chunk, "state": state}, self.precision or "i16", porting=True,
                          plugin_release=self.plugin_release or "")
        return StreamSettings(gna, self.execution_mode)


@dataclass(frozen=True)
class StreamSettings:
    """The settings every backend of a run streams with (one value, passed to each worker of a cluster)."""

    gna: GnaSettings  # scale factors {"chunk", "state"}, precision, porting on, the plugin release emulated
    execution_mode: str | None = None  # openvino:GNA's; None: the plugin's default

    def backend_options(self) -> dict[str, Any]:
        """The options ``backends.make_backend`` takes."""
        return {"gna": self.gna, **({"execution_mode": self.execution_mode} if self.execution_mode else {})}


def audio_scale_factor(audios: Sequence[np.ndarray]) -> float:
    """The recommended audio scale factor, from the loudest sample of all files (each file's peak: joining the
    files would copy every sample once more)."""
    from gnaexp.emulator.sweep import recommended_scale_factor

    return recommended_scale_factor(np.array([np.max(np.abs(a)) if np.size(a) else 0.0 for a in audios]))
