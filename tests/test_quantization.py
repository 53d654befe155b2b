"""NNCF post-training quantization: real NNCF runs on the forum nets (small calibration sets)."""

import hashlib
import json

import numpy as np
import openvino as ov
import pytest

from gnaexp import experiment
from gnaexp.cli import main
from gnaexp.core import metrics
from gnaexp.core.output_folder import LOCK, MANIFEST
from gnaexp.models import nncf_quantize as quantization
from gnaexp.models.nncf_quantize import QuantizationSettings


def _float_ir(name):
    return experiment.build_model(experiment.ExperimentConfig(experiment=name)).ir_xml


def _digest(path):
    return hashlib.sha256(path.read_bytes() + path.with_suffix(".bin").read_bytes()).hexdigest()


def _fq_levels(xml):
    model = ov.Core().read_model(str(xml))
    return sorted(int(op.get_attributes()["levels"]) for op in model.get_ordered_ops()
                  if op.get_type_name() == "FakeQuantize")


def test_a16w16_has_pot_gna_levels_and_stays_close_on_cpu(tmp_path):
    res = quantization.quantize_ir(_float_ir("conv"), tmp_path / "q.xml", QuantizationSettings(calibration_size=8))
    # POT's GNA config: activations 16-bit signed (65536 levels), conv weights 16-bit narrow (65535).
    # … plus POT's Result quantizer: a signed 65536-level FQ on the network output
    assert _fq_levels(res.quantized_xml) == [65535, 65536, 65536]
    act = next(r for r in res.fake_quantize if r["on"] == "activations")
    assert act["output_range"][0] == pytest.approx(-act["output_range"][1])  # made signed, like POT
    assert act["derived_scale_factor"] == pytest.approx(65535 / (2 * act["output_range"][1]), rel=1e-6)
    # CPU runs FQ in float: 16-bit steps on inputs in [0, 1) and weights |w| < 0.25 give errors ~1e-5 at most
    # (measured 4.4e-6 mean); 2e-5 leaves room for calibration-range clipping of unseen samples.
    config = experiment.ExperimentConfig(experiment="conv", ir="pot", calibration_size=8)
    rec = experiment.run(config)
    cpu = rec.metrics["openvino:CPU"]["output"]
    assert rec.result("openvino:CPU").kind == "measured"  # a quantized IR is not an FP32 reference
    assert cpu.l1 < 2e-5 and cpu.cosine > 0.99999
    assert rec.model_info["quantization"]["settings"]["activation_bits"] == 16


def test_8bit_settings_and_notes(tmp_path):
    res = quantization.quantize_ir(_float_ir("conv"), tmp_path / "q.xml",
                                   QuantizationSettings(activation_bits=8, weight_bits=8, calibration_size=8))
    assert _fq_levels(res.quantized_xml) == [256, 65536]  # weights are int8 constants, not a FakeQuantize
    weights = [r for r in res.fake_quantize if r["on"] == "weights"]
    assert weights and weights[0]["precision"] == "int8" and weights[0]["per_channel"]
    assert any("int8 Constant" in n for n in res.notes)
    model = ov.Core().read_model(str(res.quantized_xml))
    assert any(op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() == "i8"
               for op in model.get_ordered_ops())


def test_calibration_is_deterministic(tmp_path):
    shapes = {"input": (1, 2, 255)}
    a = quantization.calibration_set(QuantizationSettings(calibration_size=4, calibration_seed=3), shapes)
    b = quantization.calibration_set(QuantizationSettings(calibration_size=4, calibration_seed=3), shapes)
    c = quantization.calibration_set(QuantizationSettings(calibration_size=4, calibration_seed=4), shapes)
    assert quantization.calibration_fingerprint(a) == quantization.calibration_fingerprint(b)
    assert quantization.calibration_fingerprint(a) != quantization.calibration_fingerprint(c)
    s = QuantizationSettings(calibration_size=4, calibration_seed=3)
    x = quantization.quantize_ir(_float_ir("concat_conv"), tmp_path / "x" / "q.xml", s)
    y = quantization.quantize_ir(_float_ir("concat_conv"), tmp_path / "y" / "q.xml", s)
    # Node names in the .xml carry process-wide counters; the weights and every quantizer must be identical.
    assert x.quantized_xml.with_suffix(".bin").read_bytes() == y.quantized_xml.with_suffix(".bin").read_bytes()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "name"} for r in rows]  # noqa: E731
    assert strip(x.fake_quantize) == strip(y.fake_quantize)


