"""gnaexp layers --bisect: the fewest layers kept at the reference precision (real NNCF, real OpenVINO CPU, the
real emulator, the CLI)."""

import contextlib
import io
import json
import math

import numpy as np
import openvino as ov
import pytest

from gnaexp.cli import main
from gnaexp.layers.bisect import search
from gnaexp.layers.results import LayerComparison

CONV = "__module.1/aten::_convolution/Convolution"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """concat_conv bisected for bf16 (precision marks) and NNCF int8 (ignored scope), above what either reaches."""
    folder = tmp_path_factory.mktemp("bisect")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["layers", "concat_conv", "--backends", "openvino:CPU,openvino:CPU:bf16,nncf:int8", "--bisect",
                     "--target-sqnr", "55", "--out", str(folder / "out")])
    assert code == 0
    return json.loads((folder / "out" / "layers.json").read_text(encoding="utf-8")), out.getvalue()


def test_nncf_int8_bisection_reaches_the_target_with_layers_kept_in_float(run):
    data, table = run
    b = data["bisection"]["nncf:int8"]
    assert b["how"] == "ignored_scope" and b["target_sqnr_db"] == 55.0
    start, last = b["steps"][0], [s for s in b["steps"] if s["kept"] == b["kept"]][-1]
    assert start["phase"] == "start" and start["kept"] == [] and float(start["output_sqnr_db"]) < 55  # int8 alone: 41.7
    assert b["reached"] and b["kept"] == [CONV]  # the convolution in float: no quantizer is left before it
    assert float(last["output_sqnr_db"]) >= 55
    assert "bisection (ignored_scope; target 55 dB on the lowest output):" in table
    assert f"add        inf dB  kept 1: {CONV}" in table
    assert f"keep 1 layer(s) at the reference precision (ignored_scope):\n    {CONV}" in table


def test_bf16_precision_marks_change_the_numbers_or_say_they_are_ignored(run):
    data, table = run
    b = data["bisection"]["openvino:CPU:bf16"]
    assert b["how"] == "precision marks"
    sqnrs = [float(s["output_sqnr_db"]) for s in b["steps"]]
    if b["honoured"]:
        assert sqnrs[0] < 55 <= max(sqnrs) and b["reached"] and CONV in b["kept"]  # this CPU keeps it at f32
        assert b["steps"][-1]["output_sqnr_db"] != b["steps"][0]["output_sqnr_db"]
    else:
        assert b["honoured"] is False and not b["reached"]
        assert "CPU does not honour OpenVINO's precision marks" in " ".join(b["notes"])
        assert "does not honour" in table


def test_bisection_json_round_trips(run):
    data, _ = run
    result = LayerComparison.from_json(data)
    assert result.to_json() == data
    assert result.bisection["nncf:int8"].steps[-1].output_sqnr_db == math.inf


def test_greedy_then_pruned():
    gains = {"a": 20.0, "b": 0.0, "c": 20.0}
    seen = []

    def evaluate(kept):
        seen.append(kept)
        return 10.0 + sum(gains[k] for k in kept)
    steps, kept, reached = search(["a", "b", "c"], evaluate, 45.0)
    assert reached and kept == ["a", "c"]  # b added on the way, pruned
    assert [(s.phase, s.kept, s.output_sqnr_db) for s in steps] == [
        ("start", [], 10.0), ("all", ["a", "b", "c"], 50.0), ("add", ["a"], 30.0), ("add", ["a", "b"], 30.0),
        ("add", ["a", "b", "c"], 50.0), ("prune", ["b", "c"], 30.0), ("prune", ["a", "c"], 50.0)]
    steps, kept, reached = search(["a", "b"], evaluate, 100.0)
    assert not reached and [s.phase for s in steps] == ["start", "all"]  # out of reach: no walk


def test_gna_emu_keeps_a_fully_connected_layer_at_int16_weights():
    from gnaexp.core.gna_settings import GnaSettings
    from gnaexp.emulator.api import emulate

    rng = np.random.default_rng(0)
    x = ov.opset13.parameter([1, 32], ov.Type.f32, name="x")
    fc = ov.opset13.matmul(x, ov.opset13.constant(rng.normal(size=(32, 8)).astype(np.float32)), False, False)
    fc.set_friendly_name("fc")
    model = ov.Model([fc], [x])
    feed = {"x": rng.uniform(-1, 1, size=(1, 32)).astype(np.float32)}

    def out(**kw):
        return next(iter(emulate(model, feed, settings=GnaSettings(2048.0, **kw)).outputs.values()))
    i16, i8 = out(precision="i16"), out(precision="i8")
    assert not np.array_equal(i16, i8)
    assert np.array_equal(out(precision="i8", int16_layers=("fc",)), i16)
    assert GnaSettings.from_json(GnaSettings(1.0, "i8", int16_layers=("fc",)).to_json()).int16_layers == ("fc",)
    assert "int16_layers" not in GnaSettings().to_json()  # the settings' JSON unchanged unless asked


@pytest.mark.parametrize("argv, message", [
    (["--bisect", "--target-sqnr", "nan"], "--target-sqnr must be a positive, finite number of dB"),
    (["--bisect", "--target-sqnr=-5"], "--target-sqnr must be a positive, finite number of dB"),
    (["--target-sqnr", "40"], "--target-sqnr is the bisection's target: add --bisect"),
])
def test_bad_target_exits_2_naming_it(argv, message, capsys):
    assert main(["layers", "conv", "--backends", "openvino:CPU,nncf:int8", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
