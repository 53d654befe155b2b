"""``emulate()``: run an OpenVINO IR through the GNA integer rules and say what was done.

The emulator reads the same graph the GNA plugin receives (the IR, not the torch module), quantizes it with
the plugin's scale-factor rules (rule-set ``RULES_VERSION``, compile target GNA 3.0) as one plugin release computes
them (``plugin_release``: 2022.3, 2023.0, 2023.1–2023.3; default 2023.3, see ``releases.py``) and computes every
layer in exact integer arithmetic. Its numbers are an emulation, never a device measurement.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gnaexp.core.files import json_safe
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.emulator.graph import build_plan, RULES_VERSION
from gnaexp.emulator.ir_reader import Program, read_program, UnsupportedOpError
from gnaexp.emulator.plan_row import PlanRow
from gnaexp.emulator.porting import inner_reduce_means, read_as_converter
from gnaexp.emulator.quantize import DEFAULT_COMPILE_TARGET, INT8_NOT_APPLIED
from gnaexp.emulator.releases import DEFAULT_RELEASE
from gnaexp.core.errors import BadInput

_MODEL_PROGRAMS: "weakref.WeakKeyDictionary[Any, Program]" = weakref.WeakKeyDictionary()


@dataclass
class Emulation:
    """Outputs and the quantization story of one emulator run."""

    outputs: dict[str, np.ndarray]
    plan: list[PlanRow]
    input_scale_factors: dict[str, float]
    notes: list[str] = field(default_factory=list)
    ints: dict[str, np.ndarray] = field(default_factory=dict)
    rules_version: str = RULES_VERSION
    layout: str = "correct"
    precision: str = "i16"
    input_sf_source: dict[str, str] = field(default_factory=dict)  # input → "configured" | "fakequantize" | "memory"
    state: dict[str, np.ndarray] = field(default_factory=dict)  # memory variable → the state its Assign wrote
    plugin_release: str = DEFAULT_RELEASE  # the GNA plugin release whose rounding was followed

    def to_json(self) -> dict[str, Any]:
        """Plan and notes, JSON-ready (no arrays)."""
        return {
            "emulated": True,
            "rules_version": self.rules_version,
            "compile_target": DEFAULT_COMPILE_TARGET,
            "plugin_release": self.plugin_release,
            "layout": self.layout,
            "precision": self.precision,
            "input_scale_factors": dict(self.input_scale_factors),
            "input_sf_source": dict(self.input_sf_source),
            "notes": list(self.notes),
            "plan": json_safe([row.to_json() for row in self.plan]),
        }


@functools.lru_cache(maxsize=32)
def _read_ir(path: str, mtime_ns: int) -> Program:
    """An IR file parsed once per content version (the mtime is part of the key)."""
    return read_program(Path(path))


def load_program(model: Any, inputs: Mapping[str, Any] | None = None, porting: bool = False) -> Program:
    """Parse once and cache: by resolved path (and mtime) for IR files, by object for in-memory models.

    ``inputs``: the arrays the model will run on; a model with dynamic input dimensions is reshaped to their
    shapes (``Program.notes`` says so), as the GNA plugin needs static shapes. ``porting``: a layer norm inside
    the network is read as the model converter writes it (``porting.convert_as_converter``)."""
    if isinstance(model, Program):
        return model
    try:
        prog = _load(model)
    except UnsupportedOpError:
        if not inputs:
            raise
        reshaped = _load_reshaped(model, inputs)
        if reshaped is None:
            raise
        prog = reshaped
    if porting and inner_reduce_means(prog):
        prog = _load_converted(model, prog)
    return prog


def _load_converted(model: Any, prog: Program) -> Program:
    """``prog``'s model after the converter's MOC transformations, cached like the program it replaces."""
    from gnaexp.emulator.support import reshape_inputs
    from gnaexp.models.model_files import read_model

    if id(prog) not in _CONVERTED:
        ov_model = read_model(model) if isinstance(model, (str, Path)) else model.clone()
        if ov_model.is_dynamic():  # the shapes the program was read with
            reshape_inputs(ov_model, {names[0]: [int(d) for d in pshape] for _, names, pshape in prog.params}, "")
        converted, note = read_as_converter(ov_model, prog)
        converted.notes = list(prog.notes) + [note]
        if len(_CONVERTED) > 16:
            _CONVERTED.clear()
        _CONVERTED[id(prog)] = (prog, converted)  # prog kept alive: its id stays its own
    return _CONVERTED[id(prog)][1]


_CONVERTED: dict[int, tuple[Program, Program]] = {}


def _load(model: Any) -> Program:
    if isinstance(model, (str, Path)):
        p = Path(model).resolve()
        if not p.exists():
            raise FileNotFoundError(f"model file {p.name} not found in {p.parent}: give a model file OpenVINO reads "
                                    "(an IR .xml with its .bin beside it, .onnx, ...)")
        return _read_ir(str(p), p.stat().st_mtime_ns)
    try:
        prog = _MODEL_PROGRAMS.get(model)
    except TypeError:
        prog = None
    if prog is None:
        prog = read_program(model)
        try:
            _MODEL_PROGRAMS[model] = prog
        except TypeError:
            pass
    return prog


def _load_reshaped(model: Any, inputs: Mapping[str, Any]) -> Program | None:
    """The program of a dynamic model reshaped to the inputs' shapes, or None when the model is static."""
    from gnaexp.emulator.support import reshape_inputs, shapes_of_arrays
    from gnaexp.models.model_files import read_model

    ov_model = read_model(model) if isinstance(model, (str, Path)) else model
    if not ov_model.is_dynamic():
        return None
    arrays = inputs if isinstance(inputs, Mapping) else {"": inputs}
    shapes = shapes_of_arrays(ov_model, {k: np.asarray(v) for k, v in arrays.items()})
    key = (str(Path(model).resolve()), Path(model).stat().st_mtime_ns) if isinstance(model, (str, Path)) else id(model)
    cache_key = (key, tuple(sorted(shapes.items())))
    if cache_key not in _RESHAPED:
        ov_model = ov_model.clone()
        notes = reshape_inputs(ov_model, shapes, "from the inputs")
        prog = read_program(ov_model)
        prog.notes = notes
        if len(_RESHAPED) > 16:
            _RESHAPED.clear()
        _RESHAPED[cache_key] = prog
    return _RESHAPED[cache_key]


