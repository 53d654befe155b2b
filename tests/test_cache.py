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
