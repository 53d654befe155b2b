"""The emulator against plain readings of the GNA plugin's LSTM and GRU cells (``spec_reference_cell.py``,
``spec_reference_gru.py``), bit for bit, on random cells, for every plugin release.

Hypothesis draws the sizes (hidden 4–16, input 4–24), the weights' and bias' magnitudes (a zero bias: the Adds
the plugin drops), the clip (none or a Clamp per gate), GRU's linear_before_reset, the data, the input scale
factors and the release; the cell is an opset13 ``lstm_cell`` or ``gru_cell`` handed to the emulator as a model.
Outputs and the scale factor of every step must be identical. Bounded and fixed here;
``GNAEXP_DIFFERENTIAL_EXAMPLES`` sets a longer, exploring profile.
"""

from __future__ import annotations

import os

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import spec_reference as ref
import spec_reference_cell as rcell
import spec_reference_gru as rgru
import spec_reference_ops as rops
from gnaexp.emulator import emulate
from gnaexp.emulator.activations import design
from gnaexp.emulator.releases import get as release_named
from gnaexp.core.inputs import generate

EXAMPLES = int(os.environ.get("GNAEXP_DIFFERENTIAL_EXAMPLES", "0")) or None
PROFILE = settings(max_examples=EXAMPLES or 200, deadline=None, derandomize=EXAMPLES is None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow])

inputs = st.tuples(st.sampled_from(["uniform11", "normal", "sines"]), st.sampled_from([0.1, 1.0, 3.0]),
                   st.integers(0, 2**16))
scale_factors = st.one_of(st.sampled_from([256.0, 1024.0, 2048.0, 8192.0]),
                          st.floats(64.0, 16384.0, allow_nan=False).map(lambda v: float(np.float32(v))))


def _step(plan_rows, name):
    return next(r.out_sf for r in plan_rows if r.layer.endswith("/" + name))


def _same_as_reference(run, reference, skip=()):
    """The emulated cell against the reference: the same refusal, or every step's scale factor (steps whose name
    ends with one of ``skip`` aside) and the output, identical."""
    try:
        want = reference()
    except rcell.Refused as why:
        event(f"refused: {why}")
        with pytest.raises(ValueError, match="cannot take a lower scale"):
            run()
        return
    em = run()
    event("lowered" if want.lowered else "computed")
    rows = [row for row in em.plan if row.op != "Parameter"]
    for name, sf in want.sfs.items():
        if not name.endswith(tuple(skip)):
            assert _step(rows, name) == sf, name
    np.testing.assert_array_equal(next(iter(em.outputs.values())), ref.dequantize(want.out, want.out_sf)[None])


@PROFILE
@given(st.integers(4, 16), st.integers(4, 24), inputs, scale_factors, scale_factors, scale_factors,
       st.sampled_from([0.1, 0.5, 2.0]), st.sampled_from([0.0, 0.1, 1.0]), st.sampled_from([0.0, 0.5, 3.0]),
       st.sampled_from(rops.RELEASES))
def test_lstm_cell_is_bit_exact(hidden, n_in, signal, sf_x, sf_h, sf_c, w_scale, b_scale, clip, release):
    """H' of one LSTM cell, and every step's scale factor (the plan rows named as the decomposition names them)."""
    x = generate(signal[0], (1, n_in), signal[2], signal[1])
    h = generate(signal[0], (1, hidden), signal[2] + 1, signal[1])
    c = generate(signal[0], (1, hidden), signal[2] + 2, signal[1])
    rng = np.random.default_rng(signal[2] + 3)
    w = (rng.uniform(-1, 1, (4 * hidden, n_in)) * w_scale).astype(np.float32)
    r = (rng.uniform(-1, 1, (4 * hidden, hidden)) * w_scale).astype(np.float32)
    b = (rng.uniform(-1, 1, 4 * hidden) * b_scale).astype(np.float32)
    px, ph, pc = (ops.parameter([1, n], np.float32, name=name) for name, n in (("x", n_in), ("h", hidden),
                                                                            ("c", hidden)))
    cell = ops.lstm_cell(px, ph, pc, ops.constant(w), ops.constant(r), ops.constant(b), hidden, clip=clip)
    model = ov.Model([cell.output(0)], [px, ph, pc])
    designs = {op: design(op, 1.0, release=release_named(release)) for op in ("Sigmoid", "Tanh")}

    def run():
        return emulate(model, {"x": x, "h": h, "c": c}, {"x": sf_x, "h": sf_h, "c": sf_c}, plugin_release=release)

    # the Clamps keep the name OpenVINO gives them; their sf is the diagonal's input sf
    _same_as_reference(run, lambda: rcell.lstm_cell(x[0], h[0], c[0], w, r, b, (sf_x, sf_h, sf_c), clip, designs,
                                                    release), skip=("/clamp",))


@PROFILE
@given(st.integers(4, 16), st.integers(4, 24), inputs, scale_factors, scale_factors, st.sampled_from([0.1, 0.5, 2.0]),
       st.sampled_from([0.0, 0.1, 1.0]), st.booleans(), st.sampled_from([0.0, 0.5, 3.0]),
       st.sampled_from(rops.RELEASES))
def test_gru_cell_is_bit_exact(hidden, n_in, signal, sf_x, sf_h, w_scale, b_scale, lbr, clip, release):
    """H' of one GRU cell, and every step's scale factor (the plan rows named as the decomposition names them)."""
    x = generate(signal[0], (1, n_in), signal[2], signal[1])
    h = generate(signal[0], (1, hidden), signal[2] + 1, signal[1])
    rng = np.random.default_rng(signal[2] + 3)
    w = (rng.uniform(-1, 1, (3 * hidden, n_in)) * w_scale).astype(np.float32)
    r = (rng.uniform(-1, 1, (3 * hidden, hidden)) * w_scale).astype(np.float32)
    b = (rng.uniform(-1, 1, (4 if lbr else 3) * hidden) * b_scale).astype(np.float32)
    px, ph = (ops.parameter([1, n], np.float32, name=name) for name, n in (("x", n_in), ("h", hidden)))
    cell = ops.gru_cell(px, ph, ops.constant(w), ops.constant(r), ops.constant(b), hidden, clip=clip,
                        linear_before_reset=lbr)
    model = ov.Model([cell.output(0)], [px, ph])
    designs = {op: design(op, 1.0, release=release_named(release)) for op in ("Sigmoid", "Tanh")}

    def run():
        return emulate(model, {"x": x, "h": h}, {"x": sf_x, "h": sf_h}, plugin_release=release)

    _same_as_reference(run, lambda: rgru.gru_cell(x[0], h[0], w, r, b, (sf_x, sf_h), clip, lbr, designs, release))
