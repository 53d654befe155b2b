"""The readers of a user's files (WAV, segments.json, .npy/.npz, device outputs, model files) on damaged or
hostile input: exit 2 and one line naming the file and the fix, before any work, nothing written; and what they
read is scored only when it can be (NaN tracks), against the inputs it belongs to (input fingerprints)."""

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnaexp.backends.imported import write_outputs
from gnaexp.cli import main
from gnaexp.vad import audio, metrics as vad_metrics, run as vad_run
from gnaexp.vad.record import FileResult, TrackRow, VadRecord, aggregate

ROOT = Path(__file__).resolve().parent.parent


def wav_bytes(samples: np.ndarray, *, tag=1, channels=1, rate=16000, bits=16, block_align=None, fmt_size=16,
              data_size=None) -> bytes:
    """A WAV file's bytes with any header field set as given (right by default)."""
    data = samples.tobytes()
    align = channels * bits // 8 if block_align is None else block_align
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    fmt = fmt[:fmt_size] + bytes(max(0, fmt_size - 16))
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt + b"data"
            + struct.pack("<I", len(data) if data_size is None else data_size) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tone(n=2000) -> np.ndarray:
    return (np.sin(np.arange(n) / 5) * 8000).astype("<i2")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, argv, *words) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "\nstreaming " not in "\n" + err, err  # refused before any audio was streamed
    return err


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _sparse_wav(path: Path, seconds: float, rate=16000) -> Path:
    data = int(seconds * rate) * 2
    path.write_bytes(wav_bytes(np.zeros(0, "<i2"), rate=rate, data_size=data))
    with open(path, "r+b") as f:
        f.truncate(44 + data)  # a hole: no disk used
    return path


def _nonutf8(folder: Path) -> Path:
    path = folder / os.fsdecode(b"caf\xe9.wav")
    path.write_bytes(wav_bytes(tone()))
    return folder


@pytest.mark.parametrize("make,words", [
    (lambda d: (d / "bad.wav").write_bytes(wav_bytes(tone(), channels=0)) and d / "bad.wav",
     ["bad.wav: its header says 0 channels (damaged header)", "ffmpeg -i bad.wav -ac 1 -ar 16000"]),
    (lambda d: (d / "bad.wav").write_bytes(wav_bytes(tone(), fmt_size=12)) and d / "bad.wav",
     ["bad.wav: its fmt chunk is 12 bytes, a WAV's is at least 16"]),
    (lambda d: (d / "bad.wav").write_bytes(wav_bytes(tone(), rate=4_000_000_000)) and d / "bad.wav",
     ["bad.wav: its header says 4000000000 Hz; WAV files are sampled at 8000–768000 Hz"]),
    (lambda d: (d / "bad.wav").write_bytes(wav_bytes(tone(), data_size=10**6)) and d / "bad.wav",
     ["bad.wav: its data chunk claims 1000000 bytes but the file holds 4000", "copy the file whole"]),
    (lambda d: (d / "bad.wav").write_bytes(wav_bytes(tone(), block_align=4)) and d / "bad.wav",
     ["bad.wav: its header says 4 bytes per frame, but one channel of 16-bit samples takes 2"]),
    (lambda d: _sparse_wav(d / "long.wav", audio.MAX_SECONDS + 1),
     ["long.wav lasts 1.0 h; gnaexp reads at most 60 minutes per file", "-f segment -segment_time 3600"]),
    (lambda d: ((d / "x.wav").mkdir(), d)[1], ["audio file x.wav is a folder, not a WAV file"]),
    (lambda d: (os.symlink("loop.wav", d / "loop.wav"), d / "loop.wav")[1],
     ["audio file loop.wav is a symbolic link that loops back on itself"]),
    (lambda d: (os.symlink("gone.wav", d / "link.wav"), d / "link.wav")[1],
     ["link.wav does not exist (a symbolic link to gone.wav, which does not exist)"]),
    (_nonutf8, ["audio file name 'caf\ufffd.wav' is not UTF-8", "rename the file"]),
])
def test_damaged_wav_headers_and_odd_files_are_named(tmp_path, out, capsys, make, words):
    """Before: ZeroDivisionError, struct.error, numpy's FFT error, a silently accepted short file, "does not
    exist" for a folder or a link loop, and a non-UTF-8 name failing after all the streaming."""
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    target = make(audio_dir)
    refused(capsys, ["run", "silero_vad", "--set", f"audio={target}", "--out", str(out)], *words)
    refused(capsys, ["evaluate", "silero_vad", "--audio", str(target), "--out", str(out)], *words)
    assert snapshot(out) == {}


