"""The device round trip under the Python APIs of the GNA releases: OpenVINO 2023.0.2 and 2023.3.0 from the
package registry (their wheels have no GNA plugin: CPU stands in), each in a virtual environment of its own with
numpy < 2, built once into the cache. A forum net's pack and a user model's pack (DTLN stage 1, an LSTM net) are
measured there by its measure_on_device.py, imported here and judged by what was measured; the export names the
operations a release cannot read."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from gnaexp.cache import cache_dir
from gnaexp.cli import main

RELEASES = ("2023.0.2", "2023.3.0")


def _compat_python(release: str) -> Path:
    """The Python of a venv with openvino==release and numpy<2, built once (the registry is reachable)."""
    folder = cache_dir() / "compat" / f"openvino-{release}"
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = folder / ".complete"
    if not stamp.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", f"openvino=={release}", "numpy<2"],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode:
            pytest.fail(f"cannot install openvino=={release} from the package registry: {proc.stderr[-500:]}")
        stamp.write_text(release)
    return python


@pytest.fixture(scope="module", params=RELEASES)
def old_python(request):
    python = _compat_python(request.param)
    version = subprocess.run([str(python), "-c", "import openvino.runtime as r; print(r.get_version())"],
                             capture_output=True, text=True, check=True).stdout
    assert version.startswith(request.param[:6])
    return request.param, python


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _measure(python: Path, pack: Path) -> dict:
    proc = subprocess.run([str(python), str(pack / "measure_on_device.py"), "--device", "CPU"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with np.load(pack / "outputs.npz") as z:
        return json.loads(str(z["__meta__"]))


def test_a_forum_pack_round_trips_through_the_old_release(old_python, tmp_path, capsys):
    release, python = old_python
    sets = ("--set", "scale_factor=2048", "--set", "length=63")
    assert _run(capsys, "export", "concat_conv", *sets, "--out", tmp_path / "pack")[0] == 0
    meta = _measure(python, tmp_path / "pack")
    assert meta["openvino"].startswith(release[:6]) and meta["precision"] == "f32"
    code, out, _ = _run(capsys, "run", "concat_conv", *sets, "--backends",
                        f"torch,import:{tmp_path / 'pack' / 'outputs.npz'}", "--out", tmp_path / "run")
    verdict = next(line for line in out.splitlines() if line.strip().startswith("import:outputs.npz (imported):"))
    assert code == 0 and f"a CPU measurement on OpenVINO {release[:6]}" in verdict and "in FP32: matches" in verdict
    code, out, _ = _run(capsys, "diagnose", "--export-dir", tmp_path / "pack")
    observed = next(line for line in out.splitlines() if "[observed]" in line)
    assert code == 0 and f"a CPU measurement on OpenVINO {release[:6]}" in observed and "in FP32" in observed
    code, _, err = _run(capsys, "bundle", tmp_path / "run", "--out", tmp_path / "support.zip")
    assert code == 0, err
    import zipfile

    with zipfile.ZipFile(tmp_path / "support.zip") as z:
        steps = {s["step"]: s for s in json.loads(z.read("diagnosis.json"))["steps"]}
    assert steps["observed"]["measured_as"]["device"] == "CPU" and steps["observed"]["measured_as"]["precision"] == "f32"
    assert steps["observed"]["measured_as"]["openvino"].startswith(release[:6])


def test_a_user_model_pack_runs_under_the_old_release(old_python, corpus, tmp_path, capsys):
    from gnaexp.models.catalog import example_inputs

    release, python = old_python
    np.savez(tmp_path / "in.npz", **{k: v[0] for k, v in example_inputs("dtln_1").items()})
    sets = ("--set", f"model={corpus['dtln_1']}", "--set", f"input_file={tmp_path / 'in.npz'}", "--set",
            "scale_factor=256")
    assert _run(capsys, "export", "model", *sets, "--out", tmp_path / "pack")[0] == 0
    meta = _measure(python, tmp_path / "pack")
    assert meta["openvino"].startswith(release[:6])
    code, out, _ = _run(capsys, "run", "model", *sets, "--backends",
                        f"openvino:CPU,import:{tmp_path / 'pack' / 'outputs.npz'}", "--out", tmp_path / "run")
    assert code == 0 and "in FP32: matches the FP32 reference" in out, out


def test_the_export_names_operations_an_older_release_cannot_read(tmp_path, capsys):
    import openvino.opset13 as ops13

    from gnaexp.support.export import unreadable_ops

    x = ops13.parameter([1, 8], np.int32, name="x")
    model = ov.Model([ops13.result(ops13.bitwise_and(x, ops13.constant(np.full((1, 8), 3, np.int32))))], [x])
    ov.save_model(model, tmp_path / "m.xml")
    late = unreadable_ops(tmp_path / "m.xml")
    assert late == {"2022.3": ["BitwiseAnd (opset13)"], "2023.0": ["BitwiseAnd (opset13)"],
                    "2023.1": ["BitwiseAnd (opset13)"]}  # opset13 came with 2023.2: 2023.3 reads it


def test_a_silero_vad_pack_streams_on_the_old_release_and_imports_as_tracks(old_python, tmp_path, capsys):
    release, python = old_python
    audio = Path(__file__).resolve().parent.parent / "data" / "speech" / "speech_snr10.wav"
    sets = ("--set", f"audio={audio}", "--set", "scale_factor=2048")
    code, out, err = _run(capsys, "export", "silero_vad", *sets, "--out", tmp_path / "pack")
    assert code == 0 and "cannot read" not in out, out + err  # Pad written as Pad-1: 2022.3–2023.0 read it
    meta = _measure(python, tmp_path / "pack")
    assert meta["streamed"]["state"] == {"state": "next_state"} and meta["openvino"].startswith(release[:6])
    code, out, err = _run(capsys, "run", "silero_vad", *sets, "--backends",
                          f"torch,import:{tmp_path / 'pack' / 'outputs.npz'}", "--out", tmp_path / "run")
    assert code == 0, err
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    imported = next(a for b, a in record["aggregate"].items() if b.startswith("import:"))
    assert imported["agreement"] == 1.0 and imported["max_abs_dp"] < 1e-4
    assert f"(CPU f32, OpenVINO {release[:6]}" in imported["label"]  # the label says what was measured
    assert imported["lowest_state_sqnr_db"] is not None and imported["lowest_state_sqnr_db"] > 60  # state drift too


def test_a_stateful_model_pack_streams_its_state_pairs_on_the_old_release(old_python, tmp_path, capsys):
    import openvino.opset8 as ops

    release, python = old_python
    rng = np.random.default_rng(3)
    x = ops.parameter([1, 8], np.float32, name="x")
    h = ops.parameter([1, 6], np.float32, name="h")
    x.output(0).get_tensor().set_names({"x"})
    h.output(0).get_tensor().set_names({"h"})
    new_h = ops.tanh(ops.add(ops.matmul(x, ops.constant(rng.uniform(-0.4, 0.4, (8, 6)).astype(np.float32)), False,
                                        False),
                             ops.matmul(h, ops.constant(rng.uniform(-0.4, 0.4, (6, 6)).astype(np.float32)), False,
                                        False)))
    result = ops.result(new_h)
    result.output(0).get_tensor().set_names({"hn"})
    ov.save_model(ov.Model([result], [x, h]), tmp_path / "rnn.xml", compress_to_fp16=False)
    np.savez(tmp_path / "frames.npz", x=rng.uniform(-1, 1, (20, 1, 8)).astype(np.float32))
    sets = ("--set", f"model={tmp_path / 'rnn.xml'}", "--set", f"input_file={tmp_path / 'frames.npz'}", "--state",
            "h=hn", "--set", "scale_factor=4096")
    assert _run(capsys, "export", "model", *sets, "--out", tmp_path / "pack")[0] == 0
    meta = _measure(python, tmp_path / "pack")
    assert meta["streamed"]["state"] == {"h": "hn"}
    with np.load(tmp_path / "pack" / "outputs.npz") as z:
        assert z["hn"].shape == (20, 1, 6)
    code, out, err = _run(capsys, "run", "model", *sets, "--backends",
                          f"openvino:CPU,gna-emu,import:{tmp_path / 'pack' / 'outputs.npz'}", "--out", tmp_path / "run")
    verdict = next(line for line in out.splitlines() if line.strip().startswith("import:outputs.npz (imported):"))
    assert code == 0 and f"a CPU measurement on OpenVINO {release[:6]}" in verdict and "matches the FP32" in verdict


def test_the_shipped_silero_onnx_exports_readable_by_every_gna_release(corpus, tmp_path, capsys):
    # its reflect Pad is a Pad-12 whose pads an ONNX Split computes: folded and written as Pad-1
    from gnaexp.models.catalog import example_inputs
    from gnaexp.support.export import unreadable_ops

    np.savez(tmp_path / "in.npz", **{k: v[0] for k, v in example_inputs("silero_vad").items()})
    code, out, _ = _run(capsys, "export", "model", "--set", f"model={corpus['silero_vad']}", "--set",
                        f"input_file={tmp_path / 'in.npz'}", "--out", tmp_path / "pack")
    assert code == 0 and "cannot read" not in out
    assert unreadable_ops(tmp_path / "pack" / "model.xml") == {}
    assert json.loads((tmp_path / "pack" / "config.json").read_text())["unreadable_ops_by_release"] == {}
