"""torch and dask are optional (pyproject extras ``torch`` and ``cluster``): without them gnaexp says what needs
them and how to install them, in one line with exit 2, and what runs without them still runs. The absence is
simulated in a fresh interpreter (``sys.modules[name] = None`` makes every import of it fail)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _without(modules: list[str], argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import sys
        for name in {modules!r}:
            sys.modules[name] = None
        from gnaexp.cli import main
        sys.exit(main({argv!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=240)


def test_without_torch_the_forum_nets_say_how_to_install_it_and_a_model_file_still_runs(tmp_path):
    res = _without(["torch"], ["run", "conv", "--out", "r"], tmp_path)  # torch is among the default backends
    assert res.returncode == 3 and "the torch backend needs PyTorch, which is not installed here" in res.stderr
    res = _without(["torch"], ["run", "conv", "--backends", "openvino:CPU,gna-emu", "--out", "r"], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "the conv net (a PyTorch module) needs PyTorch, which is not installed here" in res.stderr
    assert "download.pytorch.org/whl/cpu" in res.stderr and not (tmp_path / "r").exists()
    res = _without(["torch"], ["run", "model", "--set", f"model={ROOT / 'tests' / 'data' / 'none.xml'}"], tmp_path)
    assert res.returncode == 2 and "needs PyTorch" not in res.stderr  # a model file does not ask for torch


def test_without_dask_the_cluster_option_says_how_to_install_it(tmp_path):
    res = _without(["distributed", "dask"], ["batch", "--dask", "local:1", "--out", "r"], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--dask needs dask.distributed, which is not installed here" in res.stderr
    assert "gnaexp[cluster]" in res.stderr


def test_the_package_metadata_says_what_is_optional():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith(("dask", "torch", "distributed")) for d in meta["dependencies"])
    assert any(d.startswith("dask[distributed]") for d in meta["optional-dependencies"]["cluster"])
    assert "torch==2.13.0" in meta["optional-dependencies"]["torch"]


def test_an_installed_package_without_the_speech_sample_names_where_it_is(tmp_path, monkeypatch):
    import pytest

    from gnaexp.present import vad_view as vad_report

    monkeypatch.setattr(vad_report, "SAMPLE", tmp_path / "absent.wav")
    with pytest.raises(ValueError, match="ships with gnaexp's source repository, not with the installed package"):
        vad_report.run({"audio": "", "backends": "torch,gna-emu", "record_dir": str(tmp_path / "rec")})
