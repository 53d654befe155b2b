"""What a measured result is, so that its verdict holds it to the right yardstick.

A device result (``openvino:GNA`` here, or ``import:outputs.npz`` from ``measure_on_device.py`` on another machine)
says in its metadata what ran: device, execution mode, precision, plugin config, OpenVINO release. A CPU or GNA
SW_FP32 measurement in f32 is held to FP32; a CPU measurement in bf16/f16 is neither FP32 nor GNA and says so;
a GNA integer measurement (SW_EXACT, HW, AUTO) is compared value for value with the emulation at the same scale
factors and precision: identical means quantization only, any difference means the emulator and that plugin
release differ on this net, which the bundle lets support reproduce.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from gnaexp.core.gna_settings import check_plugin_release, DEFAULT_PLUGIN_RELEASE, GnaSettings
from gnaexp.diagnose.results import WhatRan

FP32, REDUCED, GNA_INT, UNKNOWN = "fp32", "reduced-float", "gna-integer", "unknown"


def _meta(result: Any) -> dict[str, Any]:
    if result.kind == "imported":
        return dict(result.info.get("source_meta") or {})
    return {"device": result.info.get("device") or result.backend.partition(":")[2],
            "plugin_config": result.info.get("plugin_config") or {}, "openvino": result.info.get("openvino"),
            "precision": result.info.get("effective_precision")}


def what_ran(result: Any) -> WhatRan:
    """Device, class (fp32 | reduced-float | gna-integer | unknown), mode, precision and release of a measured or
    imported result, from its metadata (``describe``)."""
    return describe(_meta(result))


def describe(meta: Mapping[str, Any]) -> WhatRan:
    """What ran, from a measurement's metadata (a ``measure_on_device.py`` file's, or a backend's info)."""
    config = meta.get("plugin_config") or {}
    device = str(meta.get("device") or str(meta.get("backend", "")).partition(":")[2]).upper().split(".")[0]
    mode = meta.get("execution_mode") or config.get("GNA_DEVICE_MODE")
    precision = _precision_name(meta.get("precision") or config.get("GNA_PRECISION")
                                or config.get("INFERENCE_PRECISION_HINT"))
    if device == "GNA":
        klass = FP32 if str(mode).upper() == "GNA_SW_FP32" else GNA_INT
    elif device:
        klass = FP32 if (precision or "f32") == "f32" else REDUCED
    else:
        klass = UNKNOWN
    openvino = meta.get("openvino")
    return WhatRan(device or None, klass, None if mode is None else str(mode), precision,
                   None if openvino is None else str(openvino))


def _precision_name(value: Any) -> str | None:
    """A precision as OpenVINO's releases spell it ("<Type: 'float32'>", "f32", "bf16", "I16") in short form."""
    if value is None:
        return None
    text = str(value).lower()
    for long, short in (("bfloat16", "bf16"), ("bf16", "bf16"), ("float16", "f16"), ("f16", "f16"),
                        ("float32", "f32"), ("f32", "f32"), ("fp32", "f32")):
        if long in text:
            return short
    return str(value)


def gna_settings(config: Mapping[str, str], input_names: list[str]) -> tuple[dict[str, float], str]:
    """(scale factor per input, emulator precision) from a GNA plugin config (``GNA_SCALE_FACTOR_<i>``,
    ``GNA_PRECISION``); inputs the config does not name keep the plugin's 1.0."""
    sfs = {name: float(config.get(f"GNA_SCALE_FACTOR_{i}", 1.0)) for i, name in enumerate(input_names)}
    return sfs, "i8" if str(config.get("GNA_PRECISION", "I16")).upper() == "I8" else "i16"


def against_emulation(result: Any, model_xml: Any, feed: Mapping[str, np.ndarray], porting: bool = False
                      ) -> dict[str, Any] | None:
    """A GNA integer measurement against the emulation at its own settings: identical or not, and the SQNR
    between them per output. None when the result is not a GNA integer measurement or its config is absent."""
    from gnaexp.core import metrics
    from gnaexp.emulator import emulate
    from gnaexp.emulator.api import load_program

    ran = what_ran(result)
    config = _meta(result).get("plugin_config") or {}
    if ran.klass != GNA_INT or not config:
        return None
    prog = load_program(model_xml, feed, porting)
    sfs, precision = gna_settings(config, [names[0] for _, names, _ in prog.params])
    release = plugin_release_of(ran.openvino)
    try:
        em = emulate(model_xml, feed, settings=GnaSettings(sfs, precision, "correct", porting, release or ""))
    except ValueError as exc:  # the emulator refuses these settings: the comparison says so
        return {"identical": False, "refused": str(exc).splitlines()[0], "scale_factors": sfs, "precision": precision,
                "plugin_release": release or DEFAULT_PLUGIN_RELEASE}
    per = {}
    for name, measured in result.outputs.items():
        if name in em.outputs and np.shape(em.outputs[name]) == np.shape(measured):
            same = bool(np.array_equal(np.asarray(em.outputs[name], np.float32), np.asarray(measured, np.float32)))
            per[name] = {"identical": same, "sqnr_db": float(metrics.sqnr_db(em.outputs[name], measured))}
    return {"identical": bool(per) and all(p["identical"] for p in per.values()), "outputs": per,
            "scale_factors": sfs, "precision": precision, "plugin_release": em.plugin_release,
            **({} if release else {"release_note": f"the measurement's OpenVINO {ran.openvino or '(unknown)'} "
                                   "is not a release the emulator follows: compared with the default release"})}


def openvino_release(openvino_version: Any) -> str:
    """The release an OpenVINO version string names, without its build ("2023.3.0-13775-ceeafaf64f3-releases/2023/3"
    → "2023.3.0"); "" for none. The one reading of such a string: labels and the plugin release come from it."""
    return str(openvino_version or "").strip().split("-")[0]


def plugin_release_of(openvino_version: Any) -> str | None:
    """The GNA plugin release an OpenVINO version string names ("2023.0.2", "2023.3.0-13775-…"), or None when
    it names none the emulator follows (then the default release is compared)."""
    text = openvino_release(openvino_version)
    try:
        return check_plugin_release(text) if text else None
    except ValueError:
        return None



def annotate(results: list[Any], model_xml: Any, feed: Mapping[str, np.ndarray], porting: bool = False) -> None:
    """Add to each measured or imported result what ran (``what_ran``) and, for a GNA integer measurement of one
    inference, its comparison with the emulation at its own settings (``against_emulation``)."""
    for r in results:
        if r.kind not in ("measured", "imported") or r.info.get("quantized_ir"):
            continue  # a quantized IR on CPU is the POT study's own row, judged there
        r.info["what_ran"] = what_ran(r).to_json()
        if model_xml is not None and not r.info.get("streamed"):
            versus = against_emulation(r, model_xml, feed, porting)
            if versus is not None:
                r.info["against_emulation"] = versus
