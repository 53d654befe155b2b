"""Reading a user's model file (any format OpenVINO reads: IR, ONNX, TFLite, PaddlePaddle, TensorFlow) with
errors that name the problem and the fix.

No file is refused by its suffix: OpenVINO's frontends decide, and a file none of them reads is an error with
OpenVINO's own cause. An IR's XML is checked before OpenVINO sees it, and an ONNX file goes to the ONNX frontend
alone: handed a file it cannot read, OpenVINO probes every frontend it has and their logs end up on the user's
terminal, ahead of one opaque exception.
"""

from __future__ import annotations

import re

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any
from gnaexp.core.errors import BadInput


def check_model_file(path: str | Path) -> Path:
    """The path of a user's model file, or an error that names what is missing or wrong."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist; give a .onnx or .xml (OpenVINO IR) file, or "
                                "another format OpenVINO reads (.tflite, .pdmodel, .pb)")
    if path.is_dir() and not (path / "saved_model.pb").exists():
        raise BadInput(f"model file {path} is a folder; give the model file in it (.xml IR, .onnx, ...)")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        if not path.with_suffix(".bin").exists():
            raise FileNotFoundError(f"IR weights {path.with_suffix('.bin').name} missing next to {path.name}; "
                                    "an OpenVINO IR is the .xml and its .bin side by side")
        try:
            root = ElementTree.parse(path).getroot()
        except ElementTree.ParseError as exc:
            raise BadInput(f"{path.name} is not well-formed XML ({exc}); give an OpenVINO IR .xml") from None
        if root.tag != "net":
            raise BadInput(f"{path.name} is XML but not an OpenVINO IR (its root element is <{root.tag}>, an IR's "
                             "is <net>); give the .xml that openvino.save_model wrote")
    return path


def read_model(path: str | Path) -> Any:
    """``openvino.Model`` from a checked model file; a file OpenVINO cannot read is a ValueError naming it with
    OpenVINO's cause.

    An .onnx goes to OpenVINO's ONNX frontend alone: ``Core.read_model`` would offer a file the ONNX frontend
    refuses to every other frontend too, and TensorFlow's writes its parse errors to the terminal."""
    import openvino as ov

    path = check_model_file(path)
    try:
        if path.suffix.lower() == ".onnx":
            from openvino.frontend import FrontEndManager

            frontend = FrontEndManager().load_by_framework("onnx")
            model = frontend.convert(frontend.load(str(path)))
        else:
            model = ov.Core().read_model(str(path))
    except Exception as exc:  # noqa: BLE001 - frontends raise RuntimeError and their own types (e.g. OpConversionFailure)
        cause = openvino_cause(exc).replace(str(path), path.name)  # the user's folders stay out of the message
        raise BadInput(f"OpenVINO cannot read {path.name}: {cause}; give a model that openvino.save_model or "
                         "torch.onnx.export wrote") from None
    if not model.inputs or not model.outputs:  # an empty file parses as an empty ONNX graph
        raise BadInput(f"{path.name} holds no network (no inputs or no outputs); give a model that "
                         "openvino.save_model or torch.onnx.export wrote")
    return model


def openvino_cause(exc: BaseException) -> str:
    """The informative part of an OpenVINO exception: its "Exception from file:line" frames dropped, the
    remaining lines joined (the cause often sits above the last line, e.g. "Unsupported input type dynamic")."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    kept = [ln for ln in lines if ln and not ln.startswith("Exception from ") and not ln.startswith("Check '")]
    text = " ".join(kept) or str(exc).strip() or type(exc).__name__
    return re.sub(r"^FrontEnd API failed with \w+: ", "", text)  # the frontend's wrapper, not the cause
