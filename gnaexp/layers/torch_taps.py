"""torch in a per-layer comparison: every module's output (forward hooks), keyed by the OpenVINO layer it became.

OpenVINO's PyTorch frontend names the ops of a module ``__module.<path>/aten::<op>/<Type>`` (``__module.1/
aten::_convolution/Convolution``), ``<path>`` being the module's path in ``named_modules()``. A module's output is
matched to the last op of its group in topological order (a Conv1d is a Convolution and its bias Add: the Add
holds the module's output); the other ops of the group are ``fused`` into the module. The network's outputs are
matched to the root module's output. OpenVINO layers of no module and modules of no layer are named in the notes,
never dropped silently. torch has no local error here (a module alone, fed the reference's tensors, would need
each module's inputs mapped too): its first diverging layer is judged by the accumulated SQNR.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.layers.measured import Measured

PREFIX = "__module."


def module_path(op_name: str) -> str | None:
    """The torch module path an OpenVINO op name carries (None: the op belongs to no module)."""
    return op_name[len(PREFIX):].split("/", 1)[0] if op_name.startswith(PREFIX) else None


def _few(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def run(module: Any, feed: Mapping[str, np.ndarray], input_names: Sequence[str], order: Sequence[tuple[str, str]],
        outputs: Sequence[str], label: str) -> Measured:
    """``module`` run once on ``feed`` with every submodule hooked; ``order``: the OpenVINO layers (key, op) in
    topological order; ``outputs``: the keys of the network outputs, in the module's output order."""
    import torch

    seen: dict[str, Any] = {}
    modules = dict(module.named_modules())
    hooks = [m.register_forward_hook(lambda _m, _i, out, path=path: seen.__setitem__(path, out))
             for path, m in modules.items() if path]
    try:
        with torch.no_grad():
            final = module(*[torch.from_numpy(np.asarray(feed[n])) for n in input_names])
    finally:
        for hook in hooks:
            hook.remove()
    groups: dict[str, list[str]] = {}
    for key, _ in order:
        path = module_path(key)
        if path is not None:
            groups.setdefault(path, []).append(key)
    values: dict[str, np.ndarray] = {}
    fused: dict[str, str] = {}
    not_tensors = []
    for path, keys in groups.items():
        out = seen.get(path)
        if isinstance(out, torch.Tensor):
            values[keys[-1]] = out.detach().cpu().numpy().astype(np.float32)
            fused.update({k: f"torch module {path}" for k in keys[:-1]})
        elif path in seen:
            not_tensors.append(path)
    finals = list(final) if isinstance(final, (tuple, list)) else [final]
    for key, out in zip(outputs, finals):
        if key not in values and isinstance(out, torch.Tensor):
            values[key] = out.detach().cpu().numpy().astype(np.float32)
    notes = ["torch FP32, every module's output by a forward hook, matched to the last OpenVINO layer of that "
             "module; no local error (the first diverging layer is judged by the accumulated SQNR)"]
    no_module = [k for k, _ in order if k not in values and k not in fused]
    if no_module:
        notes.append(f"{len(no_module)} OpenVINO layer(s) match no torch module output: {_few(no_module)}")
    leaves = [p for p, m in modules.items() if p and not any(True for _ in m.children())]
    no_layer = [p for p in leaves if p not in groups]
    if no_layer:
        notes.append(f"{len(no_layer)} torch module(s) have no OpenVINO layer (folded or renamed by the "
                     f"converter): {_few(no_layer)}")
    if not_tensors:
        notes.append(f"module(s) {_few(not_tensors)} return more than one tensor: not compared")
    return Measured(label, "torch", values, None, fused, [], notes, {"device": "torch", "torch": torch.__version__})
