"""SoftSign, Exp and Log as the 2023.1 plugin designs them (pwl_approximation.cpp/.hpp): the domains and ranges
of ``details::Function``, the split at EXP_BREAK, and the emulated layer tracking the function within the 1 %
design target where its input is inside the domain."""

import math

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from gnaexp.emulator import emulate
from gnaexp.emulator.activations import design, EXP_BREAK


@pytest.mark.parametrize("op, domain, first_y, last_y", [
    ("SoftSign", (-10.0, 10.0), -10 / 11, 10 / 11),
    ("Exp", (-math.log2(32767), math.log10(32767)), 0.0, math.exp(math.log10(32767))),
    ("Log", (0.001, 2981.0), math.log(0.001), math.log(2981.0)),
])
def test_designs_span_the_plugins_domain_and_clip_to_its_range(op, domain, first_y, last_y):
    m, b, alpha = design(op)
    assert alpha[0] == -math.inf and alpha[-1] == math.inf and len(m) <= 128
    assert m[0] == 0.0 and m[-1] == 0.0  # flat from −∞ and after the last point
    # The first flat sits at f(domain start), or at the range's floor where the line passes it (Exp: 0, its α
    # moved to where the line meets 0); the last at f(domain end), within the design error.
    assert b[0] == pytest.approx(first_y, abs=0.02 * abs(last_y - first_y) + 1e-9)
    assert b[-1] == pytest.approx(last_y, rel=0.02)
    if op == "Exp":  # two halves, split at EXP_BREAK: it is one of the pivots
        assert np.any(np.isclose(alpha, EXP_BREAK))
    if op == "Exp":
        assert domain[0] < alpha[1] < -8  # the first line meets 0 inside the domain
    else:
        assert alpha[1] == pytest.approx(domain[0], abs=1e-9)


@pytest.mark.parametrize("op, lo, hi, floor_db", [("SoftSign", -8.0, 8.0, 33), ("Exp", -4.0, 2.5, 18),
                                                  ("Log", 0.05, 12.0, 22)])
def test_an_emulated_activation_tracks_the_function_inside_its_domain(op, lo, hi, floor_db):
    from gnaexp.core import metrics

    x = ops.parameter([1, 64], np.float32, name="x")
    fc = ops.matmul(x, ops.constant(np.eye(64, dtype=np.float32)), False, False)  # a 32-bit input, as usual
    y = {"SoftSign": ops.softsign, "Exp": ops.exp, "Log": ops.log}[op](fc)
    model = ov.Model([ops.result(y)], [x])
    feed = np.linspace(lo, hi, 64 * 8, dtype=np.float32).reshape(8, 1, 64)
    em = emulate(model, {"x": feed}, 256.0)
    ref = {"SoftSign": lambda v: v / (1 + np.abs(v)), "Exp": np.exp, "Log": np.log}[op](feed.astype(np.float64))
    out = next(iter(em.outputs.values()))
    assert metrics.sqnr_db(ref, out) > floor_db
    row = next(r for r in em.plan if r.op.startswith(op))
    assert row.out_sf == 2048.0 and row.op.endswith("segments)")


def test_prelu_with_one_slope_is_a_leaky_relu_hand_worked():
    """PRelu α = 0.25 after an FC at in_sf 16384·8 = 131072, out_sf 2048: x_lower = −32768·131072/2048 =
    −2097152, segment 0 from there with yBase FloatToInt32(−32768·0.25) = −8192 and slope α·2048/131072 = 1/256,
    segment 1 from 0 with slope 1/64. x_q = 8·[−2, −0.5, 0.5, 3] → FC ints ×16384 → [−1024, −256, 1024, 6144]."""
    x = ops.parameter([1, 4], np.float32, name="x")
    fc = ops.matmul(x, ops.constant(np.eye(4, dtype=np.float32)), False, False)
    y = ops.prelu(fc, ops.constant(np.array([0.25], np.float32)))
    y.set_friendly_name("leaky")
    em = emulate(ov.Model([ops.result(y)], [x]), {"x": np.array([[-2.0, -0.5, 0.5, 3.0]], np.float32)}, 8.0,
                 keep_ints=True)
    row = next(r for r in em.plan if r.layer == "leaky")
    assert row.op == "PRelu (leaky, 0.25)" and row.out_sf == 2048.0
    segments = row.extras.pwl["segments"]
    assert [(s["x_base"], s["y_base"]) for s in segments] == [(-2097152, -8192), (0, 0)]
    assert em.ints["leaky"].tolist() == [[-1024, -256, 1024, 6144]]


