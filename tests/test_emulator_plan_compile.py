"""The compiled plan (emulator/plan_compile.py, native_plan.py): from its second run a plan's lowered steps run in
one compiled loop, unrolled recurrent time steps included, with the interpreted run's numbers and saturation
counts bit for bit."""

import dataclasses
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from gnaexp.core.gna_settings import GnaSettings
from gnaexp.emulator import load_program
from gnaexp.emulator import native  # noqa: F401 — loaded: plans run compiled from their second run
from gnaexp.emulator.api import prepare_inputs
from gnaexp.emulator.graph import SPLIT_MIN, build_plan, edited
from gnaexp.emulator.plan_compile import CompiledPlan


def _named(outputs, names):
    for o, n in zip(outputs, names):
        o.get_tensor().set_names({n})
    return [ops.result(o) for o in outputs]


def _gru(linear_before_reset: bool) -> ov.Model:
    """A GRU (hidden 20: its per-step outputs need ConcatAlignFilters) between two FCs, a constant added."""
    rng = np.random.default_rng(3)
    steps, n_in, hidden = 5, 12, 20
    x = ops.parameter([1, steps, n_in], np.float32, name="x")
    h0 = ops.parameter([1, 1, hidden], np.float32, name="h0")
    fc = ops.relu(ops.matmul(x, ops.constant((rng.normal(size=(n_in, n_in)) * 0.5).astype(np.float32)), False,
                             False))
    w = ops.constant((rng.normal(size=(1, 3 * hidden, n_in)) * 0.4).astype(np.float32))
    r = ops.constant((rng.normal(size=(1, 3 * hidden, hidden)) * 0.3).astype(np.float32))
    b = ops.constant((rng.normal(size=(1, (4 if linear_before_reset else 3) * hidden)) * 0.2).astype(np.float32))
    seq = ops.gru_sequence(fc, h0, ops.constant(np.array([steps], np.int32)), w, r, b, hidden, "forward",
                           linear_before_reset=linear_before_reset)
    y = ops.sigmoid(ops.matmul(ops.reshape(seq.output(0), ops.constant(np.array([1, steps, hidden])), False),
                               ops.constant((rng.normal(size=(hidden, 7)) * 0.5).astype(np.float32)), False, False))
    return ov.Model(_named([y.output(0), seq.output(1)], ("y", "ho")), [x, h0])


def _lstm() -> ov.Model:
    """A bidirectional LSTM with clipping (Clamp PWLs, a concat of the directions)."""
    rng = np.random.default_rng(4)
    steps, n_in, hidden = 4, 8, 16
    x = ops.parameter([1, steps, n_in], np.float32, name="x")
    h0, c0 = (ops.parameter([1, 2, hidden], np.float32, name=n) for n in ("h0", "c0"))
    w = ops.constant((rng.normal(size=(2, 4 * hidden, n_in)) * 0.4).astype(np.float32))
    r = ops.constant((rng.normal(size=(2, 4 * hidden, hidden)) * 0.3).astype(np.float32))
    b = ops.constant((rng.normal(size=(2, 4 * hidden)) * 0.2).astype(np.float32))
    seq = ops.lstm_sequence(x, h0, c0, ops.constant(np.array([steps], np.int32)), w, r, b, hidden, "bidirectional",
                            clip=0.5)
    return ov.Model(_named(seq.outputs(), ("y", "ho", "co")), [x, h0, c0])


MODELS = {"gru": lambda: _gru(True), "gru_reset_first": lambda: _gru(False), "lstm_bidirectional": _lstm}


def _plan(model: ov.Model, n: int, sf: float, amplitude: float = 1.0):
    rng = np.random.default_rng(5)
    inputs = {p.get_any_name(): rng.uniform(-amplitude, amplitude, size=[n, *p.get_shape()]).astype(np.float32)
              for p in model.inputs}
    prog = load_program(model)
    feeds, shapes, _ = prepare_inputs(prog, inputs)
    return build_plan(prog, shapes, GnaSettings(sf)), feeds


def _same(a, b) -> None:
    assert list(a[0]) == list(b[0])
    for k in a[0]:
        assert a[0][k].dtype == b[0][k].dtype and np.array_equal(a[0][k], b[0][k]), k
    assert a[1] == b[1]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("sf, amplitude", [(256.0, 1.0), (2048.0, 15.0)])  # the second saturates the GRUs' ReLU
