import numpy as np
import pytest

from gnaexp.core import inputs


@pytest.mark.parametrize("kind", inputs.INPUT_KINDS)
def test_generators_are_deterministic_and_shaped(kind):
    a = inputs.generate(kind, (1, 6, 255), seed=3, amplitude=0.5)
    b = inputs.generate(kind, (1, 6, 255), seed=3, amplitude=0.5)
    c = inputs.generate(kind, (1, 6, 255), seed=4, amplitude=0.5)
    assert a.dtype == np.float32 and a.shape == (1, 6, 255)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_ranges():
    assert 0 <= inputs.generate("uniform01", (1000,)).min() and inputs.generate("uniform01", (1000,)).max() < 1
    u = inputs.generate("uniform11", (1000,))
    assert u.min() < -0.5 and u.max() > 0.5
    s = inputs.generate("sines", (1, 2, 255), amplitude=3.0)
    assert np.abs(s).max() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="unknown input kind 'x'"):
        inputs.generate("x", (3,))


def test_load_validates_shape_and_nan(tmp_path):
    good = np.zeros((1, 6, 255), np.float32)
    np.save(tmp_path / "good.npy", good)
    assert inputs.load(tmp_path / "good.npy", {"input": (1, 6, 255)})["input"].shape == (1, 6, 255)
    np.save(tmp_path / "bad.npy", np.zeros((1, 2, 255), np.float32))
    with pytest.raises(ValueError, match=r"shape \(1, 2, 255\); the model expects \(1, 6, 255\)"):
        inputs.load(tmp_path / "bad.npy", {"input": (1, 6, 255)})
    nan = good.copy()
    nan[0, 3, 17] = np.nan
    np.savez(tmp_path / "nan.npz", input=nan)
    with pytest.raises(ValueError, match=r"NaN/Inf value\(s\); first at index \(0, 3, 17\)"):
        inputs.load(tmp_path / "nan.npz", {"input": (1, 6, 255)})
    np.savez(tmp_path / "other.npz", a=good, b=good)
    with pytest.raises(ValueError, match=r"lacks input\(s\) \['input'\]"):
        inputs.load(tmp_path / "other.npz", {"input": (1, 6, 255)})


def test_fingerprint_changes_with_content():
    a = {"input": np.zeros(4, np.float32)}
    b = {"input": np.ones(4, np.float32)}
    assert inputs.fingerprint(a) == inputs.fingerprint({"input": np.zeros(4, np.float32)})
    assert inputs.fingerprint(a) != inputs.fingerprint(b)