def test_prelu_with_a_slope_per_channel_is_refused_with_the_reason():
    x = ops.parameter([1, 4, 8], np.float32, name="x")
    y = ops.prelu(ops.relu(x), ops.constant(np.array([0.1, 0.2, 0.3, 0.4], np.float32).reshape(1, 4, 1)))
    with pytest.raises(ValueError, match="one slope per channel; the plugin's ReLU layer takes one negative slope"):
        emulate(ov.Model([ops.result(y)], [x]), {"x": np.zeros((1, 4, 8), np.float32)}, 8.0)


def test_the_compiled_pwl_gives_the_numpy_reference_bits():
    """pwl.evaluate runs the compiled loop (native.pwl_rows); evaluate_numpy is the arithmetic it must repeat
    exactly, over every kind of curve and inputs from far below the first segment to int32's ends."""
    from gnaexp.emulator import native, pwl as pw  # native imported: evaluate runs the compiled loop
    from gnaexp.emulator.activations import encode

    assert native.pwl_rows is not None
    rng = np.random.default_rng(7)
    curves = [pw.build_identity(2.0**20, 2049.0), pw.build_relu(2.0**18, 2048.0), pw.build_relu(131072.0, 2048.0, 0.25),
              pw.build_clamp(2.0**24, 1024.0, -0.5, 0.75)]
    curves += [encode(*design(op), 2.0**22, 2048.0, op.lower()) for op in ("Sigmoid", "Tanh", "Exp", "Log", "SoftSign")]
    x = np.concatenate([rng.integers(-2**31, 2**31 - 1, 5000), rng.integers(-2**24, 2**24, 5000),
                        [-2**31, 2**31 - 1, 0, -1, 1, 2, 3, 4, 5, 6]]).astype(np.float64).reshape(10, -1, 1)
    for curve in curves:
        got, n_got = pw.evaluate(curve, x)
        want, n_want = pw.evaluate_numpy(curve, x)
        assert got.shape == x.shape and n_got == n_want
        np.testing.assert_array_equal(got, want, err_msg=curve.kind)


def test_the_compiled_pwl_gives_the_numpy_reference_bits_on_raw_tables():
    """Random raw segment tables (1 to 128 segments, shared xBases, the first xBase shared too) on inputs at every
    xBase, one below it and anywhere in int32: the compiled passes (few segments) and the compiled search (from
    native.SEARCH_MIN_SEGMENTS on) pick the same segment as the reference's search (the last with xBase ≤ x; at or
    below the first xBase, its yBase)."""
    from gnaexp.emulator import native, pwl as pw
    from gnaexp.emulator.primitives import pwl_from_table

    assert native.pwl_rows is not None
    rng = np.random.default_rng(11)
    edge = native.SEARCH_MIN_SEGMENTS
    for trial in range(200):
        k = [edge - 1, edge, edge + 1, 128][trial] if trial < 4 else int(rng.integers(1, 129))
        xbase = np.sort(rng.integers(-2**31, 2**31 - 1, k)) & ~3
        if k > 1 and trial % 2:
            xbase[1] = xbase[0]  # the first xBase shared
        if k > 3:
            xbase[int(rng.integers(2, k))] = xbase[int(rng.integers(1, k - 1))]
            xbase.sort()
        xbase |= rng.integers(0, 3, k)  # the shift index in the two low bits
        curve = pwl_from_table(xbase, rng.integers(-2**15, 2**15, k), rng.integers(-2**15, 2**15, k))
        edges = (xbase & ~3).astype(np.float64)
        x = np.concatenate([edges, edges - 1, edges + 1, rng.integers(-2**31, 2**31 - 1, 3000)]).astype(np.float64)
        got, n_got = pw.evaluate(curve, x)
        want, n_want = pw.evaluate_numpy(curve, x)
        assert n_got == n_want
        np.testing.assert_array_equal(got, want, err_msg=f"table {trial} ({k} segments)")