def test_the_compiled_run_gives_the_interpreted_numbers_and_counts(name, sf, amplitude):
    plan, feeds = _plan(MODELS[name](), 3, sf, amplitude)
    interpreted = plan.run(feeds)  # the first run is interpreted (and reads the tensors' shapes)
    compiled = plan.run(feeds)
    assert isinstance(plan._compiled, CompiledPlan)
    _same(interpreted, compiled)
    if amplitude > 1 and name.startswith("gru"):  # counted in the compiled loop as the interpreted run counts
        assert sum(n for k, n in compiled[1].items() if k.startswith("Relu")) > 0
    # every time step runs in the compiled loop: Python runs only the input quantization (and moves of the
    # quantized input, float32 values kept as they are)
    python = [plan._compiled.steps[first] for lowered, first, _ in plan._compiled.segments if not lowered]
    assert {s.kind for s in python} <= {"input", "move"}
    # which run first, wherever the plan scheduled them: the lowered steps are one segment, not cut by them
    assert [lowered for lowered, _, _ in plan._compiled.segments] == [False] * len(python) + [True]
    assert not any("/t" in s.name for s in python) and len(plan._compiled.ops) > 40


def test_a_batch_shared_by_the_cores_and_a_kept_integer_run_match_the_interpreted_one():
    plan, feeds = _plan(_gru(True), 2 * SPLIT_MIN + 3, 2048.0)
    interpreted = plan.run(feeds)
    _same(interpreted, plan.run(feeds))  # tasks on the cores, each compiled
    kept = plan.run(feeds, keep_ints=True)  # the integers of every layer: interpreted
    _same(interpreted, kept)
    assert kept[2]


def test_an_edited_step_runs_as_edited():
    plan, feeds = _plan(_gru(True), 3, 2048.0)
    fc = next(s for s in plan.steps if s.kind == "fc" and "/t1/" in s.name)
    wrong = edited(plan, fc.name, lambda st: (lambda x, run=st.run: run(-x)))
    first = wrong.run(feeds)
    assert not any(np.array_equal(first[0][k], plan.run(feeds)[0][k]) for k in ("ho",))
    _same(first, wrong.run(feeds))
    assert wrong._compiled and any(not lowered and wrong._compiled.steps[i].name == fc.name
                                   for lowered, i, _ in wrong._compiled.segments)


def test_a_data_movement_is_read_by_running_it():
    plan, feeds = _plan(_lstm(), 2, 2048.0)
    plan.run(feeds)
    plan.run(feeds)
    compiled = plan._compiled
    moved = [s for s in plan.steps if s.kind in ("move", "concat")]
    assert moved and all(dataclasses.asdict(s.lowered)["op"] == "move" for s in moved)
    assert (compiled.ops[:, 0] == 0).any()  # the directions' concat gathers


def test_a_fully_connected_layer_on_loud_inputs_splits_them_for_the_int16_product():
    """Large weights (Σ|w| far past 2^31 / 32768) on quiet and loud rows: the compiled loop takes the int16
    product (where the processor has it), a loud row split into its high and low bytes, and gives the interpreted
    run's numbers and counts bit for bit, sums near 2^31 included."""
    from gnaexp.emulator import native_gemm

    rng = np.random.default_rng(9)
    x = ops.parameter([1, 6, 64], np.float32, name="x")
    w = ops.constant(rng.normal(size=(64, 40)).astype(np.float32))
    model = ov.Model(_named([ops.matmul(x, w, False, False).output(0)], ("y",)), [x])
    prog = load_program(model)
    data = rng.uniform(-1, 1, size=(5, 1, 6, 64)).astype(np.float32)
    data[1] *= 15.9  # loud samples: sums past int32 too
    data[3, :, 2] *= 15.9  # one loud row in a quiet sample
    feeds, shapes, _ = prepare_inputs(prog, {"x": data})
    plan = build_plan(prog, shapes, GnaSettings(2048.0))
    interpreted = plan.run(feeds, keep_ints=True)
    compiled = plan.run(feeds)
    _same(interpreted, compiled)
    sums = next(v for k, v in interpreted[2].items() if k.startswith("MatMul"))
    assert np.abs(sums).max() > 2**30
    fc_rows = [r for r in plan._compiled.ops if r[0] == 7]
    assert len(fc_rows) == 1 and fc_rows[0][5] == 6  # six rows a sample
    if native_gemm.LANES is not None:
        assert fc_rows[0][10] == 2  # the int16 product
        limit = plan._compiled.floats[fc_rows[0][9] + 40]
        peaks = np.abs(interpreted[2]["x"].reshape(5 * 6, 64)).max(axis=1)
        assert 1000 < limit < 32768 and 0 < np.sum(peaks > limit) < 30  # quiet rows one product, loud rows split


