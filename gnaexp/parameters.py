"""The parameters of the kit's notebooks, read and checked in one place: by the batch matrix when it is read (a
bad value is a usage error before any run starts) and by the notebooks' own entry points, the ``run(params)`` of
each view in ``gnaexp.present``.

A notebook whose name has no entry here takes experiment settings (``ExperimentConfig``), as conv, concat and
concat_conv do. Every value is checked with the validators every experiment uses (``gna_settings``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from gnaexp.core.excerpt import excerpt
from gnaexp.core.gna_settings import check_layout, check_scale_factor, FORUM_NETS
from gnaexp.experiment import ExperimentConfig
from gnaexp.vad import run as vad_run
from gnaexp.vad.options import DEVICE_SETTINGS, VadOptions
from gnaexp.core.errors import BadInput

DIAGNOSE_SETTINGS = ("experiment", "scale_factor", "seed", "input_kind", "precision", "porting", "plugin_release")
DIAGNOSE_BACKENDS = "torch,openvino:CPU,gna-emu"


def words(name: str, value: Any) -> list[str]:
    """A comma list given as text (``"1,2048"``) or as a list of values."""
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise BadInput(f"parameter {name}={excerpt(value)}: expected a comma-separated list")


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name, "")
    if not isinstance(value, str):
        raise BadInput(f"parameter {name}={excerpt(value)}: expected text (a file path)")
    return value


def experiment_config(params: Mapping[str, Any], keys: Any = None, **fixed: Any) -> ExperimentConfig:
    """The experiment settings among ``params`` (only ``keys`` when given) as a checked config."""
    keys = set(ExperimentConfig.keys()) if keys is None else set(keys)
    return _defaults().with_settings({k: v for k, v in params.items() if k in keys} | fixed)


@functools.cache
def _defaults() -> ExperimentConfig:
    return ExperimentConfig()  # with_settings makes a new config: this one is never changed


@dataclass
class PotParameters:
    base: ExperimentConfig
    experiments: list[str]
    scale_factors: list[float]
    layouts: list[str]


def pot(params: Mapping[str, Any]) -> PotParameters:
    """The POT notebook's: the base settings, the forum nets, scale factors and layouts to combine."""
    base = experiment_config(params, set(ExperimentConfig.keys()) - {"backends"})
    nets = words("experiments", params.get("experiments", "conv,concat_conv"))
    for net in nets:
        if net not in FORUM_NETS:
            raise BadInput(f"parameter experiments: unknown net {excerpt(net)}; valid: {', '.join(FORUM_NETS)}")
    sfs = []
    for word in words("scale_factors", params.get("scale_factors", "1,2048")):
        try:
            number = float(word)
        except ValueError:
            raise BadInput(f"parameter scale_factors: {excerpt(word)} is not a number") from None
        sfs.append(check_scale_factor(number, "scale_factors"))
    layouts = [check_layout(w, "layouts") for w in words("layouts", params.get("layouts", "correct,legacy-concat"))]
    for name, values in (("experiments", nets), ("scale_factors", sfs), ("layouts", layouts)):
        if not values:
            raise BadInput(f"parameter {name} is empty; give at least one value")
    return PotParameters(base, nets, sfs, layouts)


def diagnose(params: Mapping[str, Any]) -> tuple[ExperimentConfig, str, str]:
    """The diagnosis notebook's: (the experiment's config, the observed output file or "", the emulated
    device's layout path)."""
    config = experiment_config(params, DIAGNOSE_SETTINGS, backends=DIAGNOSE_BACKENDS)
    if config.experiment not in FORUM_NETS:
        raise BadInput(f"parameter experiment={excerpt(config.experiment)}: the diagnosis notebook takes a forum "
                         f"net ({', '.join(FORUM_NETS)}); for your own model use gnaexp diagnose --model")
    return config, _text(params, "observed_file"), check_layout(params.get("device_layout", "correct"), "device_layout")