def test_max_pooling_after_a_convolution_takes_the_maxima_of_the_activation_integers():
    """conv → ReLU → MaxPool(window 3, stride 2): the pooled integers are the maxima of the ReLU's integers over
    each window (exact), at the ReLU's scale factor; a padded or average pooling is refused with the reason."""
    rng = np.random.default_rng(2)
    x = ops.parameter([1, 4, 1, 20], np.float32, name="x")
    conv = ops.convolution(x, ops.constant((rng.normal(size=(4, 4, 1, 3)) * 0.5).astype(np.float32)), [1, 1],
                           [0, 0], [0, 0], [1, 1])
    relu = ops.relu(conv)
    relu.set_friendly_name("relu")
    pool = ops.max_pool(relu, [1, 2], [1, 1], [0, 0], [0, 0], [1, 3])
    pool.set_friendly_name("pool")
    feed = {"x": rng.uniform(-1, 1, (3, 1, 4, 1, 20)).astype(np.float32)}
    em = emulate(ov.Model([ops.result(pool.output(0))], [x]), feed, 2048.0, keep_ints=True)
    relu_q = em.ints["relu"].astype(np.int64)  # (3, 1, 4, 1, 18)
    want = np.stack([relu_q[..., j:j + 3].max(axis=-1) for j in range(0, 16, 2)], axis=-1)
    assert em.ints["pool"].tolist() == want.tolist() and want.shape[-1] == 8
    row = next(r for r in em.plan if r.layer == "pool")
    assert row.out_sf == next(r for r in em.plan if r.layer == "relu").out_sf
    padded = ops.max_pool(relu, [1, 2], [1, 1], [0, 1], [0, 1], [1, 3])
    with pytest.raises(ValueError, match="padded pooling: the GNA pooling has no padding"):
        emulate(ov.Model([ops.result(padded.output(0))], [x]), feed, 2048.0)
    from gnaexp.emulator.support import model_support

    avg = ops.avg_pool(relu, [1, 2], [0, 0], [0, 0], [1, 3], True)
    rows = {r["op"]: r for r in model_support(ov.Model([ops.result(avg)], [x])).rows}
    assert rows["AvgPool"]["status"] == "refused" and rows["AvgPool"]["by"] == "plugin"


