"""The GNA integer emulator as a backend (``gna-emu``). Its results are labelled *emulated*, never measured."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from gnaexp.backends.base import Backend, BackendUnavailable, ModelBundle
from gnaexp.gna_settings import LAYOUTS, PRECISIONS


class GnaEmuBackend(Backend):
    """Runs the model's IR through ``gnaexp.emulator.emulate`` with the plugin's quantization rules."""

    name = "gna-emu"
    kind = "emulated"

    def __init__(
        self,
        scale_factors: float | Mapping[str, float] = 1.0,
        precision: str = "i16",
        layout: str = "correct",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'i16' or 'i8', got {precision!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.scale_factors = dict(scale_factors) if isinstance(scale_factors, Mapping) else float(scale_factors)
        self.precision = precision
        self.layout = layout

    def settings(self) -> dict[str, Any]:
        return {"scale_factors": self.scale_factors, "precision": self.precision, "layout": self.layout}

    def _run(self, model: ModelBundle, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from gnaexp.emulator import emulate

        if model.ir_xml is None:
            raise BackendUnavailable(
                f"model {model.name!r} has no IR: the emulator runs the OpenVINO IR the GNA plugin would receive; "
                "convert the model first (gnaexp.ir.convert_torch + gnaexp.ir.save)"
            )
        em = emulate(str(model.ir_xml), inputs, self.scale_factors, self.precision, self.layout)
        info = em.to_json()
        info["input_scale_factors_used"] = info.pop("input_scale_factors")
        return em.outputs, info
