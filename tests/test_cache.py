"""The on-disk cache: a torch reference is reused, and a damaged entry reads as absent and is written anew."""

import numpy as np

from gnaexp import cache, experiment


def test_reference_is_reused_and_a_corrupt_entry_is_rebuilt():
    config = experiment.ExperimentConfig(experiment="conv", length=21, seed=11, backends=["torch", "gna-emu"])
    key = experiment.reference_cache_key(config)
    folder = cache.cache_dir() / "reference" / key
    first = experiment.run(config, use_cache=True)
    assert (folder / "meta.json").exists()
    again = experiment.run(config, use_cache=True)
    assert again.result("torch").info.get("cached") is True
    assert np.array_equal(again.result("torch").outputs["output"], first.result("torch").outputs["output"])
    assert again.diagnosis == first.diagnosis  # the cache changes nothing a user reads

    (folder / "meta.json").write_text("{ not json")  # e.g. a disk filled half-way through a write
    assert cache.load_reference(key) is None
    rebuilt = experiment.run(config, use_cache=True)
    assert not rebuilt.result("torch").info.get("cached")
    assert np.array_equal(rebuilt.result("torch").outputs["output"], first.result("torch").outputs["output"])
    assert cache.load_reference(key) is not None  # the entry was written anew
    assert not list(folder.parent.glob(".damaged-*")) and not list(folder.parent.glob(".tmp-*"))


def test_no_cache_for_inputs_from_a_file_or_another_ir(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 33), np.float32))
    assert experiment.reference_cache_key(experiment.ExperimentConfig(input_file=str(tmp_path / "x.npy"))) is None
    assert experiment.reference_cache_key(experiment.ExperimentConfig(ir="nncf")) is None
    assert experiment.reference_cache_key(experiment.ExperimentConfig(backends=["openvino:CPU"])) is None


def test_quantized_ir_is_reused_and_a_damaged_entry_is_quantized_again():
    from gnaexp.quantization import QuantizationSettings

    float_xml = experiment.build_model(experiment.ExperimentConfig(experiment="conv", length=23, seed=4)).ir_xml
    settings = QuantizationSettings(16, 8, 4, 0, "uniform01", 1.0, "")
    first = cache.quantized_ir(float_xml, settings)
    meta = first.quantized_xml.with_name("quantization.json")
    stamp = first.quantized_xml.stat().st_mtime_ns
    again = cache.quantized_ir(float_xml, settings)
    assert again.quantized_xml == first.quantized_xml and again.fake_quantize == first.fake_quantize
    assert first.quantized_xml.stat().st_mtime_ns == stamp  # not quantized twice
    meta.write_text("{")
    redone = cache.quantized_ir(float_xml, settings)
    assert redone.fake_quantize == first.fake_quantize and json_loads(meta)["calibration_count"] == 4


def json_loads(path):
    import json

    return json.loads(path.read_text())
