"""One run: net + inputs → backends → metrics → record.

An experiment is a named forum net (conv, concat, concat_conv) or a user's model file (``model``), plus
settings. Settings are plain values so that the CLI's ``--set key=value``, notebook parameters and batch
matrix rows all speak the same language.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnaexp import cache
from gnaexp.backends import BackendResult, check_specs, make_backend, ModelBundle, parse_backend_list, streaming
from gnaexp.core import environment, inputs as inputs_mod, metrics
from gnaexp.core.excerpt import excerpt
from gnaexp.core.floor_sweep import FloorSweep
from gnaexp.core.files import portable_path
from gnaexp.diagnose import measurement
from gnaexp.core.gna_settings import (DEFAULT_PLUGIN_RELEASE, FORUM_NETS, GnaSettings, check_execution_mode,
                                      check_porting, parse_scale_factors)
from gnaexp.core.output_folder import check_folder, publish_folder
from gnaexp.core.records import Record
from gnaexp.core.errors import BadInput, UnknownName

EXPERIMENTS = FORUM_NETS + ("model",)
IR_FLOAT, IR_NNCF = "default", "nncf"  # FP32 IR; NNCF post-training quantized (FakeQuantize) IR
IRS = (IR_FLOAT, IR_NNCF)
IR_ALIASES = {"pot": IR_NNCF}  # POT is what the forum used; NNCF is its successor
MAX_SEED = 2**32 - 1
INPUT_SEED_STRIDE = 1000  # input i of seed s draws from s·1000 + 1 + i, apart from the weights' stream (seed s)
PATH_SETTINGS = ("input_file", "model", "calibration_file")  # settings that name a file
DEFAULT_BACKENDS = ("torch", "openvino:CPU", "gna-emu")
# A user's model file has no torch module: OpenVINO CPU FP32 is its reference.
MODEL_BACKENDS = ("openvino:CPU", "gna-emu")


@dataclass
class ExperimentConfig:
    """Every setting of a run. Field names are the keys ``--set`` and notebooks use."""

    experiment: str = "conv"
    # forum net shape (see gnaexp.models.forum_nets.NetSpec)
    in_channels: int = 2
    copies: int = 3
    conv_in_channels: int = 6
    out_channels: int = 4
    kernel: int = 3
    stride: int = 2
    length: int = 255
    seed: int = 0  # weights and generated inputs
    input_kind: str = "uniform01"
    amplitude: float = 1.0
    input_file: str = ""  # .npy/.npz of the user's inputs instead of generated ones
    model: str = ""  # .xml/.onnx file for experiment "model"
    # stateful streaming (experiment "model"): state input=output pairs, e.g. "state=stateN" or "h=hn,c=cn"; the
    # input file then holds frames (steps, *shape) (gnaexp.backends.streaming)
    state: str = ""
    # device settings
    # GNA input scale factor; 1.0 is the plugin's default. One per input as a mapping (``chunk=2048,state=1024``):
    # inputs left out keep 1.0, and sweeps vary the first one named (gna_settings.main_scale_factor).
    scale_factor: float | Mapping[str, float] = 1.0
    porting: bool = False  # emulator: host pre/post-processing and exact rewrites, as a porting team would
    precision: str = "i16"
    layout: str = "correct"  # emulator: correct | legacy-concat
    plugin_release: str = DEFAULT_PLUGIN_RELEASE  # emulator: the GNA plugin release it computes as
    execution_mode: str = "SW_EXACT"
    # IR: "default" (FP32) or "nncf" (NNCF post-training quantization, POT's successor, FakeQuantize IR;
    # "pot" is accepted for it)
    ir: str = "default"
    activation_bits: int = 16
    weight_bits: int = 16
    calibration_size: int = 32
    calibration_seed: int = 0
    calibration_file: str = ""
    backends: list[str] = field(default_factory=lambda: list(DEFAULT_BACKENDS))

    def __post_init__(self) -> None:
        self.ir = IR_ALIASES.get(self.ir, self.ir)
        self.validate()

    def validate(self) -> None:
        """Every value in range, checked before any work starts; each message names the parameter and the fix."""
        if self.experiment not in EXPERIMENTS:
            raise BadInput(f"unknown experiment {excerpt(self.experiment)}; valid: {', '.join(EXPERIMENTS)}")
        if self.experiment == "model" and not self.model:
            raise BadInput("experiment 'model' needs model=PATH (an OpenVINO .xml or an .onnx file)")
        if self.state:
            streaming.parse_state_pairs(self.state)
            if self.experiment != "model":
                raise BadInput("state streams a model file's frames: it needs experiment 'model' (with "
                                 "model=FILE and input_file=FRAMES.npz)")
        if self.input_kind not in inputs_mod.INPUT_KINDS:
            raise BadInput(f"unknown input_kind {excerpt(self.input_kind)}; valid: "
                             f"{', '.join(inputs_mod.INPUT_KINDS)}")
        for name in ("in_channels", "copies", "conv_in_channels", "out_channels", "kernel", "stride", "length",
                     "calibration_size"):
            if getattr(self, name) < 1:
                raise BadInput(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("seed", "calibration_seed"):
            if not 0 <= getattr(self, name) <= MAX_SEED:
                raise BadInput(f"{name} must be between 0 and {MAX_SEED}, got {getattr(self, name)}")
        if self.experiment in ("conv", "concat_conv") and self.kernel > self.length:
            raise BadInput(f"kernel ({self.kernel}) is longer than the input (length {self.length}); "
                             "use kernel ≤ length")
        gna = GnaSettings(self.scale_factor, self.precision, self.layout, self.porting, self.plugin_release)
        self.scale_factor, self.porting, self.plugin_release = gna.scale_factors, gna.porting, gna.plugin_release
        if not (math.isfinite(self.amplitude) and self.amplitude != 0):
            raise BadInput(f"amplitude must be a finite, non-zero number, got {self.amplitude}")
        check_execution_mode(self.execution_mode)
        if self.ir not in IRS:
            raise BadInput(f"ir must be {IR_FLOAT} or {IR_NNCF} (NNCF-quantized, FakeQuantize IR; 'pot' is "
                             f"accepted for it), got {excerpt(self.ir)}")
        if self.activation_bits not in (8, 16) or self.weight_bits not in (8, 16):
            raise BadInput(f"activation_bits and weight_bits must be 8 or 16, got {self.activation_bits}, "
                             f"{self.weight_bits}")
        if not self.backends:
            raise BadInput("backends is empty; give at least one, e.g. torch,openvino:CPU")
        try:
            check_specs(self.backends)
        except ValueError as exc:
            raise BadInput(f"backends: {exc}") from None

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def with_settings(self, settings: dict[str, Any]) -> "ExperimentConfig":
        """A copy with ``settings`` applied; values may be strings (from the CLI) and are converted."""
        fields = dataclasses.fields(self)
        # Shallow (dataclasses.asdict deep-copies every value: a matrix of 90k runs spent seconds there).
        values = {f.name: getattr(self, f.name) for f in fields} | {"backends": list(self.backends)}
        types = {f.name: f.type for f in fields}
        for key, raw in settings.items():
            if key not in types:
                raise UnknownName(f"unknown parameter {excerpt(key)}; valid: {', '.join(self.keys())}")
            values[key] = _convert(key, raw, str(types[key]))
        if values["experiment"] == "model" and "backends" not in settings and \
                tuple(values["backends"]) == DEFAULT_BACKENDS:
            values["backends"] = list(MODEL_BACKENDS)  # torch cannot run a model file
        return ExperimentConfig(**values)

    @classmethod
    def from_strings(cls, experiment: str, sets: Sequence[str] = (), backends: str | None = None) -> "ExperimentConfig":
        """A config from command-line words: the experiment, ``key=value`` settings and a backend list."""
        if experiment not in EXPERIMENTS:
            raise BadInput(f"unknown experiment {excerpt(experiment)}; valid: {', '.join(EXPERIMENTS)}")
        settings: dict[str, Any] = parse_sets(sets)
        if backends:
            settings["backends"] = backends
        return cls().with_settings({"experiment": experiment, **settings})

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_record_json(self) -> dict[str, Any]:
        """``to_json`` with every file path made shareable (``files.portable_path``): what records keep."""
        data = self.to_json()
        for key in PATH_SETTINGS:
            if data[key]:
                data[key] = portable_path(data[key])
        data["backends"] = ["import:" + portable_path(b[len("import:"):]) if b.startswith("import:") else b
                            for b in data["backends"]]
        return data


def _convert(key: str, raw: Any, type_name: str) -> Any:
    """One setting to its field's type: strings (CLI, notebook) are parsed; other values must already have the
    type (a YAML 32.7 or true is not an integer, a list is not a number). Messages name the parameter."""
    def bad(why: str) -> ValueError:
        return ValueError(f"parameter {key}={excerpt(raw)}: {why}")

    if key == "scale_factor":
        return parse_scale_factors(raw)  # one number, or one per input (names and the setting in its messages)
    if type_name == "bool":
        return check_porting(raw) if key == "porting" else raw
    if type_name.startswith("list"):
        if isinstance(raw, str) or (isinstance(raw, (list, tuple)) and all(isinstance(v, str) for v in raw)):
            return parse_backend_list(raw)  # the one list setting: backends
        raise bad("expected a comma-separated list of names")
    if isinstance(raw, (list, tuple, dict, set)) or raw is None:
        raise bad(f"expected one {type_name} value")
    numeric = {"int": (int, (int, np.integer), "a whole number"),
               "float": (float, (int, float, np.integer, np.floating), "a number")}
    if type_name in numeric:
        parse, accepted, what = numeric[type_name]
        if isinstance(raw, str):
            try:
                return parse(raw.strip())
            except ValueError:
                raise bad(f"expected {what}") from None
        if isinstance(raw, bool) or not isinstance(raw, accepted):
            raise bad(f"expected {what}")
        return parse(raw)
    if not isinstance(raw, str):
        raise bad("expected text")
    return raw.strip()


def parse_sets(sets: Sequence[str] | None) -> dict[str, str]:
    """``key=value`` words from the command line (``--set``) as a dict; a word without ``=`` or key is refused.
    Per-input scale factors and state pairs may come one input a word (``--set scale_factor=chunk=2048 --set
    scale_factor=state=1024``, ``--state h=hn --state c=cn``): they are joined; otherwise the last word of a key
    wins."""
    settings: dict[str, str] = {}
    for pair in sets or ():
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise BadInput(f"--set takes key=value, got {excerpt(pair)}")
        if key in ("scale_factor", "state") and "=" in value and "=" in settings.get(key, ""):
            value = _merge_pairs(settings[key], value)
        settings[key] = value
    return settings


def _merge_pairs(earlier: str, later: str) -> str:
    """Two ``name=value,...`` words as one; a name the later word sets again takes its value there. A word that
    names an input twice is left as it is, for the reader to refuse."""
    def pairs(text: str) -> list[tuple[str, str]]:
        return [(k.strip(), v.strip()) for k, _, v in (p.partition("=") for p in text.split(",") if p.strip())]

    first, second = pairs(earlier), pairs(later)
    if len({k for k, _ in first}) < len(first) or len({k for k, _ in second}) < len(second):
        return f"{earlier},{later}"
    return ",".join(f"{k}={v}" for k, v in (dict(first) | dict(second)).items())


def build_model(config: ExperimentConfig, torch_module: bool = True) -> ModelBundle:
    """The config's net as a ModelBundle with its IR (converted once, then taken from the cache). With ``ir="nncf"``
    the IR is the NNCF-quantized one (FakeQuantize hints), quantized once per settings and calibration set and kept
    next to the float IR. ``torch_module=False``, for a caller that needs only the IR: the bundle from the reference
    cache where this net and input ran before (torch then is not even imported)."""
    key = None if torch_module else reference_cache_key(config)
    cached = _cached_reference(config, key) if key else None
    return cached[0] if cached else _with_config_ir(_build_float_model(config), config)


def _with_config_ir(bundle: ModelBundle, config: ExperimentConfig) -> ModelBundle:
    """The float net's bundle with the IR the config asks for: itself, or a copy carrying the NNCF-quantized IR."""
    if config.ir != IR_NNCF:
        return bundle
    from gnaexp.models import nncf_quantize as quantization

    settings = quantization.QuantizationSettings(
        config.activation_bits, config.weight_bits, config.calibration_size, config.calibration_seed,
        config.input_kind, config.amplitude, config.calibration_file)
    result = cache.quantized_ir(bundle.require_ir(), settings)
    return dataclasses.replace(bundle, ir_xml=result.quantized_xml, info={
        **bundle.info, "quantization": result.to_json(relative_to=result.quantized_xml.parent)})


