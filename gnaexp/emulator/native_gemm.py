"""A compiled int16 matrix product in the processor's int16 multiply-add instruction (x86 pmaddwd), for the
convolutions' and fully connected layers' sums.

Why: the float64 product does at most 8 multiply-adds a cycle on a core; pmaddwd multiplies 32 int16 pairs and
adds them pairwise into 16 int32 lanes in one instruction (AVX-512BW; 16 pairs with AVX2), and where the
processor has AVX-512 VNNI the compiler fuses it with the accumulation (vpdpwssd). Measured on Zen 4: 122
against 28.5 billion multiply-adds a second for a (2000 × 128) · (128 × 256) product.

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
# A tile of ROWS windows × COLS filters keeps ROWS·COLS accumulators in registers: 16 of AVX-512's 32, 8 of AVX2's
# 16 (measured on Zen 4: 4×4 122, 4×2 117, 2×4 95 billion multiply-adds a second at 16 lanes).
ROWS, COLS = (4, 4) if LANES == 16 else (2, 4)
assert ROW_ALIGN % ROWS == 0 and FILTER_ALIGN % COLS == 0 and K_ALIGN % (2 * (LANES or 16)) == 0


def _tile_intrinsic(rows: int, cols: int, lanes: int):  # pragma: no cover - runs inside numba's compiler
    """tile(x, wt, out, r, f): out[r + i, f + j] = Σ_k x[r + i, k]·wt[f + j, k] mod 2^32 for i < rows, j < cols;
    x (R, K) and wt (F, K) C-contiguous int16 with K a multiple of 2·lanes, out (R, F) int32."""
    name = "llvm.x86.avx512.pmaddw.d.512" if lanes == 16 else "llvm.x86.avx2.pmadd.wd"

    @intrinsic
    def tile(typingctx, x, wt, out, r, f):
        sig = types.void(x, wt, out, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            xa, wa, oa = (context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:3], args[:3]))
            r0, f0 = args[3], args[4]
            i16, i32, i64 = ir.IntType(16), ir.IntType(32), ir.IntType(64)
            pairs, acc_t = ir.VectorType(i16, 2 * lanes), ir.VectorType(i32, lanes)
            pmadd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(acc_t, [pairs, pairs]), name)
            reduce = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, [acc_t]),
                                                    f"llvm.vector.reduce.add.v{lanes}i32")
            taps = builder.extract_value(xa.shape, 1)

            def row_start(array, first, offset):  # an int16 pointer to row first + offset
                stride = builder.extract_value(array.strides, 0)
                byte = builder.mul(builder.add(first, ir.Constant(i64, offset)), stride)
                return builder.bitcast(builder.gep(builder.bitcast(array.data, ir.IntType(8).as_pointer()), [byte]),
                                       i16.as_pointer())

            x_rows = [row_start(xa, r0, i) for i in range(rows)]
            w_rows = [row_start(wa, f0, j) for j in range(cols)]
            entry = builder.block
            loop, done = builder.append_basic_block("tile.loop"), builder.append_basic_block("tile.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(ir.Constant(i64, 0), entry)
            acc = [[builder.phi(acc_t) for _ in range(cols)] for _ in range(rows)]

            def load(row):
                value = builder.load(builder.bitcast(builder.gep(row, [k]), pairs.as_pointer()))
                value.align = 2
                return value

            xs, ws = [load(p) for p in x_rows], [load(p) for p in w_rows]
            sums = []
            for i in range(rows):
                for j in range(cols):
                    acc[i][j].add_incoming(ir.Constant(acc_t, None), entry)
                    total = builder.add(acc[i][j], builder.call(pmadd, [xs[i], ws[j]]))
                    acc[i][j].add_incoming(total, loop)
                    sums.append((i, j, total))
            k_next = builder.add(k, ir.Constant(i64, 2 * lanes))
            k.add_incoming(k_next, loop)
            builder.cbranch(builder.icmp_signed("<", k_next, taps), loop, done)
            builder.position_at_end(done)
            out_stride = builder.extract_value(oa.strides, 0)
            out_base = builder.bitcast(oa.data, ir.IntType(8).as_pointer())
            for i, j, total in sums:
                byte = builder.add(builder.mul(builder.add(r0, ir.Constant(i64, i)), out_stride),
                                   builder.mul(builder.add(f0, ir.Constant(i64, j)), ir.Constant(i64, 4)))
                builder.store(builder.call(reduce, [total]),
                              builder.bitcast(builder.gep(out_base, [byte]), i32.as_pointer()))
            return context.get_dummy_value()

        return sig, codegen

    return tile


def make_product(rows: int, cols: int, lanes: int, cache: bool = True):
    """The product over tiles of rows × cols at ``lanes`` int32 lanes: out = x · wtᵀ modulo 2^32 for x (R, K)
    int16, wt (F, K) int16, out (R, F) int32, R a multiple of rows, F of cols, K of 2·lanes, C-contiguous."""
    tile = _tile_intrinsic(rows, cols, lanes)

    def tiles(x, wt, out):  # pragma: no cover - compiled
        for r in range(0, x.shape[0], rows):
            for f in range(0, wt.shape[0], cols):
                tile(x, wt, out, r, f)

    return njit(nogil=True, cache=cache)(tiles)


@njit(nogil=True, cache=True)
def portable_product(x, wt, out):  # pragma: no cover - compiled
    """The same sums in plain loops: where the processor has no int16 multiply-add (callers do not choose the
    int16 product there, but loops that name it must compile)."""
    for r in range(x.shape[0]):
        for f in range(wt.shape[0]):
            total = 0
            for k in range(x.shape[1]):
                total += np.int64(x[r, k]) * np.int64(wt[f, k])
            out[r, f] = ((total + 2**31) & 0xFFFFFFFF) - 2**31  # modulo 2^32, as the lanes wrap


product = portable_product if LANES is None else make_product(ROWS, COLS, LANES)


@njit(nogil=True, cache=True)
def row_peaks(x, out):  # pragma: no cover - compiled
    """out[i] = max |x[i, :]|: which samples the int32 sums hold exactly."""
    for i in range(x.shape[0]):
        peak = 0.0
        for v in x[i]:
            peak = max(peak, abs(np.float64(v)))
        out[i] = peak


def warm_up() -> None:
    """Compile (or load from the disk cache) what the emulator calls."""
    for dtype in (np.float32, np.float64):
        for x in (np.zeros((1, 8), dtype), np.zeros((1, 9), dtype)[:, :8]):  # rows together, rows apart
            row_peaks(x, np.empty(1))
    product(np.zeros((ROW_ALIGN, K_ALIGN), np.int16), np.zeros((FILTER_ALIGN, K_ALIGN), np.int16),
            np.empty((ROW_ALIGN, FILTER_ALIGN), np.int32))