def test_the_indexed_pwl_gives_the_searchs_bits_on_raw_tables():
    """Segment indexes (pwl_index.py) of random raw tables of 22 to 128 segments, spaced uniformly, geometrically
    and symmetrically (as designed PWLs are), with shared xBases and a shared first one: the indexed loop
    (native_pwl.py, eight values a step, every length's remainder) gives pwl_rows's values and saturated counts
    bit for bit on inputs at every xBase, around it, anywhere in int32, at ±0 and far outside."""
    from gnaexp.emulator import native, pwl_index
    from gnaexp.emulator.native_pwl import pwl_indexed

    rng = np.random.default_rng(12)
    built = 0
    for trial in range(150):
        k = int(rng.integers(pwl_index.MIN_SEGMENTS, 129))
        if trial % 3 == 0:
            xbase = np.sort(rng.integers(-2**31, 2**31 - 1, k)).astype(np.float64)
        elif trial % 3 == 1:
            xbase = np.sort(np.concatenate([[-float(rng.integers(0, 2**31))],
                                            np.round(np.geomspace(1, 2.0**int(rng.integers(10, 31)), k - 1))]))
        else:
            half = np.round(np.geomspace(16, 2.0**int(rng.integers(10, 31)), k // 2))
            xbase = np.sort(np.concatenate([[-2.0**31], -half, half]))
        if trial % 5 == 0:
            xbase[1] = xbase[0]  # the first xBase shared
        if trial % 7 == 0:
            j = int(rng.integers(2, len(xbase) - 1))
            xbase[j] = xbase[j - 1]
        k = len(xbase)
        ybase, slope = (rng.integers(-2**15, 2**15, k).astype(np.float64) for _ in range(2))
        inv_scale = 2.0 ** -rng.integers(0, 20, k).astype(np.float64)
        index = pwl_index.build(xbase, ybase, slope, inv_scale)
        if index is None:
            continue
        built += 1
        # values around zero in runs of eight: the window's segments (pwl_index.window), its bounds and xBases
        low, high = index.window[0], min(index.window[1], index.window[0] + 2.0**32)
        edges = np.unique(np.concatenate([index.window[2:2 + pwl_index.WINDOW], [low, high]]))
        edges = edges[np.isfinite(edges)]
        near = np.concatenate([rng.uniform(low, high, 512), np.repeat(np.concatenate([edges, edges - 1, edges - 0.5,
                                                                                      edges + 0.5]), 8)])
        x = np.concatenate([xbase, xbase - 1, xbase + 1, xbase - 0.5, [-0.0, 0.0, 1e12, -1e12], near,
                            rng.integers(-2**31, 2**31 - 1, 3000 + trial % 8).astype(np.float64)])
        want, got = np.empty_like(x), np.empty_like(x)
        n_want = native.pwl_rows(x, xbase, ybase, slope, inv_scale, want)
        first, tail = (xbase[0], ybase[0]), np.empty(16)
        n_got = pwl_indexed(x, 1.0, np.nan, np.nan, *first, index.table, index.bits, index.low_key, got,
                            tail, index.window)
        assert n_got == n_want
        np.testing.assert_array_equal(got, want, err_msg=f"table {trial} ({k} segments)")
        # scaled inputs with a design domain: the scaled values' PWL, plus the values past the domain counted
        lo, hi = np.quantile(xbase, [0.25, 0.75])
        scaled = x * 0.5
        native.pwl_rows(scaled, xbase, ybase, slope, inv_scale, want)
        n_scaled = pwl_indexed(x, 0.5, lo, hi, *first, index.table, index.bits, index.low_key, got,
                               tail, index.window)
        np.testing.assert_array_equal(got, want)
        in_place = x.copy()  # the input's columns reused for the output
        pwl_indexed(in_place, 0.5, lo, hi, *first, index.table, index.bits, index.low_key, in_place,
                    tail, index.window)
        np.testing.assert_array_equal(in_place, want)
        outside = int(np.count_nonzero(scaled < lo) + np.count_nonzero(scaled > hi))
        assert n_scaled == native.pwl_rows(scaled, xbase, ybase, slope, inv_scale, want) + outside
    assert built > 100  # most tables are indexed (uniform ones with two xBases a few apart are not)
    def tables(xv):
        return xv, np.zeros_like(xv), np.ones_like(xv), np.full_like(xv, 0.25)

    assert pwl_index.build(*tables(np.arange(pwl_index.MIN_SEGMENTS - 1, dtype=np.float64))) is None  # few: passes
    assert pwl_index.build(*tables(np.arange(40, dtype=np.float64)[::-1])) is None  # out of order
    assert pwl_index.build(*tables(np.arange(40, dtype=np.float64))) is not None
    xv, ybase, slope, _ = tables(np.arange(40, dtype=np.float64))
    assert pwl_index.build(xv, ybase, slope, np.full(40, 0.3)) is None  # a scale that is not a power of two


def test_the_small_table_pwl_gives_the_passes_bits_on_raw_tables():
    """Small tables (pwl_index.small: 1 to 16 segments, spaced uniformly or geometrically, with a shared first
    xBase) through the register loop (native_pwl.pwl_small_rows, every halving count, on columns of a work array,
    in place or into other columns, with and without a design domain) give pwl_rows's values and counts bit for
    bit on inputs at every xBase, around it, anywhere in int32, at ±0 and far outside."""
    from gnaexp.emulator import native, native_gemm, pwl_index
    from gnaexp.emulator.native_pwl import pwl_small_rows

    if native_gemm.LANES != 16:
        pytest.skip("the small-table loop is AVX-512 only; plan_compile keeps the passes elsewhere")
    rng = np.random.default_rng(13)
    for trial in range(120):
        k = 1 + trial % 16
        if trial % 2:
            xbase = np.sort(rng.integers(-2**31, 2**31 - 1, k)).astype(np.float64)
        else:
            xbase = np.sort(np.round(np.geomspace(1, 2.0**int(rng.integers(5, 31)), k)) * rng.choice([-1, 1]))
        if trial % 5 == 0 and k > 1:
            xbase[1] = xbase[0]
        ybase, slope = (rng.integers(-2**15, 2**15, k).astype(np.float64) for _ in range(2))
        inv_scale = 2.0 ** -rng.integers(0, 20, k).astype(np.float64)
        table = pwl_index.small(xbase, ybase, slope, inv_scale)
        assert table is not None
        x = np.concatenate([xbase, xbase - 1, xbase + 1, xbase - 0.5, [-0.0, 0.0, 1e12, -1e12],
                            rng.integers(-2**31, 2**31 - 1, 1000).astype(np.float64)])
        x = np.resize(x, -(-len(x) // 64) * 64).reshape(-1, 64)
        lo, hi = np.quantile(xbase, [0.25, 0.75]) if trial % 3 else (np.nan, np.nan)
        want = np.empty(x.size)
        n_want = native.pwl_rows(x.ravel() * 0.5, xbase, ybase, slope, inv_scale, want)
        n_want += int(np.count_nonzero(x * 0.5 < lo) + np.count_nonzero(x * 0.5 > hi))
        arena = np.zeros((len(x), 200))
        arena[:, 10:74] = x
        out = 100 if trial % 2 else 10  # into other columns, or in place
        n_got = pwl_small_rows(arena, 10, out, 64, 0.5, lo, hi, xbase[0], ybase[0], table,
                               pwl_index.small_halvings(k))
        assert n_got == n_want
        np.testing.assert_array_equal(arena[:, out:out + 64], want.reshape(-1, 64), err_msg=f"table {trial}")
    assert pwl_index.small(np.arange(17.0), np.zeros(17), np.ones(17), np.full(17, 0.25)) is None  # too many
    assert pwl_index.small(np.arange(4.0)[::-1], np.zeros(4), np.ones(4), np.full(4, 0.25)) is None  # out of order
    assert pwl_index.small(np.arange(4.0), np.zeros(4), np.ones(4), np.full(4, 0.3)) is None  # not a power of two
