"""A PWL evaluated through its segment index (pwl_index.py), eight values at a time: the compiled loop for
PWLs of many segments (a designed power, square root or log).

Why: ``native.pwl_rows`` finds a value's segment by a pass per segment (few segments) or a search of six
rounds (61 segments: 3.2 ns a value); the index needs one key, one table row and one comparison. The loop is
LLVM IR written here, so that the eight values' keys, comparisons, lines, floors and saturations run as vector
instructions. Each value's row (its bucket's bound and the lines under and over it: 64 bytes) is one register
load, and eight rows transposed by shuffles give each field for the eight values: measured here, 1.2 ns a value
against 1.9 for a load and an insert per field and value, and 2.0 for the gather instruction. The arithmetic is ``pwl_rows``'s, (x − xBase)·slope
scaled by a power of two, floored, plus yBase, without fused multiply-adds, so the results are the same bits
(pwl_index.py says why the slope and its scale may be one factor; tested against pwl_rows on raw tables).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from gnaexp.emulator.int_ranges import INT16_MAX, INT16_MIN

LANES = 8  # values a step (float64 lanes of one AVX-512 register, two of AVX2)


@intrinsic
def _indexed_lines(typingctx, x, scale, lo, hi, x0, y0, table, bits, low_key, out, valid, n):
    """PWL of x[:n]·scale into out[:n] through the index (n a multiple of LANES); returns how many of the first
    ``valid`` outputs saturated plus how many of their inputs lay past the design domain [lo, hi] (NaN: open)
    (the rest pad a last step)."""
    sig = types.int64(x, types.float64, types.float64, types.float64, types.float64, types.float64, table,
                      types.int64, types.int64, out, types.int64, types.int64)

    def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
        f64, i64, i32 = ir.DoubleType(), ir.IntType(64), ir.IntType(32)
        vd, vi = ir.VectorType(f64, LANES), ir.VectorType(i64, LANES)
        arrays = [context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 6, 9)]
        xp, tbp, outp = (builder.bitcast(a.data, f64.as_pointer()) for a in arrays)
        buckets = builder.extract_value(arrays[1].shape, 0)
        bits, low_key, valid, n = args[7], args[8], args[10], args[11]

        def function(name, ret, params):
            return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, params), name)

        fabs, floor = (function(f"llvm.{op}.v{LANES}f64", vd, [vd]) for op in ("fabs", "floor"))
        reduce = function(f"llvm.vector.reduce.add.v{LANES}i64", i64, [vi])

        def splat(value, vector_type):
            one = builder.insert_element(ir.Constant(vector_type, None), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, ir.Constant(vector_type, None),
                                          ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))

        def const(value, vector_type):
            return ir.Constant(vector_type, [value] * LANES)

        def shuffle(a, b, lanes):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, LANES), lanes))

        def entries(bucket):  # the eight lanes' table rows, one load each, transposed: field f of every lane
            rows = []
            for lane in range(LANES):
                at = builder.mul(builder.extract_element(bucket, ir.Constant(i32, lane)), ir.Constant(i64, LANES))
                row = builder.load(builder.bitcast(builder.gep(tbp, [at]), vd.as_pointer()))
                row.align = 8
                rows.append(row)
            # three rounds of two-register shuffles: pairs of lanes, then fours, then all eight
            even, odd = [0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15]
            t = [shuffle(rows[2 * a], rows[2 * a + 1], parity) for a in range(4) for parity in (even, odd)]
            low_pairs, high_pairs = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
            u = {(b, p, q): shuffle(t[2 * b + p], t[2 * b + 2 + p], (low_pairs, high_pairs)[q])
                 for b in (0, 2) for p in (0, 1) for q in (0, 1)}
            fields = [None] * LANES
            for p in (0, 1):
                for q in (0, 1):
                    fields[p + 2 * q] = shuffle(u[(0, p, q)], u[(2, p, q)], [0, 1, 2, 3, 8, 9, 10, 11])
                    fields[p + 2 * q + 4] = shuffle(u[(0, p, q)], u[(2, p, q)], [4, 5, 6, 7, 12, 13, 14, 15])
            return fields

        shift = splat(builder.sub(ir.Constant(i64, 52), bits), vi)
        bias = splat(builder.shl(ir.Constant(i64, 1023), bits), vi)
        low = splat(low_key, vi)
        top = splat(builder.sub(builder.add(low_key, buckets), ir.Constant(i64, 1)), vi)
        x0, y0 = splat(args[4], vd), splat(args[5], vd)
        hi16, lo16 = const(float(INT16_MAX), vd), const(float(INT16_MIN), vd)
        limit = splat(valid, vi)
        scale, lo, hi = (splat(a, vd) for a in args[1:4])
        entry = builder.block
        loop, done = builder.append_basic_block("pwl.loop"), builder.append_basic_block("pwl.done")
        builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        i = builder.phi(i64)
        count = builder.phi(vi)
        raw = builder.load(builder.bitcast(builder.gep(xp, [i]), vd.as_pointer()))
        raw.align = 8
        v = builder.fmul(raw, scale)  # the input's scale, as _scale_count_row
        real = builder.icmp_signed("<", builder.add(splat(i, vi), ir.Constant(vi, list(range(LANES)))), limit)
        below_domain = builder.and_(builder.fcmp_ordered("<", v, lo), real)  # NaN bounds compare false
        above_domain = builder.and_(builder.fcmp_ordered(">", v, hi), real)
        # the key: sign and leading bits of |v| + 1 (pwl_index.keys), clamped to the buckets
        magnitude = builder.sub(builder.lshr(builder.bitcast(builder.fadd(builder.call(fabs, [v]), const(1.0, vd)),
                                                            vi), shift), bias)
        key = builder.select(builder.fcmp_ordered("<", v, const(0.0, vd)), builder.sub(const(0, vi), magnitude),
                             magnitude)
        key = builder.select(builder.icmp_signed("<", key, low), low, key)
        key = builder.select(builder.icmp_signed(">", key, top), top, key)
        bound, x_under, gain_under, y_under, x_over, gain_over, y_over, _ = entries(builder.sub(key, low))
        reached = builder.fcmp_ordered(">=", v, bound)
        xs, gain, yb = (builder.select(reached, over, under) for over, under in
                        ((x_over, x_under), (gain_over, gain_under), (y_over, y_under)))
        y = builder.fadd(builder.call(floor, [builder.fmul(builder.fsub(v, xs), gain)]), yb)
        y = builder.select(builder.fcmp_ordered("<=", v, x0), y0, y)  # at or below the first xBase
        over, under = builder.fcmp_ordered(">", y, hi16), builder.fcmp_ordered("<", y, lo16)
        counted = count
        for flag in (builder.and_(over, real), builder.and_(under, real), below_domain, above_domain):
            counted = builder.add(counted, builder.zext(flag, vi))
        y = builder.select(over, hi16, builder.select(under, lo16, y))
        store = builder.store(y, builder.bitcast(builder.gep(outp, [i]), vd.as_pointer()))
        store.align = 8
        following = builder.add(i, ir.Constant(i64, LANES))
        i.add_incoming(ir.Constant(i64, 0), entry)
        i.add_incoming(following, loop)
        count.add_incoming(const(0, vi), entry)
        count.add_incoming(counted, loop)
        builder.cbranch(builder.icmp_signed("<", following, n), loop, done)
        builder.position_at_end(done)
        total = builder.phi(vi)
        total.add_incoming(const(0, vi), entry)
        total.add_incoming(counted, loop)
        return builder.call(reduce, [total])

    return sig, codegen


@njit(nogil=True, cache=True)
def pwl_indexed(x, scale, lo, hi, x0, y0, table, bits, low_key, out, tail):  # pragma: no cover - compiled
    """``native.pwl_rows`` of x·scale through the index ``pwl_index.build`` gave (table, bits, low_key) and the
    first xBase and yBase (x0, y0), out = the PWL (x, out: contiguous float64, may be the same); returns how many
    outputs saturated int16 plus how many scaled inputs lay past the design domain [lo, hi] (NaN: open), as
    native_plan counts. tail: 2·LANES float64 of scratch (the caller's, reused row after row)."""
    n = x.shape[0]
    main = n - n % LANES
    saturated = _indexed_lines(x, scale, lo, hi, x0, y0, table, bits, low_key, out, main, main)
    if main < n:  # the last values, padded to a step with a copy of one of them (not counted)
        for j in range(LANES):
            tail[j] = x[min(main + j, n - 1)]
        saturated += _indexed_lines(tail[:LANES], scale, lo, hi, x0, y0, table, bits, low_key, tail[LANES:],
                                    n - main, LANES)
        out[main:] = tail[LANES:LANES + n - main]
    return saturated
