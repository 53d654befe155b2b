"""Planted defects: each mistake of the hypothesis family is applied to a device-like output and must be named.

Real emulations of real IRs (OpenVINO reads them; the reference is torch/OpenVINO CPU); every plant uses its own
seeds, and each runs on several nets, weight seeds and input kinds.
"""

import zlib

import numpy as np
import pytest

from gnaexp import experiment
from gnaexp.core.inputs import generate
from gnaexp.diagnose import hypotheses, ladder
from gnaexp.emulator import emulate

CASES = [("conv", 1, "uniform01"), ("concat_conv", 2, "normal"), ("conv", 3, "sines")]


def _case(name, seed, kind, sf=2048.0, **extra):
    config = experiment.ExperimentConfig(experiment=name, seed=seed, input_kind=kind, scale_factor=sf, **extra)
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    good = emulate(model.ir_xml, feed, sf).outputs["output"]
    return config, model, feed, good


def _observed_step(config, observed):
    steps = {s["step"]: s for s in ladder.ladder(config, observed).to_json()["steps"]}
    return steps["observed"], steps


def _device_noise(x, seed):
    """Small differences of a device's own: noise 80 dB below the signal (below every floor here)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x + np.random.default_rng(seed).normal(0, rms * 1e-4, x.shape)).astype(np.float32)


PLANTS = {
    # name: (make observed from (good, model, feed, config), expected hypothesis, words in the verdict)
    "rotated": (lambda g, *_: g[:, [1, 2, 3, 0]], "channels-rotated-3", "arrive as 1, 2, 3, 0"),
    "reversed": (lambda g, *_: g[:, ::-1], "channels-reversed", "(reversed)"),
    "permuted": (lambda g, *_: g[:, [2, 0, 3, 1]], "channels-permuted", "arrive as 2, 0, 3, 1"),
    "ncw-as-nwc": (lambda g, *_: g.reshape(1, g.shape[2], g.shape[1]).transpose(0, 2, 1), "output-ncw-as-nwc",
                   "read as interleaved (NWC)"),
    "late-frame": (lambda g, *_: np.concatenate([np.zeros_like(g[:, :, :1]), g[:, :, :-1]], 2), "time-shifted-+1",
                   "1 frame(s) late (zero-filled)"),
    "early-2-rolled": (lambda g, *_: np.roll(g, -2, axis=2), "time-rolled -2", "2 frame(s) early (wrapped"),
    "time-reversed": (lambda g, *_: g[:, :, ::-1], "time-reversed", "reverse order"),
    "input-transposed": (lambda g, m, f, c: emulate(m.ir_xml, {"input": f["input"].reshape(
        1, f["input"].shape[2], f["input"].shape[1]).transpose(0, 2, 1).copy()}, c.scale_factor).outputs["output"],
        "input-ncw-as-nwc", "transpose the input"),
    "device-sf-1": (lambda g, m, f, c: emulate(m.ir_xml, f, 1.0).outputs["output"], "sf-1",
                    "the device used sf ≈ 1, not the configured 2048"),
}


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
@pytest.mark.parametrize("plant", list(PLANTS))
def test_planted_mistake_is_named(case, plant):
    config, model, feed, good = _case(*case)
    make, expected, words = PLANTS[plant]
    observed = _device_noise(make(good, model, feed, config), seed=zlib.crc32(f"{case}|{plant}".encode()))
    step, _ = _observed_step(config, observed)
    assert step["explained_by"] == expected, step["hypotheses"][:3]
    assert words in step["verdict"]


def test_legacy_concat_path_is_named_and_located_per_layer():
    config, model, feed, _ = _case("concat_conv", 4, "uniform11")
    observed = emulate(model.ir_xml, feed, 2048.0, layout="legacy-concat").outputs["output"]
    step, steps = _observed_step(config, _device_noise(observed, 4))
    assert step["explained_by"] == "legacy-concat"
    assert "legacy concat→conv path" in step["verdict"]
    assert steps["per-layer"]["layout"] == "legacy-concat"
    assert "Convolution" in steps["per-layer"]["first_bad_layer"]
    assert "this layer itself produces the error" in steps["per-layer"]["verdict"]


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_clean_output_at_the_floor_has_no_defect(case):
    config, _, _, good = _case(*case)
    step, steps = _observed_step(config, _device_noise(good, 11))
    assert step["explained_by"] == "as-configured" and step["verdict"].startswith("no defect")
    assert steps["per-layer"]["first_bad_layer"] is None


def test_fp32_output_is_no_defect_either():
    """An FP32 output (e.g. OpenVINO CPU) differs from the emulation by the quantization error only."""
    config, model, feed, _ = _case("conv", 5, "uniform01")
    _, ref = experiment.reference_outputs(model, feed)
    step, _ = _observed_step(config, next(iter(ref.values())))
    assert step["explained_by"] == "as-configured"


def test_unexplained_output_is_none_of_these():
    config, _, _, good = _case("conv", 6, "normal")
    noise = np.random.default_rng(6).normal(0, 1, good.shape).astype(np.float32)
    step, _ = _observed_step(config, noise)
    assert step["explained_by"] is None and step["verdict"].startswith("none of these")


def test_input_saturation_is_named_with_the_fix():
    config, model, feed, _ = _case("conv", 7, "uniform11", sf=16384.0, amplitude=4.0)
    observed = emulate(model.ir_xml, feed, 16384.0).outputs["output"]
    step, _ = _observed_step(config, observed)
    assert step["explained_by"] == "as-configured"
    peak = float(np.max(np.abs(feed["input"])))
    safe = 2 ** int(np.floor(np.log2(32767 / peak)))  # the largest power of two that keeps the peak in int16
    assert "saturates int16 at sf 16384" in step["verdict"] and f"use sf ≤ {safe}" in step["verdict"]
    assert "% of values clipped" in step["verdict"]


def test_transposed_array_is_turned_back_and_named():
    config, _, _, good = _case("conv", 8, "uniform01")
    step, _ = _observed_step(config, np.swapaxes(good, -1, -2).copy())
    assert "returned transposed" in step["verdict"] and step["explained_by"] == "as-configured"


def test_identical_hypotheses_are_one_candidate():
    e = np.ones((1, 4, 10), np.float32)  # every channel and frame equal: every reorder is the same output
    rows = hypotheses.score(e, hypotheses.output_mistakes(e, e))
    assert rows[0].hypothesis == "as-configured" and "channels-reversed" in rows[0].aliases
    assert rows[0].to_json()["aliases"] == rows[0].aliases and "output" not in rows[0].to_json()


def test_diagnosis_notebook_runs_and_writes_the_verdict_for_the_index(tmp_path):
    """The diagnosis notebook, executed by papermill, names the legacy path for an emulated legacy device."""
    import json
    from pathlib import Path

    import papermill

    nb = Path(__file__).resolve().parent.parent / "notebooks" / "diagnose.ipynb"
    papermill.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), kernel_name="python3", cwd=str(tmp_path),
                               parameters={"experiment": "concat_conv", "scale_factor": 2048.0, "seed": 9,
                                           "device_layout": "legacy-concat", "record_dir": "d.record"},
                               progress_bar=False)
    entry = json.loads((tmp_path / "d.record" / "index-entry.json").read_text())
    assert "emulated device (layout legacy-concat)" in entry["verdict"][0]
    assert "legacy concat→conv path" in entry["verdict"][0]
    assert "Convolution" in entry["verdict"][1]
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    images = sum(1 for c in executed["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images == 3  # hypothesis scores, the overlay, per-layer SQNR


# Mistakes inside the net: planted by exporting a second net that makes the mistake in its own graph (torch ops,
# not the hypothesis code), emulating it, and diagnosing its output against the intended net.

def _two_input_concat_conv(seed, order=(0, 1), time_axis=False):
    """cat([a, b]) on channels → conv; ``order``/``time_axis`` make the planted variants."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            gen = torch.Generator().manual_seed(seed)
            self.conv = torch.nn.Conv1d(4, 4, 3)
            with torch.no_grad():
                self.conv.weight.uniform_(-0.5, 0.5, generator=gen)
                self.conv.bias.uniform_(-0.5, 0.5, generator=gen)

        def forward(self, a, b):
            parts = [(a, b)[i] for i in order]
            if time_axis:  # joined on time, then read with the channel-joined shape
                return self.conv(torch.cat(parts, dim=2).reshape(1, 4, a.shape[2]))
            return self.conv(torch.cat(parts, dim=1))

    return Net().eval()


