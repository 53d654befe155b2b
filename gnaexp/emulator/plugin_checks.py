"""The GNA plugin's concat checks and where it inserts a ConcatAlignFilter (docs/gna-rules.md §3.5).

Each takes a Concat node and what the plan knows of its inputs (sample shape, whether a GNA layer produced the
data). The axis checks return notes and change no number; ``concat_align_filter_inputs`` says which inputs get
a filter, which ``graph`` then runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np


CONCAT_ALIGNMENT_BYTES = 64


def concat_align_filter_inputs(tis: list[Any]) -> list[tuple[int, int, int]]:
    """The concat inputs that get a ConcatAlignFilter: (index, byte offset, byte size) of each.

    ``InsertConcatAligningFilterPass`` (gna_pass_manager.cpp), 2 bytes per element, each input's size the
    product of its dimensions after the first: an input produced by a GNA layer (a network input is copied by
    the host and needs none) gets an aligning affine filter when its offset in the concat is not a multiple of
    64 bytes, or when its size is not and the next input is also produced by a GNA layer. ``graph`` runs the
    filter's requantization (§3.5).
    """
    found = []
    offset = 0
    for i, t in enumerate(tis):
        size = int(np.prod(t.shape[1:])) * 2
        produced = not (t.from_input and t.param is not None)
        next_produced = i + 1 < len(tis) and not (tis[i + 1].from_input and tis[i + 1].param is not None)
        if produced and (offset % CONCAT_ALIGNMENT_BYTES or (size % CONCAT_ALIGNMENT_BYTES and next_produced)):
            found.append((i, offset, size))
        offset += size
    return found


def conv_concat_axis_warning(node: Any, dims: tuple[int, ...], from_conv: list[bool]) -> list[str]:
    """The plugin's check of a concat of convolution outputs (``ValidateConvConcatAxis``, gna_limitations.cpp).

    For the first input that a convolution produced (activations and reshapes in between are skipped): a concat
    on axis 0 is allowed; otherwise the dimensions are put in NHWC order (the order a GNA convolution writes)
    and any dimension > 1 before the axis makes the concat unsupported. The graph compiler (``ConcatPrimitive``)
    only prints a warning at log level WARNING and builds the concat anyway. The convolutions' outputs are
    interleaved in memory, so a device then places each input's block after the other while the model means
    a per-position concat: the emulator computes the concat as written and names the difference [I: a 3-D
    (N, C, W) tensor is treated as NCHW with H = 1].
    """
    if not any(from_conv) or len(dims) < 3:
        return []
    axis = int(node.attrs["axis"]) % len(dims)
    if axis == 0:
        return []
    if len(dims) == 4:
        nhwc, where = [dims[0], dims[2], dims[3], dims[1]], {1: 3, 2: 1, 3: 2}[axis]
    else:
        nhwc, where = [dims[0], dims[2], dims[1]], {1: 2, 2: 1}[axis]
    if any(d > 1 for d in nhwc[:where]):
        return [f"concat {node.name!r} of convolution outputs on axis {node.attrs['axis']} with input dimensions "
                f"{tuple(dims)}: the GNA plugin reports it as not supported (gna_limitations.cpp "
                "ValidateConvConcatAxis) but only warns; a device stores each convolution's interleaved output as "
                "one block, so the concat it builds is not the per-position concat the model means. The emulator "
                "computes the concat as written [I]"]
    return []


def concat_axis_warning(node: Any, tis: list[Any]) -> list[str]:
    """The GNA plugin's concat-axis check (``backend/gna_limitations.cpp`` ``ValidateConcatAxis``, 2022.3–2023.x).

    For a concat not fed by convolutions (those are checked when the concat primitive is built): a concat is
    trivial when every dimension before its axis is 1; otherwise, with the batch dimension moved last, any
    dimension > 1 before the axis makes it "not supported". The plugin only *warns* (``AreLayersSupported``
    logs the message and loads the network), so the emulator computes the concat as written and says so [I:
    what a device then computes is not established].
    """
    if any(t.root is not None for t in tis):  # an input comes from a weightable layer (conv/FC)
        return []
    dims = list(tis[0].shape)
    if len(dims) < 2:
        return []
    axis = int(node.attrs["axis"]) % len(dims)
    if axis > 0 and all(d == 1 for d in dims[:axis]):
        return []
    if axis == 0 and all(t.from_input and t.shape[0] == 1 for t in tis):
        return []  # network inputs (and constants) only: supported
    rotated = dims[1:] + dims[:1]
    axis = len(dims) - 1 if axis == 0 else axis - 1
    if any(d > 1 for d in rotated[:axis]):
        return [f"concat {node.name!r}: the GNA plugin warns that concatenation axis {node.attrs['axis']} for input "
                f"dimensions {tuple(dims)} is not supported (gna_limitations.cpp ValidateConcatAxis) and loads the "
                "network anyway; the emulator concatenates as written — a device may lay this concat out "
                "differently [I]"]
    return []
