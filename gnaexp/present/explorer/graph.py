"""An OpenVINO model as a Model Explorer graph.

One node per op: its id is the op's friendly name (the name the per-layer table uses), its label the op type,
its namespace the friendly name's '/'-separated path ("__module.1/aten::_convolution/Add" sits in the group
"__module.1/aten::_convolution"), so that a converted network folds into its modules. Edges follow the op
inputs; each node carries its op attributes, and its inputs and outputs their element type and shape.

Constants are not drawn: weights, biases and shape operands would outnumber the ops and hide the data path.
A constant input is listed on its consumer instead (its name, element type and shape). The body of a
TensorIterator, Loop or If is not drawn either: the op is one node.
"""

from __future__ import annotations

from typing import Any

HIDDEN_TYPES = frozenset({"Constant"})
_MAX_ATTR_CHARS = 160  # a long attribute (a large shape list) is cut: the side panel is narrow


def node_ids(model: Any) -> dict[Any, str]:
    """Op → node id for every drawn op of ``model`` (constants left out), in topological order. The id is the
    friendly name; OpenVINO does not require friendly names to be unique, so a repeated one gets "#2", "#3"."""
    ids: dict[Any, str] = {}
    seen: dict[str, int] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() in HIDDEN_TYPES:
            continue
        name = op.get_friendly_name()
        seen[name] = seen.get(name, 0) + 1
        ids[op] = name if seen[name] == 1 else f"{name}#{seen[name]}"
    return ids


def namespace(name: str) -> str:
    """The group path of a friendly name: all but its last '/'-separated part ("" for a plain name)."""
    parts = [p for p in name.split("/") if p]
    return "/".join(parts[:-1])


def tensor_text(element_type: Any, partial_shape: Any) -> str:
    """'f32[1,4,127]' (a dynamic dimension shows as '?')."""
    dims = ",".join("?" if d.is_dynamic else str(d.get_length()) for d in partial_shape) \
        if partial_shape.rank.is_static else "..."
    return f"{element_type.get_type_name()}[{dims}]"


def attribute_text(value: Any) -> str:
    text = ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    if isinstance(value, (list, tuple)):
        text = f"[{text}]"
    return text if len(text) <= _MAX_ATTR_CHARS else text[:_MAX_ATTR_CHARS - 1] + "…"


def build_graph(model: Any, graph_id: str) -> Any:
    """The ``model_explorer.graph_builder.Graph`` of an ``openvino.Model``."""
    from model_explorer import graph_builder as gb

    ids = node_ids(model)
    graph = gb.Graph(id=graph_id)
    for op, node_id in ids.items():
        node = gb.GraphNode(id=node_id, label=op.get_type_name(), namespace=namespace(node_id))
        version = op.get_type_info().version_id
        node.attrs.append(gb.KeyValue(key="op", value=f"{op.get_type_name()} ({version})" if version else
                                      op.get_type_name()))
        for key, value in op.get_attributes().items():
            node.attrs.append(gb.KeyValue(key=key, value=attribute_text(value)))
        for i, port in enumerate(op.inputs()):
            source = port.get_source_output()
            producer = source.get_node()
            item = gb.MetadataItem(id=str(i), attrs=[
                gb.KeyValue(key="tensor_shape", value=tensor_text(port.get_element_type(), port.get_partial_shape()))])
            if producer in ids:
                node.incomingEdges.append(gb.IncomingEdge(sourceNodeId=ids[producer],
                                                          sourceNodeOutputId=str(source.get_index()),
                                                          targetNodeInputId=str(i)))
            else:  # a constant: named here, as it has no node of its own
                item.attrs.append(gb.KeyValue(key="constant", value=producer.get_friendly_name()))
            node.inputsMetadata.append(item)
        for k, out in enumerate(op.outputs()):
            item = gb.MetadataItem(id=str(k), attrs=[
                gb.KeyValue(key="tensor_shape", value=tensor_text(out.get_element_type(), out.get_partial_shape()))])
            names = sorted(out.get_names())
            if names:
                item.attrs.append(gb.KeyValue(key="__tensor_tag", value=", ".join(names)))
            node.outputsMetadata.append(item)
        graph.nodes.append(node)
    return graph
