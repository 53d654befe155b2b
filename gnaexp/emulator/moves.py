"""Data-movement operations: they copy int16/int32 values without arithmetic, so they are exact on GNA.

The plugin runs them as memory views, crops or copy layers; which one does not change any value, so the
emulator applies them on the logical (NCW) arrays. Layout mistakes are modelled separately (hypotheses).
Every function takes the constant inputs of the op as ``args`` (IR input order after the data input).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from gnaexp.core.errors import BadInput

MOVE_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Gather", "Slice", "Crop", "ZeroPad"}


def _reshape_target(in_shape: tuple[int, ...], target: np.ndarray | None, special_zero: bool) -> tuple[int, ...]:
    if target is None:
        raise BadInput("Reshape: its target shape must be a constant (the emulator does not compute shapes); "
                       "export the model with static shapes")
    out = [int(v) for v in np.asarray(target).reshape(-1)]
    if special_zero:
        out = [in_shape[i] if v == 0 else v for i, v in enumerate(out)]
    if -1 in out:
        known = int(np.prod([v for v in out if v != -1])) or 1
        out[out.index(-1)] = int(np.prod(in_shape)) // known
    return tuple(out)


def _arg(args: Sequence[np.ndarray | None], i: int) -> np.ndarray | None:
    return args[i] if len(args) > i else None


def _slices(op: str, attrs: dict[str, Any], shape: tuple[int, ...], args: Sequence) -> list[slice]:
    """Per-axis slices of a Slice (start, stop, step[, axes]) or a Crop (attrs axis/start/stop)."""
    out = [slice(None)] * len(shape)
    if op == "Crop":
        out[int(attrs["axis"]) % len(shape)] = slice(int(attrs["start"]), int(attrs["stop"]))
        return out
    start, stop, step = (np.asarray(a).reshape(-1) for a in args[:3])
    axes = np.asarray(args[3]).reshape(-1) if _arg(args, 3) is not None else np.arange(len(start))
    big = np.iinfo(np.int64).max // 2
    for a, b, e, s in zip(axes, start, stop, step):
        out[int(a) % len(shape)] = slice(int(b), None if int(e) >= big else int(e), int(s))
    return out


def move_shape(op: str, attrs: dict[str, Any], shape: tuple[int, ...], args: Sequence[np.ndarray | None]) -> tuple[int, ...]:
    """Output shape of a data-movement op on a tensor of ``shape`` (no sample axis)."""
    if op == "Reshape":
        return _reshape_target(shape, args[0], bool(attrs.get("special_zero", False)))
    return apply_move(op, attrs, np.zeros(shape, dtype=np.int8), args, batched=False).shape


def apply_move(op: str, attrs: dict[str, Any], x: np.ndarray, args: Sequence[np.ndarray | None],
               batched: bool) -> np.ndarray:
    """Apply a data-movement op; with ``batched`` the first axis is the emulator's sample axis."""
    lead = 1 if batched else 0
    shape = x.shape[lead:]
    if op == "Transpose":
        perm = [int(p) for p in np.asarray(args[0]).reshape(-1)]
        return np.transpose(x, list(range(lead)) + [p + lead for p in perm])
    if op == "Reshape":
        return x.reshape(x.shape[:lead] + _reshape_target(shape, args[0], bool(attrs.get("special_zero", False))))
    if op == "Squeeze":
        arg = _arg(args, 0)
        if arg is None:
            return x.reshape(x.shape[:lead] + tuple(d for d in shape if d != 1))
        squeezed = {int(a) % len(shape) for a in np.asarray(arg).reshape(-1)}
        return x.reshape(x.shape[:lead] + tuple(d for i, d in enumerate(shape) if i not in squeezed or d != 1))
    if op == "Unsqueeze":
        axes = np.asarray(args[0]).reshape(-1)
        rank = len(shape) + len(axes)
        new = list(shape)
        for a in sorted(int(a) % rank for a in axes):
            new.insert(a, 1)
        return x.reshape(x.shape[:lead] + tuple(new))
    if op == "Gather":
        axis = int(np.asarray(args[1]).reshape(-1)[0]) % len(shape)
        return np.take(x, np.asarray(args[0]).astype(np.int64), axis=axis + lead)
    if op in ("Slice", "Crop"):
        return x[(slice(None),) * lead + tuple(_slices(op, attrs, shape, args))]
    if op == "ZeroPad":
        widths = [(0, 0)] * lead + list(zip(attrs["pads_begin"], attrs["pads_end"]))
        return np.pad(x, widths)
    raise BadInput(op)


def move_function(op: str, attrs: dict[str, Any], shape: tuple[int, ...],
                  args: Sequence[np.ndarray | None]) -> Callable[[np.ndarray], np.ndarray]:
    """``apply_move`` on batched data of sample shape ``shape``, with its constants read once: the function a
    plan step calls on every run (a stream runs each step once per frame). The same values as ``apply_move``."""
    out_shape = move_shape(op, attrs, shape, args)
    if op in ("Reshape", "Squeeze", "Unsqueeze"):
        return lambda x: x.reshape((x.shape[0],) + out_shape)
    if op == "Transpose":
        perm = (0,) + tuple(int(p) + 1 for p in np.asarray(args[0]).reshape(-1))
        return lambda x: x.transpose(perm)
    if op == "Gather":
        index = np.asarray(args[0]).astype(np.int64)
        axis = int(np.asarray(args[1]).reshape(-1)[0]) % len(shape) + 1
        return lambda x: np.take(x, index, axis=axis)
    if op in ("Slice", "Crop"):
        window = (slice(None),) + tuple(_slices(op, attrs, shape, args))
        return lambda x: x[window]
    if op == "ZeroPad" and min(list(attrs["pads_begin"]) + list(attrs["pads_end"])) >= 0:
        inside = (slice(None),) + tuple(slice(int(b), int(b) + d) for b, d in zip(attrs["pads_begin"], shape))

        def pad(x: np.ndarray) -> np.ndarray:
            out = np.zeros((x.shape[0],) + out_shape, dtype=x.dtype)
            out[inside] = x
            return out
        return pad
    return lambda x: apply_move(op, attrs, x, args, True)
