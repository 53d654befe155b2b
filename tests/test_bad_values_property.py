"""Property: every bad value of every setting, from the command line or a batch matrix, is exit 2 with the setting
(or the value) named, no traceback, and nothing changed in an existing output folder."""

import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnaexp.cli import main

SHAPES = ("in_channels", "copies", "conv_in_channels", "out_channels", "kernel", "stride", "length",
          "calibration_size")
CHOICES = {"input_kind": ("uniform01", "uniform11", "normal", "sines"), "precision": ("i16", "i8"),
           "layout": ("correct", "legacy-concat"), "ir": ("default", "nncf", "pot"),
           "execution_mode": ("AUTO", "HW", "HW_WITH_SW_FBACK", "SW_EXACT", "SW_FP32")}
words = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12)
not_int = st.one_of(words.filter(lambda w: not w.lstrip("-").isdigit()),
                    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)).map(repr))
not_number = words.filter(lambda w: not _is_number(w))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bad_value(key: str) -> st.SearchStrategy[str]:
    if key in SHAPES:
        return st.one_of(not_int, st.integers(max_value=0).map(str))
    if key in ("seed", "calibration_seed"):
        return st.one_of(not_int, st.integers(max_value=-1).map(str), st.integers(min_value=2**32).map(str))
    if key in ("activation_bits", "weight_bits"):
        return st.one_of(not_int, st.integers().filter(lambda b: b not in (8, 16)).map(str))
    if key == "scale_factor":
        return st.one_of(not_number, st.sampled_from(["nan", "inf", "-inf", "0", "-1", "-2048"]))
    if key == "amplitude":
        return st.one_of(not_number, st.sampled_from(["nan", "inf", "-inf", "0"]))
    if key in CHOICES:
        return words.filter(lambda w: w not in CHOICES[key] and w.upper().removeprefix("GNA_") not in CHOICES[key])
    if key == "backends":
        return words.filter(lambda w: w not in ("torch", "gna-emu"))
    raise AssertionError(key)


KEYS = [*SHAPES, "seed", "calibration_seed", "activation_bits", "weight_bits", "scale_factor", "amplitude",
        *CHOICES, "backends"]


@pytest.fixture
def existing_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "record.json").write_text("an earlier result")
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_set_values_exit_2(existing_output, capsys, data):
    key = data.draw(st.sampled_from(KEYS))
    value = data.draw(_bad_value(key))
    before = _snapshot(existing_output)
    code = main(["run", "conv", "--set", f"{key}={value}", "--out", str(existing_output)])
    err = capsys.readouterr().err
    assert code == 2, (key, value, err)
    assert key in err or value in err, (key, value, err)
    assert "Traceback" not in err
    assert _snapshot(existing_output) == before


yaml_bad = {
    "int": st.one_of(st.floats(allow_nan=False).filter(lambda f: f != int(f) if f == f and abs(f) < 1e300 else True),
                     st.booleans(), st.lists(st.integers(), max_size=2), st.dictionaries(words, st.integers(), max_size=1)),
    "float": st.one_of(st.booleans(), st.lists(st.floats(), max_size=2), words.filter(lambda w: not _is_number(w))),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_matrix_values_exit_2(tmp_path, capsys, data):
    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    key = data.draw(st.sampled_from(["length", "kernel", "seed", "stride", "scale_factor", "amplitude", "precision",
                                     "layout", "backends", "input_kind"]))
    if key in ("length", "kernel", "seed", "stride"):
        value = data.draw(yaml_bad["int"])
    elif key in ("scale_factor", "amplitude"):
        value = data.draw(yaml_bad["float"])
    else:
        value = data.draw(st.one_of(_bad_value(key), st.integers(), st.lists(words, max_size=2)))
    field = data.draw(st.sampled_from(["parameters", "defaults"]))
    run = {"notebook": str(notebooks / "conv"), "name": "r"}
    doc = {"runs": [run]}
    if field == "parameters":
        run["parameters"] = {key: value}
    else:
        doc["defaults"] = {key: value}
    matrix = tmp_path / "m.yaml"
    matrix.write_text(yaml.safe_dump(doc))
    out = tmp_path / "reports"
    out.mkdir(exist_ok=True)
    (out / "index.html").write_text("an earlier index")
    before = _snapshot(out)
    code = main(["batch", str(matrix), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, (key, value, err)
    assert "bad matrix" in err and (key in err or str(value) in err), (key, value, err)
    assert "Traceback" not in err
    assert _snapshot(out) == before
