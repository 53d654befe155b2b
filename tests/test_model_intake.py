"""A user's model through every command that emulates: --porting, dynamic shapes reshaped from the input file,
default backends without a torch module, one scale factor per input, multi-output tables, and a bundle of the
run folder. Small nets built from opset ops, plus the public corpus where it matters."""

import json
import zipfile

import numpy as np
import openvino as ov
import openvino.opset8 as ops
import pytest

from gnaexp import cache, experiment
from gnaexp.cli import main

RNG = np.random.default_rng(7)


def _weights(*shape):
    return ops.constant(RNG.uniform(-0.5, 0.5, shape).astype(np.float32))


def _named(node, name):
    node.output(0).get_tensor().set_names({name})
    return node


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """pad: a reflect Pad at the input before a conv (the plugin refuses it; porting runs it on the host).
    dynamic: [?, 6] → MatMul → Relu. two_in: inputs a and b, each through its own MatMul, summed, with a second
    output (the Relu of a's branch)."""
    folder = tmp_path_factory.mktemp("intake-nets")
    x = ops.parameter([1, 1, 32], np.float32, name="x")
    pad = ops.pad(x, ops.constant(np.array([0, 0, 2], np.int64)), ops.constant(np.array([0, 0, 2], np.int64)),
                  "reflect")
    y = _named(ops.relu(ops.convolution(pad, _weights(4, 1, 5), [1], [0], [0], [1])), "y")
    ov.save_model(ov.Model([y], [x], "pad"), folder / "pad.xml", compress_to_fp16=False)
    np.save(folder / "pad_in.npy", RNG.uniform(-1, 1, (1, 1, 32)).astype(np.float32))

    d = ops.parameter(ov.PartialShape([-1, 6]), np.float32, name="d")
    out = _named(ops.relu(ops.matmul(d, _weights(6, 3), False, False)), "out")
    ov.save_model(ov.Model([out], [d], "dyn"), folder / "dynamic.xml", compress_to_fp16=False)
    for rows in (2, 5):
        np.save(folder / f"dyn{rows}.npy", RNG.uniform(-1, 1, (rows, 6)).astype(np.float32))

    a = ops.parameter([1, 8], np.float32, name="a")
    b = ops.parameter([1, 8], np.float32, name="b")
    branch_a = ops.matmul(a, _weights(8, 4), False, False)
    total = _named(ops.add(branch_a, ops.matmul(b, _weights(8, 4), False, False)), "total")
    gate = _named(ops.relu(branch_a), "gate")
    ov.save_model(ov.Model([total, gate], [a, b], "two"), folder / "two.xml", compress_to_fp16=False)
    np.savez(folder / "two_in.npz", a=RNG.uniform(-1, 1, (1, 8)).astype(np.float32),
             b=RNG.uniform(-0.01, 0.01, (1, 8)).astype(np.float32))
    return folder


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_porting_reaches_run_diagnose_sweep_and_bundle(nets, tmp_path, capsys):
    model, feed = nets / "pad.xml", nets / "pad_in.npy"
    code, _, err = _run(capsys, "run", "model", "--set", f"model={model}", "--set", f"input_file={feed}",
                        "--out", tmp_path / "refused")
    assert code == 2 and "no Pad layer" in err and "--porting on gnaexp run" in err  # refused, and the fix named
    code, out, _ = _run(capsys, "run", "model", "--set", f"model={model}", "--set", f"input_file={feed}",
                        "--porting", "--out", tmp_path / "run")
    assert code == 0
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    emu = next(r for r in record["backends"] if r["backend"] == "gna-emu")
    assert record["config"]["porting"] is True and emu["settings"]["porting"] is True
    code, out, _ = _run(capsys, "sweep", "model", "--set", f"model={model}", "--set", f"input_file={feed}",
                        "--set", "porting=true", "--scale-factors", "1,1024")
    assert code == 0 and "refused" not in out
    code, out, _ = _run(capsys, "diagnose", "--model", model, "--input", feed, "--porting")
    assert code == 0 and "after host pre-processing" in out
    code, out, _ = _run(capsys, "bundle", tmp_path / "run", "--out", tmp_path / "b.zip")  # porting from the record
    assert code == 0
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        assert json.loads(z.read("diagnosis.json"))["config"]["porting"] is True
    code, _, err = _run(capsys, "run", "model", "--set", f"model={model}", "--set", "porting=maybe",
                        "--out", tmp_path / "bad")
    assert code == 2 and "porting must be true or false, got 'maybe'" in err


def test_silero_as_shipped_goes_through_diagnose_with_porting(corpus, tmp_path, capsys):
    from gnaexp.models.catalog import example_inputs

    np.savez(tmp_path / "in.npz", **{k: v[0] for k, v in example_inputs("silero_vad").items()})
    code, out, _ = _run(capsys, "diagnose", "--model", corpus["silero_vad"], "--input", tmp_path / "in.npz",
                        "--set", "porting=true")
    # two outputs: each step names the one it studies, the worst at this sf (the state here)
    assert code == 0 and "[per-layer] (output stateN)" in out and "per output: output " in out
    # below the usable floor even at its best, the scale factor is still named first, with what remains
    assert out.splitlines()[1].startswith("→ the scale factor is the cause: at sf 1") and "even there" in out


