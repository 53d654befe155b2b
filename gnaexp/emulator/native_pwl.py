"""A PWL evaluated through its segment index (pwl_index.py), eight values at a time: the compiled loop for
PWLs of many segments (a designed power, square root or log).

Why: ``native.pwl_rows`` finds a value's segment by a pass per segment (few segments) or a search of six
rounds (61 segments: 3.2 ns a value); the index needs one key, one lookup and one comparison. The loop is LLVM
IR written here, so that the eight values' keys, comparisons, lines, floors and saturations run as vector
instructions; the table reads are single loads, which on Zen 4 beat its gather instruction (2.0 against 2.9 ns
a value). The arithmetic is ``pwl_rows``'s in its order, ((x − xBase)·slope)·scale floored plus yBase, without
fused multiply-adds, so the results are the same bits (tested against it on raw tables).
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
def _indexed_lines(typingctx, x, scale, lo, hi, xv, ybase, slope, inv_scale, bound, below, above, bits, low_key, out,
                   valid, n):
    """PWL of x[:n]·scale into out[:n] through the index (n a multiple of LANES); returns how many of the first
    ``valid`` outputs saturated plus how many of their inputs lay past the design domain [lo, hi] (NaN: open)
    (the rest pad a last step)."""
    sig = types.int64(x, types.float64, types.float64, types.float64, xv, ybase, slope, inv_scale, bound, below,
                      above, types.int64, types.int64, out, types.int64, types.int64)

    def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
        f64, i64, i32 = ir.DoubleType(), ir.IntType(64), ir.IntType(32)
        vd, vi = ir.VectorType(f64, LANES), ir.VectorType(i64, LANES)
        typed = [signature.args[0]] + list(signature.args[4:11])
        arrays = [context.make_array(t)(context, builder, v) for t, v in zip(typed, [args[0]] + list(args[4:11]))]
        out_array = context.make_array(signature.args[13])(context, builder, args[13])
        xp, xvp, ybp, slp, csp, bdp = (builder.bitcast(a.data, f64.as_pointer()) for a in arrays[:6])
        blp, abp = (builder.bitcast(a.data, i64.as_pointer()) for a in arrays[6:8])
        outp = builder.bitcast(out_array.data, f64.as_pointer())
        bits, low_key, valid, n = args[11], args[12], args[14], args[15]
        buckets = builder.extract_value(arrays[5].shape, 0)

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

        def lookup(base, index, vector_type):  # one load per lane (faster than a gather on Zen 4)
            value = ir.Constant(vector_type, None)
            for lane in range(LANES):
                at = builder.extract_element(index, ir.Constant(i32, lane))
                value = builder.insert_element(value, builder.load(builder.gep(base, [at])), ir.Constant(i32, lane))
            return value

        shift = splat(builder.sub(ir.Constant(i64, 52), bits), vi)
        bias = splat(builder.shl(ir.Constant(i64, 1023), bits), vi)
        low = splat(low_key, vi)
        top = splat(builder.sub(builder.add(low_key, buckets), ir.Constant(i64, 1)), vi)
        x0, y0 = splat(builder.load(xvp), vd), splat(builder.load(ybp), vd)
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
        bucket = builder.sub(key, low)
        reached = builder.fcmp_ordered(">=", v, lookup(bdp, bucket, vd))
        segment = builder.select(reached, lookup(abp, bucket, vi), lookup(blp, bucket, vi))
        xs, sl, cs, yb = (lookup(p, segment, vd) for p in (xvp, slp, csp, ybp))
        y = builder.fadd(builder.call(floor, [builder.fmul(builder.fmul(builder.fsub(v, xs), sl), cs)]), yb)
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
def pwl_indexed(x, scale, lo, hi, xv, ybase, slope, inv_scale, bound, below, above, bits, low_key,
                out):  # pragma: no cover - compiled
    """``native.pwl_rows`` of x·scale through the index ``pwl_index.build(xv)`` gave (bound, below, above, bits,
    low_key), out = the PWL (x, out: contiguous float64, may be the same); returns how many outputs saturated
    int16 plus how many scaled inputs lay past the design domain [lo, hi] (NaN: open), as native_plan counts."""
    n = x.shape[0]
    main = n - n % LANES
    saturated = _indexed_lines(x, scale, lo, hi, xv, ybase, slope, inv_scale, bound, below, above, bits, low_key,
                               out, main, main)
    if main < n:  # the last values, padded to a step with a copy of one of them (not counted)
        tail = np.empty(2 * LANES)
        for j in range(LANES):
            tail[j] = x[min(main + j, n - 1)]
        saturated += _indexed_lines(tail[:LANES], scale, lo, hi, xv, ybase, slope, inv_scale, bound, below, above,
                                    bits, low_key, tail[LANES:], n - main, LANES)
        out[main:] = tail[LANES:LANES + n - main]
    return saturated
