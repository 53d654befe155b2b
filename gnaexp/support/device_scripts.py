"""The scripts gnaexp writes for other machines, each as one file: ``measure_on_device.py`` of an export pack, and
the ``reproduce.py`` of a support bundle (``reproduce_record.py`` for a comparison record, ``reproduce_vad.py`` for a
silero_vad record).

Their code is real Python in ``scripts/`` beside this module (package data, linted and tested like the rest), and
what they share is a module there too: ``device_common.py`` (the one-line exit, the IR check, the input fingerprint)
and ``reproduce_common.py`` (what both reproduce scripts do). ``shipped`` puts one script together with the shared
code it imports into a single self-contained file, rather than copying the shared modules beside it: a script
copied or mailed alone still runs and says which file of its pack is missing, and a bundle holds exactly the files
its README lists.

Each file in ``scripts/`` has a header — its docstring, its imports, and (in a shared module) whatever it needs to be
read alone — then the line ``# ---- shipped from here ----`` and its code. The shipped file is the script's
docstring, the imports of all the files it draws on (each name once, the standard library's then NumPy; imports from
a sibling file dropped), then the shared code (each file once, after the files it imports from) and the script's own
code. Only the shipped file is meant to run: read alone, a shared module names itself in its messages.

The scripts run where gnaexp may not be installed (NumPy and OpenVINO are enough) and on the older Pythons the GNA
releases of OpenVINO (2022.3–2023.3) support, so they use no syntax newer than Python 3.7. A bad option or a
damaged file gives one line naming it and a non-zero exit, never a traceback: 2 for what the user or the files got
wrong, 1 when the run itself fails or disagrees with the record.
"""

from __future__ import annotations

import ast
import sys
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

MARKER = "# ---- shipped from here ----"


def folder() -> Traversable:
    """``gnaexp/support/scripts``, where the scripts' files are (installed as package data)."""
    return resources.files("gnaexp.support") / "scripts"


def _split(name: str) -> tuple[ast.Module, str, str]:
    """A file's header (parsed), its docstring as written ('' without one), and its code below the marker."""
    head, marker, code = (folder() / name).read_text(encoding="utf-8").partition("\n" + MARKER + "\n")
    if not marker:
        raise RuntimeError(f"gnaexp/support/scripts/{name} has no line {MARKER!r}")  # our own file: a bug
    tree = ast.parse(head)
    doc = ast.get_source_segment(head, tree.body[0]) or "" if ast.get_docstring(tree) is not None else ""
    return tree, doc, code.strip("\n")


def _bound(alias: ast.alias) -> str:
    """The name an import binds: ``ET`` for ``xml.etree.ElementTree as ET``, ``os`` for ``os.path``."""
    return alias.asname or alias.name.split(".")[0]


def shipped(name: str) -> str:
    """The script ``name`` of ``scripts/`` as one self-contained file, as packs and bundles hold it."""
    imports: dict[bool, list[str]] = {True: [], False: []}  # the standard library's, then the others (NumPy)
    bound: set[str] = set()
    seen: set[str] = set()
    codes: dict[str, str] = {}  # file → its code, each file after the ones it imports from

    def visit(file: str) -> None:
        seen.add(file)
        tree, _, code = _split(file)
        siblings = []
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (folder() / f"{node.module}.py").is_file():
                siblings.append(f"{node.module}.py")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                node.names = [alias for alias in node.names if _bound(alias) not in bound]
                bound.update(_bound(alias) for alias in node.names)
                if node.names:
                    top = (node.names[0].name if isinstance(node, ast.Import) else str(node.module)).split(".")[0]
                    imports[top in sys.stdlib_module_names].append(ast.unparse(node))
        for sibling in siblings:
            if sibling not in seen:
                visit(sibling)
        codes[file] = code if file == name else f"# ---- {file}: shared by gnaexp's scripts ----\n\n{code}"

    visit(name)
    doc = _split(name)[1]
    head = "\n\n".join("\n".join(group) for group in (imports[True], imports[False]) if group)
    return (doc + "\n" if doc else "") + head + "\n\n\n" + "\n\n\n".join(codes.values()) + "\n"
