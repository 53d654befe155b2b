"""A PWL evaluated eight values at a time, its segment found through an index (pwl_index.py; many segments: a
designed power, square root or log) or in a small table held in registers (up to pwl_index.SMALL segments:
ReLU, the recurrent cells' sigmoid and tanh).

Why: ``native.pwl_rows`` finds a value's segment by a pass per segment (few segments) or a search of six
rounds (61 segments: 3.2 ns a value); the index needs one key, one table row and one comparison. The loop is
LLVM IR written here, so that the eight values' keys, comparisons, lines, floors and saturations run as vector
instructions. Each value's row (its bucket's bound and the lines under and over it: 64 bytes) is one register
load, and eight rows transposed by shuffles give each field for the eight values: measured here, 1.15 ns a
value against 1.9 for a load and an insert per field and value, and 2.0 for the gather instruction. Each
choice of counting (the padded last step's values, the design domain) compiles its own loop, so the common one
tests neither.

The arithmetic is ``pwl_rows``'s, (x − xBase)·slope scaled by a power of two, floored, plus yBase, without fused
multiply-adds, so the results are the same bits (pwl_index.py says why the slope and its scale may be one factor;
tested against pwl_rows on raw tables).

A small table (AVX-512 only) keeps each field's 16 entries in two registers, and one two-register permute
(vpermi2pd) looks up eight values' entries at once: the segment is found by halving the table (a lookup and a
comparison each), then three lookups give the line. Measured here on rows of 128 values: 0.28 ns a value for
2 segments, 0.37 for 3–4 and 0.62 for 12, against 0.7, 0.8 and 1.5 for a pass per segment.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from gnaexp.emulator import native_gemm  # which instruction set numba compiles for
from gnaexp.emulator.int_ranges import INT16_MAX, INT16_MIN
from gnaexp.emulator.pwl_index import WINDOW

LANES = 8  # values a step (float64 lanes of one AVX-512 register, two of AVX2)
PERMUTE = "llvm.x86.avx512.vpermi2var.pd.512"  # lane i of (a, b) at index[i] mod 16: a two-register lookup
F64, I64, I32 = ir.DoubleType(), ir.IntType(64), ir.IntType(32)
VD, VI = ir.VectorType(F64, LANES), ir.VectorType(I64, LANES)


class _Emitter:
    """IR helpers on one builder."""

    def __init__(self, builder: ir.IRBuilder) -> None:
        self.b = builder

    def function(self, name: str, ret: ir.Type, params: list) -> Any:
        return cgutils.get_or_insert_function(self.b.module, ir.FunctionType(ret, params), name)

    def splat(self, value: Any, vector_type: ir.VectorType) -> Any:
        one = self.b.insert_element(ir.Constant(vector_type, None), value, ir.Constant(I32, 0))
        return self.shuffle(one, ir.Constant(vector_type, None), [0] * LANES)

    @staticmethod
    def const(value: Any, vector_type: ir.VectorType) -> Any:
        return ir.Constant(vector_type, [value] * LANES)

    def shuffle(self, a: Any, b: Any, lanes: list[int]) -> Any:
        return self.b.shuffle_vector(a, b, ir.Constant(ir.VectorType(I32, LANES), lanes))

    def open_loop(self, name: str, count: Any) -> tuple[Any, Any, Any]:
        """A counted loop's blocks (entry, body, done), skipping the body when count ≤ 0; the builder in the body."""
        b = self.b
        entry = b.block
        body, done = b.append_basic_block(f"{name}.loop"), b.append_basic_block(f"{name}.done")
        b.cbranch(b.icmp_signed(">", count, ir.Constant(I64, 0)), body, done)
        b.position_at_end(body)
        return entry, body, done

    def line(self, v: Any, xs: Any, gain: Any, ybase: Any) -> Any:
        """floor((v − xs)·gain) + ybase."""
        b = self.b
        floor = self.function(f"llvm.floor.v{LANES}f64", VD, [VD])
        return b.fadd(b.call(floor, [b.fmul(b.fsub(v, xs), gain)]), ybase)


