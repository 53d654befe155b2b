"""The on-disk cache: a torch reference is reused, and a damaged entry reads as absent and is written anew."""

import dataclasses

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


def test_a_run_whose_reference_is_cached_does_not_import_torch():
    """The torch backend is checked without importing torch (a second of CPU in every batch kernel): with the
    net's reference cached, a run never imports it (a subprocess: this one has torch loaded already)."""
    import json
    import subprocess
    import sys

    config = experiment.ExperimentConfig(experiment="conv", length=21, seed=12, backends=["torch", "gna-emu"])
    experiment.run(config, use_cache=True)  # fills the cache
    script = ("import json, sys; from gnaexp import experiment; "
              "config = experiment.ExperimentConfig(experiment='conv', length=21, seed=12, "
              "backends=['torch', 'gna-emu']); r = experiment.run(config, use_cache=True); "
              "print(json.dumps(['torch' in sys.modules, r.result('torch').info.get('cached')]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, True]


def test_no_cache_for_inputs_from_a_file_or_without_torch(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 33), np.float32))
    assert experiment.reference_cache_key(experiment.ExperimentConfig(input_file=str(tmp_path / "x.npy"))) is None
    assert experiment.reference_cache_key(experiment.ExperimentConfig(backends=["openvino:CPU"])) is None


def test_a_quantized_ir_run_shares_the_float_nets_cached_reference():
    """torch runs the float net whatever IR the device gets: an NNCF run takes the float net's cached reference,
    quantizes the cached float IR, and reads the same as a run without any cache."""
    from gnaexp.models import ir

    base = experiment.ExperimentConfig(experiment="conv", length=25, seed=12, calibration_size=4,
                                       backends=["torch", "gna-emu"])
    nncf = dataclasses.replace(base, ir="nncf")
    key = experiment.reference_cache_key(nncf)
    assert key == experiment.reference_cache_key(base)
    float_ir = ir.fingerprint_ir(experiment.build_model(base).ir_xml)

    fresh = experiment.run(nncf)  # no cache at all
    first = experiment.run(nncf, use_cache=True)  # a miss: stores the float net, not the quantized IR
    assert ir.fingerprint_ir(cache.load_reference(key)[0].ir_xml) == float_ir
    cached = experiment.run(nncf, use_cache=True)
    assert cached.result("torch").info.get("cached") is True
    # The same quantized weights (NNCF's generated constant names depend on the process, not on the inputs).
    quantized = [experiment._cached_reference(nncf, key)[0].ir_xml, experiment.build_model(nncf).ir_xml]
    assert quantized[0] != quantized[1]
    assert quantized[0].with_suffix(".bin").read_bytes() == quantized[1].with_suffix(".bin").read_bytes()
    assert first.model_fingerprint != float_ir
    assert cached.model_info["quantization"]["settings"] == fresh.model_info["quantization"]["settings"]
    assert cached.metrics == fresh.metrics
    assert cached.diagnosis == fresh.diagnosis


def test_quantized_ir_is_reused_and_a_damaged_entry_is_quantized_again():
    from gnaexp.models.nncf_quantize import QuantizationSettings

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


def test_what_a_killed_build_left_is_cleared_by_the_next_build_and_a_live_ones_is_kept(tmp_path):
    """A batch interrupted with its kernels killed one while it built an IR: its temporary folder stayed in the
    cache for good (no clean-up runs in a killed process). The next build clears it; a build still running in
    another process keeps its folder."""
    import signal
    import subprocess
    import sys
    import textwrap

    child = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from gnaexp import cache
        def build(tmp):
            (tmp / "model.xml").write_text("half")
            print("building", flush=True)
            time.sleep(120)
        cache._publish(Path(sys.argv[1]), build, ["model.xml"])
    """)
    entry = tmp_path / "ir" / "entry"
    builders = [subprocess.Popen([sys.executable, "-c", child, str(entry)], stdout=subprocess.PIPE, text=True)
                for _ in range(2)]
    try:
        for b in builders:
            assert b.stdout.readline().strip() == "building"
        temporaries = sorted(p.name for p in entry.parent.glob(".tmp-*"))
        assert len(temporaries) == 2 and all(f"-{b.pid}-" in " ".join(temporaries) for b in builders)
        builders[0].send_signal(signal.SIGKILL)
        builders[0].wait(timeout=30)

        cache._publish(entry, lambda tmp: (tmp / "model.xml").write_text("whole"), ["model.xml"])
        assert (entry / "model.xml").read_text() == "whole"
        left = [p.name for p in entry.parent.glob(".tmp-*")]
        assert len(left) == 1 and f"-{builders[1].pid}-" in left[0]  # the live build's, not the killed one's
    finally:
        for b in builders:
            b.kill()
            b.wait(timeout=30)