@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros((0, 1, 2, 255), np.float32), "is empty for input 'input'"),
    (lambda: np.zeros((4, 1, 3, 255), np.float32), "per-sample shape (1, 3, 255); the model expects (1, 2, 255)"),
    (lambda: np.where(np.arange(4 * 510).reshape(4, 1, 2, 255) == 77, np.nan, 0.5).astype(np.float32),
     "NaN/Inf value(s); first at index (0, 0, 0, 77)"),
])
def test_bad_calibration_is_refused_and_nothing_is_touched(tmp_path, make, message, capsys):
    calib = tmp_path / "calib.npy"
    np.save(calib, make())
    float_xml = _float_ir("concat_conv")
    before = _digest(float_xml)
    out = tmp_path / "out"
    out.mkdir()
    (out / "quantization.json").write_text("earlier result")
    (out / MANIFEST).write_text(json.dumps({"entries": ["quantization.json"]}))  # an earlier result of gnaexp's
    assert main(["quantize", "concat_conv", "--calibration", str(calib), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert _digest(float_xml) == before
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK) == [MANIFEST, "quantization.json"]
    assert (out / "quantization.json").read_text() == "earlier result"


def test_model_nncf_cannot_quantize_is_a_clear_error(tmp_path):
    float_xml = _float_ir("concat")  # no convolution: nothing for NNCF to quantize
    before = _digest(float_xml)
    with pytest.raises(ValueError, match="inserted no quantizers|could not quantize"):
        quantization.quantize_ir(float_xml, tmp_path / "q.xml", QuantizationSettings(calibration_size=4))
    assert _digest(float_xml) == before and not (tmp_path / "q.xml").exists()


def test_cli_quantize_writes_float_quantized_and_plan(tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["quantize", "concat_conv", "--calibration-size", "4", "--weight-bits", "8", "--out", str(out)]) == 0
    assert {"float.xml", "float.bin", "quantized.xml", "quantized.bin", "quantization.json"} <= {
        p.name for p in out.iterdir()}
    plan = json.loads((out / "quantization.json").read_text())
    assert plan["quantized_ir"] == "quantized.xml" and plan["settings"]["weight_bits"] == 8
    assert "levels 65536" in capsys.readouterr().out
    assert _fq_levels(out / "float.xml") == [] and _fq_levels(out / "quantized.xml") == [65536, 65536]


def test_output_fake_quantize_as_pot_wrote_it_and_what_it_changes_on_gna(tmp_path):
    """POT's GNA config quantized the Result (q16_a). With that FakeQuantize the plugin has output statistics
    for the conv; without it 16-bit weights on full-scale inputs saturate the int32 accumulator."""
    import openvino as ov

    from gnaexp.emulator import emulate
    from gnaexp.emulator.plan_row import Lane

    float_xml = _float_ir("conv")
    with_fq = quantization.quantize_ir(float_xml, tmp_path / "a" / "q.xml", QuantizationSettings(calibration_size=8))
    without = quantization.quantize_ir(float_xml, tmp_path / "b" / "q.xml",
                                       QuantizationSettings(calibration_size=8, output_fake_quantize=False))
    model = ov.Core().read_model(str(with_fq.quantized_xml))
    fq = model.get_results()[0].input_value(0).get_node()
    assert fq.get_type_name() == "FakeQuantize" and int(fq.get_attributes()["levels"]) == 65536
    assert model.outputs[0].any_name == "output"  # the output keeps its name
    samples = quantization.calibration_set(QuantizationSettings(calibration_size=8), {"input": (1, 6, 255)})
    peak = quantization.output_ranges(ov.Core().read_model(str(float_xml)), samples)["output"]
    lo, hi = (float(fq.input_value(i).get_node().get_data()) for i in (1, 2))
    assert hi == pytest.approx(peak, rel=1e-6) and lo == -hi  # symmetric, from the calibration outputs
    assert any("Result: q16_a" in n for n in with_fq.notes) and any("No FakeQuantize on the network output" in n
                                                                   for n in without.notes)
    config = experiment.ExperimentConfig(experiment="conv")
    feed = experiment.make_inputs(config, experiment.build_model(config))
    ref = experiment.run(experiment.ExperimentConfig(experiment="conv", backends=["torch"])).result("torch")
    results = {}
    for name, res in (("with", with_fq), ("without", without)):
        for sf in (1.0, 2048.0):
            em = emulate(res.quantized_xml, feed, sf)
            c = metrics.compare(ref.outputs["output"], em.outputs["output"])
            acc = sum(r.saturations for r in em.plan if r.lane is Lane.INT32)
            results[name, sf] = (c.cosine, c.l1, acc)
    assert results["with", 1.0] == results["with", 2048.0]  # the FakeQuantize sets the input scale
    cosine, l1, acc = results["with", 1.0]
    assert cosine >= 0.9999 and l1 <= 5e-4 and acc == 0  # the forum's POT figure: 0.9999, n×1e-4
    assert results["without", 1.0][2] > 0 and results["without", 1.0][0] < cosine  # saturation without it
