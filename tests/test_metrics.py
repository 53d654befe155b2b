import math

import numpy as np
import pytest
import torch

from gnaexp.core import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_and_cosine_equal_torch(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((1, 4, 127)).astype(np.float32)
    b = (a + 0.1 * rng.standard_normal(a.shape)).astype(np.float32)
    t_l1 = torch.nn.L1Loss()(torch.from_numpy(b), torch.from_numpy(a)).item()
    t_cos = torch.nn.CosineSimilarity(dim=0)(torch.from_numpy(a).flatten(), torch.from_numpy(b).flatten()).item()
    assert metrics.l1(a, b) == pytest.approx(t_l1, rel=2e-7, abs=0)
    assert metrics.cosine(a, b) == pytest.approx(t_cos, rel=2e-7, abs=0)


def test_cosine_zero_vector_is_nan_with_reason():
    a = np.zeros(10, np.float32)
    value, why = metrics.cosine_checked(a, np.ones(10, np.float32))
    assert math.isnan(value) and "all zeros" in why
    comp = metrics.compare(np.ones(10), a)
    assert math.isnan(comp.cosine) and any("undefined" in n for n in comp.notes)


def test_identical_vectors_give_infinite_sqnr_and_roundtrip_json():
    a = np.arange(12, dtype=np.float32).reshape(1, 3, 4) - 5
    comp = metrics.compare(a, a.copy())
    assert comp.sqnr_db == math.inf and comp.l1 == 0.0 and comp.max_abs_error == 0.0
    back = metrics.Comparison.from_json(comp.to_json())
    assert back.sqnr_db == math.inf and back.cosine_per_channel == comp.cosine_per_channel


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"shape mismatch: reference \(3,\) vs test \(4,\)"):
        metrics.l1(np.zeros(3), np.zeros(4))


def test_scrambled_nonnegative_signal_keeps_high_cosine_but_not_pearson():
    # The forum trap: cosine of non-negative data stays high even when the data is scrambled.
    rng = np.random.default_rng(0)
    a = rng.random(2000).astype(np.float32)
    b = rng.permutation(a)
    assert metrics.cosine(a, b) > 0.7
    assert abs(metrics.pearson(a, b)) < 0.1


def test_per_channel_max_error_position_and_lsb():
    ref = np.zeros((1, 2, 5), np.float32) + 1
    test = ref.copy()
    test[0, 1, 3] += 0.5
    comp = metrics.compare(ref, test, output_scale=2.0)
    assert comp.max_abs_error == pytest.approx(0.5)
    assert comp.max_abs_error_index == [0, 1, 3]
    assert comp.cosine_per_channel[0] == pytest.approx(1.0)
    assert comp.cosine_per_channel[1] < 1.0
    assert comp.error_lsb == pytest.approx(0.5 / 10 * 2.0)
    assert metrics.sqnr_db(ref, test) == pytest.approx(10 * math.log10(10 / 0.25))
    assert metrics.relative_l2(ref, test) == pytest.approx(0.5 / math.sqrt(10))
    with pytest.raises(ValueError, match="positive and finite"):
        metrics.error_in_lsb(ref, test, 0.0)


def test_non_finite_values_are_named_in_the_notes():
    ref = np.ones((1, 2, 5), dtype=np.float32)
    test = ref.copy()
    test[0, 1, 3] = np.nan
    test[0, 1, 4] = np.inf
    c = metrics.compare(ref, test)
    assert math.isnan(c.l1)
    assert any("test output holds 2 NaN/Inf value(s), the first at [0, 1, 3]" in n for n in c.notes)
    assert not any(n.startswith("reference holds") for n in c.notes)
