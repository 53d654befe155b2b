"""The scripts packs and bundles ship (gnaexp/support/scripts, put together by gnaexp.support.device_scripts): real
files, clean under pyflakes, Python 3.7 syntax, each shipped as one self-contained file, installed with the wheel.
What they do is tested by running them in real packs and bundles (test_bundle*, test_cli, test_measured_verdicts)."""

import ast
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pyflakes.api import check
from pyflakes.reporter import Reporter

from gnaexp.core import gna_settings
from gnaexp.support import device_scripts

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "gnaexp" / "support" / "scripts"
SHIPPED = ("measure_on_device.py", "reproduce_record.py", "reproduce_vad.py")
FILES = sorted(p.name for p in SCRIPTS.glob("*.py"))


def flakes(text: str, name: str) -> str:
    out = io.StringIO()
    check(text, name, Reporter(out, out))
    return out.getvalue()


@pytest.mark.parametrize("name", FILES)
def test_each_script_file_is_clean_python_3_7(name):
    text = (SCRIPTS / name).read_text(encoding="utf-8")
    ast.parse(text, name, feature_version=(3, 7))  # a newer syntax raises SyntaxError
    assert flakes(text, name) == ""
    assert device_scripts.MARKER in text.splitlines()


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_script_is_one_self_contained_file(name):
    text = device_scripts.shipped(name)
    ast.parse(text, name, feature_version=(3, 7))
    assert flakes(text, name) == ""  # every name defined, every import used, none twice
    tree = ast.parse(text)
    imported = {str(n.module).split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)} | {
        a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    assert imported <= set(sys.stdlib_module_names) | {"numpy"}  # gnaexp only optionally, inside functions
    assert not {Path(f).stem for f in FILES} & imported and device_scripts.MARKER not in text
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert len(defined) == len(set(defined)) and {"fail", "run_main", "main"} <= set(defined)
    assert ast.get_docstring(tree) == ast.get_docstring(ast.parse((SCRIPTS / name).read_text(encoding="utf-8")))


def test_the_measure_scripts_choices_are_gnaexps():
    """The script cannot import gnaexp on the device: its modes and precisions are constants, held equal here."""
    tree = ast.parse((SCRIPTS / "measure_on_device.py").read_text(encoding="utf-8"))
    values = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and t.id in ("MODES", "PRECISIONS")}
    assert values["MODES"] == gna_settings.EXECUTION_MODES and values["PRECISIONS"] == gna_settings.PRECISIONS


def test_the_wheel_carries_the_scripts(tmp_path):
    """Built from the repository's own files, the wheel holds every script file and, installed alone, writes the same
    scripts as this checkout."""
    pytest.importorskip("setuptools", minversion="64", reason="building the wheel needs setuptools (pyproject.toml)")
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((ROOT / name).read_bytes())
    for path in (ROOT / "gnaexp").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            (src / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            (src / path.relative_to(ROOT)).write_bytes(path.read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=120)
    (wheel,) = (tmp_path / "dist").glob("gnaexp-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert {f"gnaexp/support/scripts/{name}" for name in FILES} <= set(z.namelist())
        z.extractall(tmp_path / "site")
    code = ("import sys, gnaexp; from gnaexp.support.device_scripts import shipped; "
            "print(gnaexp.__file__); sys.stdout.write(shipped(sys.argv[1]))")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    for name in SHIPPED:
        proc = subprocess.run([sys.executable, "-c", code, name], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, check=True)
        where, text = proc.stdout.split("\n", 1)
        assert Path(where).is_relative_to(tmp_path / "site") and text == device_scripts.shipped(name)