def test_designed_power_and_square_root_pwls_are_found_through_their_index():
    """The plugin's Power (61 segments) and Sqrt (43) designs run through their segment index in the compiled loop
    (where it runs: an x86 processor with AVX2 or AVX-512), the 13-segment Exp by passes; the same numbers and
    saturation counts (Exp saturates) as the interpreted run."""
    from gnaexp.emulator import native_gemm

    rng = np.random.default_rng(2)
    x = ops.parameter([1, 300], np.float32, name="x")
    square = ops.power(x, ops.constant(np.array([2.0], np.float32)))
    root = ops.sqrt(ops.add(square, ops.constant(np.array([1.0], np.float32))))
    model = ov.Model(_named([square.output(0), ops.exp(x).output(0), root.output(0)], ("sq", "ex", "rt")), [x])
    prog = load_program(model)
    feeds, shapes, _ = prepare_inputs(prog, {"x": rng.uniform(-3, 3, size=(37, 1, 300)).astype(np.float32)})
    plan = build_plan(prog, shapes, GnaSettings(1024.0))
    interpreted = plan.run(feeds)
    compiled = plan.run(feeds)
    _same(interpreted, compiled)
    assert sum(compiled[1].values()) > 0
    pwl_rows = {int(r[6]): int(r[10]) for r in plan._compiled.ops if r[0] == 2}  # segments: index offset
    assert set(pwl_rows) == {61, 43, 13}
    assert pwl_rows[13] == 0
    assert (pwl_rows[61] > 0 and pwl_rows[43] > 0) == (native_gemm.LANES is not None)


def test_convolutions_run_in_the_compiled_loop_with_the_interpreted_bits():
    """A compiled plan's convolutions (long filters: the int16 product) run as rows of its compiled loop, their
    sums written straight into the work array's columns, quiet and loud samples alike: the interpreted run's
    numbers and counts. An edited convolution runs as edited (its own run, in Python)."""
    rng = np.random.default_rng(8)
    x = ops.parameter([1, 8, 64], np.float32, name="x")
    w1 = ops.constant((rng.normal(size=(16, 8, 8)) * 0.3).astype(np.float32))
    w2 = ops.constant((rng.normal(size=(8, 16, 4)) * 0.3).astype(np.float32))
    hidden = ops.relu(ops.convolution(x, w1, [2], [0], [0], [1]))
    y = ops.convolution(hidden, w2, [1], [0], [0], [1])
    model = ov.Model(_named([y.output(0)], ("y",)), [x])
    prog = load_program(model)
    data = rng.uniform(-1, 1, size=(9, 1, 8, 64)).astype(np.float32)
    data[4] *= 30  # loud samples (saturating the input quantization too)
    feeds, shapes, _ = prepare_inputs(prog, {"x": data})
    plan = build_plan(prog, shapes, GnaSettings(1024.0))
    interpreted = plan.run(feeds)
    compiled = plan.run(feeds)
    _same(interpreted, compiled)
    convs = [s for s in plan.steps if s.kind == "conv"]
    assert len(convs) == 2 and all(s.lowered is not None and s.lowered.op == "conv" for s in convs)
    assert _conv_rows(plan._compiled) == 2
    wrong = edited(plan, convs[0].name, lambda st: (lambda v, run=st.run: run(-v)))
    first = wrong.run(feeds)
    _same(first, wrong.run(feeds))
    assert not np.array_equal(first[0]["y"], compiled[0]["y"])


def _conv_rows(compiled: CompiledPlan) -> int:
    from gnaexp.emulator.plan_compile import CODES

    return int(np.count_nonzero(compiled.ops[:, 0] == CODES["conv"]))


def _conv_desc(compiled: CompiledPlan) -> np.ndarray:
    """The compiled convolutions' descriptions (native_conv.CONV_*), summed field by field."""
    from gnaexp.emulator import native_conv
    from gnaexp.emulator.plan_compile import CODES

    rows = compiled.ops[compiled.ops[:, 0] == CODES["conv"]]
    return sum(compiled.index[r[5]:r[5] + native_conv.CONV_FIELDS] for r in rows)


