"""Memory layers (ReadValue/Assign): recurrent state the GNA keeps on the device between inferences.

The 2023.1 plugin makes each ReadValue/Assign pair of one variable a pair of memory layers over one int16 buffer
[S: src/plugins/intel_gna/src/gna_graph_compiler.cpp, memory layers; src/plugins/intel_gna/src/memory/]. Its
scale factor is the one of the layer that writes the state: when the Assign's input scale differs from the
ReadValue's, the ReadValue takes it and propagation restarts from there; when it differs again, the activation
before the Assign is requantized to the state's scale, and with no activation there the load stops with "cannot
requantize input to ..." [S: src/plugins/intel_gna/src/frontend/scale_factor_calc.cpp, ``isMemory`` in
``ScaleFactorPerLayer<CNNLayer*>`` @2023.1.0]. A 32-bit value written to memory goes through an inserted identity
first, as any 16-bit reader [I].

The emulator reads the pair as a state input (a Parameter named ``memory:VARIABLE``) and the tensor the Assign
writes, which the plan returns next to the outputs; ``emulate`` gives the state back in ``Emulation.state`` and
the gna-emu backend's stepper carries it from one inference to the next. Each inference of a batch starts from
the initial state (the ReadValue's constant initializer, else zeros) unless the state input is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gnaexp.core.errors import BadInput

MEMORY_PREFIX = "memory:"
SOURCE = "src/plugins/intel_gna/src/frontend/scale_factor_calc.cpp (memory layers) @2023.1.0"


@dataclass
class Memory:
    variable: str
    initial: np.ndarray  # the state before the first inference


def explicit(model: Any) -> tuple[Any, dict[str, Memory]]:
    """``model`` with each ReadValue replaced by a Parameter ``memory:VAR`` and each Assign by a Result of what it
    writes (friendly name ``memory:VAR``); the model itself is not changed.
    Returns (model, {parameter name: Memory})."""
    if not model.get_sinks() and not any(op.get_type_name() == "ReadValue" for op in model.get_ops()):
        return model, {}
    import openvino as ov
    import openvino.opset8 as ops

    model = model.clone()
    params, results, memory = list(model.get_parameters()), list(model.get_results()), {}
    for op in model.get_ordered_ops():
        if op.get_type_name() == "ReadValue":
            var = op.get_variable_id()
            shape = op.get_output_partial_shape(0)
            init = op.input_value(0).get_node() if op.get_input_size() else None
            constant = init if init is not None and init.get_type_name() == "Constant" else None
            initial = np.array(constant.get_data(), dtype=np.float32) if constant is not None else \
                np.zeros(shape.to_shape() if shape.is_static else (), np.float32)
            param = ops.parameter(shape, op.get_output_element_type(0), name=MEMORY_PREFIX + var)
            param.output(0).get_tensor().set_names({MEMORY_PREFIX + var})
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(param.output(0))
            params.append(param)
            memory[MEMORY_PREFIX + var] = Memory(var, initial)
    for sink in list(model.get_sinks()):
        if sink.get_type_name() == "Assign":
            result = ops.result(sink.input_value(0))
            result.set_friendly_name(MEMORY_PREFIX + sink.get_variable_id())
            results.append(result)
    written = {r.get_friendly_name()[len(MEMORY_PREFIX):] for r in results
               if r.get_friendly_name().startswith(MEMORY_PREFIX)}
    unpaired = {m.variable for m in memory.values()} - written
    if unpaired:
        raise BadInput(f"memory variable(s) {sorted(unpaired)} are read (ReadValue) but never written (Assign); "
                         "the GNA plugin pairs each ReadValue with the Assign of the same variable")
    return ov.Model(results, params, model.get_friendly_name()), memory


def support_row(memory: Memory) -> dict[str, str]:
    """The support report's row for one memory pair."""
    return {"op": "ReadValue/Assign", "name": memory.variable, "status": "native",
            "how": "memory layers: the state stays on the device as int16 between inferences, at the scale factor "
                   "of the layer that writes it (the activation before the Assign is requantized to it when needed)",
            "source": SOURCE}
