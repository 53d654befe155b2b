"""A support bundle holds only the run's own files, refuses what is not a record, and its scripts say in one line
when the files or the rerun disagree with the record: real runs, the real CLI, the scripts run as a user would."""

import json
import shutil
import subprocess
import sys
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from gnaexp.cli import main
from gnaexp.models.ir import fingerprint_ir

SPEECH = Path(__file__).resolve().parent.parent / "data" / "speech"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "concat_conv"
    assert main(["run", "concat_conv", "--set", "scale_factor=2048", "--set", "seed=3", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def vad_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("vad") / "vad"
    assert main(["run", "silero_vad", "--set", f"audio={SPEECH / 'speech_snr20.wav'}", "--backends",
                 "openvino:CPU,gna-emu", "--set", "scale_factor=2048", "--out", str(out)]) == 0
    return out


@pytest.fixture
def copy_of(tmp_path):
    def make(folder: Path, name: str = "run") -> Path:
        target = tmp_path / name
        shutil.copytree(folder, target)
        return target
    return make


def bundle(folder: Path, tmp_path: Path, *extra: str) -> tuple[int, Path]:
    zip_path = tmp_path / "support.zip"
    return main(["bundle", str(folder), "--out", str(zip_path), "--no-diagnosis", *extra]), zip_path


def unpacked(zip_path: Path, where: Path) -> Path:
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(where)
    return where


def script(folder: Path, name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(folder / name), *args], cwd=cwd or folder, capture_output=True,
                          text=True, timeout=240)


def one_line(res: subprocess.CompletedProcess) -> str:
    """A script's failure: exactly one line on stderr, no traceback."""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def tamper_weights(xml: Path) -> None:
    """Scale the IR's largest FP32 constant in the .bin by 1.5 (the graph stays valid): a tampered IR."""
    consts = [layer.find("data").attrib for layer in ET.parse(xml).getroot().iter("layer")
              if layer.get("type") == "Const" and layer.find("data").get("element_type") == "f32"]
    biggest = max(consts, key=lambda d: int(d["size"]))
    data = bytearray(xml.with_suffix(".bin").read_bytes())
    start, size = int(biggest["offset"]), int(biggest["size"])
    data[start:start + size] = (1.5 * np.frombuffer(bytes(data[start:start + size]), np.float32)).tobytes()
    xml.with_suffix(".bin").write_bytes(bytes(data))


# --- item 5: nothing from outside the run folder ------------------------------------------------------------

@pytest.mark.parametrize("link", ["report.html", "ir/model.bin"])
def test_a_link_leading_out_of_the_run_folder_is_refused(run_dir, copy_of, tmp_path, capsys, link):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the vendor")
    run = copy_of(run_dir)
    (run / link).unlink(missing_ok=True)
    (run / link).symlink_to(secret)
    code, zip_path = bundle(run, tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and Path(link).name in err and "leads outside" in err, err
    assert not zip_path.exists()


@pytest.mark.parametrize("path", ["/etc/passwd", "../secret.txt", "ir/../../secret.txt"])
def test_a_record_pointing_outside_its_folder_is_refused(run_dir, copy_of, tmp_path, capsys, path):
    (tmp_path / "secret.txt").write_text("not for the vendor")
    run = copy_of(run_dir)
    record = json.loads((run / "record.json").read_text())
    record["artifacts"]["inputs"] = path
    (run / "record.json").write_text(json.dumps(record))
    code, zip_path = bundle(run, tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and "artifact 'inputs'" in err and ("leads outside" in err or "relative to its folder" in err)
    assert not zip_path.exists()


def test_a_batch_report_beside_the_record_that_links_out_is_refused(run_dir, tmp_path, capsys):
    out = tmp_path / "batch"
    out.mkdir()
    shutil.copytree(run_dir, out / "one.record")
    (out / "one.html").symlink_to("/etc/passwd")
    code, zip_path = bundle(out / "one.record", tmp_path)
    assert code == 2 and "one.html" in capsys.readouterr().err and not zip_path.exists()
    (out / "one.html").unlink()
    (out / "one.html").write_text("<html>report</html>")  # the batch's own report goes in
    code, zip_path = bundle(out / "one.record", tmp_path)
    assert code == 0
    with zipfile.ZipFile(zip_path) as z:
        assert z.read("report.html") == b"<html>report</html>"


def test_a_link_that_stays_inside_the_run_folder_is_packed(run_dir, copy_of, tmp_path):
    run = copy_of(run_dir)
    (run / "page.html").write_text("<html>mine</html>")
    (run / "report.html").symlink_to("page.html")
    code, zip_path = bundle(run, tmp_path)
    assert code == 0
    with zipfile.ZipFile(zip_path) as z:
        assert z.read("report.html") == b"<html>mine</html>"


# --- item 15: what is not a record, and a silero_vad run ----------------------------------------------------

@pytest.mark.parametrize("text, said", [("[1, 2]", "holds a JSON list, not a gnaexp record"),
                                        ("{}", "has schema None; this gnaexp reads"),
                                        ('{"schema": "gnaexp.record/1"}', "'experiment' is missing"),
                                        ("{not json", "is not JSON")])
@pytest.mark.parametrize("diagnosis", [True, False])
def test_a_record_json_that_is_not_a_record_is_refused(tmp_path, capsys, text, said, diagnosis):
    (tmp_path / "record.json").write_text(text)
    code, zip_path = bundle(tmp_path, tmp_path) if not diagnosis else (
        main(["bundle", str(tmp_path), "--out", str(tmp_path / "support.zip")]), tmp_path / "support.zip")
    err = capsys.readouterr().err
    assert code == 2 and said in err and "record.json" in err and "internal error" not in err, err
    assert not zip_path.exists()


@pytest.mark.parametrize("extra", [(), ("--no-diagnosis",)])
def test_a_silero_vad_run_is_bundled_and_its_reproduce_checks_it(vad_dir, tmp_path, capsys, extra):
    zip_path = tmp_path / "vad.zip"
    assert main(["bundle", str(vad_dir), "--out", str(zip_path), *extra]) == 0
    assert "no diagnosis ladder for silero_vad" in capsys.readouterr().err
    fresh = unpacked(zip_path, tmp_path / "elsewhere")
    assert {p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file()} == {
        "record.json", "tracks.npz", "ir/silero_vad.xml", "ir/silero_vad.bin", "reproduce.py", "README.txt"}
    for args in ((), ("--audio", str(SPEECH)), ("--audio", str(SPEECH), "--plain")):
        res = script(fresh, "reproduce.py", *args, "--json")
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        assert got["problems"] == [] and got["files"]["speech_snr20/gna-emu"]["matches_record"] is True
        if args:  # streamed again on OpenVINO CPU: the same track as the stored reference (itself OpenVINO CPU)
            assert got["openvino_cpu"]["speech_snr20.wav"]["matches_record"] is True


def test_a_tampered_silero_vad_bundle_fails_its_reproduce(vad_dir, tmp_path):
    assert bundle(vad_dir, tmp_path)[0] == 0
    fresh = unpacked(tmp_path / "support.zip", tmp_path / "elsewhere")
    tamper_weights(fresh / "ir" / "silero_vad.xml")
    res = script(fresh, "reproduce.py", "--audio", str(SPEECH))
    assert res.returncode == 1
    assert "the OpenVINO CPU rerun of ir/ on speech_snr20.wav gives SQNR" in one_line(res)
    with np.load(fresh / "tracks.npz") as z:
        tracks = dict(z)
    tracks["speech_snr20/gna-emu"] = tracks["speech_snr20/gna-emu"][::-1].copy()
    np.savez(fresh / "tracks.npz", **tracks)
    res = script(fresh, "reproduce.py")
    assert res.returncode == 1 and "speech_snr20/gna-emu: the metrics of the stored track are not" in one_line(res)


# --- item 9 and 16: reproduce.py fails in one line when the bundle or its rerun disagrees -------------------

@pytest.fixture
def conv_bundle(run_dir, tmp_path):
    assert bundle(run_dir, tmp_path)[0] == 0
    return unpacked(tmp_path / "support.zip", tmp_path / "elsewhere")


@pytest.mark.parametrize("plain", [(), ("--plain",)], ids=["with-gnaexp", "numpy-and-openvino-only"])
def test_reproduce_fails_on_a_tampered_ir(conv_bundle, plain):
    xml = conv_bundle / "ir" / "model.xml"
    tamper_weights(xml)
    res = script(conv_bundle, "reproduce.py", *plain)
    assert res.returncode == 1
    line = one_line(res)
    assert "DIFFERS from record.json: ir/ is not the IR the record was made with" in line
    assert "the OpenVINO CPU rerun of ir/ gives SQNR" in line
    # a forger who also fixes the fingerprint is still caught by the rerun against the recorded figure
    record = json.loads((conv_bundle / "record.json").read_text())
    record["model_fingerprint"] = fingerprint_ir(xml)
    (conv_bundle / "record.json").write_text(json.dumps(record))
    line = one_line(res := script(conv_bundle, "reproduce.py", *plain))
    assert res.returncode == 1 and "ir/ is not" not in line
    assert "the OpenVINO CPU rerun of ir/ gives SQNR" in line and "record.json says" in line


def test_reproduce_fails_on_edited_metrics_or_other_inputs(conv_bundle):
    record_file = conv_bundle / "record.json"
    record = json.loads(record_file.read_text())
    record["metrics"]["gna-emu (emulated)"]["output"]["sqnr_db"] += 3.0
    record_file.write_text(json.dumps(record))
    res = script(conv_bundle, "reproduce.py")
    assert res.returncode == 1 and "gna-emu (emulated)/output: the metrics of the stored outputs" in one_line(res)
    with np.load(conv_bundle / "inputs.npz") as z:
        np.savez(conv_bundle / "inputs.npz", **{k: v + 0.5 for k, v in z.items()})
    res = script(conv_bundle, "reproduce.py")
    assert res.returncode == 1 and "inputs.npz is not the input the record was made with" in one_line(res)


@pytest.mark.parametrize("damage, named", [("record-list", "record.json"), ("record-text", "record.json"),
                                           ("outputs-truncated", "outputs.npz"), ("inputs-missing", "inputs.npz"),
                                           ("ir-text", "ir/model.xml")])
def test_reproduce_on_a_damaged_bundle_says_so_in_one_line(conv_bundle, damage, named):
    if damage == "ir-text":
        (conv_bundle / "ir" / "model.xml").write_text("<net>not an IR")
    elif damage == "record-list":
        (conv_bundle / "record.json").write_text("[]")
    elif damage == "record-text":
        (conv_bundle / "record.json").write_bytes(b"\xff\xfe garbage")
    elif damage == "outputs-truncated":
        data = (conv_bundle / "outputs.npz").read_bytes()
        (conv_bundle / "outputs.npz").write_bytes(data[: len(data) // 2])
    else:
        (conv_bundle / "inputs.npz").unlink()
    res = script(conv_bundle, "reproduce.py")
    line = one_line(res)
    assert res.returncode == 2 and res.stdout == ""
    assert named in line
    assert "take the bundle again" in line


# --- item 16: measure_on_device.py ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "pack"
    assert main(["export", "concat_conv", "--set", "scale_factor=2048", "--out", str(out)]) == 0
    return out


def test_measure_script_refuses_bad_values_naming_the_valid_ones(pack):
    res = script(pack, "measure_on_device.py", "--mode", "bogus", "--precision", "i4", "--sf", "-5", "--show-config")
    line = one_line(res)
    assert res.returncode == 2 and res.stdout == ""  # not shown as a plugin config
    assert "--mode bogus is not one of AUTO, HW, HW_WITH_SW_FBACK, SW_EXACT, SW_FP32" in line
    assert "--precision i4 is not one of i16, i8" in line and "positive, finite" in line
    res = script(pack, "measure_on_device.py", "--sf", "abc")
    assert res.returncode == 2 and "--sf 'abc' is not a scale factor" in one_line(res)
    # the valid spellings the GNA plugin's own names use still pass
    res = script(pack, "measure_on_device.py", "--mode", "gna_sw_exact", "--precision", "I8", "--show-config")
    assert res.returncode == 0 and json.loads(res.stdout)["GNA_DEVICE_MODE"] == "GNA_SW_EXACT"


def test_measure_script_without_a_gna_and_from_another_folder(pack, tmp_path):
    import openvino as ov

    if "GNA" not in ov.Core().available_devices:
        res = script(pack, "measure_on_device.py")
        assert res.returncode == 1 and "cannot run the model on GNA" in one_line(res)
        assert "--device CPU" in res.stderr and not (pack / "outputs.npz").exists()
    res = script(pack, "measure_on_device.py", "--device", "CPU", cwd=tmp_path)  # the pack read from elsewhere
    assert res.returncode == 0, res.stderr
    assert (pack / "outputs.npz").is_file() and not list(tmp_path.iterdir())
    (pack / "outputs.npz").unlink()
    (tmp_path / "pack").mkdir()
    shutil.copy(pack / "measure_on_device.py", tmp_path / "pack")  # the script alone, without its pack
    res = script(tmp_path / "pack", "measure_on_device.py", "--device", "CPU")
    assert res.returncode == 2 and "config.json is missing beside measure_on_device.py" in one_line(res)


# --- item 6: a path parameter shows as its file's name (and fingerprint) in shared pages ---------------------

def test_an_absolute_path_parameter_shows_only_the_files_name(tmp_path, capsys):
    import hashlib

    import yaml

    from gnaexp.batch import matrix

    private = tmp_path / "home" / "someone" / "private-recordings"
    private.mkdir(parents=True)
    wav = private / "meeting.wav"
    shutil.copy(SPEECH / "speech_snr20.wav", wav)
    m = tmp_path / "m.yaml"
    m.write_text(yaml.safe_dump({"runs": [{"notebook": str(NOTEBOOKS / "vad"), "parameters": {
        "audio": str(wav), "backends": "openvino:CPU,gna-emu"}}]}))
    run = matrix.load_matrix(m)[0]
    digest = hashlib.sha256(wav.read_bytes()).hexdigest()[:8]
    assert run.name == "vad-meeting.wav-openvino_CPU_gna-emu"  # the run (file) name carries no folder either
    assert run.title == f"vad audio=meeting.wav (sha256 {digest}) backends=openvino:CPU,gna-emu"
    out = tmp_path / "reports"
    assert main(["batch", str(m), "--out", str(out), "--jobs", "1"]) == 0, capsys.readouterr()
    published = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir() if p.suffix in (".html", ".ipynb")}
    assert set(published) == {"index.html", f"{run.name}.html", f"{run.name}.ipynb"}
    for name, text in published.items():
        assert str(private) not in text and "someone" not in text, name
    assert f"<title>{run.title}</title>" in published[f"{run.name}.html"]
    assert f"meeting.wav (sha256 {digest})" in published["index.html"]
    nb = json.loads(published[f"{run.name}.ipynb"])
    assert nb["metadata"]["papermill"]["parameters"]["audio"] == "meeting.wav"
    assert 'audio = "meeting.wav"' in "".join(next(c["source"] for c in nb["cells"]
                                                   if "injected-parameters" in c["metadata"].get("tags", [])))