def _emit_rows(e: _Emitter, xp: Any, outp: Any, scale: Any, lo: Any, hi: Any, x0: Any, y0: Any, valid: Any, n: Any,
               line_of: Callable[[Any], Any], masked: bool, domain: bool) -> Any:
    """The loop: x[:n]·scale → out[:n] eight values a step (n a multiple of LANES), each
    value's line from ``line_of(v)``, then the first xBase's yBase at or below it and int16 saturation; returns
    how many values saturated plus, with ``domain``, how many lay past the design domain [lo, hi]. ``masked``:
    only the first ``valid`` values count (the rest pad a last step); each choice compiles its own loop, so the
    common one (every value counts, no domain) carries neither test."""
    b = e.b
    hi16, lo16 = e.const(float(INT16_MAX), VD), e.const(float(INT16_MIN), VD)
    limit = e.splat(valid, VI)
    scale, lo, hi, x0, y0 = (e.splat(a, VD) for a in (scale, lo, hi, x0, y0))
    entry, loop, done = e.open_loop("pwl", n)
    i = b.phi(I64)
    count = b.phi(VI)
    raw = b.load(b.bitcast(b.gep(xp, [i]), VD.as_pointer()))
    raw.align = 8
    v = b.fmul(raw, scale)  # the input's scale, as _scale_count_row
    flags = []
    if domain:  # a NaN bound compares false
        flags.append(b.or_(b.fcmp_ordered("<", v, lo), b.fcmp_ordered(">", v, hi)))
    y = b.select(b.fcmp_ordered("<=", v, x0), y0, line_of(v))  # at or below the first xBase
    over, under = b.fcmp_ordered(">", y, hi16), b.fcmp_ordered("<", y, lo16)
    flags.append(b.or_(over, under))
    real = b.icmp_signed("<", b.add(e.splat(i, VI), ir.Constant(VI, list(range(LANES)))), limit) if masked else None
    counted = count
    for flag in flags:
        counted = b.add(counted, b.zext(flag if real is None else b.and_(flag, real), VI))
    y = b.select(over, hi16, b.select(under, lo16, y))
    store = b.store(y, b.bitcast(b.gep(outp, [i]), VD.as_pointer()))
    store.align = 8
    following = b.add(i, ir.Constant(I64, LANES))
    last = b.block  # the body's last block (``line_of`` may branch)
    i.add_incoming(ir.Constant(I64, 0), entry)
    i.add_incoming(following, last)
    count.add_incoming(e.const(0, VI), entry)
    count.add_incoming(counted, last)
    b.cbranch(b.icmp_signed("<", following, n), loop, done)
    b.position_at_end(done)
    total = b.phi(VI)
    total.add_incoming(e.const(0, VI), entry)
    total.add_incoming(counted, last)
    return b.call(e.function(f"llvm.vector.reduce.add.v{LANES}i64", I64, [VI]), [total])


def _window_lines_of(e: _Emitter, wp: Any) -> Callable[[Any, Callable[[Any], list]], list]:
    """``near(v, otherwise)``: the (xBase, gain, yBase) of eight values, found among the window's segments
    (``pwl_index.window``: its bounds, then xBases, gains and yBases, WINDOW each, loaded here once before the
    loop) when all eight lie in it: a comparison a segment and selects, no table rows (Silero VAD's Power PWL
    of its STFT: 98% of the values in the four segments around zero); else ``otherwise(v)``."""
    b = e.b
    scalars = []
    for k in range(2 + 3 * WINDOW):
        value = b.load(b.gep(wp, [ir.Constant(I64, k)]))
        scalars.append(e.splat(value, VD))
    low, high = scalars[0], scalars[1]
    xs, gains, ys = (scalars[2 + WINDOW * f:2 + WINDOW * (f + 1)] for f in range(3))
    every = e.function(f"llvm.vector.reduce.and.v{LANES}i1", ir.IntType(1), [ir.VectorType(ir.IntType(1), LANES)])

    def near(v: Any, otherwise: Callable[[Any], list]) -> list:
        inside = b.call(every, [b.and_(b.fcmp_ordered(">=", v, low), b.fcmp_ordered("<", v, high))])
        fast, slow, join = (b.append_basic_block(f"window.{name}") for name in ("fast", "slow", "join"))
        b.cbranch(inside, fast, slow)
        b.position_at_end(fast)
        found = [xs[0], gains[0], ys[0]]
        for k in range(1, WINDOW):  # the last segment whose xBase ≤ v (+inf past the window's last: never)
            reached = b.fcmp_ordered(">=", v, xs[k])
            found = [b.select(reached, new, old) for new, old in zip((xs[k], gains[k], ys[k]), found)]
        fast_end = b.block
        b.branch(join)
        b.position_at_end(slow)
        far = otherwise(v)
        slow_end = b.block
        b.branch(join)
        b.position_at_end(join)
        fields = []
        for near_field, far_field in zip(found, far):
            phi = b.phi(VD)
            phi.add_incoming(near_field, fast_end)
            phi.add_incoming(far_field, slow_end)
            fields.append(phi)
        return fields

    return near


