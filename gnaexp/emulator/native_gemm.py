"""A compiled int16 matrix product in the processor's int16 multiply-add instruction (x86 pmaddwd), for the
convolutions' and fully connected layers' sums.

Why: the float64 product does at most 8 multiply-adds a cycle on a core; pmaddwd multiplies 32 int16 pairs and
adds them pairwise into 16 int32 lanes in one instruction (AVX-512BW; 16 pairs with AVX2), and where the
processor has AVX-512 VNNI the compiler fuses it with the accumulation (vpdpwssd). The lanes hold 16 filters'
sums of one window (a tap pair of the window broadcast, the filters' pairs side by side), so a tile ends in
plain stores. Measured here (Zen 5): 230–260 billion multiply-adds a second on the Silero VAD layers' shapes,
against 120–170 for lanes that each held part of one sum (reduced across the lanes at the end).

Exactness: the int32 lanes wrap, so the product gives each sum modulo 2^32, which is the sum itself whenever its
magnitude is below 2^31 (any order of the additions, intermediate wraps included). ``int_product.IntWeights``
states for which inputs that holds (Σ|w|·max|x| < 2^31); callers split a louder sample into its bytes, or run the
float64 product where even those do not qualify.

The instruction is reached through an LLVM intrinsic of the host's instruction set, so ``LANES`` is None on a
processor without it (or when numba is told to compile for a generic processor) and callers keep the float64
product there. Loaded with native.py, never up front.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic

from gnaexp.emulator.int_product import FILTER_ALIGN, K_ALIGN, ROW_ALIGN


def _host_lanes() -> int | None:
    """int32 lanes of the pmaddwd numba compiles for: 16 (AVX-512BW), 8 (AVX2) or None (no such instruction)."""
    cpu_name, cpu_features = getattr(config, "CPU_NAME", None), getattr(config, "CPU_FEATURES", None)
    if cpu_name not in (None, "host"):  # compiling for another processor: only what it is told it has
        features = cpu_features or ""
    else:
        features = cpu_features or llvm.get_host_cpu_features().flatten()
    flags = set(features.split(","))
    if "+avx512bw" in flags:
        return 16
    if "+avx2" in flags:
        return 8
    return None


LANES = _host_lanes()
# A tile of ROWS windows × COLS registers of filters keeps ROWS·COLS accumulators in registers: 24 of AVX-512's 32,
# 8 of AVX2's 16 (measured here, AVX-512 at K = 128: 6×4 260, 4×4 239, 8×3 246 billion multiply-adds a second).
ROWS, COLS = (6, 4) if LANES == 16 else (2, 4)
assert ROW_ALIGN % ROWS == 0 and FILTER_ALIGN % (LANES or 16) == 0 and K_ALIGN == 2


def _tile_intrinsic(rows: int, cols: int, lanes: int):  # pragma: no cover - runs inside numba's compiler
    """tile(x, wp, out, r, f): out[r + i, f + l] = Σ_k x[r + i, k]·w[f + l, k] mod 2^32 for i < rows, l < cols·lanes;
    x (R, K) int16 with K even, wp the weights ``int_product.pack``ed, out (R, F) int32, all C-contiguous.

    Each step takes one tap pair: a register of ``lanes`` filters' pairs per column, the row's pair broadcast to
    every lane, one pmaddwd each (fused with the add into vpdpwssd under AVX-512 VNNI). The sums of a register
    are those of consecutive filters, stored as they are: no horizontal reduction."""
    name = "llvm.x86.avx512.pmaddw.d.512" if lanes == 16 else "llvm.x86.avx2.pmadd.wd"

    @intrinsic
    def tile(typingctx, x, wp, out, r, f):
        sig = types.void(x, wp, out, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            xa, wa, oa = (context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:3], args[:3]))
            r0, f0 = args[3], args[4]
            i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
            pairs, acc_t = ir.VectorType(i16, 2 * lanes), ir.VectorType(i32, lanes)
            pmadd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(acc_t, [pairs, pairs]), name)
            steps = builder.extract_value(wa.shape, 0)

            def at(array, byte):
                return builder.gep(builder.bitcast(array.data, i8.as_pointer()), [byte])

            def row(array, first, offset):  # byte offset of row first + offset
                stride = builder.extract_value(array.strides, 0)
                return builder.mul(builder.add(first, ir.Constant(i64, offset)), stride)

            def column(j):  # byte offset of filter register j within a row of wp (two int16 a filter) or out
                return builder.mul(builder.add(f0, ir.Constant(i64, j * lanes)), ir.Constant(i64, 4))

            x_rows = [builder.bitcast(at(xa, row(xa, r0, i)), i32.as_pointer()) for i in range(rows)]
            w_cols = [at(wa, column(j)) for j in range(cols)]
            entry = builder.block
            loop, done = builder.append_basic_block("tile.loop"), builder.append_basic_block("tile.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            p = builder.phi(i64)
            p.add_incoming(ir.Constant(i64, 0), entry)
            acc = [[builder.phi(acc_t) for _ in range(cols)] for _ in range(rows)]
            w_row = builder.mul(p, builder.extract_value(wa.strides, 0))
            ws = []
            for start in w_cols:
                value = builder.load(builder.bitcast(builder.gep(start, [w_row]), pairs.as_pointer()))
                value.align = 4
                ws.append(value)
            everywhere = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
            sums = []
            for i in range(rows):
                pair = builder.load(builder.gep(x_rows[i], [p]))
                pair.align = 4
                spread = builder.shuffle_vector(builder.insert_element(ir.Constant(acc_t, None), pair,
                                                                       ir.Constant(i32, 0)),
                                                ir.Constant(acc_t, None), everywhere)
                spread = builder.bitcast(spread, pairs)
                for j in range(cols):
                    acc[i][j].add_incoming(ir.Constant(acc_t, None), entry)
                    total = builder.add(acc[i][j], builder.call(pmadd, [spread, ws[j]]))
                    acc[i][j].add_incoming(total, loop)
                    sums.append((i, j, total))
            p_next = builder.add(p, ir.Constant(i64, 1))
            p.add_incoming(p_next, loop)
            builder.cbranch(builder.icmp_signed("<", p_next, steps), loop, done)
            builder.position_at_end(done)
            for i, j, total in sums:
                store = builder.store(total, builder.bitcast(at(oa, builder.add(row(oa, r0, i), column(j))),
                                                            acc_t.as_pointer()))
                store.align = 4
            return context.get_dummy_value()

        return sig, codegen

    return tile


def make_product(rows: int, cols: int, lanes: int, cache: bool = True):
    """The product over tiles of rows × cols registers at ``lanes`` int32 lanes: out = x · wᵀ modulo 2^32 for x
    (R, K) int16, w (F, K) int16 given ``int_product.pack``ed, out (R, F) int32; R a multiple of rows, F of lanes,
    K even, C-contiguous. The filters past the last whole tile take a narrower one."""
    assert 1 <= cols <= 4
    tiles = [_tile_intrinsic(rows, c, lanes) for c in range(1, cols + 1)]
    full, one = tiles[-1], tiles[0]
    two, three = tiles[min(1, cols - 1)], tiles[min(2, cols - 1)]

    def product(x, wp, out):  # pragma: no cover - compiled
        registers = wp.shape[1] // (2 * lanes)
        last = registers - registers % cols
        if wp.shape[0] == 0:
            out[:] = 0
            return
        for r in range(0, x.shape[0], rows):
            for f in range(0, last, cols):
                full(x, wp, out, r, f * lanes)
            left = registers - last
            if left == 3:
                three(x, wp, out, r, last * lanes)
            elif left == 2:
                two(x, wp, out, r, last * lanes)
            elif left == 1:
                one(x, wp, out, r, last * lanes)

    return njit(nogil=True, cache=cache)(product)


@njit(nogil=True, cache=True)
def portable_product(x, wp, out):  # pragma: no cover - compiled
    """The same sums in plain loops: where the processor has no int16 multiply-add (callers do not choose the
    int16 product there, but loops that name it must compile)."""
    for r in range(x.shape[0]):
        for f in range(wp.shape[1] // 2):
            total = 0
            for p in range(wp.shape[0]):
                total += np.int64(x[r, 2 * p]) * np.int64(wp[p, 2 * f])
                total += np.int64(x[r, 2 * p + 1]) * np.int64(wp[p, 2 * f + 1])
            out[r, f] = ((total + 2**31) & 0xFFFFFFFF) - 2**31  # modulo 2^32, as the lanes wrap


product = portable_product if LANES is None else make_product(ROWS, COLS, LANES)


def warm_up() -> None:
    """Compile (or load from the disk cache) what the emulator calls."""
    product(np.zeros((ROW_ALIGN, K_ALIGN), np.int16), np.zeros((K_ALIGN // 2, 2 * FILTER_ALIGN), np.int16),
            np.empty((ROW_ALIGN, FILTER_ALIGN), np.int32))
