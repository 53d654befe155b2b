"""Backends behind one interface, created by name.

Spec strings, as the CLI and notebooks take them:
    torch                 PyTorch FP32 reference
    openvino:DEVICE       OpenVINO on DEVICE (CPU is the FP32 reference; GNA where the plugin exists)
    openvino:DEVICE:P     the same with inference precision P (f32, bf16, f16: INFERENCE_PRECISION_HINT), e.g.
                          openvino:CPU:bf16 — what this CPU runs when asked for nothing
    gna-emu               the GNA integer emulator (results are labelled *emulated*)
    import:PATH.npz       outputs written on another machine (see ``gnaexp.backends.imported``)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from gnaexp.backends.base import Backend, BackendResult, BackendUnavailable, ModelBundle
from gnaexp.core.errors import BadInput


__all__ = ["Backend", "BackendResult", "BackendUnavailable", "ModelBundle", "check_spec", "check_specs",
           "make_backend", "parse_backend_list"]

VALID_SPECS = "torch, openvino:DEVICE[:PRECISION] (e.g. openvino:CPU, openvino:CPU:bf16), gna-emu, import:PATH.npz"
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")  # openvino:DEVICE:PRECISION → INFERENCE_PRECISION_HINT


def check_spec(spec: str) -> str:
    """The spec if it names a backend in a valid form (nothing is imported or started); ValueError otherwise."""
    import re

    name, sep, arg = spec.partition(":")
    if name == "openvino" and arg.count(":") == 1:  # openvino:DEVICE:PRECISION
        device, _, precision = arg.partition(":")
        if precision.lower() not in INFERENCE_PRECISIONS:
            raise BadInput(f"unknown precision {precision!r} in {spec!r}; valid: {', '.join(INFERENCE_PRECISIONS)} "
                           f"(e.g. openvino:{device or 'CPU'}:bf16)")
        if device.upper() == "GNA":
            raise BadInput(f"{spec!r}: GNA takes no inference precision; its weights' precision is a setting "
                           "(--set precision=i16 or i8), its execution mode --set execution_mode=…")
        arg = device
    ok = (spec in ("torch", "gna-emu") or (name == "openvino" and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]*", arg))
          or (name == "import" and arg.strip()))
    if not ok:
        hint = {"openvino": "name the device, e.g. openvino:CPU", "import": "name the file, e.g. import:out.npz"}
        raise BadInput(f"unknown backend {spec!r}" + (f" ({hint[name]})" if name in hint else "")
                         + f"; valid: {VALID_SPECS}")
    return spec


def parse_backend_list(value: str | Sequence[str]) -> list[str]:
    """A backend list as a command, a notebook or a matrix gives it ("torch,openvino:CPU,gna-emu", or a list): the
    specs in order, blanks dropped. The one reader of that form; ``check_specs`` checks the result."""
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [s.strip() for s in items if s.strip()]


def check_specs(specs: Sequence[str]) -> list[str]:
    """Every spec valid (``check_spec``) and naming a different result: the same backend twice, or two device
    files that would share a label (files outside the working folder are named by their file name), are
    refused — one result would overwrite the other in the metrics and outputs.npz."""
    from gnaexp.core.files import portable_path

    seen: dict[str, str] = {}
    for spec in specs:
        check_spec(spec)
        name, _, arg = spec.partition(":")
        key = f"import:{portable_path(arg)}" if name == "import" else spec
        if key in seen:
            same = "is given twice" if seen[key] == spec else f"and {seen[key]!r} would share the label {key!r}"
            raise BadInput(f"{spec!r} {same}: every backend names one result; drop the duplicate, or put the device "
                             "files under the working folder (or give them different file names)")
        seen[key] = spec
    return list(specs)


def make_backend(spec: str, options: Mapping[str, Any] | None = None) -> Backend:
    """Create the backend named by ``spec``.

    ``options`` carries the experiment's device settings: ``gna`` (a ``GnaSettings``: scale factors, precision,
    emulator layout, porting and plugin release; or those as loose keys ``scale_factor``, ``precision``,
    ``layout``, ``porting``, ``plugin_release``, checked here once) and ``execution_mode`` (GNA).
    Each backend takes the ones that mean something to it.
    """
    from gnaexp.core.gna_settings import GnaSettings

    opts = dict(options or {})
    gna = opts.get("gna") or GnaSettings(opts.get("scale_factor", 1.0), opts.get("precision", "i16"),
                                         opts.get("layout", "correct"), opts.get("porting", False),
                                         opts.get("plugin_release") or "")
    name, _, arg = check_spec(spec).partition(":")
    if name == "torch":
        from gnaexp.backends.torch_runner import TorchBackend

        return TorchBackend()
    if name == "openvino":
        from gnaexp.backends.openvino_runner import OpenVINOBackend

        device, _, inference = arg.partition(":")
        return OpenVINOBackend(
            device=device,
            inference_precision=inference.lower() or None,
            scale_factor=gna.scale_factors,
            precision=gna.precision,
            execution_mode=opts.get("execution_mode", "SW_EXACT"),
        )
    if name == "gna-emu":
        from gnaexp.backends.gna_emu import GnaEmuBackend

        return GnaEmuBackend(gna)
    if name == "import":
        from gnaexp.backends.imported import ImportedBackend

        return ImportedBackend(arg)
    raise AssertionError(spec)  # check_spec let through a name not handled here