def test_dynamic_model_is_reshaped_from_the_input_file_and_cached_per_shape(nets, tmp_path, capsys):
    model = nets / "dynamic.xml"
    code, _, err = _run(capsys, "run", "model", "--set", f"model={model}", "--out", tmp_path / "none")
    assert code == 2 and "dynamic shape [?,6]" in err and "input_file=FILE" in err
    code, out, _ = _run(capsys, "run", "model", "--set", f"model={model}", "--set", f"input_file={nets / 'dyn2.npy'}",
                        "--out", tmp_path / "run")
    assert code == 0 and "note: input 'd': dynamic shape [?,6] reshaped to [2, 6] (from the input file)" in out
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["model"]["notes"] == ["input 'd': dynamic shape [?,6] reshaped to [2, 6] (from the input file)"]
    code, out, _ = _run(capsys, "sweep", "model", "--set", f"model={model}", "--set",
                        f"input_file={nets / 'dyn5.npy'}", "--scale-factors", "1,2048")
    assert code == 0
    code, _, _ = _run(capsys, "diagnose", "--model", model, "--input", nets / "dyn5.npy")
    assert code == 0
    # One sealed IR copy per shape, each with the shape it was given.
    entries = sorted(p for p in (cache.cache_dir() / "files").iterdir() if p.name.count("-") == 1)
    shapes = {tuple(ov.Core().read_model(e / "model.xml").inputs[0].get_shape()) for e in entries
              if cache._intact(e, cache.IR_FILES)}
    assert {(2, 6), (5, 6)} <= shapes


def test_run_model_picks_openvino_cpu_and_gna_emu_without_a_torch_module(nets, tmp_path, capsys):
    code, out, _ = _run(capsys, "run", "model", "--set", f"model={nets / 'two.xml'}", "--set",
                        f"input_file={nets / 'two_in.npz'}", "--json", "--out", tmp_path / "run")
    assert code == 0
    data = json.loads(out)
    assert data["config"]["backends"] == ["openvino:CPU", "gna-emu"] and data["reference"] == "openvino:CPU"
    # Asked for explicitly, torch is still refused with the reason (exit 3: backend unavailable).
    code, _, err = _run(capsys, "run", "model", "--set", f"model={nets / 'two.xml'}", "--backends", "torch",
                        "--out", tmp_path / "torch")
    assert code == 3 and "no torch module" in err
    assert experiment.ExperimentConfig().backends == list(experiment.DEFAULT_BACKENDS)  # forum nets keep torch