def test_wav_blocks_join_exactly(tmp_path, monkeypatch):
    """Read in many small blocks, a file gives exactly the samples one block gives (the resampling filter's
    margins are read across the seams)."""
    rng = np.random.default_rng(1)
    for rate, bits, tag in ((44100, 16, 1), (22050, 32, 3), (16000, 24, 1), (8000, 8, 1)):
        x = rng.uniform(-0.5, 0.5, 30011)
        data = {8: lambda: (x * 127 + 128).astype(np.uint8), 16: lambda: (x * 32767).astype("<i2"),
                32: lambda: x.astype("<f4"),
                24: lambda: np.frombuffer((x * 2**23).astype("<i4").tobytes(), np.uint8).reshape(-1, 4)[:, :3].copy()}
        path = tmp_path / f"{rate}.wav"
        raw = data[bits]()
        path.write_bytes(wav_bytes(raw, tag=tag, rate=rate, bits=bits))
        whole = audio.load_wav(path)
        monkeypatch.setattr(audio, "BLOCK_BYTES", 1000)
        blocks = audio.load_wav(path)
        monkeypatch.undo()
        assert len(whole.samples) == -(-30011 * 16000 // rate)
        assert np.array_equal(whole.samples, blocks.samples), rate
        assert np.max(np.abs(whole.samples)) > 0.4


def test_reading_a_wav_adds_the_result_and_a_fixed_amount(tmp_path):
    """Peak memory of a read, measured in fresh processes by bench/wav_memory.py. Before: a 64 MiB 44.1 kHz file
    peaked at 5.4 GiB (FFT resampling of the whole signal), a 16 kHz one at 3× its size."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "wav_memory.py"), "--sizes", "64,2048",
                           "--rates", "44100,16000", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {(r["rate"], r["file_mib"]): r for r in map(json.loads, proc.stdout.splitlines())}
    for key in ((44100, 64), (16000, 64)):
        assert rows[key]["status"] == "read" and rows[key]["result_mib"] > 40
        assert rows[key]["added_mib"] < rows[key]["result_mib"] + 64, rows[key]
    assert rows[(16000, 2048)]["status"].startswith("refused: x.wav lasts 18.6 h")
    assert rows[(16000, 2048)]["added_mib"] < 16


@pytest.mark.parametrize("content,words", [
    ("[]", ["segments.json holds a JSON array, not an object keyed by file name"]),
    ('{"a.wav": {"text": []}}', ["segments.json: the entry for 'a.wav' lacks the key 'speech'"]),
    ('{"a.wav": [1, 2]}', ["segments.json: the entry for 'a.wav' is a JSON array"]),
    ('{"a.wav": {"speech": "1-2"}}', ["the entry for 'a.wav' has a JSON string as 'speech'"]),
    ('{"a.wav": {"speech": [[0.5, 1.0], [2, 1]]}}', ["the entry for 'a.wav' has 'speech' item 1 = [2, 1]"]),
    ('{"a.wav": {"speech": [[0, 1e400]]}}', ["'speech' item 0 = [0, Infinity]", "END <= 3600"]),
    ('{"a.wav": ', ["segments.json is not JSON (Expecting value at line 1)"]),
    (b"\xff\xfe{}", ["segments.json is not UTF-8 text"]),
    (None, ["segments.json is a folder"]),
])
def test_a_bad_segments_json_is_named_before_any_streaming(tmp_path, out, capsys, content, words):
    """Before: AttributeError for a list, "error: speech" for a missing key, and both only after every file
    was streamed on every backend."""
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    (audio_dir / "a.wav").write_bytes(wav_bytes(tone()))
    seg = audio_dir / "segments.json"
    if content is None:
        seg.mkdir()
    else:
        seg.write_bytes(content.encode() if isinstance(content, str) else content)
    refused(capsys, ["run", "silero_vad", "--set", f"audio={audio_dir}", "--out", str(out)], *words)
    refused(capsys, ["evaluate", "silero_vad", "--audio", str(audio_dir), "--out", str(out)], *words)
    assert snapshot(out) == {}


def test_segments_json_entries_of_other_files_and_empty_truth_are_read():
    from gnaexp.vad.truth import ground_truth

    speech = ROOT / "data" / "speech"
    truth = ground_truth([speech / "speech_snr5.wav", speech / "none.wav"])
    assert truth[1] is None and len(truth[0]) == 2 and all(a < b for a, b in truth[0])


def test_a_non_finite_track_is_named_and_never_scored(tmp_path, capsys):
    """Before: a float WAV at 1e20 made torch's track all NaN, and the verdict read "decisions identical on
    100.0 %; no flips" (NaN ≥ 0.5 is false on both sides)."""
    loud = tmp_path / "loud.wav"
    loud.write_bytes(wav_bytes((np.random.default_rng(0).standard_normal(16000) * 1e20).astype("<f4"), tag=3, bits=32))
    assert main(["run", "silero_vad", "--set", f"audio={loud}", "--backends", "torch,openvino:CPU",
                 "--out", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "no verdict, not scored: the torch track holds 32 NaN/Inf value(s) of 32, the first at chunk 0" in text
    assert "decisions identical" not in text
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    row = record["files"][0]["backends"]["openvino:CPU"]
    assert "max_abs_dp" not in row and row["verdict"].startswith("no verdict, not scored: the torch track")
    assert record["aggregate"]["openvino:CPU"]["non_finite"].startswith("loud.wav: the torch track holds 32")
    assert vad_run.aggregate_table(VadRecord.from_json(record)).count("no verdict, not scored") == 2


def test_files_with_finite_tracks_are_still_scored_beside_one_without():
    ok, bad = np.linspace(0, 1, 40), np.full(40, np.nan)
    rows = [vad_metrics.compare_tracks(ok, ok), vad_metrics.compare_tracks(ok, bad, names=("ref", "the emu track"))]
    assert rows[1] == {"chunks": 40,
                       "non_finite": "the emu track holds 40 NaN/Inf value(s) of 40, the first at chunk 0"}
    files = [FileResult(f, 1.0, 16000, None, {"emu": TrackRow.from_json(dict(r, kind="emulated"))})
             for f, r in zip("ab", rows)]
    agg = aggregate(["emu"], {"emu": "emu"}, files)["emu"]
    assert agg.files == 1 and agg.scores is not None and agg.scores.flips == 0 and agg.not_scored == ["b"]
    assert vad_run.aggregate_verdict(agg).endswith("; not scored (NaN/Inf tracks): b")


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readers") / "pack"
    assert main(["export", "conv", "--out", str(folder)]) == 0
    return folder


def damaged_npz(folder: Path) -> dict[str, Path]:
    """A truncated archive, one failing its CRC, and one whose array header claims 745 GiB."""
    import io
    import zipfile

    good = io.BytesIO()
    np.savez(good, input=np.zeros((1, 6, 255), np.float32))
    blob = good.getvalue()
    at = blob.index(b"\x93NUMPY") + 300
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (100000, 1000000)})
    files = {"truncated": blob[:len(blob) // 2], "crc": blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1:]}
    huge = io.BytesIO()
    with zipfile.ZipFile(huge, "w") as z:
        z.writestr("input.npy", header.getvalue() + bytes(64))
    files["huge"] = huge.getvalue()
    out = {}
    for name, data in files.items():
        (folder / f"{name}.npz").write_bytes(data)
        out[name] = folder / f"{name}.npz"
    return out


def test_damaged_npz_files_are_named_in_every_command(pack, tmp_path, capsys):
    """Before: BadZipFile or MemoryError, an internal error (exit 1), in compare, emulate, diagnose and import:."""
    words = {"truncated": "is not a NumPy archive (.npz) gnaexp can read",
             "crc": "is a damaged NumPy archive (.npz) (Bad CRC-32 for file 'input.npy')",
             "huge": "is a damaged NumPy archive (.npz): its member input.npy declares a float64 array of shape "
                     "(100000, 1000000) (745.1 GiB) but holds 64 bytes"}
    out = tmp_path / "out"
    out.mkdir()
    for name, bad in damaged_npz(tmp_path).items():
        observed_pack = tmp_path / f"pack-{name}"
        shutil.copytree(pack, observed_pack)
        shutil.copyfile(bad, observed_pack / "outputs.npz")
        for argv in (["compare", str(bad), str(bad)],
                     ["emulate", str(pack / "model.xml"), str(bad), "--out", str(out / "y.npy")],
                     ["diagnose", "--model", str(pack / "model.xml"), "--input", str(bad)],
                     ["diagnose", "conv", "--observed", str(bad)],
                     ["run", "conv", "--backends", f"torch,import:{bad}", "--out", str(out)]):
            refused(capsys, argv, bad.name, words[name])
        refused(capsys, ["diagnose", "--export-dir", str(observed_pack)], "outputs.npz", words[name])
    assert snapshot(out) == {}


def test_an_npy_header_claiming_more_than_the_file_is_refused_before_allocating(tmp_path, capsys):
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40,)})
    (tmp_path / "big.npy").write_bytes(header.getvalue() + bytes(8))
    refused(capsys, ["compare", str(tmp_path / "big.npy"), str(tmp_path / "big.npy")],
            "big.npy is a damaged NumPy array file (.npy): it declares a float32 array of shape (1099511627776,) "
            "(4096.0 GiB) but holds 8 bytes")


