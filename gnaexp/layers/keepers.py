"""How each backend keeps a set of layers at the reference precision, for the precision bisection: the network
outputs with those layers kept, by layer key.

    nncf:int8                  re-quantized with the layers in NNCF's ignored scope (``nncf.IgnoredScope(names=…)``),
                               same calibration: no quantizer at their inputs, float weights
    openvino:DEVICE:bf16|f16   OpenVINO's per-node precision marks (``gnaexp.layers.marks``), where the device
                               honours them (checked: outputs with every candidate marked against none)
    gna-emu (precision i8)     the weights of the kept layers quantized to int16 (``GnaSettings.int16_layers``);
                               under i16 every weight is int16 already and nothing can be kept higher
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from gnaexp.core.gna_settings import GnaSettings
from gnaexp.layers import runners, taps
from gnaexp.layers.backends import LayerBackend
from gnaexp.layers.results import LayerDiff

Outputs = dict[str, np.ndarray]


@dataclass
class Keeper:
    how: str  # ignored_scope | precision marks | int16 weights | none
    run: Callable[[tuple[str, ...]], Outputs] | None  # None: nothing can be kept on this backend
    allowed: Callable[[LayerDiff], bool] = lambda row: True  # which layers are worth keeping
    check_honoured: bool = False  # whether the device may ignore the way of keeping (precision marks)
    notes: list[str] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)  # layers the way of keeping did not take (e.g. a mark not read)


def keeper_for(backend: LayerBackend, float_xml: Path, feed: Mapping[str, np.ndarray], settings: GnaSettings,
               calibration: Mapping[str, Any]) -> Keeper:
    if backend.kind == "nncf":
        return _nncf(backend, float_xml, feed, calibration)
    if backend.kind == "gna-emu":
        return _emulated(float_xml, feed, settings)
    if backend.precision == "f32":
        return Keeper("none", None, notes=[f"{backend.spec} runs f32 already: no layer can be kept at a higher "
                                           "precision"])
    return _marks(backend, float_xml, feed)


def _nncf(backend: LayerBackend, float_xml: Path, feed: Mapping[str, np.ndarray],
          calibration: Mapping[str, Any]) -> Keeper:
    names = {op.get_friendly_name() for op in runners.read(float_xml).get_ordered_ops()}
    readers = quantizer_readers(runners.read(runners.nncf_int8_ir(float_xml, calibration)))

    def run(kept: tuple[str, ...]) -> Outputs:
        ignored = tuple(sorted({taps.op_name(k, names) for k in kept}))
        with _quiet("nncf"):  # NNCF lists every ignored node and each input quantizer it left out, per step
            xml = runners.nncf_int8_ir(float_xml, calibration, ignored)
        return runners.outputs_of(runners.read(xml), backend, feed)
    def allowed(row: LayerDiff) -> bool:
        return taps.op_name(row.layer, names) in readers or (row.local_sqnr_db or math.inf) < math.inf
    return Keeper("ignored_scope", run, allowed, notes=["kept in float by NNCF's ignored scope (re-quantized, same "
                                               "calibration)"])


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    importlib.import_module(logger)  # importing NNCF sets its logger's level: first, so that it stays set here
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


# Ops a quantizer NNCF placed on an activation passes through on its way to the layer it quantizes for (NNCF moves
# a layer's input quantizer up through them): keeping that layer needs the whole way in the ignored scope.
MOVES = ("Reshape", "Squeeze", "Unsqueeze", "Transpose", "Gather", "Slice", "StridedSlice", "Pad", "Concat", "Split",
         "VariadicSplit", "Convert")


def quantizer_readers(model: Any) -> set[str]:
    """Names of the int8 model's ops that read a quantized activation (directly, or through data movements) or
    int8 weights: the layers whose ignoring removes a quantizer."""
    found: set[str] = set()
    todo = []
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize" and not taps.constant_valued(op.input_value(0)):
            todo += [t.get_node() for t in op.output(0).get_target_inputs()]
        elif kind == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8", "i4", "u4"):
            todo += [_weight_reader(op)]
    while todo:
        op = todo.pop()
        if op is None or op.get_friendly_name() in found or op.get_type_name() in ("Result", "FakeQuantize"):
            continue
        found.add(op.get_friendly_name())
        if op.get_type_name() in MOVES:
            todo += [t.get_node() for out in op.outputs() for t in out.get_target_inputs()]
    return found


def _weight_reader(constant: Any) -> Any:
    """The layer that reads int8 weights through their decompression (Convert, Subtract, Multiply, Reshape)."""
    op = constant
    while True:
        targets = [t.get_node() for t in op.output(0).get_target_inputs()]
        if not targets:
            return None
        op = targets[0]
        if not taps.constant_valued(op.output(0)):
            return op


def _marks(backend: LayerBackend, float_xml: Path, feed: Mapping[str, np.ndarray]) -> Keeper:
    from gnaexp.layers.marks import marked_model

    keeper = Keeper("precision marks", None, check_honoured=True,
                    notes=[f"kept at f32 by OpenVINO's per-node precision mark (the IR's 'precise' attribute) on "
                           f"{backend.device}"])

    def run(kept: tuple[str, ...]) -> Outputs:
        model, not_taken = marked_model(float_xml, kept)
        keeper.refused.update(not_taken)
        return runners.outputs_of(model, backend, feed)
    keeper.run = run
    return keeper


def _emulated(float_xml: Path, feed: Mapping[str, np.ndarray], settings: GnaSettings) -> Keeper:
    if settings.precision != "i8":
        return Keeper("none", None, notes=[
            "gna-emu runs every weight layer with int16 weights already (precision i16), the most GNA has: no "
            "layer can be kept at a higher precision; its error is the scale factors' and the activations' "
            "(--set precision=i8 bisects int8 weights per layer)"])
    from gnaexp.emulator.api import emulate

    model = runners.read(float_xml)
    keys = {name: taps.key_of(r.input_value(0)) for r in model.get_results() for name in r.input_value(0).get_names()}

    def run(kept: tuple[str, ...]) -> Outputs:
        emulation = emulate(float_xml, feed, settings=dataclasses.replace(settings, int16_layers=kept))
        return {keys[name]: np.asarray(value, dtype=np.float32) for name, value in emulation.outputs.items()
                if name in keys}
    return Keeper("int16 weights", run, allowed=lambda row: row.op == "MatMul",
                  notes=["kept at int16 weights under precision i8 (the plugin's per-layer choice from a weight "
                         "FakeQuantize's levels); only fully connected layers are candidates: convolutions stay "
                         "int16 on the GNA 3.0 target whatever is asked (emulator/quantize.py weight_precision_for)"])
