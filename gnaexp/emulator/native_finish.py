"""A convolution's sums finished in registers where each sample has four positions: the bias added, int32
saturation counted and applied, and the (windows × filters) sums turned into the primitive's (filters ×
positions) layout, eight filters at a time.

Why: the matrix product gives a window's sums for consecutive filters, the primitive's output holds a filter's
positions together, so finishing value by value wrote each one 32 bytes from the last (0.8 ns a value: Silero
VAD's STFT and first convolution, 0.2 ms a step of 125 streams). Here the four windows of a sample give four
registers of eight filters, shuffled into four registers of two filters' four positions, stored whole. The
arithmetic is ``native._finish_columns``'s: float64 sum plus bias, compared with the int32 bounds, clamped.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from gnaexp.emulator.int_ranges import INT32_MAX, INT32_MIN

LANES = 8  # filters a block (float64 lanes of one AVX-512 register)
POSITIONS = 4  # windows of a sample a block takes
INT32_MIN_FLOAT, INT32_MAX_FLOAT = float(INT32_MIN), float(INT32_MAX)


@intrinsic
def _finish_block(typingctx, acc, row, column, bias, filt, out, sample):
    """out[sample, filt + l, j] = sat32(acc[row + j, column + l] + bias[filt + l]) for j < 4, l < 8 (out's last
    two axes contiguous); returns how many of the 32 sums saturated."""
    sig = types.int64(acc, types.intp, types.intp, bias, types.intp, out, types.intp)

    def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
        i8, i32, i64, f64 = ir.IntType(8), ir.IntType(32), ir.IntType(64), ir.DoubleType()
        vd, vi = ir.VectorType(f64, LANES), ir.VectorType(i64, LANES)
        acc_a, bias_a, out_a = (context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 3, 5))
        row, column, filt, sample = args[1], args[2], args[4], args[6]
        element = context.get_data_type(signature.args[0].dtype)
        acc_base = builder.bitcast(acc_a.data, i8.as_pointer())
        acc_stride = builder.extract_value(acc_a.strides, 0)

        def shuffle(a, b, lanes):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, LANES), lanes))

        bias_v = builder.load(builder.bitcast(builder.gep(builder.bitcast(bias_a.data, f64.as_pointer()), [filt]),
                                              vd.as_pointer()))
        bias_v.align = 8
        hi = ir.Constant(vd, [float(INT32_MAX)] * LANES)
        lo = ir.Constant(vd, [float(INT32_MIN)] * LANES)
        count = ir.Constant(vi, [0] * LANES)
        rows = []
        for j in range(POSITIONS):
            start = builder.add(builder.mul(builder.add(row, ir.Constant(i64, j)), acc_stride),
                                builder.mul(column, ir.Constant(i64, element.get_abi_size(context.target_data))))
            sums = builder.load(builder.bitcast(builder.gep(acc_base, [start]), ir.VectorType(element, LANES)
                                                .as_pointer()))
            sums.align = element.get_abi_size(context.target_data)
            value = builder.fadd(sums if element == f64 else builder.sitofp(sums, vd), bias_v)
            over, under = builder.fcmp_ordered(">", value, hi), builder.fcmp_ordered("<", value, lo)
            count = builder.add(count, builder.zext(builder.or_(over, under), vi))
            rows.append(builder.select(over, hi, builder.select(under, lo, value)))
        # (4 windows × 8 filters) → (8 filters × 4 windows): pairs of windows interleaved, then pairs of pairs
        low, high = [0, 8, 1, 9, 2, 10, 3, 11], [4, 12, 5, 13, 6, 14, 7, 15]
        a, b = shuffle(rows[0], rows[1], low), shuffle(rows[0], rows[1], high)
        c, d = shuffle(rows[2], rows[3], low), shuffle(rows[2], rows[3], high)
        first, second = [0, 1, 8, 9, 2, 3, 10, 11], [4, 5, 12, 13, 6, 7, 14, 15]
        blocks = [shuffle(a, c, first), shuffle(a, c, second), shuffle(b, d, first), shuffle(b, d, second)]
        out_start = builder.add(builder.mul(sample, builder.extract_value(out_a.strides, 0)),
                                builder.mul(filt, builder.extract_value(out_a.strides, 1)))
        out_base = builder.gep(builder.bitcast(out_a.data, i8.as_pointer()), [out_start])
        out_ptr = builder.bitcast(out_base, f64.as_pointer())
        for k, block in enumerate(blocks):
            store = builder.store(block, builder.bitcast(builder.gep(out_ptr, [ir.Constant(i64, k * LANES)]),
                                                         vd.as_pointer()))
            store.align = 8
        reduce = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [vi]),
                                                f"llvm.vector.reduce.add.v{LANES}i64")
        return builder.call(reduce, [count])

    return sig, codegen


@njit(nogil=True, cache=True)
def finish_four(acc, cols, bias, out):  # pragma: no cover - compiled
    """``native._finish_columns`` for four positions a sample, all kept (out: (N, F, 4), its last two axes
    contiguous; filters past F counted, not written): column q of acc is filter cols[q]; runs of eight
    consecutive kept filters go through registers, the rest value by value. Returns the saturated count."""
    n, kept_filters = out.shape[0], out.shape[1]
    columns = cols.shape[0]
    saturated = 0
    for i in range(n):
        q = 0
        while q < columns:
            if q + LANES <= columns and cols[q + LANES - 1] - cols[q] == LANES - 1 and \
                    cols[q + LANES - 1] < kept_filters:
                saturated += _finish_block(acc, i * POSITIONS, q, bias, cols[q], out, i)
                q += LANES
                continue
            f = cols[q]
            for j in range(POSITIONS):
                a = np.float64(acc[i * POSITIONS + j, q]) + bias[f]
                saturated += (1 if a > INT32_MAX_FLOAT else 0) + (1 if a < INT32_MIN_FLOAT else 0)
                if f < kept_filters:
                    out[i, f, j] = min(max(a, INT32_MIN_FLOAT), INT32_MAX_FLOAT)
            q += 1
    return saturated