@pytest.mark.parametrize("block", [1, 3, None])
def test_a_folded_convolution_with_porting_filters_runs_compiled_with_loud_samples_split(block, monkeypatch):
    """An STFT-like convolution (mirrored filters: folded, conv_fold.py; ten filters, which porting pads to twelve
    and drops again) then a plain one reading its padded input through the padding's gather, in the compiled
    loop: samples beyond the int16 product's limit (their block split into bytes) and within it, in blocks of
    one, three and all samples, give the interpreted run's numbers and saturation counts."""
    from gnaexp.emulator import native_conv, native_plan

    rng = np.random.default_rng(9)
    taps = 64
    half = rng.normal(size=(10, taps // 2))
    mirrored = np.concatenate([half, half[:, ::-1]], axis=1)  # symmetric
    mirrored[5:, taps // 2:] *= -1  # and antisymmetric
    x = ops.parameter([1, 1, 160], np.float32, name="x")
    first = ops.convolution(x, ops.constant(mirrored[:, None, :].astype(np.float32)), [16], [0], [0], [1])
    w2 = ops.constant((rng.normal(size=(8, 10, 7)) * 0.3).astype(np.float32))  # 70 taps: long too
    y = ops.convolution(ops.relu(first), w2, [1], [2], [1], [1])  # its padding: a gather it runs itself
    model = ov.Model(_named([y.output(0)], ("y",)), [x])
    prog = load_program(model)
    data = rng.uniform(-0.05, 0.05, size=(11, 1, 1, 160)).astype(np.float32)
    data[[2, 7]] *= 200  # loud: beyond the folded product's limit
    feeds, shapes, _ = prepare_inputs(prog, {"x": data})
    plan = build_plan(prog, shapes, GnaSettings(2048.0, porting=True))
    interpreted = plan.run(feeds)
    compiled = plan.run(feeds)
    assert _conv_rows(plan._compiled) == 2
    (conv, gather), = plan._compiled.into_conv.items()
    assert plan.steps[conv].kind == "conv" and plan.steps[gather].out not in plan._compiled.columns
    kernel = next(s for s in plan.steps if s.kind == "conv").lowered.kernel
    assert kernel.fold is not None and kernel.weights.shape[1] == 12  # folded, porting's two zero filters
    # the folded windows run through their runs, the plain one's as slices of staged rows (native_windows.py)
    assert [_conv_desc(plan._compiled)[k] > 0 for k in (native_conv.CONV_RUN_COUNT, native_conv.CONV_STAGED)] == \
        [True, True]
    limit = min(w.peak_limit for w in kernel.int_weights)
    peaks = np.abs(feeds[next(iter(feeds))].reshape(11, -1)).max(axis=1) * 2048
    assert np.sum(peaks > limit) == 2 and np.sum(peaks <= limit) == 9  # both kinds of sample
    if block is not None:
        monkeypatch.setattr(native_plan, "BLOCK_BYTES", 8 * plan._compiled.width * block)
        compiled = plan.run(feeds)
    _same(interpreted, compiled)
    assert sum(interpreted[1].values()) > 0  # something saturated: the counts are compared too


@pytest.mark.parametrize("name", list(MODELS))
def test_segments_run_block_by_block_with_the_same_numbers(name, monkeypatch):
    """A segment runs every op on a block of samples before the next block (its columns stay in cache): blocks
    of one and of two samples give the interpreted run's numbers and counts."""
    from gnaexp.emulator import native_plan

    plan, feeds = _plan(MODELS[name](), 5, 2048.0, 15.0)
    interpreted = plan.run(feeds)
    _same(interpreted, plan.run(feeds))  # compiled: one block
    width = plan._compiled.width
    assert native_plan.block_rows(width) >= 5
    for block in (1, 2):
        monkeypatch.setattr(native_plan, "BLOCK_BYTES", 8 * width * block)
        assert native_plan.block_rows(width) == block
        _same(interpreted, plan.run(feeds))


def test_a_host_pad_and_the_input_quantization_run_in_the_compiled_loop():
    """A reflect pad on the input (host pre-processing, porting) and the input's quantization are rows of the
    compiled loop: no Python step runs, and the numbers and counts (saturating samples included) are the
    interpreted run's."""
    rng = np.random.default_rng(10)
    x = ops.parameter([1, 1, 96], np.float32, name="x")
    padded = ops.pad(x, ops.constant(np.array([0, 0, 4], np.int64)), ops.constant(np.array([0, 0, 12], np.int64)),
                     "reflect")
    w = ops.constant((rng.normal(size=(8, 1, 64)) * 0.3).astype(np.float32))
    y = ops.convolution(padded, w, [16], [0], [0], [1])
    model = ov.Model(_named([y.output(0)], ("y",)), [x])
    prog = load_program(model)
    data = rng.uniform(-1, 1, size=(7, 1, 1, 96)).astype(np.float32)
    data[3] *= 40  # beyond int16 once scaled: the quantization saturates
    feeds, shapes, _ = prepare_inputs(prog, {"x": data})
    plan = build_plan(prog, shapes, GnaSettings(2048.0, porting=True))
    interpreted = plan.run(feeds)
    compiled = plan.run(feeds)
    _same(interpreted, compiled)
    assert [lowered for lowered, _, _ in plan._compiled.segments] == [True]
    assert interpreted[1][next(s.name for s in plan.steps if s.kind == "input")] > 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, 3e38])  # the last is finite, infinite once scaled
def test_a_non_finite_input_in_a_compiled_run_is_named_as_in_the_interpreted_one(bad):
    from gnaexp.core.errors import BadInput

    plan, feeds = _plan(_gru(True), 3, 2048.0)
    plan.run(feeds)
    plan.run(feeds)
    assert plan._compiled
    key = next(iter(feeds))
    wrong = {k: v.copy() for k, v in feeds.items()}
    wrong[key].reshape(-1)[5] = bad
    with pytest.raises(BadInput, match="holds 1 NaN or infinite value"):
        plan.run(wrong)
    _same(plan.run(feeds), plan.run(feeds))  # and the plan runs on


@pytest.mark.parametrize("x_off, out_off", [(0, 40), (0, 0), (0, 7), (7, 0)])  # apart, the same, overlapping
def test_the_loop_quantization_gives_the_host_rounding_whatever_its_columns(x_off, out_off):
    """The compiled loop's input quantization (native_plan._quant) against the host's (native.quantize_input):
    the same values and saturated count, into columns apart from, the same as or overlapping its input's."""
    from gnaexp.emulator import native_plan

    rng = np.random.default_rng(11)
    x = (rng.uniform(-20, 20, size=(6, 33)) * rng.uniform(0, 1, size=(6, 1))).astype(np.float32)
    x[2, 4], x[4, 9] = 16.0, -16.0  # ±32768 once scaled: the negative one fits, the positive saturates
    arena = np.zeros((6, 80))
    arena[:, x_off:x_off + 33] = x
    expected = np.empty_like(x)
    want = native.quantize_input(x, np.float32(2048.0), expected, np.float32(-32768), np.float32(32767))[0]
    assert native_plan._quant(arena, x_off, out_off, 33, 2048.0) == want > 0
    assert np.array_equal(arena[:, out_off:out_off + 33], expected)


@pytest.mark.parametrize("stride, kernel, pads, transposed", [(1, 3, (1, 1), True), (2, 3, (1, 0), False),
                                                               (1, 5, (0, 3), True), (2, 5, (2, 2), True)])
def test_convolutions_whose_windows_share_values_read_them_from_staged_rows(stride, kernel, pads, transposed):
    """A convolution over several channels whose windows overlap (Silero VAD's encoder: kernel 3 over frames)
    stages each sample's values once and takes every window as a slice of that row (native_windows.py): strides,
    kernels and paddings, loud samples (split into bytes) among quiet ones, give the interpreted run's
    numbers and counts; the staged row built by a loop a frame where it is the input transposed (the last frame
    unread: through its index)."""
    from gnaexp.emulator import native_conv

    rng = np.random.default_rng(12)
    x = ops.parameter([1, 24, 9], np.float32, name="x")
    w = ops.constant((rng.normal(size=(5, 24, kernel)) * 0.2).astype(np.float32))  # ≥ 72 taps: the int16 product's
    y = ops.convolution(ops.relu(x), w, [stride], [pads[0]], [pads[1]], [1])
    model = ov.Model(_named([y.output(0)], ("y",)), [x])
    data = rng.uniform(-1, 1, size=(13, 1, 24, 9)).astype(np.float32)
    data[[3, 8]] *= 12  # loud
    prog = load_program(model)
    feeds, shapes, _ = prepare_inputs(prog, {"x": data})
    plan = build_plan(prog, shapes, GnaSettings(2048.0, porting=True))  # the padding: porting's
    interpreted = plan.run(feeds)
    compiled = plan.run(feeds)
    desc = _conv_desc(plan._compiled)
    assert desc[native_conv.CONV_STAGED] > 0 and desc[native_conv.CONV_POSITIONS] > 1
    assert (desc[native_conv.CONV_T_CHANNELS] > 0) == transposed
    _same(interpreted, compiled)
    assert not np.array_equal(interpreted[0]["y"][3], interpreted[0]["y"][0])


def test_a_gather_of_runs_copies_them_as_its_index_says():
    """A movement's gather whose index holds runs (a reflect pad: the values, then some of them backwards; zeros)
    runs them as loops: the same values as through its index, and an index of scattered columns keeps it."""
    from gnaexp.emulator import native_plan
    from gnaexp.emulator.plan_compile import CODES

    index = np.concatenate([np.arange(5, 45), np.arange(44, 30, -1), np.zeros(9, np.int64), np.arange(1, 12)])
    runs = native_plan.gather_runs(index)
    assert runs.tolist() == [[0, 4, 40, 1], [40, 43, 14, -1], [54, -1, 9, 1], [63, 0, 11, 1]]
    assert native_plan.gather_runs(np.array([3, 9, 1, 7, 2, 8, 4, 6])) is None
    arena = np.random.default_rng(13).normal(size=(5, 200))
    expected = arena.copy()
    expected[:, 100:100 + len(index)] = np.where(index > 0, arena[:, index - 1], 0.0)
    row = np.zeros((1, native_plan.WIDTH), dtype=np.int64)
    row[0, :5] = CODES["gather"], 0, 0, 100, len(index)
    row[0, 5], row[0, 6], row[0, 7] = 0, len(runs), len(index)  # the index at 0, its runs after it
    pool = np.concatenate([index, runs.ravel()])
    native_plan.run_ops(arena, row, pool, np.zeros(1), np.zeros(1, np.int16), np.zeros(1, np.int64), 2)
    assert np.array_equal(arena, expected)


def test_a_compiled_plans_outputs_are_dequantized_as_the_plugin_exports_them():
    """Outputs read from the work array's columns (contiguous rows, strided samples) are dequantized by the
    compiled loop with primitives.dequantize's bits: float32 cast, then float32 division (odd scales, int32
    extremes, NaN); other arrays take NumPy's."""
    from gnaexp.emulator import primitives
    from gnaexp.emulator.graph import _dequantize

    rng = np.random.default_rng(14)
    arena = rng.integers(-2**31, 2**31, size=(9, 300)).astype(np.float64)
    arena[3, 40] = np.nan
    arena[4, 41:43] = 2.0**31 - 1, -2.0**31
    for sf in (2048.0, 3.3, 1e-3):
        for view in (arena[:, 40:296].reshape(9, 2, 1, 128), arena[:, 7:8], arena[::2, 40:100]):
            got, want = _dequantize(view, sf, True), primitives.dequantize(view, sf)
            assert got.dtype == np.float32 and np.array_equal(got, want, equal_nan=True)
    strided = arena[:, 40:100:2]  # samples' values not contiguous: NumPy's
    assert np.array_equal(_dequantize(strided, 3.3, True), primitives.dequantize(strided, 3.3), equal_nan=True)


AVX2 = "+avx,+avx2,+fma,+bmi,+bmi2,+f16c,+popcnt,+sse4.2,+sse4.1,+ssse3,+sse3,+sse2,+sse,+lzcnt,+movbe,+cx16,+xsave"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="an x86 instruction set")
def test_the_compiled_loop_builds_and_runs_on_a_processor_without_avx512(tmp_path):
    """Compiled for an AVX2 processor (most Intel laptops, where GNA is: no AVX-512), the loop builds (its
    AVX-512-only parts lower to portable code: LLVM aborted the process on them) and gives the interpreted run's
    numbers: this file's recurrent, convolution and pool tests in a process compiled so (its own cache)."""
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=AVX2, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    tests = Path(__file__).parent
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-o", "timeout=600",
                           str(tests / "test_emulator_plan_compile.py"), str(tests / "test_emulator_native_pool.py"),
                           "-k", "interpreted_numbers or folded_convolution or staged_rows or many_streams"],
                          capture_output=True, text=True, timeout=900, env=env, cwd=str(tests.parent))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
