"""gna-emu in a per-layer comparison: the emulator's own per-layer table (``diagnose.layer_error``), keyed by the
OpenVINO layer each emulated row was compared with.

The emulator's values are dequantized integers, compared with OpenVINO CPU FP32 (its local error is the layer
fed the FP32 input quantized at the layer's input scale factor); a reference layer the plan folds into a
neighbour (a bias Add inside its convolution, a data movement) has no row of its own: fused.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from gnaexp.core.gna_settings import GnaSettings
from gnaexp.layers.measured import Measured


def run(model_xml: Path, feed: Mapping[str, np.ndarray], settings: GnaSettings, label: str,
        reference_keys: list[str]) -> Measured:
    from gnaexp.diagnose.layer_error import per_layer

    tensors: dict[str, tuple[str, np.ndarray]] = {}
    outputs: dict[str, np.ndarray] = {}
    rows = {r.layer: r for r in per_layer(model_xml, feed, settings, tensors=tensors, network_outputs=outputs)}
    for key, name in _output_layers(model_xml).items():  # an output the plan ends in a data movement has no row:
        if key not in tensors and name in outputs:        # its values are the emulated network output's
            tensors[key] = ("", outputs[name])
    values = {name: value[0] if value.shape[0] == 1 else value for name, (_, value) in tensors.items()}
    local: dict[str, float | None] = {}
    for name, (step, _) in tensors.items():
        value = rows[step].local_sqnr_db if step in rows else None
        local[name] = None if value is None or math.isnan(value) else float(value)
    fused = {k: "the emulator's plan" for k in reference_keys if k not in values}
    notes = [f"emulated (GNA integer pipeline at scale factor {settings.scale_factors}, {settings.precision}); "
             "compared with OpenVINO CPU FP32; local: the layer fed the FP32 input quantized at its input scale "
             "factor"]
    from gnaexp.core.environment import package_version

    return Measured(label, "gna-emu", values, local, fused, [], notes,
                    {"device": "gna-emu", "openvino": package_version("openvino")})


def _output_layers(model_xml: Path) -> dict[str, str]:
    """{layer key feeding a Result (as the reference's rows name it): the network output's name}."""
    import openvino as ov

    from gnaexp.layers import taps

    model = ov.Core().read_model(str(model_xml))
    return {taps.key_of(r.input_value(0)): out.get_any_name() for r, out in zip(model.get_results(), model.outputs)
            if out.get_names()}
