"""A measured result is judged by what ran: an export pack measured on CPU (the script forces f32 and says so) is
held to FP32; a bf16 CPU file is neither FP32 nor GNA; a GNA SW_EXACT file identical to the emulation at its own
settings is quantization only, and one that differs from it says that the emulator and the plugin differ."""

import json
import subprocess
import sys

import numpy as np

from gnaexp import experiment
from gnaexp.backends.imported import write_outputs
from gnaexp.cli import main
from gnaexp.diagnose import measurement
from gnaexp.emulator import emulate


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _verdict(out: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith("import:outputs.npz (imported):"))


def test_a_pack_measured_on_cpu_is_held_to_fp32(tmp_path, capsys):
    assert _run(capsys, "export", "conv", "--set", "scale_factor=2048", "--set", "length=63", "--out",
                tmp_path / "pack")[0] == 0
    proc = subprocess.run([sys.executable, str(tmp_path / "pack" / "measure_on_device.py"), "--device", "CPU"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "pack" / "outputs.npz") as z:
        meta = json.loads(str(z["__meta__"]))
    assert meta["plugin_config"] == {"INFERENCE_PRECISION_HINT": "f32"} and meta["precision"] == "f32"
    code, out, _ = _run(capsys, "run", "conv", "--set", "scale_factor=2048", "--set", "length=63", "--backends",
                        f"torch,import:{tmp_path / 'pack' / 'outputs.npz'}", "--out", tmp_path / "run")
    assert code == 0
    assert "a CPU measurement" in _verdict(out) and "in FP32: matches the FP32 reference" in _verdict(out)
    assert "int16 floor" not in _verdict(out)


def _import(tmp_path, outputs, meta):
    path = tmp_path / "outputs.npz"
    write_outputs(path, outputs, meta)
    return path


def _gna_meta(sf: float) -> dict:
    return {"backend": "openvino:GNA", "device": "GNA", "execution_mode": "GNA_SW_EXACT", "precision": "I16",
            "plugin_config": {"GNA_DEVICE_MODE": "GNA_SW_EXACT", "GNA_PRECISION": "I16",
                              "GNA_SCALE_FACTOR_0": repr(sf)}, "openvino": "2023.0.2"}


def test_gna_sw_exact_identical_to_the_emulation_is_quantization_only_and_a_difference_is_named(tmp_path, capsys):
    config = experiment.ExperimentConfig.from_strings("conv", ["scale_factor=2048", "length=63"])
    model, feed, _, _ = experiment.reference_run(config)
    emulated = emulate(model.ir_xml, feed, 2048.0).outputs["output"]
    same = _import(tmp_path, {"output": emulated}, _gna_meta(2048.0))
    code, out, _ = _run(capsys, "run", "conv", "--set", "scale_factor=2048", "--set", "length=63", "--backends",
                        f"torch,import:{same}", "--out", tmp_path / "same")
    assert code == 0 and "identical to the emulation at the same settings (sf input 2048, i16)" in _verdict(out)
    record = json.loads((tmp_path / "same" / "record.json").read_text())
    imported = next(b for b in record["backends"] if b["kind"] == "imported")
    assert imported["info"]["what_ran"]["class"] == "gna-integer"
    assert imported["info"]["against_emulation"]["identical"] is True
    assert imported["info"]["against_emulation"]["plugin_release"] == "2023.0"  # the release it ran on (2023.0.2)

    off = emulated.copy()
    off.reshape(-1)[::7] += np.float32(3.0 / 2048)  # a few values a few LSBs away: what another rounding gives
    other = tmp_path / "other"
    other.mkdir()
    differs = _import(other, {"output": off}, _gna_meta(2048.0))
    code, out, _ = _run(capsys, "run", "conv", "--set", "scale_factor=2048", "--set", "length=63", "--backends",
                        f"torch,import:{differs}", "--out", tmp_path / "differs")
    assert code == 0 and "differs from the emulation at the same settings" in _verdict(out)
    assert "send the bundle" in _verdict(out)


def test_a_bf16_cpu_file_is_neither_fp32_nor_gna():
    from gnaexp.backends.base import BackendResult

    result = BackendResult("import", "imported", {"output": np.zeros(3, np.float32)},
                           info={"source_meta": {"device": "CPU", "precision": "<Type: 'bf16'>", "openvino": "2023.0.2"}})
    ran = measurement.what_ran(result)
    assert ran.klass == "reduced-float" and ran.precision == "bf16"
    from gnaexp.core import metrics
    from gnaexp.diagnose import verdicts as diagnosis

    c = metrics.compare(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.01]))
    text, status = diagnosis.measured_verdict(ran, c)
    assert status == "quantization-limited" and "in bf16, neither FP32 nor GNA" in text