_RESHAPED: dict[Any, Program] = {}


def prepare_inputs(prog: Program, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, tuple], bool]:
    """Match inputs to parameters (tensor name, then position), check them, add the sample axis N.

    Returns (feeds {param key: (N, *shape) float32}, sample shapes, batched?).
    """
    data_params = [p for p in prog.params if p[0] not in prog.memory]
    if not isinstance(inputs, Mapping):
        inputs = {data_params[0][1][0]: inputs} if len(data_params) == 1 else dict(inputs)
    feeds: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple] = {}
    given = list(inputs.items())
    batched_flags = []
    initial_state = []  # memory states not given: each inference starts from the initial state
    for i, (key, names, pshape) in enumerate(prog.params):
        match = next(((k, v) for k, v in given if k in names), None)
        if match is None and key in prog.memory:
            initial_state.append((key, pshape))
            continue
        if match is None:
            if len(given) != len(prog.params):
                raise BadInput(f"no input named {names[0]!r}; given {[k for k, _ in given]}. "
                                 f"Name inputs after the IR's input tensors: {[p[1][0] for p in prog.params]}")
            match = given[i]
        raw = np.asarray(match[1])
        if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
            raise BadInput(f"input {names[0]!r} has dtype {raw.dtype}; expected a float array (float32)")
        arr = raw.astype(np.float32, copy=False)  # NaN/Inf are caught where the input is quantized
        rank = len(pshape)
        if arr.ndim == rank + 1:
            batched = True
            sample = arr.shape[1:]
        elif arr.ndim == rank:
            if pshape[0] is None and arr.shape[0] != 1:
                batched, sample = True, (1,) + arr.shape[1:]
                arr = arr.reshape((arr.shape[0],) + sample)
            else:
                batched, sample = False, arr.shape
        else:
            raise BadInput(f"input {names[0]!r} has shape {arr.shape}; the model expects rank {rank} "
                             f"{pshape} (or rank {rank + 1} with a leading batch of samples)")
        for d, (want, got) in enumerate(zip(pshape, sample)):
            if want is not None and want != got:
                raise BadInput(f"input {names[0]!r}: dimension {d} is {got}, the model expects {want} "
                                 f"(model shape {pshape}); reshape the input to match")
        feeds[key] = arr if batched else arr[None]
        shapes[key] = tuple(int(s) for s in sample)
        batched_flags.append(batched)
    ns = {v.shape[0] for v in feeds.values()}
    if len(ns) > 1:
        raise BadInput(f"inputs have different numbers of samples: {sorted(ns)}")
    n = next(iter(ns), 1)
    for key, pshape in initial_state:
        start = np.asarray(prog.memory[key].initial, dtype=np.float32)
        feeds[key] = np.broadcast_to(start.reshape([d for d in pshape if d is not None] or start.shape),
                                     (n,) + tuple(pshape)).copy()
        shapes[key] = tuple(int(d) for d in pshape)
    return feeds, shapes, any(batched_flags)


