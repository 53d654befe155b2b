"""Net → OpenVINO IR: export with fixed shapes, fingerprints, and a cache reused across runs.

IR weights are saved in FP32 (``compress_to_fp16=False``): OpenVINO's default FP16 compression would add
an error of its own and blur the comparison this kit exists for.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def convert_torch(module: Any, input_shape: tuple[int, ...]) -> ov.Model:
    """``openvino.convert_model`` on a torch module, static shape, tensors named input/output."""
    import torch

    model = ov.convert_model(module, example_input=torch.zeros(input_shape), input=[tuple(input_shape)])
    _name_tensors(model)
    return model


def convert_file(path: str | Path) -> ov.Model:
    """Read an ONNX or IR file; shapes must already be static (reshape first otherwise)."""
    model = ov.Core().read_model(str(path))
    for port in model.inputs:
        if port.get_partial_shape().is_dynamic:
            raise ValueError(
                f"model input {port.any_name!r} has a dynamic shape {port.get_partial_shape()}; GNA needs static "
                "shapes — reshape the model to a fixed shape first"
            )
    return model


def _name_tensors(model: ov.Model) -> None:
    # Stable names make records, imports and the emulator independent of the converter's naming.
    single_in, single_out = len(model.inputs) == 1, len(model.outputs) == 1
    for i, port in enumerate(model.inputs):
        port.get_tensor().set_names({INPUT_NAME if single_in else f"{INPUT_NAME}{i}"})
    for i, port in enumerate(model.outputs):
        port.get_tensor().set_names({OUTPUT_NAME if single_out else f"{OUTPUT_NAME}{i}"})


def save(model: ov.Model, xml_path: str | Path) -> Path:
    """Save .xml/.bin atomically (temporary names in the same folder, then rename both)."""
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".xml", dir=xml_path.parent)
    os.close(fd)
    tmp_xml = Path(tmp)
    try:
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(tmp_xml, xml_path)
    finally:
        for p in (tmp_xml, tmp_xml.with_suffix(".bin")):
            if p.exists():
                p.unlink()
    return xml_path


def fingerprint_ir(xml_path: str | Path) -> str:
    """Content hash of an IR (.xml and .bin)."""
    xml_path = Path(xml_path)
    h = hashlib.sha256(xml_path.read_bytes())
    h.update(xml_path.with_suffix(".bin").read_bytes())
    return h.hexdigest()[:16]


def fingerprint_torch(module: Any, input_shape: tuple[int, ...]) -> str:
    """Hash of a torch module's architecture and weights, and of the input shape."""
    h = hashlib.sha256(repr(module).encode())
    h.update(repr(tuple(input_shape)).encode())
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


def export_cached(module: Any, input_shape: tuple[int, ...], cache_dir: str | Path) -> Path:
    """IR for ``module`` under ``cache_dir/<fingerprint>/model.xml``; converted only the first time.

    The same net (architecture, weights, shape) always maps to the same folder, so repeated runs and
    batch runs share one conversion.
    """
    key = fingerprint_torch(module, input_shape) + "-ov" + ov.__version__.split("-")[0]
    xml = Path(cache_dir) / key / "model.xml"
    if xml.exists() and xml.with_suffix(".bin").exists():
        return xml
    return save(convert_torch(module, input_shape), xml)


def input_shapes(model: ov.Model) -> dict[str, tuple[int, ...]]:
    return {p.any_name: tuple(int(d) for d in p.get_shape()) for p in model.inputs}


def output_names(model: ov.Model) -> list[str]:
    return [p.any_name for p in model.outputs]
