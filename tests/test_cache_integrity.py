"""Cache entries are used only as they were written: an entry changed in place, truncated or half-written is
built again with a note, never used as is and never an internal error; a VAD run never reads back an IR that
sits in --out; the cache folder never lands in / when HOME is empty."""

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest

from gnaexp import cache, cli, experiment
from gnaexp.vad import audio

ROOT = Path(__file__).resolve().parent.parent
ONE_WAV = ROOT / "data" / "speech" / "speech_snr5.wav"
NOTE = "gnaexp: note: the cache entry "


def _tamper(path: Path) -> bytes:
    """Change a file in place, keeping its size (as an edit or a bad sector would); returns what it held."""
    data = path.read_bytes()
    changed = bytearray(data)
    for i in range(len(changed) // 3, len(changed) // 3 + 64):
        changed[i] ^= 0x55
    path.write_bytes(bytes(changed))
    return data


def _scale_weights(path: Path) -> bytes:
    """Change an IR's float32 weights in place: the middle half of them, by 1.5."""
    data = path.read_bytes()
    weights = np.frombuffer(data, dtype=np.float32).copy()
    n = len(weights)
    weights[n // 4:3 * n // 4] *= 1.5
    path.write_bytes(weights.tobytes())
    return data


def _truncate(path: Path) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return data


def _cpu_cosine(record: dict) -> float:
    return record["metrics"]["openvino:CPU"]["output"]["cosine"]


@pytest.mark.parametrize("damage", [_tamper, _truncate])
def test_a_cached_ir_changed_in_place_is_rebuilt_with_a_note(tmp_path, capsys, damage):
    """The conv IR in ir/: an edited .bin made OpenVINO disagree with torch and the verdict blamed the IR."""
    sets = ["--set", "length=19", "--set", f"seed={7 if damage is _tamper else 8}", "--backends", "torch,openvino:CPU"]
    assert cli.main(["run", "conv", *sets, "--out", str(tmp_path / "a"), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    xml = experiment.build_model(experiment.ExperimentConfig(length=19, seed=7 if damage is _tamper else 8)).ir_xml
    assert xml.is_relative_to(cache.cache_dir() / "ir")
    original = damage(xml.with_suffix(".bin"))

    assert cli.main(["run", "conv", *sets, "--out", str(tmp_path / "b"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert f"{NOTE}ir/{xml.parent.name} was changed or damaged (model.bin " in err and "building it again" in err
    assert _cpu_cosine(json.loads(out)) == _cpu_cosine(first) > 0.99999
    assert xml.with_suffix(".bin").read_bytes() == original
    assert not [p for p in xml.parent.parent.iterdir() if p.name.startswith(".")]  # nothing left aside

    assert cli.main(["run", "conv", *sets, "--out", str(tmp_path / "c"), "--json"]) == 0
    assert NOTE not in capsys.readouterr().err  # intact again: used without a word


def test_a_cached_reference_changed_in_place_is_rebuilt_with_a_note(capsys):
    """reference/KEY holds the IR the device backends of a cached run read (batch notebooks, the POT study)."""
    config = experiment.ExperimentConfig(length=21, seed=13, backends=["torch", "openvino:CPU"])
    first = experiment.run(config, use_cache=True)
    folder = cache.cache_dir() / "reference" / experiment.reference_cache_key(config)
    _tamper(folder / "model.bin")
    capsys.readouterr()
    again = experiment.run(config, use_cache=True)
    assert f"{NOTE}reference/{folder.name} was changed or damaged (model.bin is not the file that was written)" \
        in capsys.readouterr().err
    assert not again.result("torch").info.get("cached")
    assert again.metrics == first.metrics and again.diagnosis == first.diagnosis
    assert experiment.run(config, use_cache=True).result("torch").info.get("cached") is True


@pytest.mark.parametrize("name, damage", [("meta.json", lambda p: p.write_text("{ not json")),
                                          ("reference.npz", _truncate),
                                          ("seal.json", lambda p: p.write_text("[]")),
                                          ("model.xml", lambda p: p.unlink())])
def test_every_damaged_reference_file_reads_as_absent(capsys, name, damage):
    config = experiment.ExperimentConfig(length=23, seed=14, backends=["torch", "gna-emu"])
    key = experiment.reference_cache_key(config)
    experiment.run(config, use_cache=True)
    assert cache.load_reference(key) is not None
    damage(cache.cache_dir() / "reference" / key / name)
    capsys.readouterr()
    assert cache.load_reference(key) is None
    assert NOTE in capsys.readouterr().err
    rebuilt = experiment.run(config, use_cache=True)
    assert not rebuilt.result("torch").info.get("cached") and cache.load_reference(key) is not None


def test_an_entry_for_other_inputs_is_replaced_not_an_internal_error(capsys):
    config = experiment.ExperimentConfig(length=25, seed=15, backends=["torch", "gna-emu"])
    key = experiment.reference_cache_key(config)
    experiment.run(config, use_cache=True)
    other = experiment.ExperimentConfig(length=25, seed=16, backends=["torch", "gna-emu"])
    model = experiment.build_model(other)
    feed = experiment.make_inputs(other, model)
    from gnaexp.backends import make_backend
    from gnaexp.core.inputs import fingerprint

    shutil.rmtree(cache.cache_dir() / "reference" / key)
    cache.store_reference(key, model, make_backend("torch").run(model, feed), fingerprint(feed))  # a wrong entry
    assert cache.load_reference(key)[2] == fingerprint(feed)
    capsys.readouterr()
    record = experiment.run(config, use_cache=True)
    assert "it holds the output of other inputs" in capsys.readouterr().err
    assert record.result("torch").info.get("cached") is not True
    assert experiment.run(config, use_cache=True).result("torch").info.get("cached") is True


def test_a_truncated_vad_reference_is_computed_again(tmp_path, capsys):
    """A truncated vad-reference npz made every later run on these files an internal error."""
    args = ["run", "silero_vad", "--set", f"audio={ONE_WAV}", "--backends", "torch,gna-emu", "--json"]
    assert cli.main([*args, "--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out)
    key = cache.vad_reference_key([audio.load_wav(ONE_WAV).samples])
    tracks = cache.cache_dir() / "vad-reference" / key / "tracks.npz"
    assert cache.load_vad_streams(key) is not None
    _truncate(tracks)
    assert cli.main([*args, "--out", str(tmp_path / "b")]) == 0
    out, err = capsys.readouterr()
    assert f"{NOTE}vad-reference/{key} was changed or damaged (tracks.npz has " in err
    again = json.loads(out)
    assert again["device_settings"]["torch"].get("tracks") != "cached"
    assert again["aggregate"]["gna-emu"]["max_abs_dp"] == first["aggregate"]["gna-emu"]["max_abs_dp"]
    assert cache.load_vad_streams(key) is not None


def test_a_vad_run_never_reads_back_the_ir_in_its_output_folder(tmp_path, capsys):
    """An ir/silero_vad.bin left in --out (edited, or from an older version) took OpenVINO's max|Δp| from 1e-8 to
    0.175 without a word."""
    out = tmp_path / "out"
    args = ["run", "silero_vad", "--set", f"audio={ONE_WAV}", "--backends", "torch,openvino:CPU", "--json",
            "--out", str(out)]
    assert cli.main(args) == 0
    first = json.loads(capsys.readouterr().out)["aggregate"]["openvino:CPU"]["max_abs_dp"]
    assert first < 1e-4
    original = _scale_weights(out / "ir" / "silero_vad.bin")
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out)["aggregate"]["openvino:CPU"]["max_abs_dp"] == first
    assert (out / "ir" / "silero_vad.bin").read_bytes() == original


def test_a_cached_vad_ir_changed_in_place_is_converted_again(tmp_path, capsys):
    cache.vad_ir(tmp_path / "a")
    entry = next((cache.cache_dir() / "ir").glob("silero_vad-*"))
    original = _tamper(entry / "silero_vad.bin")
    capsys.readouterr()
    written = cache.vad_ir(tmp_path / "b")
    assert f"{NOTE}ir/{entry.name} was changed or damaged" in capsys.readouterr().err
    assert written.with_suffix(".bin").read_bytes() == original == (entry / "silero_vad.bin").read_bytes()


# --- where the cache is ------------------------------------------------------------------------------------------

def _no_home(monkeypatch, temp: Path) -> None:
    monkeypatch.delenv("GNAEXP_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "")
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again


def test_an_empty_home_does_not_put_the_cache_in_the_root(monkeypatch, tmp_path):
    _no_home(monkeypatch, tmp_path)
    folder = cache.cache_dir()
    assert folder.parent == tmp_path and folder.name.startswith("gnaexp-cache-")
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0  # this user's alone
    monkeypatch.setenv("HOME", "relative/home")
    assert cache.cache_dir() == folder
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # the XDG rule: ignored unless absolute
    assert cache.cache_dir() == folder
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/xdg")
    assert cache.cache_dir() == Path("/srv/xdg/gnaexp")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    assert cache.cache_dir() == Path("/home/someone/.cache/gnaexp")
    monkeypatch.setenv("GNAEXP_CACHE", "/srv/cache")
    assert cache.cache_dir() == Path("/srv/cache")


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs to make a folder for another user")
def test_a_temp_cache_folder_of_another_user_is_refused(monkeypatch, tmp_path):
    _no_home(monkeypatch, tmp_path)
    planted = tmp_path / f"gnaexp-cache-{os.getuid()}"
    planted.mkdir()
    os.chown(planted, 12345, 12345)
    with pytest.raises(ValueError, match="belongs to another user or is writable by others: set GNAEXP_CACHE"):
        cache.cache_dir()


# --- errors name the file asked for ------------------------------------------------------------------------------

def _in_the_way(folder: Path) -> Path:
    """A target that cannot be replaced by a file: a folder with something in it."""
    target = folder / "record.json"
    target.mkdir(parents=True)
    (target / "keep").write_text("x")
    return target


def test_a_failed_atomic_write_names_the_target_not_its_temporary_file(tmp_path, capsys):
    from gnaexp.cli import _os_error_message
    from gnaexp.core import files

    target = _in_the_way(tmp_path)
    with pytest.raises(OSError) as info:
        files.atomic_write_text(target, "{}")
    message = _os_error_message(info.value)
    assert info.value.filename == str(target) and ".tmp" not in message and str(target) in message
    with pytest.raises(OSError) as info:
        with files.staged_files() as stage:
            stage(tmp_path / "a.npz", b"a")
            stage(target, b"b")
    assert info.value.filename == str(target) and ".tmp" not in _os_error_message(info.value)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    long = tmp_path / ("n" * 250 + ".json")  # a valid name; its temporary file's name must be valid too
    files.atomic_write_text(long, "{}")
    assert long.read_text() == "{}"
