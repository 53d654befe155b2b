"""The emulator's PWL tables against the GNA plugin's own code, per release, bit for bit.

``data/plugin_pwl_tables.json.xz`` holds what the plugin computes, per source tag (2022.3.0, 2023.0.0, 2023.1.0),
on a grid of input scale, output scale and error budget: the float designs of Sigmoid, Tanh, SoftSign, Exp, Log
and Power (or the error the plugin throws), their GNA segments, the identity with and without FakeQuantize
borders, the activation FakeQuantize, ReLU and leaky ReLU, Clamp, the output scale fine-tuning and Power's output
scale. It was produced by compiling the plugin's sources at each tag (``tools/plugin_oracle``; every number is the plugin's arithmetic, not
ours). Each test builds the same table with the emulator and requires it equal: every segment's xBase (with its
shift index), yBase and slope, every float of a design.
"""

from __future__ import annotations

import functools
import json
import lzma
from pathlib import Path

import numpy as np
import pytest

from gnaexp.emulator import activations, pwl, releases

TABLES = Path(__file__).parent / "data" / "plugin_pwl_tables.json.xz"
# Each tag stands for the releases that compute as it (releases.py: 2023.2 and 2023.3 are 2023.1's code).
TAG_RELEASES = {"2022.3.0": ("2022.3",), "2023.0.0": ("2023.0",), "2023.1.0": ("2023.1", "2023.3")}
CASES = [(tag, name) for tag, names in TAG_RELEASES.items() for name in names]


@functools.cache
def _tables() -> dict:
    return json.loads(lzma.decompress(TABLES.read_bytes()))


def _f(text: str) -> float:
    return float.fromhex(text) if text not in ("inf", "-inf") else float(text)


def _rows(curve: pwl.PWL) -> list[list[int]]:
    return [[int(x), int(y), int(k)] for x, y, k in zip(curve.xbase, curve.ybase, curve.slope)]


def _design_args(rec: dict) -> tuple[str, float, float]:
    return rec["op"], _f(rec["exponent"]) if "exponent" in rec else 1.0, _f(rec["allowed_err_pct"])


@pytest.mark.parametrize("tag,name", CASES)
def test_designs_equal_the_plugins(tag, name):
    """m, b and α of every design, as the plugin's pwl_search and its post-processing leave them; or the same
    refusal (the plugin throws, so it refuses the network)."""
    release = releases.get(name)
    checked = refused = 0
    for rec in _tables()[tag]["designs"]:
        op, e, pct = _design_args(rec)
        where = f"{op} e={e:g} pct={pct:g} @{tag}"
        if "exception" in rec:
            with pytest.raises(ValueError, match=rec["exception"].rstrip("!")):
                activations.design(op, e, pct, release)
            refused += 1
            continue
        m, b, alpha = activations.design(op, e, pct, release)
        assert [v.hex() for v in m] == [_f(v).hex() for v in rec["m"]], where + ": slopes"
        assert [v.hex() for v in b] == [_f(v).hex() for v in rec["b"]], where + ": offsets"
        assert [float(v).hex() for v in alpha] == [_f(v).hex() for v in rec["alpha"]], where + ": α"
        checked += 1
    assert checked >= 60 and refused >= 20  # the grid holds both kinds


@pytest.mark.parametrize("tag,name", CASES)
def test_encoded_segments_equal_the_plugins(tag, name):
    """Every designed activation encoded at every (input scale, output scale) of the grid: the segments the
    plugin's make_gna_pwl writes."""
    release = releases.get(name)
    checked = 0
    for rec in _tables()[tag]["encoded"]:
        if rec.get("result") == "design unavailable":
            continue
        op, e, pct = _design_args(rec)
        m, b, alpha = activations.design(op, e, pct, release)
        in_sf, out_sf = _f(rec["in_sf"]), _f(rec["out_sf_used"])
        curve = activations.encode(m, b, alpha, in_sf, out_sf, op.lower(), release)
        assert _rows(curve) == rec["segments"], f"{op} e={e:g} pct={pct:g} in {in_sf!r} out {out_sf!r} @{tag}"
        checked += 1
    assert checked >= 1000


@pytest.mark.parametrize("tag,name", CASES)
def test_power_output_scale_equals_the_plugins(tag, name):
    for rec in _tables()[tag]["power_out_sf"]:
        e, in_sf = _f(rec["exponent"]), _f(rec["in_sf"])
        assert activations.output_scale("Power", e, in_sf) == _f(rec["sf"]), f"Power {e:g} at in_sf {in_sf!r}"