def _build_float_model(config: ExperimentConfig) -> ModelBundle:
    from gnaexp.models import ir

    if config.experiment == "model":
        arrays = inputs_mod.read_file(config.input_file) if config.input_file else None
        model, renamed, notes = ir.convert_file(config.model, arrays)
        shapes = ir.input_shapes(model) if notes else None  # a reshaped copy per shape
        path = cache.user_model_ir(Path(config.model), model, renamed, shapes)  # other backends read an IR file
        memory = [s.get_variable_id() for s in model.get_sinks() if s.get_type_name() == "Assign"]
        return ModelBundle(name=Path(config.model).stem, ir_xml=path, input_names=[p.any_name for p in model.inputs],
                           output_names=[p.any_name for p in model.outputs], input_shapes=ir.input_shapes(model),
                           info=({"notes": notes} if notes else {}) | ({"memory": memory} if memory else {}))
    ir.require_torch(f"the {config.experiment} net (a PyTorch module)")
    from gnaexp.models import forum_nets as nets
    spec = nets.NetSpec(config.in_channels, config.copies, config.conv_in_channels, config.out_channels,
                        config.kernel, config.stride, config.length)
    module, shape = nets.build_net(config.experiment, spec, config.seed)
    xml = cache.torch_ir(module, shape)
    return ModelBundle(name=config.experiment, ir_xml=xml, torch_module=module, input_names=[ir.INPUT_NAME],
                       output_names=[ir.OUTPUT_NAME], input_shapes={ir.INPUT_NAME: shape})


