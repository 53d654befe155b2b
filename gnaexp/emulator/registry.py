"""The plan builder's op handlers, one per op type: each receives the build context and the node
(``handler(ctx, node)``, see ``context.py``) and appends the node's integer steps. A new op is one handler
here; an op without one is refused by the IR reader before any plan is built."""

from __future__ import annotations

from typing import Callable

from gnaexp.emulator import activations, eltwise, memory, pooling, porting, weightable
from gnaexp.emulator.context import BuildContext
from gnaexp.emulator.ir_reader import ACTIVATION_OPS, ELTWISE_OPS, HOST_OPS, Node
from gnaexp.emulator.moves import MOVE_OPS

Handler = Callable[[BuildContext, Node], None]

HANDLERS: dict[str, Handler] = {
    **{op: memory.add_move for op in MOVE_OPS},
    "Concat": memory.add_concat,
    "FakeQuantize": activations.add_fake_quantize,
    "Relu": activations.add_relu,
    "PRelu": activations.add_relu,
    "Clamp": activations.add_clamp,
    **{op: activations.add_step for op in ACTIVATION_OPS - {"Relu"}},
    **{op: eltwise.add_step for op in ELTWISE_OPS},
    "ScaleShift": eltwise.add_scaleshift,
    **{op: porting.host_step for op in HOST_OPS},
    "Convolution": weightable.add_conv,
    "MatMul": weightable.add_fc,
    "MaxPool": pooling.add_maxpool,
}
