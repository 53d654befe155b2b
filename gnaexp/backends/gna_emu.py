"""The GNA integer emulator as a backend (``gna-emu``). Its results are labelled *emulated*, never measured."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from gnaexp.backends.base import Backend, BackendUnavailable, ModelBundle
from gnaexp.core.gna_settings import GnaSettings


class GnaEmuBackend(Backend):
    """Runs the model's IR through ``gnaexp.emulator.emulate`` with the plugin's quantization rules."""

    name = "gna-emu"
    kind = "emulated"

    def __init__(self, settings: GnaSettings | None = None) -> None:
        self.gna = settings or GnaSettings()

    def settings(self) -> dict[str, Any]:
        return self.gna.to_json()

    def _ir(self, model: ModelBundle) -> str:
        if model.ir_xml is None:
            raise BackendUnavailable(
                f"model {model.name!r} has no IR: the emulator runs the OpenVINO IR the GNA plugin would receive; "
                "convert the model first (gnaexp.models.ir.convert_torch + gnaexp.models.ir.save)"
            )
        return str(model.ir_xml)

    def stepper(self, model: ModelBundle) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
        """The plan is built once (static input shapes); each call runs it. Inputs may carry a leading axis of
        N independent samples (e.g. N audio streams), computed together and bit-identical to one at a time."""
        from gnaexp.emulator.api import load_program, prepare_inputs
        from gnaexp.emulator.graph import build_plan

        prog = load_program(self._ir(model), porting=self.gna.porting)
        if any(d is None for _, _, shape in prog.params for d in shape):
            return super().stepper(model)
        plan = build_plan(prog, {k: tuple(s) for k, _, s in prog.params}, self.gna)
        self.plan = plan
        self.saturations: dict[str, int] = {}  # per layer, summed over every step run so far

        memory = {names[0]: key for key, names, _ in prog.params if key in prog.memory}
        carried: dict[str, np.ndarray] = {}  # memory layers: the state each step leaves for the next, (N, *shape)

        def step(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            feeds, _, batched = prepare_inputs(prog, inputs)  # a state not carried yet: the initial one
            feeds.update({memory[name]: state for name, state in carried.items() if name not in inputs})
            outs, sats, _ = plan.run(feeds)
            for layer, n in sats.items():
                self.saturations[layer] = self.saturations.get(layer, 0) + n
            for name in memory:
                carried[name] = outs.pop(name)  # (N, *shape): the next step reads it
            return {k: np.asarray(v if batched else v[0], dtype=np.float32) for k, v in outs.items()}
        return step

    def described_inputs(self, fed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Every step at once, as a batch: the same numbers as the stream, with the plan's counts over all of it
        return dict(fed)

    def _run(self, model: ModelBundle, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from gnaexp.emulator import emulate

        em = emulate(self._ir(model), inputs, settings=self.gna)
        info = em.to_json()
        info["input_scale_factors_used"] = info.pop("input_scale_factors")
        return em.outputs, info