def bundle_from_torch(module: Any, input_shape: tuple[int, ...], name: str = "user") -> ModelBundle:
    """Your own torch.nn.Module as a ModelBundle (IR converted once and cached); pass it to ``run(model=...)``."""
    from gnaexp.models import ir

    xml = cache.torch_ir(module.eval(), tuple(input_shape))
    return ModelBundle(name=name, ir_xml=xml, torch_module=module, input_names=[ir.INPUT_NAME],
                       output_names=[ir.OUTPUT_NAME], input_shapes={ir.INPUT_NAME: tuple(input_shape)})


def make_inputs(config: ExperimentConfig, model: ModelBundle) -> dict[str, np.ndarray]:
    """The inputs every backend runs on; for a streaming config, the steps as the reference streams them (frames
    and the reference's own state at each step)."""
    if streaming.streamed(config.state, model, config.input_file):
        return streaming.reference_stream(model, *stream_inputs(config, model))[0]
    if config.input_file:
        return inputs_mod.load(config.input_file, model.input_shapes)
    out = {}
    for i, (name, shape) in enumerate(model.input_shapes.items()):
        out[name] = inputs_mod.generate(config.input_kind, shape, seed=config.seed * INPUT_SEED_STRIDE + 1 + i,
                                        amplitude=config.amplitude)
    return out


