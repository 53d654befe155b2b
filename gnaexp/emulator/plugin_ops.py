"""What the GNA plugin of OpenVINO 2023.1.0 does with op types the emulator does not run (yet), and its words
when it refuses one: the support report cites these. Paths are in the openvino repository at that tag.

An op the plugin accepts but the emulator does not model is reported as refused *by the emulator*, with what
the plugin would do; any other op is refused *by the plugin*: its transformed model is checked op by op
[S: src/plugins/intel_gna/src/backend/gna_limitations.cpp ``Limitations::is_op_supported``,
``check_all_ops_supported``] and an op outside its list stops the load with "The plugin does not support
layer NAME (type TYPE)!".
"""

from __future__ import annotations

TAG = "2023.1.0"
LIMITATIONS = "src/plugins/intel_gna/src/backend/gna_limitations.cpp"
GRAPH_UTILS = "src/plugins/intel_gna/src/common/graph_utils.hpp"
PIPELINE = "src/plugins/intel_gna/src/gna_transformations_pipeline.cpp"
TRANSFORMS = "src/plugins/intel_gna/src/transformations/"

_PWL = (f"a PWL activation in the plugin (is_activation, {GRAPH_UTILS}; designed in "
        f"{TRANSFORMS}pwl_approximation.cpp)")

# op type → (what the plugin does with it, source)
PLUGIN_RUNS: dict[str, tuple[str, str]] = {
    "Sign": (_PWL, GRAPH_UTILS),
    "Abs": (_PWL, GRAPH_UTILS),
    "ReadValue": ("a memory layer (state kept on the device between inferences)", LIMITATIONS),
    "Assign": ("a memory layer (state kept on the device between inferences)", f"{TRANSFORMS}insert_copy_layer.cpp"),
    "TensorIterator": ("unrolled into its body, once per iteration (UnrollTensorIterator)", PIPELINE),
}


def plugin_refusal(op_type: str, name: str) -> tuple[str, str]:
    """(the plugin's message, its source) for an op the 2023.1 plugin does not support."""
    return (f"\"The plugin does not support layer {name} (type {op_type})!\"",
            f"{LIMITATIONS} (Limitations::check_all_ops_supported) @{TAG}")