def test_outputs_measured_on_other_inputs_are_not_diagnosed(pack, tmp_path, capsys):
    """Before: the ladder compared them with these inputs' reference and blamed a defect outside the family."""
    from gnaexp.backends.imported import check_same_inputs
    from gnaexp.core.inputs import fingerprint, read_file

    other = tmp_path / "pack"
    shutil.copytree(pack, other)
    write_outputs(other / "outputs.npz", {"output": np.zeros((1, 4, 127), np.float32)},
                  {"device": "GNA", "input_fingerprint": "0123456789abcdef"})
    own = fingerprint(read_file(other / "inputs.npz"))
    assert json.loads((other / "config.json").read_text())["input_fingerprint"] == own
    refused(capsys, ["diagnose", "--export-dir", str(other)],
            f"outputs.npz was measured on other inputs (input fingerprint 0123456789abcdef; the inputs here have "
            f"{own}): measure again on these inputs")
    refused(capsys, ["diagnose", "conv", "--set", f"backends=torch,import:{other / 'outputs.npz'}"],
            "outputs.npz was measured on other inputs")
    check_same_inputs("outputs.npz", own, read_file(other / "inputs.npz"))  # the same inputs pass
    check_same_inputs("outputs.npz", None, read_file(other / "inputs.npz"))  # a file that does not say passes