def stream_inputs(config: ExperimentConfig, model: ModelBundle) -> tuple[dict, dict, dict]:
    """(state pairs, frames (steps, *shape), initial states) of a streaming config, checked against the model."""
    return streaming.model_stream_inputs(config.state, config.input_file, model)


def gna_settings(config: ExperimentConfig) -> GnaSettings:
    """The config's emulator settings, as one checked value."""
    return GnaSettings(config.scale_factor, config.precision, config.layout, config.porting, config.plugin_release)


def backend_options(config: ExperimentConfig) -> dict[str, Any]:
    return {"gna": gna_settings(config), "execution_mode": config.execution_mode}


def check_backends(config: ExperimentConfig) -> None:
    """Fail before any work if a backend cannot run here (e.g. GNA without its plugin)."""
    for spec in config.backends:
        make_backend(spec, backend_options(config)).check_available()


def reference_of(results: list[BackendResult]) -> BackendResult:
    """torch if it ran, else the first reference-kind result (OpenVINO CPU)."""
    for want in ("torch", None):
        for r in results:
            if r.kind == "reference" and (want is None or r.backend == want):
                return r
    raise BadInput("no reference backend ran; include torch or openvino:CPU in backends")


def compare_results(ref: BackendResult, results: list[BackendResult]) -> dict[str, dict[str, metrics.Comparison]]:
    out: dict[str, dict[str, metrics.Comparison]] = {}
    for r in results:
        if r is ref:
            continue
        per = {}
        for name, ref_arr in ref.outputs.items():
            if name not in r.outputs:
                continue
            scale = (r.info.get("output_scale_factors") or {}).get(name)
            per[name] = metrics.compare(ref_arr, r.outputs[name], output_scale=scale)
        out[r.label] = per
    return out


