"""Silero VAD: our module against the package's TorchScript model, streaming on torch and OpenVINO CPU, the
audio loader's checks and the streaming metrics."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from gnaexp.backends import make_backend
from gnaexp.cli import main
from gnaexp.vad import audio, metrics as vad_metrics, stream as vad

SPEECH = Path(__file__).resolve().parent.parent / "data" / "speech"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return vad.model_bundle(tmp_path_factory.mktemp("vad"))


def test_module_matches_the_packages_torchscript_model_over_a_whole_file(bundle):
    sound = audio.load_wav(SPEECH / "speech_snr20.wav").samples
    ours = vad.stream(make_backend("torch").stepper(bundle), sound).probability
    theirs = vad.jit_probabilities(sound)
    assert len(ours) == len(theirs) == -(-len(sound) // vad.CHUNK)
    assert float(np.max(np.abs(ours - theirs))) <= 1e-5
    assert ours.max() > 0.9 and ours.min() < 0.1  # speech and silence both present


def test_openvino_cpu_streams_the_ir_like_torch(bundle):
    sound = audio.load_wav(SPEECH / "speech_snr5.wav").samples
    ref = vad.stream(make_backend("torch").stepper(bundle), sound)
    cpu = vad.stream(make_backend("openvino:CPU").stepper(bundle), sound)
    row = vad_metrics.compare_tracks(ref.probability, cpu.probability)
    assert row["max_abs_dp"] < 1e-4 and row["flips"] == 0
    drift = vad_metrics.state_drift(ref.state, cpu.state)
    assert min(drift["h"]) > 60 and min(drift["c"]) > 60  # float32 rounding only, no accumulation


def test_run_on_the_sample_folder_writes_a_record_with_truth(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "silero_vad", "--set", f"audio={SPEECH}", "--set", "scale_factor=2048", "--out", str(out)]) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["emulator"]["gna-emu"]["input_scale_factors"] == {"chunk": 2048.0, "state": 1024.0}
    assert [f["file"] for f in record["files"]] == sorted(p.name for p in SPEECH.glob("*.wav"))
    tracks = np.load(out / "tracks.npz")
    for f in record["files"]:
        cpu = f["backends"]["openvino:CPU"]
        assert cpu["verdict"].startswith("decisions identical on 100.0 % of chunks")
        assert f["backends"]["torch"]["segments_vs_truth_loose"]["recall"] == 1.0  # both utterances found
        assert tracks[f"{Path(f['file']).stem}/torch"].shape == (cpu["chunks"],)
        emu = f["backends"]["gna-emu"]
        assert emu["label"] == "gna-emu (emulated, with host pre/post-processing)" and emu["kind"] == "emulated"
        assert emu["agreement"] > 0.9  # quantized, yet the decisions mostly hold at sf 2048
    support = {(r["op"], r["status"]) for r in record["emulator"]["gna-emu"]["support"]}
    assert {("Pad", "host"), ("ReduceMean", "host"), ("Convolution", "rewritten"), ("Sigmoid", "decomposed"),
            ("Tanh", "decomposed"), ("Sqrt", "decomposed"), ("Multiply", "native")} <= support
    plan = record["emulator"]["gna-emu"]["plan"]
    assert {"Eltwise Sum (diagonal affine)", "Eltwise Prod (diagonal affine)"} <= {r["op"] for r in plan}
    assert all(isinstance(r["saturations"], int) for r in plan)
    out = capsys.readouterr().out
    assert "segments vs truth" in out and "gna-emu (emulated, with host pre/post-processing)" in out


def _wav(path, samples, rate=16000, channels=1, fmt=1, bits=16):
    data = samples.astype({16: "<i2", 32: "<f4"}[bits]).tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " +
              struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * channels * bits // 8, channels * bits // 8,
                          bits) + b"data" + struct.pack("<I", len(data)))
    path.write_bytes(header + data)
    return path


def test_other_rates_are_resampled_with_a_note(tmp_path):
    t = np.arange(44100) / 44100
    sound = audio.load_wav(_wav(tmp_path / "a.wav", (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16),
                                rate=44100))
    assert sound.rate == 16000 and len(sound.samples) == 16000
    assert "resampled from 44100 Hz to 16000 Hz" in sound.notes[0]
    spectrum = np.abs(np.fft.rfft(sound.samples))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # the tone stays at 440 Hz


@pytest.mark.parametrize("make,words", [
    (lambda p: _wav(p, np.zeros(2000, np.int16), channels=2), "has 2 channels"),
    (lambda p: _wav(p, np.full(2000, np.nan, np.float32), fmt=3, bits=32), "NaN or Inf"),
    (lambda p: _wav(p, np.zeros(100, np.int16)), "at least 512"),
    (lambda p: _wav(p, np.zeros(2000, np.int16), rate=4000), "below 8 kHz"),
    (lambda p: (p.write_text("not audio"), p)[1], "not a WAV file"),
])
def test_bad_audio_is_exit_2_with_the_fix(tmp_path, capsys, make, words):
    path = make(tmp_path / "bad.wav")
    assert main(["run", "silero_vad", "--set", f"audio={path}", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out" / "record.json").exists()


def test_an_imported_reference_and_a_missing_track_file_are_refused_before_any_work(tmp_path, capsys):
    one = f"audio={SPEECH / 'speech_snr5.wav'}"
    assert main(["run", "silero_vad", "--set", one, "--backends", "import:x.npz,torch", "--out", str(tmp_path)]) == 2
    assert "must run here" in capsys.readouterr().err
    assert main(["run", "silero_vad", "--set", one, "--backends", "torch,import:x.npz", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "x.npz does not exist" in err and "streaming" not in err


def test_streaming_metrics_on_known_tracks():
    p = np.array([0.1, 0.6, 0.9, 0.4, 0.3, 0.2, 0.7, 0.8, 0.1], dtype=np.float32)
    assert vad_metrics.segments(vad_metrics.decisions(p)) == [(1, 3), (6, 8)]
    assert vad_metrics.segments(vad_metrics.hysteresis_decisions(p)) == [(1, 4), (6, 8)]  # 0.4 ≥ 0.35 holds on
    assert vad_metrics.speech_segments(p, min_silence=3, min_speech=1) == [(1, 8)]  # a 2-chunk gap is closed
    assert vad_metrics.speech_segments(p, min_silence=2, min_speech=3) == [(1, 4)]  # (6, 8) is too short
    q = p.copy()
    q[3] = 0.55  # one flip at 0.5, next to a boundary
    row = vad_metrics.compare_tracks(p, q, truth=[])
    assert row["flips"] == 1 and row["flips_near_boundary"] == 1 and row["hysteresis_flips"] == 0
    assert row["segments_vs_truth"] == {"found": 0, "true": 0, "matched": 0, "precision": 1.0, "recall": 1.0}
    assert vad_metrics.verdict(row) == ("decisions identical on 88.9 % of chunks; 1 flip at 0.5 over 9 chunks, "
                                        "within one chunk of a segment boundary")


@pytest.mark.parametrize("sets,words", [(["audio"], "--set takes key=value"), (["audio="], "takes --set audio=FILE")])
def test_a_missing_audio_value_is_refused_not_read_as_the_current_folder(tmp_path, capsys, sets, words):
    args = ["run", "silero_vad", "--out", str(tmp_path / "o")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_evaluate_a_folder_gives_per_file_and_aggregate_metrics(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", "silero_vad", "--audio", str(SPEECH), "--backends", "torch,gna-emu",
                 "--set", "scale_factor=recommended", "--out", str(out)]) == 0
    record = json.loads((out / "record.json").read_text())
    agg = record["aggregate"]["gna-emu"]
    files = record["files"]
    assert agg["files"] == len(files) == 3 and agg["chunks"] == sum(f["backends"]["gna-emu"]["chunks"] for f in files)
    assert agg["flips"] == sum(f["backends"]["gna-emu"]["flips"] for f in files)
    assert agg["segments_vs_truth_loose"]["true"] == sum(len(f["truth"]) for f in files)
    # "recommended": the audio input's scale factor comes from the loudest sample of all files
    sf = record["emulator"]["gna-emu"]["input_scale_factors"]["chunk"]
    assert 2048 < sf < 32768
    assert "decisions identical on" in capsys.readouterr().out
    assert main(["evaluate", "conv", "--audio", str(SPEECH), "--out", str(tmp_path / "x")]) == 2
    assert "evaluate takes silero_vad" in capsys.readouterr().err


def test_tracks_measured_elsewhere_are_imported(tmp_path, capsys):
    one = SPEECH / "speech_snr5.wav"
    there = tmp_path / "there"  # "another machine": its run's tracks.npz is all that comes back
    assert main(["run", "silero_vad", "--set", f"audio={one}", "--set", "scale_factor=2048", "--backends",
                 "torch,gna-emu", "--out", str(there)]) == 0
    here = tmp_path / "here"
    assert main(["run", "silero_vad", "--set", f"audio={one}", "--backends",
                 f"torch,import:{there / 'tracks.npz'}", "--out", str(here)]) == 0
    row = json.loads((here / "record.json").read_text())["files"][0]["backends"][f"import:{there / 'tracks.npz'}"]
    theirs = json.loads((there / "record.json").read_text())["files"][0]["backends"]["gna-emu"]
    assert row["kind"] == "imported" and row["label"].endswith("(imported)") and row["state_drift"] is None
    assert row["flips"] == theirs["flips"] and row["max_abs_dp"] == theirs["max_abs_dp"]
    capsys.readouterr()
    assert main(["run", "silero_vad", "--set", f"audio={SPEECH / 'speech_snr10.wav'}", "--backends",
                 f"torch,import:{there / 'tracks.npz'}", "--out", str(tmp_path / "bad")]) == 2
    assert "expected one track for speech_snr10.wav" in capsys.readouterr().err


def test_torch_tracks_are_cached_and_a_cached_run_needs_no_torch(tmp_path):
    """The second run on the same signals takes torch's tracks from the cache, reads the same, and does not
    import torch (a subprocess: this one has torch loaded already)."""
    import subprocess
    import sys

    from gnaexp import cache
    from gnaexp.vad import run as vad_run

    wav = SPEECH / "speech_snr20.wav"
    key = cache.vad_reference_key([audio.load_wav(wav).samples])
    import shutil

    shutil.rmtree(cache.cache_dir() / "vad-reference" / key, ignore_errors=True)  # another test may have run it
    first = vad_run.run([wav], ["torch", "openvino:CPU"], tmp_path / "a", {"scale_factor": 1.0})
    assert cache.load_vad_streams(key) is not None and "tracks" not in first.device_settings["torch"]
    script = ("import json, sys; from gnaexp.vad import run as vad_run; "
              f"r = vad_run.run([{str(wav)!r}], ['torch', 'openvino:CPU'], {str(tmp_path / 'b')!r}, "
              "{'scale_factor': 1.0}); print(json.dumps(['torch' in sys.modules, r.device_settings['torch']]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    imported, settings = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported is False and settings["tracks"] == "cached"
    a, b = np.load(tmp_path / "a" / "tracks.npz"), np.load(tmp_path / "b" / "tracks.npz")
    assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    second = json.loads((tmp_path / "b" / "record.json").read_text())
    assert [f["backends"]["openvino:CPU"]["max_abs_dp"] for f in second["files"]] == \
        [f["backends"]["openvino:CPU"]["max_abs_dp"] for f in first.to_json()["files"]]


def test_the_steps_of_many_streams_of_unequal_length_are_each_streams_chunks():
    """StepChunks cuts many signals a block of steps at a time: every step of every signal is that signal's own
    chunk (its context included, across block edges), asked in any order; past a signal's end, its last context
    and then zeros."""
    rng = np.random.default_rng(0)
    audios = [rng.uniform(-1, 1, int(n)).astype(np.float32) for n in rng.integers(100, 40 * vad.CHUNK, 7)]
    frames = vad.StepChunks(audios)
    assert len(frames) == max(len(vad.chunks(a)) for a in audios) > vad.StepChunks.BLOCK_STEPS * 2
    order = list(range(len(frames)))
    rng.shuffle(order)
    for t in order:
        step = frames[t]
        assert step.shape == (len(audios), 1, vad.STEP_INPUT)
        for i, a in enumerate(audios):
            own = vad.chunks(a)
            if t < len(own):
                np.testing.assert_array_equal(step[i, 0], own[t])
            else:
                tail = a[t * vad.CHUNK - vad.CONTEXT:]
                np.testing.assert_array_equal(step[i, 0, :len(tail)], tail)
                assert not step[i, 0, len(tail):].any()
    one = vad.StepChunks(audios[:1])
    np.testing.assert_array_equal(np.stack([one[t] for t in range(len(one))])[:, 0], vad.chunks(audios[0]))
