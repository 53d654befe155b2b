"""OpenVINO on a named device.

CPU is run with ``inference_precision=f32`` so that it never silently uses bf16/f16 and can serve as the
FP32 reference; ``openvino:CPU:bf16`` (or f16, on any device) asks for another precision, a measurement of it. GNA gets its execution mode, per-input scale factors and weight precision mapped onto the
properties of the installed OpenVINO (2.0 API names; the plugin exists only in archive installs up to
2023.3). A device that is not available fails at once with the reason — never a silent fallback.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import numpy as np

from gnaexp.backends.base import Backend, BackendUnavailable, ModelBundle
from gnaexp.core.environment import device_name
from gnaexp.core.gna_settings import EXECUTION_MODES, PRECISIONS
from gnaexp.core.errors import BadInput


GNA_MISSING = (
    "the GNA device is not available in this OpenVINO ({version}; devices here: {devices}). "
    "No PyPI openvino wheel ever shipped the GNA plugin: it came only with the archive installs up to "
    "2023.3 and was removed in 2024.0. Use backend 'gna-emu' to emulate GNA's integer pipeline "
    "(results are labelled emulated), or run 'gnaexp export' and measure on a machine that has the plugin, "
    "then bring the outputs back with 'import:PATH.npz'."
)


@functools.lru_cache(maxsize=1)
def available_devices() -> list[str]:
    """The devices this process's OpenVINO offers (asked once per process: every backend check asks again)."""
    import openvino as ov

    return list(ov.Core().available_devices)