def reference_cache_key(config: ExperimentConfig) -> str | None:
    """Cache key of the torch reference output and float IR, or None where it cannot be cached safely. The IR
    setting is not in it: torch runs the float net whichever IR the device gets, and a quantized IR is made
    from the cached float IR (``_with_config_ir``)."""
    if config.experiment == "model" or config.input_file or "torch" not in config.backends:
        return None
    return cache.reference_key({k: getattr(config, k) for k in (
        "experiment", "in_channels", "copies", "conv_in_channels", "out_channels", "kernel", "stride", "length",
        "seed", "input_kind", "amplitude")})


def floor_sweep(config: ExperimentConfig, model: ModelBundle, feed: dict[str, np.ndarray],
                ref: BackendResult, results: list[BackendResult]) -> tuple[FloorSweep | None, str]:
    """The run's emulated floor sweep (see ``emulator.sweep.floor_sweep``), when a result needs a floor, and why
    there is none: (None, "") when every result is a reference, (None, why) when the emulator refuses the model.
    """
    if model.ir_xml is None or all(r.kind == "reference" for r in results):
        return None, ""
    from gnaexp.emulator.sweep import floor_sweep as sweep_floor

    layouts = ["correct", config.layout] + [r.settings.get("layout", "correct") for r in results
                                            if r.kind == "emulated"]
    try:
        return sweep_floor(model.ir_xml, feed, ref.outputs, gna_settings(config), list(dict.fromkeys(layouts))), ""
    except (ValueError, NotImplementedError) as exc:
        return None, f"no emulated floor for this model: {exc}"