def test_one_scale_factor_per_input_on_every_command(nets, tmp_path, capsys):
    model, feed = nets / "two.xml", nets / "two_in.npz"
    base = ["--set", f"model={model}", "--set", f"input_file={feed}", "--set", "scale_factor=a=2048,b=65536"]
    code, out, _ = _run(capsys, "run", "model", *base, "--out", tmp_path / "run", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["config"]["scale_factor"] == {"a": 2048.0, "b": 65536.0}
    emu = next(r for r in record["backends"] if r["backend"] == "gna-emu")
    assert emu["info"]["input_scale_factors_used"] == {"a": 2048.0, "b": 65536.0}
    code, out, _ = _run(capsys, "sweep", "model", *base[:4], "--set", "scale_factor=a=2048", "--set",
                        "scale_factor=b=65536", "--scale-factors", "1,2048")  # the repeated form: one input a word
    assert code == 0 and "note: sf swept on input 'a'; held: b at sf 65536" in out
    code, out, _ = _run(capsys, "diagnose", "--model", model, "--input", feed, "--set", "scale_factor=a=2048,b=65536",
                        "--json")
    assert code == 0
    floor = next(s for s in json.loads(out)["steps"] if s["step"] == "floor")
    assert floor["input_scale_factors_used"] == {"a": 2048.0, "b": 65536.0}
    assert _run(capsys, "bundle", tmp_path / "run", "--out", tmp_path / "b.zip")[0] == 0
    # Where the swept input's sf is the cause, the advice keeps the other inputs' scale factors.
    code, out, _ = _run(capsys, "run", "model", *base, "--set", "scale_factor=a=1,b=65536", "--out", tmp_path / "low")
    assert code == 0 and out.startswith("→ the scale factor is the cause") and ",b=65536\n" in out.split("\n")[0] + "\n"
    # emulate reads the same form with the same checks.
    code, _, err = _run(capsys, "emulate", model, feed, "--scale-factor", "a=2048,b=-1", "--out", tmp_path / "o.npz")
    assert code == 2 and "--scale-factor of input 'b' must be positive" in err
    code, _, err = _run(capsys, "run", "model", "--set", f"model={model}", "--set", "scale_factor=a=x",
                        "--out", tmp_path / "bad")
    assert code == 2 and "scale_factor of input 'a' must be positive" in err and "got 'x'" in err
    code, _, err = _run(capsys, "run", "model", "--set", f"model={model}", "--set", "scale_factor=c=4",
                        "--out", tmp_path / "bad")
    assert code == 2 and "'c'" in err


def test_multi_output_tables_name_each_rows_output(nets, tmp_path, capsys):
    code, out, _ = _run(capsys, "run", "model", "--set", f"model={nets / 'two.xml'}", "--set",
                        f"input_file={nets / 'two_in.npz'}", "--out", tmp_path / "run")
    assert code == 0
    table = out.split("\n\n")[0].splitlines()
    head = next(line for line in table if line.startswith("backend"))
    assert head.split()[:3] == ["backend", "output", "kind"]
    rows = [line.split() for line in table if line.startswith("gna-emu")]
    assert sorted(r[2] for r in rows) == ["gate", "total"]
    code, out, _ = _run(capsys, "diagnose", "--model", nets / "two.xml", "--input", nets / "two_in.npz")
    assert code == 0 and "1. [floor] (output total)" in out
    floor_line = next(line for line in out.splitlines() if line.startswith("1. [floor]"))
    assert "; per output: total " in floor_line and ", gate " in floor_line


def test_bundle_of_a_user_model_run_uses_the_folders_own_ir(nets, tmp_path, capsys):
    """The record keeps a portable path to the model; the bundle reruns the IR copy and inputs in the folder, so
    it works where the model file is not (another machine, or moved)."""
    moved = tmp_path / "mine.xml"
    for suffix in (".xml", ".bin"):
        moved.with_suffix(suffix).write_bytes((nets / "two").with_suffix(suffix).read_bytes())
    assert _run(capsys, "run", "model", "--set", f"model={moved}", "--set", f"input_file={nets / 'two_in.npz'}",
                "--out", tmp_path / "run")[0] == 0
    moved.unlink()
    code, out, err = _run(capsys, "bundle", tmp_path / "run", "--out", tmp_path / "b.zip")
    assert code == 0, err
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        assert "diagnosis.json" in z.namelist()


def test_dtln_1_as_shipped_runs_and_bundles(corpus, tmp_path, capsys):
    from gnaexp.models.catalog import example_inputs

    np.savez(tmp_path / "in.npz", **{k: v[0] for k, v in example_inputs("dtln_1").items()})
    assert _run(capsys, "run", "model", "--set", f"model={corpus['dtln_1']}", "--set",
                f"input_file={tmp_path / 'in.npz'}", "--out", tmp_path / "run")[0] == 0
    code, _, err = _run(capsys, "bundle", tmp_path / "run", "--out", tmp_path / "b.zip")
    assert code == 0, err


def test_dtln_2_as_shipped_is_refused_plain_and_goes_through_every_command_with_porting(corpus, tmp_path, capsys):
    # Its layer norm (ReduceMean inside the net) is what the 2023 plugin refuses in the ONNX file; porting reads it
    # as the IR converter writes it (one MVN), so support, run, diagnose, sweep and bundle all give numbers
    from gnaexp.models.catalog import example_inputs

    model, inputs = corpus["dtln_2"], tmp_path / "in.npz"
    np.savez(inputs, **{k: v[0] for k, v in example_inputs("dtln_2").items()})
    code, _, err = _run(capsys, "diagnose", "--model", model, "--input", inputs)
    assert code == 2 and "ReduceMean" in err and "--porting" in err
    code, out, _ = _run(capsys, "support", model, "--input", inputs)
    assert code == 0 and "fuses the layer norm" in out and "\nrefused" not in out
    common = ("--set", f"model={model}", "--set", f"input_file={inputs}", "--porting")
    code, out, err = _run(capsys, "run", "model", *common, "--out", tmp_path / "run")
    assert code == 0 and "gna-emu (emulated)         conv1d_3" in out, err
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert any("fuses the layer norm" in n for n in json.dumps(record).split('"') if "MOC" in n)
    code, out, _ = _run(capsys, "diagnose", "--model", model, "--input", inputs, "--porting")
    assert code == 0 and "[floor] (output conv1d_3)" in out
    code, out, _ = _run(capsys, "sweep", "model", *common, "--scale-factors", "1,64,2048")
    rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0] in ("1", "64", "2048")]
    assert len(rows) == 3 and float(rows[1][3]) > float(rows[0][3]) + 6  # SQNR rises from sf 1 to sf 64
    code, _, err = _run(capsys, "bundle", tmp_path / "run", "--out", tmp_path / "b.zip", "--porting")
    assert code == 0, err
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        assert "diagnosis.json" in z.namelist()


def test_repeated_per_input_scale_factor_words_are_joined_and_a_later_one_wins():
    sets = ["scale_factor=chunk=2048", "scale_factor=state=1024", "scale_factor=chunk=4096"]
    assert experiment.parse_sets(sets) == {"scale_factor": "chunk=4096,state=1024"}
    assert experiment.parse_sets(["scale_factor=chunk=2", "scale_factor=8"]) == {"scale_factor": "8"}
    with pytest.raises(ValueError, match="each input named once"):
        experiment.ExperimentConfig.from_strings("model", ["model=m.xml", "scale_factor=a=1,a=2"])
