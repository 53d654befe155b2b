"""Running one backend of a per-layer comparison over every layer: OpenVINO on a device and precision, and the
NNCF-quantized model on CPU. (gna-emu: ``gnaexp.layers.emulated``; a dump from elsewhere: ``gnaexp.layers.dump``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gnaexp.layers import local, taps
from gnaexp.layers.backends import LayerBackend
from gnaexp.layers.measured import Measured


def read(xml: Path) -> Any:
    import openvino as ov

    return ov.Core().read_model(str(xml))


def check_device(backend: LayerBackend) -> None:
    """The device is here (BackendUnavailable, exit 3, naming the devices there are otherwise)."""
    from gnaexp.backends.openvino_runner import OpenVINOBackend

    OpenVINOBackend(device=backend.device).check_available()


def nncf_int8_ir(float_xml: Path, calibration: Mapping[str, Any], ignored: tuple[str, ...] = ()) -> Path:
    """The model quantized by NNCF to int8 (8-bit activations and weights, NNCF's own ranges, no output quantizer:
    as a CPU user quantizes), calibrated as ``gnaexp quantize`` calibrates: ``calibration`` holds its settings
    (``calibration_kind``, ``calibration_size``, ``calibration_seed``, ``calibration_amplitude``,
    ``calibration_file``); ``ignored``: layers kept in float (NNCF's ignored scope). Quantized once and kept in
    gnaexp's cache, never beside the user's file."""
    from gnaexp import cache
    from gnaexp.models.nncf_quantize import QuantizationSettings

    if not _in_cache(float_xml):  # quantized_ir keeps its IR beside the float one: take a copy in the cache
        float_xml = cache.user_model_ir(float_xml, read(float_xml), renamed=True)
    settings = QuantizationSettings(activation_bits=8, weight_bits=8, signed_activations=False,
                                    output_fake_quantize=False, ignored_names=tuple(ignored), **calibration)
    return Path(cache.quantized_ir(float_xml, settings).quantized_xml)


def _in_cache(path: Path) -> bool:
    from gnaexp.cache import cache_dir

    try:
        path.resolve().relative_to(cache_dir().resolve())
    except ValueError:
        return False
    return True


def run_openvino(backend: LayerBackend, xml: Path, feed: Mapping[str, np.ndarray],
                 reference: Mapping[str, np.ndarray], reference_keys: list[str], with_local: bool = True) -> Measured:
    """Every layer of the model in ``xml`` on the backend's device and precision, and each layer's local error
    (fed ``reference``'s tensors) unless ``with_local`` is off (the reference itself)."""
    import openvino as ov

    check_device(backend)
    model = read(xml)  # read once: tapped as a copy, listed and cut as read
    run = taps.run(model.clone(), backend.device, backend.config(), feed)
    notes = []
    if backend.precision and run.effective_precision and run.effective_precision != backend.precision:
        notes.append(f"asked for {backend.precision}, {backend.device} ran {run.effective_precision} (the device "
                     f"has no {backend.precision} arithmetic): these are {run.effective_precision} numbers")
    known = set(reference_keys)
    inserted = [(t.key, t.op) for t in taps.taps(model) if t.key not in known]
    loc = None
    if with_local:
        loc = local.local_errors(model, [k for k in run.values if k in known], reference, feed,
                                 local.openvino_runner(backend.device, backend.config()))
        refused = sorted(k for k, v in loc.items() if v is None)
        if refused:
            notes.append(f"no local error for {len(refused)} layer(s) that cannot run alone on {backend.device} "
                         f"({', '.join(refused[:3])}{', …' if len(refused) > 3 else ''})")
    meta = {"device": backend.device, "precision": backend.precision, "effective_precision": run.effective_precision,
            "openvino": ov.__version__}
    return Measured(backend.spec, backend.kind, run.values, loc, run.fused_into, inserted, notes, meta)


def untapped_outputs(backend: LayerBackend, xml: Path, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The network outputs as the device computes them with no layer tapped (free to fuse), by layer key."""
    return outputs_of(read(xml), backend, feed)


def outputs_of(model: Any, backend: LayerBackend, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``model``'s outputs on the backend's device and precision, by layer key."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, backend.device, backend.config())
    result = compiled.infer_new_request({p.any_name: np.ascontiguousarray(feed[p.any_name]) for p in model.inputs})
    return {taps.key_of(m.get_node().input_value(0)): np.array(result[c], dtype=np.float32)
            for m, c in zip(model.outputs, compiled.outputs)}