def run(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    model: ModelBundle | None = None,
    progress: Callable[[str], None] | None = None,
    use_cache: bool = False,
) -> Record:
    """The run engine: every backend of ``config`` on the same inputs, compared with the reference, the floor
    sweep and the verdicts — the only place a Record is assembled. With ``out_dir`` the record is saved with
    the IR beside it. ``use_cache`` takes the torch reference (and IR) from the cache when this net and input
    ran before, so that torch need not even be imported, and stores it otherwise.
    """
    from gnaexp.diagnose import verdicts as diagnosis

    start = time.perf_counter()
    if out_dir is not None:
        check_folder(out_dir, "record folder")  # refused before any work, not after it
    check_backends(config)
    key = reference_cache_key(config) if use_cache and model is None else None
    cached = _cached_reference(config, key) if key else None
    if cached is not None:
        model, torch_result, feed = cached
    name = config.experiment if model is None else model.name
    float_model, stream = None, None
    if model is None:
        float_model = _build_float_model(config)
        model = _with_config_ir(float_model, config)
    if cached is None:  # a cached reference is a forum net's: never a stream
        stream = stream_inputs(config, model) if streaming.streamed(config.state, model, config.input_file) else None
        feed = {} if stream else make_inputs(config, model)
    results = []
    for spec in config.backends:
        if progress:
            progress(spec)
        if spec == "torch" and cached is not None:
            results.append(torch_result)
        elif stream:
            pairs, frames, initial = stream
            result, fed = make_backend(spec, backend_options(config)).stream(model, frames, pairs, initial)
            feed = feed or (fed if result.kind == "reference" else {})  # the reference's steps, as in make_inputs
            results.append(result)
        else:
            results.append(make_backend(spec, backend_options(config)).run(model, feed))
    if stream and not feed:
        feed = make_inputs(config, model)
    fingerprint = inputs_mod.fingerprint(feed)
    if key and float_model is not None:
        cache.store_reference(key, float_model, next(r for r in results if r.backend == "torch"), fingerprint)
    ref = reference_of(results)
    measurement.annotate(results, model.ir_xml, feed, config.porting)  # what each device result measured
    record = Record(
        experiment=name,
        config=config.to_record_json(),
        reference=ref.label,
        results=results,
        metrics=compare_results(ref, results),
        inputs=feed,
        input_fingerprint=fingerprint,
        model_fingerprint=_model_fingerprint(model),
        environment=environment.capture(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    record.model_info = dict(model.info)
    if stream:
        record.model_info["notes"] = list(record.model_info.get("notes", [])) + [streaming.note(stream[0], feed)]
    record.sweep, record.sweep_error = floor_sweep(config, model, feed, ref, results)
    record.diagnosis = diagnosis.diagnose_record(record)
    record.duration_s = time.perf_counter() - start
    if out_dir is not None:
        save_with_ir(record, model, Path(out_dir))
    return record


def _model_fingerprint(model: ModelBundle) -> str:
    from gnaexp.models import ir

    return ir.fingerprint_ir(model.ir_xml) if model.ir_xml else ""


def save_with_ir(record: Record, model: ModelBundle, out_dir: Path) -> Path:
    """Save the record and copy the IR it used next to it, so the folder alone lets anyone rerun it.

    The folder is staged and put in place whole (``output_folder.publish_folder``): a failure leaves an earlier
    record as it was, and a folder holding files of the user's is refused rather than replaced.
    """
    out_dir = Path(out_dir)
    with publish_folder(out_dir, "record folder") as stage:
        if model.ir_xml is not None:
            (stage / "ir").mkdir()
            for src in (model.ir_xml, model.ir_xml.with_suffix(".bin")):
                shutil.copyfile(src, stage / "ir" / ("model" + src.suffix))
            record.artifacts["ir"] = "ir/model.xml"
        record.save(stage)
    return out_dir / "record.json"


def reference_outputs(model: ModelBundle, feed: dict[str, np.ndarray]) -> tuple[str, dict[str, np.ndarray]]:
    """(backend, outputs) of the FP32 reference: torch where the net is a torch module, else OpenVINO CPU."""
    backend = "torch" if model.torch_module is not None else "openvino:CPU"
    return backend, make_backend(backend).run(model, feed).outputs


def _cached_reference(config: ExperimentConfig, key: str) -> tuple[ModelBundle, BackendResult, dict[str, np.ndarray]] | None:
    """(model with the config's IR, torch result, inputs) from the reference cache, or None where absent,
    damaged or made for other inputs than the config's (never used then; the next store replaces it)."""
    cached = cache.load_reference(key)
    if cached is None:
        return None
    model, ref, fingerprint = cached
    feed = make_inputs(config, model)
    if inputs_mod.fingerprint(feed) != fingerprint:  # torch runs again, and its result replaces the entry
        cache.discard_reference(key, "it holds the output of other inputs")
        return None
    return _with_config_ir(model, config), ref, feed


def reference_run(config: ExperimentConfig) -> tuple[ModelBundle, dict[str, np.ndarray], str, dict[str, np.ndarray]]:
    """(model, inputs, reference backend, reference outputs) of a config's net: from the cache where this net and
    input ran before (torch is then not even imported), else built and run, and kept for the next time."""
    key = reference_cache_key(config)
    cached = _cached_reference(config, key) if key else None
    if cached is not None:
        return cached[0], cached[2], cached[1].backend, cached[1].outputs
    float_model = _build_float_model(config)
    model = _with_config_ir(float_model, config)
    if streaming.streamed(config.state, model, config.input_file):
        feed, backend, result = streaming.reference_stream(model, *stream_inputs(config, model))
        return model, feed, backend, result.outputs
    feed = make_inputs(config, model)
    if model.torch_module is None:
        return model, feed, *reference_outputs(model, feed)
    ref = make_backend("torch").run(model, feed)
    if key:
        cache.store_reference(key, float_model, ref, inputs_mod.fingerprint(feed))
    return model, feed, "torch", ref.outputs


def sweep(config: ExperimentConfig, scale_factors: Sequence[float], layout: str = "correct") -> Any:
    """Emulated error of the config's net and inputs over scale factors, against the FP32 reference."""
    from gnaexp.emulator.sweep import sweep as emulator_sweep

    model, feed, _, ref = reference_run(config)
    return emulator_sweep(model.ir_xml, feed, ref, scale_factors, gna_settings(config).with_layout(layout))