def vad(params: Mapping[str, Any]) -> None:
    """The VAD notebook's: the backends, and the device settings as ``vad_run`` checks them for every run."""
    _text(params, "audio")
    backends = words("backends", params.get("backends", ",".join(vad_run.DEFAULT_BACKENDS)))
    if not backends:
        raise BadInput("parameter backends is empty; give at least one, e.g. torch,gna-emu")
    vad_run.check_backends(backends)
    VadOptions.from_json({k: params[k] for k in DEVICE_SETTINGS if k in params})


MODELS_SETTINGS = ("scale_factor", "porting", "precision", "seed", "state", "plugin_release")


def models(params: Mapping[str, Any]) -> tuple[str, ExperimentConfig]:
    """The models notebook's: (the model: a corpus key or a model file path, the experiment settings with the
    user's input file). The corpus model is fetched when the notebook runs, not here."""
    model = _text(params, "model").strip()
    if not model:
        raise BadInput("parameter model is empty; give a corpus key (model_catalog.CORPUS, e.g. dtln_1) or "
                         "the path of a model file")
    settings = {k: params[k] for k in MODELS_SETTINGS if k in params and params[k] != ""}
    config = experiment_config(settings, MODELS_SETTINGS, experiment="model", model=model,
                               input_file=_text(params, "input_file"))
    return model, config


LAYERS_SETTINGS = ("length", "seed", "input_kind", "amplitude", "scale_factor", "precision", "porting", "layout",
                   "plugin_release", "calibration_size", "calibration_seed", "calibration_file")


@dataclass
class LayersParameters:
    config: ExperimentConfig
    backends: list[Any]  # gnaexp.layers.backends.LayerBackend, the reference first
    threshold: float | None  # None: each backend's precision floor


def layers(params: Mapping[str, Any]) -> LayersParameters:
    """The layers notebook's: a forum net (``experiment``) or a model file with its inputs, the backends (the
    reference first, as ``gnaexp layers --backends``) and the threshold."""
    from gnaexp.layers.backends import parse_layer_backends, threshold_for

    model = _text(params, "model").strip()
    settings = {k: params[k] for k in LAYERS_SETTINGS if k in params and params[k] != ""}
    if model:
        config = experiment_config(settings, LAYERS_SETTINGS, experiment="model", model=model,
                                   input_file=_text(params, "input_file"))
    else:
        net = params.get("experiment", "concat_conv")
        if net not in FORUM_NETS:
            raise BadInput(f"parameter experiment={excerpt(net)}: the layers notebook takes a forum net "
                           f"({', '.join(FORUM_NETS)}), or your model file as model=FILE with input_file=INPUTS")
        config = experiment_config(settings, LAYERS_SETTINGS, experiment=net, input_file=_text(params, "input_file"))
    backends = parse_layer_backends(", ".join(words("backends", params.get("backends", "openvino:CPU,openvino:CPU:bf16"))))
    if len(backends) < 2:
        raise BadInput(f"parameter backends names only the reference {backends[0].spec}: add a backend to compare, "
                       f"e.g. {backends[0].spec},openvino:CPU:bf16")
    raw = params.get("threshold")
    if raw in (None, ""):
        return LayersParameters(config, backends, None)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise BadInput(f"parameter threshold={excerpt(raw)}: expected a number of dB (or None: each precision's floor)")
    return LayersParameters(config, backends, threshold_for(backends[0], float(raw)))


def layer_calibration(config: ExperimentConfig) -> dict[str, Any]:
    """nncf:int8's calibration, as ``gnaexp quantize`` and ``--set ir=nncf`` take it from the settings."""
    return {"calibration_kind": config.input_kind, "calibration_amplitude": config.amplitude,
            "calibration_size": config.calibration_size, "calibration_seed": config.calibration_seed,
            "calibration_file": config.calibration_file}


_CHECKS: dict[str, Callable[[Mapping[str, Any]], Any]] = {"pot": pot, "diagnose": diagnose, "vad": vad,
                                                            "models": models, "layers": layers}


def check(notebook: str, params: Mapping[str, Any]) -> None:
    """Raise ValueError (or KeyError) naming a bad parameter of the notebook named ``notebook`` (its stem)."""
    _CHECKS.get(notebook, experiment_config)(params)
