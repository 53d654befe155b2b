"""The bench scripts still run (a smoke run on tiny settings; speed is printed by them, never asserted here)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_emulator_bench_runs_and_reports_both_ratios():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "emulator.py"), "--n", "600", "--repeat", "2"],
                          capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.index("each timed alone") < out.index("timed alternately")  # the honest figure first
    assert "cosine emulator vs OpenVINO CPU:              1.000000" in out


def test_batch_bench_runs_one_method(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "batch.py"), "--runs", "1", "--methods", "batch"],
                          capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 runs" in proc.stdout and "batch" in proc.stdout


def test_diagnose_bench_runs_and_names_every_plant():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "diagnose.py"), "--repeat", "1"],
                          capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MISSED" not in proc.stdout and "hit rate: 23/23" in proc.stdout


def test_startup_bench_runs_and_prints_every_command_against_its_target(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "startup.py"), "--repeat", "1", "--importtime", "3"],
                          capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for label in ("python -c pass (the floor)", "gnaexp --help", "gnaexp devices",
                  "gnaexp diagnose conv --observed FILE"):
        assert any(line.startswith(label) and " median " in line and " best " in line for line in lines), label
    assert sum("target ≤" in line for line in lines) == 2
    assert "all imports" in proc.stdout
    assert not any(tmp_path.iterdir())  # its files stay in its own temporary folder


def test_vad_stream_bench_compares_the_same_work_first():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "vad_stream.py"), "--minutes", "0.2", "--streams", "3",
                           "--check", "1"], capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # one stream on both sides, then N streams batched on both sides, then the former figure, labelled
    assert (out.index("emulator / OpenVINO, one stream") < out.index("emulator / OpenVINO, 3 streams")
            < out.index("extra, not the same work"))
    assert "against the faster OpenVINO: (" in out
    assert out.count("best of 3 runs: ") == 2  # the emulator and OpenVINO (a), each in its own loop of runs
    assert "one stream : peak" in out and "3 streams: peak" in out
    assert "batched bit-identical to one stream alone: True (1 stream(s) checked)" in out