def _indexed_intrinsic(masked: bool, domain: bool):  # pragma: no cover - runs inside numba's compiler
    """The indexed loop (``_emit_rows``: masked, domain) as an intrinsic."""

    @intrinsic
    def _indexed_lines(typingctx, x, scale, lo, hi, x0, y0, table, bits, low_key, out, valid, n, window):
        """The PWL of x[:n]·scale into out[:n] through the index (``_emit_rows``), eight values whose lines lie
        in the window (``pwl_index.window``) through its segments."""
        sig = types.int64(x, types.float64, types.float64, types.float64, types.float64, types.float64, table,
                          types.int64, types.int64, out, types.int64, types.int64, window)

        def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
            e = _Emitter(builder)
            arrays = [context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 6, 9, 12)]
            xp, tbp, outp, wp = (builder.bitcast(a.data, F64.as_pointer()) for a in arrays)
            near = _window_lines_of(e, wp)
            buckets = builder.extract_value(arrays[1].shape, 0)
            bits, low_key = args[7], args[8]
            fabs = e.function(f"llvm.fabs.v{LANES}f64", VD, [VD])
            shift = e.splat(builder.sub(ir.Constant(I64, 52), bits), VI)
            bias = e.splat(builder.shl(ir.Constant(I64, 1023), bits), VI)
            low = e.splat(low_key, VI)
            top = e.splat(builder.sub(builder.add(low_key, buckets), ir.Constant(I64, 1)), VI)

            def entries(bucket):  # the eight lanes' table rows, one load each, transposed: field f of every lane
                rows = []
                for lane in range(LANES):
                    at = builder.mul(builder.extract_element(bucket, ir.Constant(I32, lane)), ir.Constant(I64, LANES))
                    row = builder.load(builder.bitcast(builder.gep(tbp, [at]), VD.as_pointer()))
                    row.align = 8
                    rows.append(row)
                # three rounds of two-register shuffles: pairs of lanes, then fours, then all eight
                even, odd = [0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15]
                t = [e.shuffle(rows[2 * a], rows[2 * a + 1], parity) for a in range(4) for parity in (even, odd)]
                low_pairs, high_pairs = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
                u = {(q, p, h): e.shuffle(t[2 * q + p], t[2 * q + 2 + p], (low_pairs, high_pairs)[h])
                     for q in (0, 2) for p in (0, 1) for h in (0, 1)}
                fields: list[Any] = [None] * LANES
                for p in (0, 1):
                    for h in (0, 1):
                        fields[p + 2 * h] = e.shuffle(u[(0, p, h)], u[(2, p, h)], [0, 1, 2, 3, 8, 9, 10, 11])
                        fields[p + 2 * h + 4] = e.shuffle(u[(0, p, h)], u[(2, p, h)], [4, 5, 6, 7, 12, 13, 14, 15])
                return fields

            def indexed_fields(v):
                # the key: sign and leading bits of |v| + 1 (pwl_index.keys), clamped to the buckets
                magnitude = builder.sub(builder.lshr(builder.bitcast(builder.fadd(builder.call(fabs, [v]),
                                                                                  e.const(1.0, VD)), VI), shift), bias)
                key = builder.select(builder.fcmp_ordered("<", v, e.const(0.0, VD)),
                                     builder.sub(e.const(0, VI), magnitude), magnitude)
                key = builder.select(builder.icmp_signed("<", key, low), low, key)
                key = builder.select(builder.icmp_signed(">", key, top), top, key)
                bound, x_under, gain_under, y_under, x_over, gain_over, y_over, _ = entries(builder.sub(key, low))
                reached = builder.fcmp_ordered(">=", v, bound)
                return [builder.select(reached, over, under) for over, under in
                        ((x_over, x_under), (gain_over, gain_under), (y_over, y_under))]

            def line_of(v):
                return e.line(v, *near(v, indexed_fields))

            return _emit_rows(e, xp, outp, *args[1:6], args[10], args[11], line_of, masked, domain)

        return sig, codegen

    return _indexed_lines