@pytest.mark.parametrize("tag,name", CASES)
def test_identity_tables_equal_the_plugins(tag, name):
    """Border values and segments of the identity (and of the identity with FakeQuantize borders), or the
    plugin's refusal of F(0) outside the output range."""
    release = releases.get(name)
    for rec in _tables()[tag]["identity"]:
        in_sf, out_sf = _f(rec["in_sf"]), _f(rec["out_sf"])
        fq = (_f(rec["input_low"]), _f(rec["input_high"])) if "input_low" in rec else None
        where = f"in {in_sf!r} out {out_sf!r} fq {fq} @{tag}"
        if "exception" in rec:
            assert "F(0)" in rec["exception"]
            with pytest.raises(ValueError, match=r"F\(0\)"):
                pwl.build_identity(in_sf, out_sf, fq, release)
            continue
        bv = rec["border_values"]
        assert pwl.border_values(in_sf, out_sf, fq, release) == (bv["x_lower"], bv["x_upper"], bv["y_lower"],
                                                                 bv["y_upper"]), where
        assert _rows(pwl.build_identity(in_sf, out_sf, fq, release)) == rec["segments"], where


@pytest.mark.parametrize("tag,name", CASES)
def test_relu_and_clamp_tables_equal_the_plugins(tag, name):
    release = releases.get(name)
    for rec in _tables()[tag]["relu"]:
        in_sf, out_sf, slope = _f(rec["in_sf"]), _f(rec["out_sf"]), _f(rec["negative_slope"])
        curve = pwl.build_relu(in_sf, out_sf, slope, release)
        assert _rows(curve) == rec["segments"], f"{rec['type']} {slope!r} in {in_sf!r} out {out_sf!r} @{tag}"
    for rec in _tables()[tag]["clamp"]:
        in_sf, out_sf, low, high = (_f(rec[k]) for k in ("in_sf", "out_sf", "low", "high"))
        curve = pwl.build_clamp(in_sf, out_sf, low, high, release)
        assert _rows(curve) == rec["segments"], f"clamp [{low}, {high}] in {in_sf!r} out {out_sf!r} @{tag}"


@pytest.mark.parametrize("tag,name", CASES)
def test_fake_quantize_tables_equal_the_plugins(tag, name):
    """An activation FakeQuantize (make_gna_pwl's kActFakeQuantize case): truncated borders from its input range,
    the unit slope between, no segment through the origin."""
    release = releases.get(name)
    for rec in _tables()[tag]["fake_quantize"]:
        in_sf, out_sf, low, high = (_f(rec[k]) for k in ("in_sf", "out_sf", "input_low", "input_high"))
        curve = pwl.build_fake_quantize(in_sf, out_sf, low, high, release)
        assert _rows(curve) == rec["segments"], f"FQ [{low}, {high}] in {in_sf!r} out {out_sf!r} @{tag}"


@pytest.mark.parametrize("tag,name", CASES)
def test_output_scale_fine_tuning_equals_the_plugins(tag, name):
    """adjustScaleFactor: the candidate grid, the best slope, and whether the found value replaces the start."""
    release = releases.get(name)
    for rec in _tables()[tag]["best_output_sf"]:
        in_sf, start = _f(rec["in_sf"]), _f(rec["start_sf"])
        assert pwl.adjust_scale_factor(start, in_sf, release) == _f(rec["sf"]), f"in {in_sf!r} from {start!r} @{tag}"


def test_the_releases_differ_where_the_plugin_does():
    """The grid holds tables on which the releases disagree (so the tests above tell releases apart), and the
    emulator reproduces each side: 2023.0 rounds through float32, 2022.3 keeps a near-equal output scale."""
    t = _tables()
    enc = {tag: {json.dumps([r[k] for k in ("op", "allowed_err_pct", "in_sf", "out_sf_used") if k in r]
                            + [r.get("exponent")]): r["segments"] for r in t[tag]["encoded"] if "segments" in r}
           for tag in TAG_RELEASES}
    differ = [k for k in enc["2023.1.0"] if enc["2023.1.0"][k] != enc["2023.0.0"][k]]
    assert differ, "the grid shows no 2023.0 difference"
    sf = {tag: [r["sf"] for r in t[tag]["best_output_sf"]] for tag in TAG_RELEASES}
    assert sf["2022.3.0"] != sf["2023.1.0"] and sf["2023.0.0"] == sf["2023.1.0"]
    ident = {tag: [r.get("segments") for r in t[tag]["identity"]] for tag in TAG_RELEASES}
    assert ident["2022.3.0"] == ident["2023.1.0"] != ident["2023.0.0"]
    assert np.isfinite(_f(t["2023.1.0"]["best_output_sf"][0]["sf"]))
