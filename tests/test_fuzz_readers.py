"""Property: a malformed WAV, .npy/.npz or segments.json, generated, fed to the real command line is exit 2 with
the file named, no traceback, nothing streamed, and no change to an existing output folder (a damaged array file
that still holds what it held may be read: then it is exit 0)."""

import io
import json
import string
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnaexp.cli import main

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def wav(fields: dict, data: bytes) -> bytes:
    fmt = struct.pack("<HHIIHH", fields["tag"], fields["channels"], fields["rate"], fields["byte_rate"],
                      fields["block_align"], fields["bits"])
    fmt = (fmt + bytes(40))[:fields["fmt_size"]]
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fields["fmt_size"]) + fmt + b"data"
            + struct.pack("<I", len(data) if fields["data_size"] is None else fields["data_size"]) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_refused(capsys, argv: list[str], name: str, folder: Path, before: dict[str, bytes]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert name in err, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "\nstreaming " not in "\n" + err, err
    assert len(err.strip().splitlines()) == 1, err
    assert snapshot(folder) == before
    return err


@pytest.fixture(scope="module")
def vad_output(tmp_path_factory):
    """An earlier silero_vad output (one second of a tone, torch only) that no refused command may touch."""
    d = tmp_path_factory.mktemp("fuzz-vad")
    tone = (np.sin(np.arange(16000) / 5) * 8000).astype("<i2").tobytes()
    (d / "audio").mkdir()
    (d / "audio" / "a.wav").write_bytes(wav({"tag": 1, "channels": 1, "rate": 16000, "byte_rate": 32000,
                                             "block_align": 2, "bits": 16, "fmt_size": 16, "data_size": None}, tone))
    out = d / "out"
    assert main(["run", "silero_vad", "--set", f"audio={d / 'audio' / 'a.wav'}", "--backends", "torch",
                 "--out", str(out)]) == 0
    return d, out, snapshot(out)


# --- WAV -------------------------------------------------------------------------------------------------------
# Every file generated here is at most 299 bytes: 255 bytes of samples at most, under 512 samples at 16 kHz in any
# format and rate the reader takes, so none is a WAV the VAD can run on (none starts a stream).

header_fields = st.fixed_dictionaries({
    "tag": st.one_of(st.sampled_from([0, 1, 2, 3, 0xFFFE]), st.integers(0, 0xFFFF)),
    "channels": st.one_of(st.integers(0, 3), st.integers(0, 0xFFFF)),
    "rate": st.one_of(st.sampled_from([0, 1, 7999, 8000, 16000, 44100, 768000, 768001, 4_000_000_000, 2**32 - 1]),
                      st.integers(0, 2**32 - 1)),
    "byte_rate": st.integers(0, 2**32 - 1),
    "block_align": st.one_of(st.sampled_from([0, 1, 2, 4]), st.integers(0, 0xFFFF)),
    "bits": st.one_of(st.sampled_from([0, 8, 16, 24, 32, 64]), st.integers(0, 0xFFFF)),
    "fmt_size": st.one_of(st.sampled_from([0, 12, 15, 16, 18, 40]), st.integers(0, 40)),
    "data_size": st.one_of(st.none(), st.integers(0, 2**32 - 1)),
})
VALID = {"tag": 1, "channels": 1, "rate": 16000, "byte_rate": 32000, "block_align": 2, "bits": 16, "fmt_size": 16,
         "data_size": None}


@st.composite
def damaged_wav(draw) -> bytes:
    kind = draw(st.sampled_from(["fields", "flips", "truncated", "garbage"]))
    if kind == "fields":
        return wav(draw(header_fields), draw(st.binary(max_size=255)))
    if kind == "garbage":
        return draw(st.one_of(st.binary(max_size=299), st.binary(max_size=287).map(lambda b: b"RIFF\0\0\0\0WAVE" + b)))
    blob = bytearray(wav(VALID, draw(st.binary(min_size=255, max_size=255))))
    if kind == "truncated":
        return bytes(blob[:draw(st.integers(0, len(blob) - 1))])
    for at in draw(st.lists(st.integers(0, 43), min_size=1, max_size=6)):
        blob[at] ^= draw(st.integers(1, 255))
    return bytes(blob)


@FUZZ
@given(blob=damaged_wav())
def test_a_malformed_wav_is_exit_2_naming_it(vad_output, capsys, blob):
    d, out, before = vad_output
    path = d / "fuzz.wav"
    path.write_bytes(blob)
    check_refused(capsys, ["run", "silero_vad", "--set", f"audio={path}", "--out", str(out)], "fuzz.wav", out, before)


# --- segments.json ----------------------------------------------------------------------------------------------
# Every document generated here breaks the format for a.wav, the file streamed: none is a valid ground truth.

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                        st.text(max_size=8))
json_value = st.recursive(
    json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
number = st.one_of(st.integers(0, 3600), st.floats(0, 3600))
good_pair = st.tuples(number, number).filter(lambda p: p[0] < p[1]).map(list)
bad_pair = st.one_of(
    json_value.filter(lambda v: not isinstance(v, list)),
    st.lists(number, max_size=5).filter(lambda v: len(v) != 2),
    st.tuples(number, number).filter(lambda p: p[0] >= p[1]).map(list),
    st.tuples(st.floats(max_value=-1e-9) | st.integers(max_value=-1), number).map(list),
    st.tuples(number, st.floats(min_value=3600.001) | st.integers(min_value=3601)).map(list),
    st.tuples(st.one_of(st.text(max_size=4), st.booleans(), st.none()), number).map(list),
)


@st.composite
def bad_speech_list(draw) -> list:
    items = draw(st.lists(good_pair, max_size=4))
    items.insert(draw(st.integers(0, len(items))), draw(bad_pair))
    return items


bad_entry = st.one_of(
    json_value.filter(lambda v: not isinstance(v, dict) and v is not None),
    st.dictionaries(st.text(max_size=6).filter(lambda k: k != "speech"), json_value, max_size=3),
    json_value.filter(lambda v: not isinstance(v, list)).map(lambda v: {"speech": v}),
    bad_speech_list().map(lambda v: {"speech": v}),
)


def _not_json(blob: bytes) -> bool:
    try:
        json.loads(blob.decode("utf-8"))
    except ValueError:
        return True
    return False


segments_document = st.one_of(
    json_value.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    st.tuples(st.dictionaries(st.text(string.ascii_letters, max_size=6), json_value, max_size=2), bad_entry).map(
        lambda t: json.dumps({**t[0], "a.wav": t[1]}).encode()),
    st.binary(max_size=40).filter(_not_json),
)


@FUZZ
@given(document=segments_document)
def test_a_malformed_segments_json_is_exit_2_naming_it(vad_output, capsys, document):
    d, out, before = vad_output
    (d / "audio" / "segments.json").write_bytes(document)
    try:
        check_refused(capsys, ["run", "silero_vad", "--set", f"audio={d / 'audio'}", "--out", str(out)],
                      "segments.json", out, before)
    finally:
        (d / "audio" / "segments.json").unlink()


# --- .npy / .npz ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """An export pack's model and an earlier emulate output beside it, which no refused command may touch."""
    d = tmp_path_factory.mktemp("fuzz-npz")
    assert main(["export", "conv", "--out", str(d / "pack")]) == 0
    out = d / "out"
    assert main(["emulate", str(d / "pack" / "model.xml"), str(d / "pack" / "inputs.npz"), "--out",
                 str(out / "y.npy")]) == 0
    x = np.load(d / "pack" / "input.npy")
    return d, out, snapshot(out), x


def _npz(arrays: dict, compressed: bool) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _huge_header(shape: tuple[int, ...], descr: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@st.composite
def damaged_array_file(draw, x: np.ndarray) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".npz", ".npy"]))
    blob = bytearray(_npz({"input": x}, draw(st.booleans())) if suffix == ".npz" else _npy(x))
    kind = draw(st.sampled_from(["flips", "truncated", "header", "garbage"]))
    if kind == "truncated":
        blob = blob[:draw(st.integers(0, len(blob) - 1))]
    elif kind == "flips":
        for _ in range(draw(st.integers(1, 6))):
            blob[draw(st.integers(0, len(blob) - 1))] ^= draw(st.integers(1, 255))
    elif kind == "header":  # an array header that claims more than the file holds
        shape = tuple(draw(st.lists(st.integers(1, 2**40), min_size=1, max_size=4)))
        header = _huge_header(shape, draw(st.sampled_from(["<f4", "<f8", "<i2", "|u1"])))
        body = header + draw(st.binary(max_size=64))
        if suffix == ".npy":
            blob = bytearray(body)
        else:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as z:
                z.writestr("input.npy", body)
            blob = bytearray(buf.getvalue())
    else:
        blob = bytearray(draw(st.binary(max_size=200)))
    return suffix, bytes(blob)


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


@FUZZ
@given(data=st.data())
def test_a_malformed_array_file_is_exit_2_naming_it_or_read_whole(emulated, capsys, data):
    d, out, before, x = emulated
    suffix, blob = data.draw(damaged_array_file(x))
    path = d / f"fuzz{suffix}"
    path.write_bytes(blob)
    for argv in (["emulate", str(d / "pack" / "model.xml"), str(path), "--out", str(out / "y.npy")],
                 ["compare", str(path), str(d / "pack" / "input.npy")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (0, 2), err
        if code == 2:
            assert path.name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert snapshot(out) == before
        for name, content in before.items():  # a flip the format cannot see (in .npy data, a zip timestamp):
            (out / name).write_bytes(content)  # read as an array, it is emulated and written like any input
