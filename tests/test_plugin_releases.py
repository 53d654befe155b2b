"""``plugin_release``: the emulator computes as the GNA plugin release a user runs, and every result says which.

The tables themselves are held to the plugin's code in test_emulator_plugin_tables.py; here: a whole network whose
numbers depend on the release (an int8 row whose multiplier computes to 0), the release carried from a setting
to the backend, the record and the sweep, a measurement compared with the emulation of the release it ran on, and
inputs past a PWL's design domain counted and named where they saturate.
"""

from __future__ import annotations

import json

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from gnaexp import cli, experiment
from gnaexp.diagnose import measurement
from gnaexp.emulator import emulate, releases
from gnaexp.vad import run as vad_run
from gnaexp.vad.record import EmulatorReport, VadRecord


def _fc_with_a_dead_row() -> tuple[ov.Model, np.ndarray]:
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (4, 16)).astype(np.float32)
    w[2] *= 1e-4  # its int8 row multiplier computes to 0 (max |w|·w_sf/127 + 0.5 < 1)
    p = ops.parameter([1, 16], np.float32, name="x")
    model = ov.Model([ops.matmul(p, ops.constant(w), False, True)], [p])
    return model, rng.uniform(-1, 1, (1, 16)).astype(np.float32)


def test_an_int8_row_with_a_zero_multiplier_saturates_in_2022_3_only():
    model, x = _fc_with_a_dead_row()
    out = {r: emulate(model, {"x": x}, 2048.0, precision="i8", plugin_release=r) for r in ("2022.3", "2023.0",
                                                                                           "2023.3")}
    y = {r: em.outputs[next(iter(em.outputs))].reshape(-1) for r, em in out.items()}
    assert y["2023.0"].tolist() == y["2023.3"].tolist()
    assert y["2022.3"][2] != y["2023.3"][2] and np.abs(y["2022.3"][2]) > 10 * np.abs(y["2023.3"][2])
    assert np.array_equal(np.delete(y["2022.3"], 2), np.delete(y["2023.3"], 2))  # the other rows agree
    assert any("computed multiplier of 0" in n for r in out["2022.3"].plan for n in r.notes)
    assert out["2022.3"].plugin_release == "2022.3" and out["2022.3"].to_json()["plugin_release"] == "2022.3"


def test_the_release_goes_from_a_setting_to_the_backend_the_record_and_the_sweep(tmp_path, capsys):
    assert cli.main(["run", "conv", "--set", "length=63", "--set", "plugin_release=2023.0.2", "--backends",
                     "torch,gna-emu", "--out", str(tmp_path / "r")]) == 0
    record = json.loads((tmp_path / "r" / "record.json").read_text())
    assert record["config"]["plugin_release"] == "2023.0"
    emu = next(b for b in record["backends"] if b["backend"] == "gna-emu")
    assert emu["settings"]["plugin_release"] == "2023.0" and emu["info"]["plugin_release"] == "2023.0"
    assert record["sweep"]["plugin_release"] == "2023.0"
    config = experiment.ExperimentConfig.from_strings("conv", ["length=63", "plugin_release=2022.3"])
    assert experiment.sweep(config, [1.0, 2048.0]).plugin_release == "2022.3"


def test_a_measurement_is_compared_with_the_emulation_of_its_release():
    assert measurement.plugin_release_of("2023.0.2") == "2023.0"
    assert measurement.plugin_release_of("2023.3.0-13775-ceeafaf64f3-releases/2023/3") == "2023.3"
    assert measurement.plugin_release_of("2022.3.1") == "2022.3"
    assert measurement.plugin_release_of("2024.6.0") is None and measurement.plugin_release_of(None) is None


def _power(exponent: float) -> ov.Model:
    p = ops.parameter([1, 8], np.float32, name="x")
    w = np.eye(8, dtype=np.float32)
    return ov.Model([ops.power(ops.matmul(p, ops.constant(w), False, True), ops.constant(np.float32(exponent)))], [p])


@pytest.mark.parametrize("exponent, beyond", [(2.0, 3), (0.5, 2)])
def test_inputs_past_a_pwls_design_domain_count_as_saturated(exponent, beyond):
    """x² is designed on [−16, 16] and √x on [0, 16] whatever the scale (pwl_approximation.hpp): past that the
    output is held at the end value, and the layer says how many inputs went there."""
    x = np.array([[0.5, 3.0, 15.0, 17.0, 40.0, -20.0 if exponent == 2.0 else 0.25, 1.0, 2.0]], np.float32)
    em = emulate(_power(exponent), {"x": x}, 1024.0)
    row = next(r for r in em.plan if "PWL" in r.op)
    assert row.saturations == beyond and row.extras.domain == ((-16.0, 16.0) if exponent == 2.0 else (0.0, 16.0))
    y = em.outputs[next(iter(em.outputs))].reshape(-1)
    assert abs(y[4] - y[3]) < 0.01 * abs(y[3])  # 40 reads as 17 does: both at the domain's end


def test_the_vad_report_names_each_saturated_layer_and_why():
    plan = [{"layer": "sqrt", "op": "Sqrt (PWL, 43 segments)", "out_sf": 8191.75, "saturations": 223,
             "domain": [0.0, 16.0]},
            {"layer": "c/identity", "op": "Identity (inserted)", "out_sf": 2049.0, "saturations": 5},
            {"layer": "relu", "op": "Relu", "out_sf": 2048.0, "saturations": 4},
            {"layer": "conv", "op": "Convolution", "out_sf": 3.0, "saturations": 0}]
    record = VadRecord(["gna-emu"], "gna-emu", {"gna-emu": "gna-emu (emulated)"}, {}, [], [], {}, {}, {},
                       {"gna-emu": EmulatorReport([], plan, [], {})})
    lines = vad_run.saturation_lines(record)
    assert len(lines) == 3
    assert "layer 'sqrt'" in lines[0] and "223 inputs outside [0, 16]" in lines[0]
    assert "5 values beyond ±15.99" in lines[1] and "sf 2049" in lines[1]
    assert "layer 'relu' (Relu): 4 values saturated" in lines[2]


def test_patch_releases_compute_as_their_minor_release_and_others_are_refused():
    assert releases.get("2023.0.2") is releases.RELEASES["2023.0"] and releases.get(None).name == "2023.3"
    for bad in ("2024.0", "2023", "2023.1.x", "", "latest"):
        if bad == "":
            assert releases.get(bad).name == "2023.3"
            continue
        with pytest.raises(ValueError, match="not a GNA plugin release the emulator follows"):
            releases.get(bad)
