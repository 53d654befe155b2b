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

from gnaexp.core.files import user_mode
from gnaexp.models.model_files import read_model
from gnaexp.core.errors import BadInput

INPUT_NAME = "input"
OUTPUT_NAME = "output"


TORCH_INSTALL = ("install torch (its CPU build: pip install torch==2.13.0 --index-url "
                 "https://download.pytorch.org/whl/cpu, or pip install 'gnaexp[torch]' where pip has that build)")


def require_torch(what: str) -> None:
    """ValueError naming what needs PyTorch and how to install it, when torch is not installed: gnaexp runs a
    user's own model files without it, but the forum nets and Silero VAD are torch modules."""
    try:
        import torch  # noqa: F401 — imported next by the caller anyway
    except ImportError:
        raise BadInput(f"{what} needs PyTorch, which is not installed here: {TORCH_INSTALL}; your own model files "
                         "(experiment model, with openvino:CPU as the reference) run without it") from None


def convert_torch(module: Any, input_shape: tuple[int, ...]) -> ov.Model:
    """``openvino.convert_model`` on a torch module, static shape, tensors named input/output."""
    import torch

    model = ov.convert_model(module, example_input=torch.zeros(input_shape), input=[tuple(input_shape)])
    _name_tensors(model)
    return model


def convert_file(path: str | Path, arrays: Any = None) -> tuple[ov.Model, bool, list[str]]:
    """Read a model file OpenVINO reads; a dynamic input is given the shape of the user's input array (``arrays``:
    one array, or name → array), as the GNA plugin needs static shapes.

    Returns (model, renamed, notes): tensors without a name get input/output names (``renamed`` is then True and
    the model differs from the file, so it must be saved before other backends read it); ``notes`` say which
    inputs were reshaped, and to what.
    """
    model = read_model(path)
    notes: list[str] = []
    dynamic = [p for p in model.inputs if p.get_partial_shape().is_dynamic]
    if dynamic and arrays is not None:
        from gnaexp.emulator.support import reshape_inputs, shapes_of_arrays

        given = arrays if isinstance(arrays, dict) else {"": arrays}
        notes = reshape_inputs(model, shapes_of_arrays(model, given), "from the input file")
        dynamic = [p for p in model.inputs if p.get_partial_shape().is_dynamic]
    for port in dynamic:
        name = next(iter(port.get_names()), "?")
        raise BadInput(
            f"model input {name!r} has a dynamic shape {port.get_partial_shape()}; GNA needs static shapes: give "
            "inputs whose arrays set it (input_file=FILE, or --input FILE), or reshape the model to a fixed shape"
        )
    return model, _name_tensors(model, only_unnamed=True), notes


def _name_tensors(model: ov.Model, only_unnamed: bool = False) -> bool:
    # Stable names make records, imports and the emulator independent of the converter's naming.
    single_in, single_out = len(model.inputs) == 1, len(model.outputs) == 1
    renamed = False
    for ports, base, single in ((model.inputs, INPUT_NAME, single_in), (model.outputs, OUTPUT_NAME, single_out)):
        for i, port in enumerate(ports):
            if only_unnamed and port.get_names():
                continue
            port.get_tensor().set_names({base if single else f"{base}{i}"})
            renamed = True
    return renamed


def save(model: ov.Model, xml_path: str | Path) -> Path:
    """Save .xml/.bin atomically (temporary names in the same folder, then rename both)."""
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".xml", dir=xml_path.parent)
    os.close(fd)
    tmp_xml = Path(tmp)
    try:
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        for written in (tmp_xml, tmp_xml.with_suffix(".bin")):  # mkstemp's 0600 → what the umask gives
            os.chmod(written, user_mode())
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


def input_shapes(model: ov.Model) -> dict[str, tuple[int, ...]]:
    return {p.any_name: tuple(int(d) for d in p.get_shape()) for p in model.inputs}


def output_names(model: ov.Model) -> list[str]:
    return [p.any_name for p in model.outputs]
