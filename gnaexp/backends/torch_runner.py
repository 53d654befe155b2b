"""PyTorch FP32: the reference every other backend is compared with."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnaexp.backends.base import Backend, BackendUnavailable, ModelBundle


class TorchBackend(Backend):
    name = "torch"
    kind = "reference"

    def check_available(self) -> None:
        # Found, not imported (a second of CPU): a run whose torch reference is cached never needs it.
        from importlib.util import find_spec

        if find_spec("torch") is None:
            from gnaexp.models.ir import TORCH_INSTALL

            raise BackendUnavailable(f"the torch backend needs PyTorch, which is not installed here: {TORCH_INSTALL}; "
                                     "or use openvino:CPU as the reference") from None

    def _run(self, model: ModelBundle, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        import torch

        if model.torch_module is None:
            raise BackendUnavailable(
                f"model {model.name!r} has no torch module (it was loaded from a file); use openvino:CPU as the reference"
            )
        names = model.input_names or sorted(inputs)
        with torch.no_grad():
            out = model.torch_module(*[torch.from_numpy(inputs[n]) for n in names])
        outs = out if isinstance(out, (tuple, list)) else [out]
        out_names = model.output_names or [f"output{i}" for i in range(len(outs))]
        info = {"torch": torch.__version__, "dtype": "float32", "threads": torch.get_num_threads()}
        return {n: o.detach().cpu().numpy() for n, o in zip(out_names, outs)}, info