def _small_lines_of(e: _Emitter, tp: Any, halvings: int) -> Callable[[Any], Any]:
    """``line_of`` through a small table at tp (pwl_index.small: xBases, gains, yBases, 16 each), its six
    registers loaded here, once before the loop."""
    builder = e.b
    registers = []
    for k in range(6):  # xBases (+inf past the last), gains, yBases: two registers each
        reg = builder.load(builder.bitcast(builder.gep(tp, [ir.Constant(I64, LANES * k)]), VD.as_pointer()))
        reg.align = 8
        registers.append(reg)
    xs_lo, xs_hi, gain_lo, gain_hi, y_lo, y_hi = registers
    if native_gemm.LANES == 16:  # AVX-512: one two-register permute a lookup
        permute = e.function(PERMUTE, VD, [VD, VI, VD])

        def lookup(low: Any, index: Any, high: Any) -> Any:
            return builder.call(permute, [low, index, high])
    else:  # elsewhere the loop is never run (plan_compile builds no small table), but it compiles, so it must
        # lower here: a load a lane from the field's 16 entries in memory (LLVM aborts on the AVX-512 intrinsic)
        fields = {id(xs_lo): 0, id(gain_lo): 1, id(y_lo): 2}

        def lookup(low: Any, index: Any, high: Any) -> Any:
            values = ir.Constant(VD, None)
            for lane in range(LANES):
                at = builder.add(builder.extract_element(index, ir.Constant(I32, lane)),
                                 ir.Constant(I64, 2 * LANES * fields[id(low)]))
                values = builder.insert_element(values, builder.load(builder.gep(tp, [at])), ir.Constant(I32, lane))
            return values

    def line_of(v):
        # the last segment whose xBase ≤ v, by halvings of the table: each one lookup and one comparison
        found = e.const(0, VI)
        for step in range(halvings - 1, -1, -1):
            probe = builder.add(found, e.const(1 << step, VI))
            reached = builder.fcmp_ordered("<=", lookup(xs_lo, probe, xs_hi), v)
            found = builder.select(reached, probe, found)
        xs, gain, yb = (lookup(low, found, high) for low, high in ((xs_lo, xs_hi), (gain_lo, gain_hi), (y_lo, y_hi)))
        return e.line(v, xs, gain, yb)

    return line_of


def _small_block_intrinsic(halvings: int, domain: bool):  # pragma: no cover - runs inside numba's compiler
    """The small-table loop (``_emit_rows``, every value counted, ``domain``) over the same columns of every row of
    a 2-D work array (contiguous rows; the columns a multiple of LANES), the rows one after the other in one call:
    a call per row of 128 values cost as much again as its work. The search takes ``halvings`` (tables of up to
    2^halvings segments). AVX-512 only (PERMUTE)."""

    @intrinsic
    def _small_block(typingctx, arena, x_off, out_off, size, scale, lo, hi, x0, y0, table):
        """Rows r of arena: arena[r, out_off:out_off + size] = the PWL of arena[r, x_off:x_off + size]·scale."""
        sig = types.int64(arena, types.int64, types.int64, types.int64, types.float64, types.float64,
                          types.float64, types.float64, types.float64, table)

        def codegen(context, builder, signature, args):  # pragma: no cover - runs inside numba's compiler
            e = _Emitter(builder)
            work = context.make_array(signature.args[0])(context, builder, args[0])
            tab = context.make_array(signature.args[9])(context, builder, args[9])
            base = builder.bitcast(work.data, F64.as_pointer())
            tp = builder.bitcast(tab.data, F64.as_pointer())
            rows = builder.extract_value(work.shape, 0)
            width = builder.sdiv(builder.extract_value(work.strides, 0), ir.Constant(I64, 8))  # values a row
            x_off, out_off, size = args[1], args[2], args[3]
            line_of = _small_lines_of(e, tp, halvings)
            entry, head, done = e.open_loop("rows", rows)
            r = builder.phi(I64)
            total = builder.phi(I64)
            start = builder.mul(r, width)
            xp = builder.gep(base, [builder.add(start, x_off)])
            outp = builder.gep(base, [builder.add(start, out_off)])
            counted = builder.add(total, _emit_rows(e, xp, outp, *args[4:9], size, size, line_of, False, domain))
            following = builder.add(r, ir.Constant(I64, 1))
            last = builder.block
            r.add_incoming(ir.Constant(I64, 0), entry)
            r.add_incoming(following, last)
            total.add_incoming(ir.Constant(I64, 0), entry)
            total.add_incoming(counted, last)
            builder.cbranch(builder.icmp_signed("<", following, rows), head, done)
            builder.position_at_end(done)
            result = builder.phi(I64)
            result.add_incoming(ir.Constant(I64, 0), entry)
            result.add_incoming(counted, last)
            return result

        return sig, codegen

    return _small_block


