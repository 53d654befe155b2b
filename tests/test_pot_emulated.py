"""The forum's POT observations, reproduced with NNCF-quantized IRs on the GNA emulator."""

import numpy as np
import pytest

from gnaexp import experiment
from gnaexp.backends import make_backend
from gnaexp.core import metrics
from gnaexp.emulator import emulate


def _setup(name, ir, **kw):
    config = experiment.ExperimentConfig(experiment=name, ir=ir, calibration_size=16, **kw)
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    ref = make_backend("torch").run(model, feed).outputs["output"]
    return model, feed, ref


@pytest.mark.parametrize("weight_bits", [16, 8])
def test_quantized_conv_ignores_configured_sf_and_beats_default_ir_at_sf1(weight_bits):
    model, feed, ref = _setup("conv", "pot", weight_bits=weight_bits)
    at1 = emulate(model.ir_xml, feed, 1.0)
    at2048 = emulate(model.ir_xml, feed, 2048.0)
    # The FakeQuantize range sets the input scale factor: the configured one changes nothing.
    assert np.array_equal(at1.outputs["output"], at2048.outputs["output"])
    assert at1.input_scale_factors == at2048.input_scale_factors
    assert at1.input_scale_factors["input"] > 30000
    assert any("overridden" in n for n in at1.notes)
    default_model, default_feed, default_ref = _setup("conv", "default")
    default_sf1 = emulate(default_model.ir_xml, default_feed, 1.0).outputs["output"]
    pot_l1 = metrics.l1(ref, at1.outputs["output"])
    assert pot_l1 < 0.1 * metrics.l1(default_ref, default_sf1)


def test_quantized_concat_conv_legacy_stays_far_correct_at_floor():
    model, feed, ref = _setup("concat_conv", "pot", weight_bits=8)
    legacy = [metrics.compare(ref, emulate(model.ir_xml, feed, sf, layout="legacy-concat").outputs["output"])
              for sf in (1.0, 2048.0)]
    correct = metrics.compare(ref, emulate(model.ir_xml, feed, 2048.0).outputs["output"])
    assert legacy[0].to_json() == legacy[1].to_json()  # same at sf 1 and 2048, like the forum's 0.60/0.60
    assert legacy[0].cosine < 0.9 and legacy[0].sqnr_db < 10
    assert correct.cosine > 0.9999 and correct.sqnr_db > legacy[0].sqnr_db + 30
