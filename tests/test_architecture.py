"""The package's shape: the import direction (import-linter contracts in pyproject.toml), no import cycles, small
modules."""

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 520  # "about 500": a module past this has more than one job


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                          cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _parent(module: str) -> str:
    return module.rsplit(".", 1)[0]


def test_types_check():
    """mypy over the whole package, as pyproject.toml configures it (only the standalone device scripts are left
    out; the newest typed values strictly)."""
    mypy = Path(sys.executable).with_name("mypy")
    proc = subprocess.run([str(mypy), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
                           str(ROOT / ".mypy_cache")], capture_output=True, text=True, cwd=str(ROOT))
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("gnaexp")  # imports inside functions count too
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if module in (imported, _parent(imported)) or imported == _parent(module):
                continue  # a package's __init__ and its own submodules
            if graph.chain_exists(importer=imported, imported=module):
                cycles.add(" ⇄ ".join(sorted((module, imported))))
    assert not cycles, "\n".join(sorted(cycles))


def test_no_library_module_imports_the_cli():
    graph = grimp.build_graph("gnaexp")
    importers = {m for m in graph.find_modules_that_directly_import("gnaexp.cli")
                 | set().union(*(graph.find_modules_that_directly_import(c)
                                 for c in graph.find_children("gnaexp.cli")))}
    assert {m for m in importers if not m.startswith("gnaexp.cli")} <= {"gnaexp.__main__"}


def test_modules_stay_small():
    big = {p.relative_to(ROOT).as_posix(): n for p in (ROOT / "gnaexp").rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not big, big


def test_html_is_escaped_in_one_place():
    """Only gnaexp/present/markup.py calls the html module: every other writer builds HTML from its helpers."""
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "gnaexp").rglob("*.py")
             if p.name != "markup.py" and ("import html" in (t := p.read_text(encoding="utf-8"))
                                           or "from html import" in t)]
    assert not users, users
