"""The one object every op handler of the plan builder receives (see ``registry.py``).

A handler reads the graph (``prog``), the configuration (precision, layout, porting, concat ``overrides``) and
what is known of every tensor (``info``), and appends its integer ``steps`` and ``notes``. The helpers are the
plugin's implicit layers that any handler may need on its input: ``get`` (a tensor's current key), ``need16``
(16-bit data: an inserted identity on a 32-bit output, or the input quantization after host pre-processing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from gnaexp.emulator import pwl as pw
from gnaexp.emulator.ir_reader import Program
from gnaexp.emulator.plan_row import Extras, Lane, PlanRow
from gnaexp.emulator.plan_types import Lowered, Step, TInfo
from gnaexp.emulator.quantize import quantize_input
from gnaexp.emulator.releases import DEFAULT, PluginRelease


class Requantize(Exception):
    """A concat needs an activation above it at another scale factor: the plan is built again with it."""

    def __init__(self, layer: str, sf: float, note: str):
        super().__init__(layer)
        self.layer, self.sf, self.note = layer, sf, note


@dataclass
class BuildContext:
    prog: Program
    precision: str
    layout: str
    porting: bool
    overrides: Mapping[str, float]  # activation name → output scale factor forced by a concat
    release: PluginRelease = DEFAULT  # the plugin release whose rounding the tables follow
    int16_layers: frozenset[str] = frozenset()  # weights kept int16 under precision i8 (GnaSettings.int16_layers)
    steps: list[Step] = field(default_factory=list)
    info: dict[str, TInfo] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    alias: dict[str, str] = field(default_factory=dict)  # IR tensor key → the key that holds its values now
    input_fq: set[str] = field(default_factory=set)  # FakeQuantize nodes that only set an input's scale factor
    _quantized: dict[str, str] = field(default_factory=dict)
    _identities: dict[tuple[str, str], str] = field(default_factory=dict)

    def weight_precision(self, layer: str) -> str:
        """The weight precision hint of one layer: the configured one, or int16 for a layer kept at int16."""
        return "i16" if layer in self.int16_layers else self.precision

    def get(self, key: str) -> str:
        return self.alias.get(key, key)

    def quantize_step(self, key: str, src: str, names: list[str], sf: float, after_host: bool) -> str:
        """The input quantization of a network input (after its host pre-processing, if any)."""
        def q_run(x, sf=sf, name=repr(names[0])):
            return quantize_input(x, sf, name)

        self.steps.append(Step("input", names[0], [src], key + "#q", q_run,
                               PlanRow(names[0], "Parameter" + (" (after host pre-processing)" if after_host else ""),
                                       "i16", Lane.INT16, None, None, sf), Lowered("quant", scalars=(sf,))))
        return key + "#q"

    def need16(self, key: str, for_result: bool = False) -> str:
        """16-bit data for a layer that reads it: an identity PWL on a 32-bit output (InsertIdentity), or the
        input quantization of host float data entering the GNA part."""
        k = self.get(key)
        ti = self.info[k]
        if ti.lane is Lane.INT16:
            return k
        if ti.lane is Lane.HOST:  # host float data entering the GNA part: the input quantization happens here
            if k not in self._quantized:
                names = next(n for p, n, _ in self.prog.params if p == ti.param)
                q = self.quantize_step(k, k, names, ti.sf, True)
                self.info[q] = TInfo(ti.sf, Lane.INT16, ti.shape, from_input=True, param=ti.param)
                self._quantized[k] = q
            return self._quantized[k]
        name = f"{ti.root}/identity" + ("_output" if for_result else "")
        if (k, name) in self._identities:
            return self._identities[(k, name)]
        out_sf = self.overrides.get(name, pw.identity_out_scale(ti.sf))
        curve = pw.build_identity(ti.sf, out_sf, release=self.release)
        new = f"{k}#{name}"
        self.steps.append(Step("pwl", name, [k], new, pw.evaluator(curve),
                               PlanRow(name, "Identity (inserted)", "i16", Lane.INT16, ti.sf, None, out_sf,
                                       Extras(pwl=curve.to_json())), pw.lowered(curve)))
        self.info[new] = TInfo(out_sf, Lane.INT16, ti.shape, act=name)
        self._identities[(k, name)] = new
        return new