def _conv_relu_conv(seed, transposed_read=False):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            gen = torch.Generator().manual_seed(seed)
            self.c1, self.c2 = torch.nn.Conv1d(3, 8, 3), torch.nn.Conv1d(8, 4, 3)
            with torch.no_grad():
                for p in self.parameters():
                    p.uniform_(-0.5, 0.5, generator=gen)

        def forward(self, x):
            y = torch.relu(self.c1(x))
            if transposed_read:  # the second conv reads the channel-major buffer as interleaved
                y = y.reshape(1, y.shape[2], y.shape[1]).transpose(1, 2)
            return self.c2(y)

    return Net().eval()


def _ir(net, example, path):
    import openvino as ov

    model = ov.convert_model(net, example_input=example, input=[tuple(x.shape) for x in example])  # static shapes
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def _user_case(tmp_path, net, planted, shapes, seed, kind):
    import torch

    feed = {f"in{i}": generate(kind, s, seed + i) for i, s in enumerate(shapes)}
    example = tuple(torch.from_numpy(v) for v in feed.values())
    good = _ir(net, example, tmp_path / "good.xml")
    bad = _ir(planted, example, tmp_path / "bad.xml")
    import openvino as ov

    names = [p.any_name for p in ov.Core().read_model(str(good)).inputs]
    feed = dict(zip(names, feed.values()))
    np.savez(tmp_path / "in.npz", **feed)
    observed = next(iter(emulate(bad, feed, 2048.0).outputs.values()))
    config = experiment.ExperimentConfig(experiment="model", model=str(good), input_file=str(tmp_path / "in.npz"),
                                         scale_factor=2048.0, backends=["openvino:CPU"])
    return _observed_step(config, _device_noise(observed, seed))