def emulate(
    model: Any,
    inputs: Mapping[str, np.ndarray],
    scale_factors: float | Mapping[str, float] = 1.0,
    precision: str = "i16",
    layout: str = "correct",
    keep_ints: bool = False,
    porting: bool = False,
    plugin_release: str | None = None,
    *,
    settings: GnaSettings | None = None,
) -> Emulation:
    """Emulate GNA inference of ``model`` (``openvino.Model`` or IR .xml path) on ``inputs``.

    inputs: name → float32 array of the model's input shape, or with an extra leading axis of N samples
    (vectorised). scale_factors: one float for all inputs or name → float; default 1.0 like the plugin.
    layout: "correct" or "legacy-concat" (old-plugin concat→conv input layout, docs/gna-rules.md §4.3 [I]).
    porting: run what GNA has no layer for on the host and apply the exact rewrites a porting team makes
    (``emulator/porting.py``); the result is then "emulated, with host pre/post-processing".
    plugin_release: the GNA plugin release to compute as ("2022.3", "2023.0", "2023.1"–"2023.3"; None: 2023.3).
    settings: all of these as one checked value (``GnaSettings``); given, it replaces the loose arguments.
    """
    if settings is None:
        settings = GnaSettings(scale_factors, precision, layout, porting, plugin_release or "")
    layout, precision, porting = settings.layout, settings.precision, settings.porting
    prog = load_program(model, inputs, porting)
    feeds, shapes, batched = prepare_inputs(prog, inputs)
    plan = build_plan(prog, shapes, settings)
    outs, sats, ints = plan.run(feeds, keep_ints)
    n_samples = next(iter(feeds.values())).shape[0]
    if not batched:
        outs = {k: v[0] for k, v in outs.items()}
        ints = {k: v[0] for k, v in ints.items()}
    state = {prog.memory[key].variable: outs.pop(names[0]) for key, names, _ in prog.params if key in prog.memory}
    summary = [dataclasses.replace(row, saturations=int(sats.get(row.layer, 0)),
                                   values=n_samples * plan.values_per_sample.get(row.layer, 0))
               for row in plan.summary()]
    notes = list(prog.notes) + list(plan.notes)
    if layout == "legacy-concat":
        notes.append("layout legacy-concat: documented behaviour of 2022.3/2023.0 plugins when a Concat lies "
                     "between the input and a convolution (docs/gna-rules.md §4.3, inference), "
                     "not a fact of every version")
    for row in summary:
        notes.extend(f"{row.layer}: {n}" for n in row.notes if n.startswith(INT8_NOT_APPLIED))
        if row.saturations:
            notes.append(f"{row.layer}: {row.saturations} values saturated")
    return Emulation(outs, summary, dict(plan.input_sf), notes, ints, RULES_VERSION, layout, precision,
                     dict(plan.input_sf_source), state, plan.release.name)
