"""The backends a per-layer comparison takes, in the one backend syntax extended with a precision.

    openvino:DEVICE[:PRECISION]   OpenVINO on DEVICE; PRECISION (f32, bf16, f16) → INFERENCE_PRECISION_HINT.
                                  openvino:CPU alone is f32, as everywhere in gnaexp (never the CPU's bf16
                                  default); another device without a precision runs with its own default.
    nncf:int8                     the model quantized by NNCF (8-bit activations and weights, NNCF's own ranges,
                                  calibrated as ``gnaexp quantize`` calibrates), on CPU f32
    gna-emu                       the GNA integer emulator (``gnaexp.diagnose.layer_error``), against CPU f32
    torch                         the net's PyTorch module in FP32, each module's output matched to its OpenVINO
                                  layers (``gnaexp.layers.torch_taps``); for nets with a torch module
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from gnaexp.backends import check_spec
from gnaexp.core.errors import BadInput

VALID = "openvino:DEVICE[:PRECISION] (e.g. openvino:CPU, openvino:CPU:bf16), nncf:int8, gna-emu, torch"

# [I] Default thresholds of the first diverging layer: a layer whose local SQNR is below its precision's floor
# adds more error than that precision's rounding alone would. f16 keeps 11 significant bits (~66 dB for one
# rounding) and bf16 8 (~48 dB); a layer sums many rounded products, so each floor sits well below that. int8
# keeps 8 bits of a calibrated range (~20 dB once ranges are not filled). f32 on another device differs from
# CPU f32 only by the order of sums (> 100 dB). gna-emu: the kit's usable floor (diagnose.verdicts).
FLOOR_DB = {"f32": 80.0, "f16": 50.0, "bf16": 30.0, "int8": 20.0}


@dataclass(frozen=True)
class LayerBackend:
    """One backend of a per-layer run: what runs the model and how."""

    spec: str  # as the user wrote it (the label in tables and JSON)
    kind: str  # openvino | nncf | gna-emu | torch
    device: str = "CPU"
    precision: str | None = None  # INFERENCE_PRECISION_HINT; None: the device's default

    def config(self) -> dict[str, str]:
        return {"INFERENCE_PRECISION_HINT": self.precision} if self.precision else {}

    def floor_db(self) -> float:
        if self.kind == "gna-emu":
            from gnaexp.diagnose.verdicts import USABLE_FLOOR_DB

            return USABLE_FLOOR_DB
        if self.kind == "nncf":
            return FLOOR_DB["int8"]
        return FLOOR_DB.get(self.precision or "f32", FLOOR_DB["f32"])


def parse_layer_backend(spec: str) -> LayerBackend:
    """A backend spec of ``gnaexp layers``, checked (nothing is started); BadInput naming it and the choices."""
    name, _, rest = spec.partition(":")
    if spec in ("gna-emu", "torch"):
        return LayerBackend(spec, spec, "CPU", "f32" if spec == "torch" else None)
    if name == "nncf":
        if rest != "int8":
            raise BadInput(f"unknown NNCF precision in {spec!r}; valid: nncf:int8")
        return LayerBackend(spec, "nncf", "CPU", "f32")
    if name == "openvino":
        check_spec(spec)  # device and precision as every other command checks them
        device, _, precision = rest.partition(":")
        device = device.upper()
        chosen = precision.lower() or ("f32" if device == "CPU" else None)
        return LayerBackend(spec, "openvino", device, chosen)
    raise BadInput(f"unknown backend {spec!r} for a per-layer comparison; valid: {VALID}")


def parse_layer_backends(value: str) -> list[LayerBackend]:
    """REF,TEST[,TEST…] (the one backend-list reader), each checked, none twice; at least a reference."""
    from gnaexp.backends import parse_backend_list

    specs = parse_backend_list(value)
    if not specs:
        raise BadInput(f"--backends is empty; give the reference and the backends to compare, e.g. "
                       f"openvino:CPU,openvino:CPU:bf16 (valid: {VALID})")
    backends = [parse_layer_backend(s) for s in specs]
    seen: set[tuple[str, str, str | None]] = set()
    for b in backends:
        key = (b.kind, b.device, b.precision)
        if key in seen:
            raise BadInput(f"{b.spec!r} names a backend given before: every backend is compared once; drop it")
        seen.add(key)
    if backends[0].kind == "gna-emu":
        raise BadInput("gna-emu cannot be the reference: its per-layer values are compared against openvino:CPU "
                       "(FP32); give openvino:CPU first")
    return backends


def check_torch(backends: Sequence[LayerBackend], has_module: bool) -> None:
    if not has_module and any(b.kind == "torch" for b in backends):
        raise BadInput("the torch backend needs a net with a torch module (conv, concat, concat_conv); a model "
                       "file has none: use openvino:CPU as the reference")


def threshold_for(backend: LayerBackend, override: float | None) -> float:
    if override is not None:
        if not math.isfinite(override):
            raise BadInput(f"--threshold must be a finite number of dB, got {override}")
        return float(override)
    return backend.floor_db()