INTERNAL = {
    # name: (good net, planted net, input shapes, hypothesis prefix, words in the verdict)
    "concat-order": (_two_input_concat_conv, lambda s: _two_input_concat_conv(s, order=(1, 0)),
                     [(1, 2, 40), (1, 2, 40)], "concat-order-1-0:", "places its inputs in the order 1, 0"),
    "concat-axis": (_two_input_concat_conv, lambda s: _two_input_concat_conv(s, time_axis=True),
                    [(1, 2, 40), (1, 2, 40)], "concat-axis-2:", "joins its inputs on the time axis instead of the "
                    "channel axis"),
    "conv-input": (_conv_relu_conv, lambda s: _conv_relu_conv(s, transposed_read=True), [(1, 3, 50)],
                   "conv-input-ncw-as-nwc:", "reads its channel-major (NCW) input buffer as interleaved"),
}


@pytest.mark.parametrize("seed,kind", [(21, "uniform11"), (22, "sines")])
@pytest.mark.parametrize("plant", list(INTERNAL))
def test_planted_mistake_inside_the_net_is_named_and_located(tmp_path, plant, seed, kind):
    good_net, bad_net, shapes, prefix, words = INTERNAL[plant]
    step, steps = _user_case(tmp_path, good_net(seed), bad_net(seed), shapes, seed, kind)
    assert (step["explained_by"] or "").startswith(prefix), step["hypotheses"][:3]
    assert words in step["verdict"]
    assert steps["per-layer"]["mistake"] == step["explained_by"]
    assert steps["per-layer"]["first_bad_layer"] is not None