def gna_config(
    input_names: list[str], scale_factor: float | Mapping[str, float], precision: str, execution_mode: str
) -> dict[str, str]:
    """GNA plugin config for the given settings, validated.

    Uses the plugin's string keys (``GNA_DEVICE_MODE``, ``GNA_SCALE_FACTOR_<i>``, ``GNA_PRECISION``), which
    every plugin release from 2021 to 2023.3 parses, rather than a map-valued 2.0 property whose Python
    conversion differs between releases. ``<i>`` is the input's position in the model.
    """
    mode = execution_mode.upper().removeprefix("GNA_")
    if mode not in EXECUTION_MODES:
        raise BadInput(f"GNA execution mode {execution_mode!r} is not one of {', '.join(EXECUTION_MODES)}")
    if precision not in PRECISIONS:
        raise BadInput(f"GNA precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    sfs = scale_factors_per_input(input_names, scale_factor)
    config = {"GNA_DEVICE_MODE": f"GNA_{mode}", "GNA_PRECISION": precision.upper()}
    for i, name in enumerate(input_names):
        config[f"GNA_SCALE_FACTOR_{i}"] = repr(float(sfs[name]))  # '.' decimal separator, full precision
    return config


def scale_factors_per_input(input_names: list[str], scale_factor: float | Mapping[str, float]) -> dict[str, float]:
    """One float per input. A single number applies to every input (concat of inputs needs them equal)."""
    if isinstance(scale_factor, Mapping):
        unknown = sorted(set(scale_factor) - set(input_names))
        if unknown:
            raise BadInput(f"scale factor given for unknown input(s) {unknown}; inputs are {input_names}")
        sfs = {n: float(scale_factor.get(n, 1.0)) for n in input_names}
    else:
        sfs = {n: float(scale_factor) for n in input_names}
    for n, v in sfs.items():
        if not (v > 0 and np.isfinite(v)):
            raise BadInput(f"scale factor for input {n!r} must be positive and finite, got {v}")
    return sfs


class OpenVINOBackend(Backend):
    kind = "measured"

    def __init__(
        self,
        device: str = "CPU",
        scale_factor: float | Mapping[str, float] = 1.0,
        precision: str = "i16",
        execution_mode: str = "SW_EXACT",
        inference_precision: str | None = None,
    ) -> None:
        self.device = device.upper()
        # CPU without a precision is f32 (never the CPU's own bf16 default); openvino:CPU:f32 is the same backend
        self.inference_precision = inference_precision or ("f32" if self.device == "CPU" else None)
        shown = "" if self.inference_precision in (None, "f32") and self.device == "CPU" or not inference_precision \
            else f":{self.inference_precision}"
        self.name = f"openvino:{self.device}{shown}"
        self.scale_factor = scale_factor
        self.precision = precision
        self.execution_mode = execution_mode
        # CPU in f32 is the FP32 reference; so is GNA's SW_FP32 mode (no quantization at all).
        if (self.device == "CPU" and self.inference_precision == "f32") or (
                self.device == "GNA" and execution_mode.upper() == "SW_FP32"):
            self.kind = "reference"

    def settings(self) -> dict[str, Any]:
        if self.device == "GNA":
            return {"device": "GNA", "scale_factor": self.scale_factor, "precision": self.precision,
                    "execution_mode": self.execution_mode}
        return {"device": self.device, **({"inference_precision": self.inference_precision}
                                          if self.inference_precision else {})}

    def check_available(self) -> None:
        import openvino as ov

        devices = available_devices()
        if self.device.split(".")[0] not in {d.split(".")[0] for d in devices}:
            if self.device == "GNA":
                raise BackendUnavailable(GNA_MISSING.format(version=ov.__version__, devices=", ".join(devices)))
            raise BackendUnavailable(
                f"device {self.device} is not available in this OpenVINO ({ov.__version__}); available: "
                f"{', '.join(devices)}"
            )

    def config(self, input_names: list[str]) -> dict[str, Any]:
        if self.device == "GNA":
            return gna_config(input_names, self.scale_factor, self.precision, self.execution_mode)
        if self.inference_precision:
            return {"INFERENCE_PRECISION_HINT": self.inference_precision}
        return {}  # other devices run with their defaults

    def stepper(self, model: ModelBundle) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
        """Compile once, then one inference request per step (the plugin config as in ``run``)."""
        import openvino as ov

        self.check_available()
        if model.ir_xml is None:
            raise BackendUnavailable(f"model {model.name!r} has no OpenVINO IR; export it first")
        core = ov.Core()
        ov_model = core.read_model(str(model.ir_xml))
        names = [p.any_name for p in ov_model.inputs]
        compiled = core.compile_model(ov_model, self.device, self.config(names))
        request = compiled.create_infer_request()
        outs = [(m.any_name, p) for m, p in zip(ov_model.outputs, compiled.outputs)]  # see _run

        from gnaexp.emulator.state_layers import MEMORY_PREFIX  # here: importing it loads the whole emulator

        self.states_fed: dict[str, list[np.ndarray]] = {}  # memory layers: the state each step read
        stateful = bool(request.query_state())  # asked once: a model without memory layers has none to record

        def step(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            for state in request.query_state() if stateful else ():  # ReadValue/Assign: kept in the request
                self.states_fed.setdefault(MEMORY_PREFIX + state.name, []).append(np.array(state.state.data))
            result = request.infer({n: inputs[n] for n in names})
            return {name: np.array(result[port], dtype=np.float32) for name, port in outs}
        return step

    def fed_state(self) -> dict[str, np.ndarray]:
        return {k: np.stack(v).astype(np.float32) for k, v in getattr(self, "states_fed", {}).items()}

    def _run(self, model: ModelBundle, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        import openvino as ov

        if model.ir_xml is None:
            raise BackendUnavailable(f"model {model.name!r} has no OpenVINO IR; export it first")
        core = ov.Core()
        ov_model = core.read_model(str(model.ir_xml))
        names = [p.any_name for p in ov_model.inputs]
        config = self.config(names)
        compiled = core.compile_model(ov_model, self.device, config)
        result = compiled.infer_new_request({n: inputs[n] for n in names})
        # Named as the model names them: a device's compile may merge tensor names (an output whose producer it
        # removes gets that producer's names too) and change which one any_name gives.
        outputs = {m.any_name: np.array(result[p]) for m, p in zip(ov_model.outputs, compiled.outputs)}
        info = {
            "openvino": ov.__version__,
            "device": self.device,
            "device_name": device_name(core, self.device),
            "plugin_config": {k: str(v) for k, v in config.items()},
            "effective_precision": str(compiled.get_property("INFERENCE_PRECISION_HINT"))
            if self.device == "CPU" else None,
        }
        if self.kind == "reference" and is_quantized(ov_model):
            # FakeQuantize/int8 weights make even CPU results quantized: not an FP32 reference any more.
            info["kind"] = "measured"
            info["quantized_ir"] = True
        return outputs, info


def is_quantized(model: Any) -> bool:
    """True if the model carries FakeQuantize nodes or low-precision (int8/uint8) weight constants."""
    for op in model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            return True
        if op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in ("i8", "u8"):
            return True
    return False


