"""A convolution lowered to a row of the compiled plan's loop (native_conv.py): whether it can be, and its
description (native_conv.CONV_* fields) in the plan's parameter pools: its window index or layout, its packed
int16 weights, bias and peak limit."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnaexp.emulator.plan_types import Pools


def conv_lowerable(low: Any) -> bool:
    """Whether a convolution runs as a row of the compiled loop: where its sums run as the int16 product (long
    filters, int16 weights, an x86 processor with the instruction) and a sample beyond the product's limit can
    be split into bytes (``conv.ConvKernel.product``); else it stays a Python step."""
    from gnaexp.emulator import native_gemm

    kernel = low.kernel
    return (native_gemm.LANES is not None and kernel.blas and kernel.int_weights is not None
            and all(w.splits for w in kernel.int_weights))


def conv_description(low: Any, pools: Pools, source: np.ndarray | None = None, width: int = 0) -> int:
    """A convolution's parameters in the pools; the offset of its description in the index pool (native_conv.CONV_*
    name the fields). ``source``: where its windows read each input value (and, last, its padding's zero) in a
    row of ``width`` values (a gather it runs), else its input itself."""
    from gnaexp.emulator import native_conv

    kernel, (length, keep, kept_filters) = low.kernel, (int(v) for v in low.scalars)
    groups = kernel.int_weights
    desc = [0] * native_conv.CONV_FIELDS
    desc[native_conv.CONV_POSITIONS], desc[native_conv.CONV_KEEP] = kernel.positions, keep
    desc[native_conv.CONV_LENGTH], desc[native_conv.CONV_FILTERS] = length if source is None else width, \
        kernel.weights.shape[1]
    desc[native_conv.CONV_KEPT_FILTERS] = kept_filters
    desc[native_conv.CONV_FOLD] = int(kernel.fold is not None)

    def reading(index: np.ndarray) -> np.ndarray:
        return index if source is None else np.ascontiguousarray(source[index])

    if kernel.fold is None:  # one index: its "second taps" name the same
        index = reading(kernel._window_index(length))
        first, second = index, None
        desc[native_conv.CONV_FIRST] = desc[native_conv.CONV_SECOND] = pools.add(0, index)
    else:
        first, second = (reading(i) for i in kernel._pair_index(kernel.fold, length))
        index = first
        desc[native_conv.CONV_FIRST], desc[native_conv.CONV_SECOND] = pools.add(0, first), pools.add(0, second)
        desc[native_conv.CONV_COLUMNS] = pools.add(0, np.concatenate([kernel.fold.symmetric,
                                                                     kernel.fold.antisymmetric]))
        desc[native_conv.CONV_SYMMETRIC] = len(kernel.fold.symmetric)
        desc[native_conv.CONV_ANTISYMMETRIC] = len(kernel.fold.antisymmetric)
    desc[native_conv.CONV_TAPS] = index.shape[1]
    _window_layout(desc, pools, first, second, desc[native_conv.CONV_LENGTH], groups[0].taps)
    for g, group in enumerate(groups):
        at = native_conv.CONV_WEIGHTS + 3 * g
        desc[at], (desc[at + 1], desc[at + 2]) = pools.add(2, group.wt), group.wt.shape
    desc[native_conv.CONV_BIAS] = pools.add(1, np.append(kernel.bias, min(w.peak_limit for w in groups)))
    return pools.add(0, np.array(desc, dtype=np.int64))


def _window_layout(desc: list, pools: Pools, first: np.ndarray, second: np.ndarray | None, length: int,
                   taps: int) -> None:
    """A convolution's windows laid out without a gather a value where they can be (native_windows.py): slices of
    a staged row, or a fold's runs."""
    from gnaexp.emulator import native_conv, native_windows

    if second is None:
        layout = native_windows.sliding_layout(first, length, taps)
        if layout is not None:
            stage, desc[native_conv.CONV_STEP] = layout
            desc[native_conv.CONV_STAGE], desc[native_conv.CONV_STAGED] = pools.add(0, stage), len(stage)
            transposed = native_windows.transposition(stage, length)
            if transposed is not None:  # staged by a loop a frame (native_windows.stage_transposed)
                (desc[native_conv.CONV_T_BASE], desc[native_conv.CONV_T_CHANNELS], desc[native_conv.CONV_T_FRAMES],
                 desc[native_conv.CONV_T_LEAD]) = transposed
        return
    runs = native_windows.pair_runs(first, second, length)
    if runs is not None:
        desc[native_conv.CONV_RUNS] = pools.add(0, np.concatenate([runs[0].ravel(), runs[1].ravel()]))
        desc[native_conv.CONV_RUN_COUNT], desc[native_conv.CONV_SINGLE_COUNT] = len(runs[0]), len(runs[1])