def _onnx_relu(path: Path) -> Path:
    """A one-Relu ONNX model, protobuf written by hand (the onnx package is not a dependency)."""
    def varint(n: int) -> bytes:
        out = b""
        while True:
            b, n = n & 0x7F, n >> 7
            if not n:
                return out + bytes([b])
            out += bytes([b | 0x80])

    def field(num: int, value) -> bytes:
        if isinstance(value, int):
            return varint(num << 3) + varint(value)
        value = value.encode() if isinstance(value, str) else value
        return varint(num << 3 | 2) + varint(len(value)) + value

    def value_info(name: str, shape) -> bytes:
        dims = b"".join(field(1, field(1, d)) for d in shape)
        return field(1, name) + field(2, field(1, field(1, 1) + field(2, dims)))

    graph = (field(1, field(1, "input") + field(2, "output") + field(4, "Relu")) + field(2, "g")
             + field(11, value_info("input", (1, 6, 255))) + field(12, value_info("output", (1, 6, 255))))
    path.write_bytes(field(1, 8) + field(8, field(1, "") + field(2, 13)) + field(7, graph))
    return path


def test_a_text_file_named_onnx_gives_one_line(tmp_path):
    """Before: TensorFlow's frontend printed its parse errors ahead of the one-line message."""
    (tmp_path / "notes.onnx").write_text("hello\nthis is not a model\n")
    (tmp_path / "empty.onnx").write_bytes(b"")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name, message in (("notes.onnx", "gnaexp run: error: OpenVINO cannot read notes.onnx: Model can't be parsed"),
                          ("empty.onnx", "gnaexp run: error: empty.onnx holds no network")):
        proc = subprocess.run([sys.executable, "-m", "gnaexp", "run", "model", "--set", f"model={tmp_path / name}",
                               "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(message), \
            proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_real_onnx_file_still_reads(tmp_path, capsys):
    from gnaexp.models.model_files import read_model

    model = read_model(_onnx_relu(tmp_path / "relu.onnx"))
    assert [tuple(p.shape) for p in model.inputs] == [(1, 6, 255)] and len(model.outputs) == 1
    x = np.random.default_rng(0).standard_normal((1, 6, 255)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", "model", "--set", f"model={tmp_path / 'relu.onnx'}", "--set",
                 f"input_file={tmp_path / 'x.npy'}", "--backends", "openvino:CPU", "--out", str(tmp_path / "run")]) == 0


def test_an_input_of_the_wrong_shape_is_named_by_its_file(tmp_path, capsys):
    """Found by the fuzz test: the shape check named the model's input but not the file it came from."""
    from gnaexp.cli import main

    assert main(["export", "conv", "--set", "length=17", "--out", str(tmp_path / "pack")]) == 0
    np.save(tmp_path / "tiny.npy", np.zeros(1, np.float32))
    capsys.readouterr()
    assert main(["emulate", str(tmp_path / "pack" / "model.xml"), str(tmp_path / "tiny.npy"), "--out",
                 str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnaexp emulate: error: tiny.npy: input 'input' has shape (1,)") and "Traceback" not in err
    assert not (tmp_path / "e.npy").exists()