indexed_rows, indexed_rows_domain = _indexed_intrinsic(False, False), _indexed_intrinsic(False, True)
indexed_tail, indexed_tail_domain = _indexed_intrinsic(True, False), _indexed_intrinsic(True, True)


@njit(nogil=True, cache=True)
def pwl_indexed(x, scale, lo, hi, x0, y0, table, bits, low_key, out, tail, window):  # pragma: no cover
    """``native.pwl_rows`` of x·scale through the index ``pwl_index.build`` gave (table, bits, low_key) and the
    first xBase and yBase (x0, y0), out = the PWL (x, out: contiguous float64, may be the same); returns how many
    outputs saturated int16 plus how many scaled inputs lay past the design domain [lo, hi] (NaN: open), as
    native_plan counts. tail: 2·LANES float64 of scratch (the caller's, reused row after row); window: the segments
    around zero (``pwl_index.window``)."""
    n = x.shape[0]
    main = n - n % LANES
    domain = lo == lo or hi == hi  # a bound that is not NaN
    if domain:
        saturated = indexed_rows_domain(x, scale, lo, hi, x0, y0, table, bits, low_key, out, main, main, window)
    else:
        saturated = indexed_rows(x, scale, lo, hi, x0, y0, table, bits, low_key, out, main, main, window)
    if main < n:  # the last values, padded to a step with a copy of one of them (not counted)
        for j in range(LANES):
            tail[j] = x[min(main + j, n - 1)]
        pad, into = tail[:LANES], tail[LANES:]
        if domain:
            saturated += indexed_tail_domain(pad, scale, lo, hi, x0, y0, table, bits, low_key, into, n - main, LANES,
                                              window)
        else:
            saturated += indexed_tail(pad, scale, lo, hi, x0, y0, table, bits, low_key, into, n - main, LANES, window)
        out[main:] = tail[LANES:LANES + n - main]
    return saturated


small_block_1, small_block_1_domain, small_block_2, small_block_2_domain, small_block_4, small_block_4_domain = (
    _small_block_intrinsic(h, d) for h in (1, 2, 4) for d in (False, True))


@njit(nogil=True, cache=True)
def pwl_small_rows(arena, x_off, out_off, size, scale, lo, hi, x0, y0, table, halvings):  # pragma: no cover
    """``native.pwl_rows`` of x·scale for x the columns x_off … x_off + size of every row of ``arena`` (rows
    contiguous, size a multiple of LANES), into the columns from out_off (may be the same), through a small table
    (``pwl_index.small``: up to 2^halvings ≤ pwl_index.SMALL segments, held in registers) and the first xBase
    and yBase (x0, y0); returns how many outputs saturated int16 plus how many scaled inputs lay past the design
    domain [lo, hi] (NaN: open), as native_plan counts. AVX-512 only: plan_compile builds small tables only
    there."""
    domain = lo == lo or hi == hi
    if halvings == 1:
        if domain:
            return small_block_1_domain(arena, x_off, out_off, size, scale, lo, hi, x0, y0, table)
        return small_block_1(arena, x_off, out_off, size, scale, lo, hi, x0, y0, table)
    if halvings == 2:
        if domain:
            return small_block_2_domain(arena, x_off, out_off, size, scale, lo, hi, x0, y0, table)
        return small_block_2(arena, x_off, out_off, size, scale, lo, hi, x0, y0, table)
    if domain:
        return small_block_4_domain(arena, x_off, out_off, size, scale, lo, hi, x0, y0, table)
    return small_block_4(arena, x_off, out_off, size, scale, lo, hi, x0, y0, table)
