"""A scale factor the emulator refuses (as the plugin would) is a row that says why; the study goes on, and what
it advises is a scale factor the emulator accepts."""

import math

import numpy as np
import openvino as ov
import openvino.opset8 as ops
import pytest

from gnaexp.core.gna_settings import GnaSettings
from gnaexp.cli import main
from gnaexp.emulator.sweep import floor_sweep, sweep

SFS = [0.01, 1.0, 2048.0, 16384.0, 1e6]


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    """x + x·x: the product is the sum's 32-bit bias input at sf², so the sum's weights scale is the input's scale
    factor; above 32767 the layer behind the bias input (an eltwise product) cannot take a lower scale and that
    scale factor is refused. (A weight that rounds to 0 is not refused: the plugin computes without that input.)"""
    d = tmp_path_factory.mktemp("residual")
    x = ops.parameter([1, 16], np.float32, name="x")
    ov.save_model(ov.Model([ops.add(x, ops.multiply(x, x))], [x], "residual"), str(d / "m.xml"),
                  compress_to_fp16=False)
    feed = {"x": (np.random.default_rng(0).random((1, 16)) - 0.5).astype(np.float32)}
    np.save(d / "x.npy", feed["x"])
    ref = ov.Core().compile_model(str(d / "m.xml"), "CPU")(feed)
    from gnaexp.emulator import load_program

    return d, feed, {load_program(str(d / "m.xml")).results[0][0]: next(iter(ref.values()))}


def test_a_refused_point_is_a_row_and_the_sweep_goes_on(residual):
    d, feed, ref = residual
    res = sweep(str(d / "m.xml"), feed, next(iter(ref.values())), SFS)
    refused = [sf for sf, why in zip(SFS, res.refused) if why]
    accepted = [sf for sf, why in zip(SFS, res.refused) if not why]
    assert refused and accepted  # this net has both kinds
    for sf, why, sqnr in zip(SFS, res.refused, res.sqnr_db):
        assert (why != "") == math.isnan(sqnr)
        if why:
            assert "Add" in why
    assert res.best_scale_factor in accepted
    table = res.table()
    assert all(f"{sf:>12g} refused: " in table for sf in refused)


def test_the_floor_sweep_advises_only_a_scale_factor_the_emulator_accepts(residual):
    d, feed, ref = residual
    fs = floor_sweep(str(d / "m.xml"), feed, ref, GnaSettings(1e6), scale_factors=SFS)
    trace = fs.floor_trace
    assert fs.refused_at_scale_factor  # the configured sf itself
    assert not trace.refused[fs.scale_factors.index(fs.best_scale_factor)]
    accepted = [s for s, why in zip(fs.scale_factors, trace.refused) if not why]
    assert fs.recommended_scale_factor in accepted or not fs.recommended_note
    assert type(fs).from_json(fs.to_json()) == fs  # the record's JSON gives back the same value


def test_sweep_and_diagnose_on_the_command_line_go_on(residual, capsys):
    d, _, _ = residual
    model = ["--set", f"model={d / 'm.xml'}", "--set", f"input_file={d / 'x.npy'}"]
    assert main(["sweep", "model", "--scale-factors", ",".join(f"{s:g}" for s in SFS), *model]) == 0
    out = capsys.readouterr().out
    assert "refused: " in out and "best sf (highest SQNR)" in out
    assert main(["diagnose", "--model", str(d / "m.xml"), "--input", str(d / "x.npy"), "--set",
                 "scale_factor=1e6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("→ the scale factor is the cause: the GNA plugin would refuse sf 1e+06 (")
    assert "the steps below use sf " in lines[1]
