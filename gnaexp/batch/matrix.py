"""The batch matrix: a YAML file of notebook runs, read and checked before anything runs.

Each run names a notebook beside the matrix, its parameters (and a grid of values to combine) and optionally a
name; ``defaults`` apply to every notebook that takes them. Every parameter is checked against the notebook's
parameters cell and the experiment's own validation, so a wrong name or value is a usage error (exit 2) that
names the run, not a failure inside a kernel.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnaexp.core.excerpt import excerpt
from gnaexp.core.errors import BadInput

MATRIX_NAME = "forum-matrix.yaml"
# Short names for the parameters that vary most, to keep run (and file) names readable.
# Text values stand for themselves; numbers carry their (short) parameter name.
ABBREV = {"scale_factor": "sf", "scale_factors": "sf"}


class MatrixError(BadInput):
    """The matrix file is wrong; the message names the problem and the fix."""


@dataclass
class Run:
    name: str
    notebook: Path
    parameters: dict[str, Any]
    key: str = ""

    @property
    def shown_parameters(self) -> dict[str, Any]:
        """The parameters as shared pages show them: a local path by its file's name and fingerprint."""
        return {k: shown_value(v) for k, v in self.parameters.items() if k != "record_dir"}

    @property
    def local_paths(self) -> list[str]:
        """The absolute paths among the parameters: the kernel reads them, published files name only the file."""
        return [str(v) for v in self.parameters.values() if local_path(v) is not None]

    @property
    def title(self) -> str:
        return f"{self.notebook.stem} " + " ".join(f"{k}={v}" for k, v in self.shown_parameters.items())


def local_path(value: Any) -> Path | None:
    """The path a parameter names when it is absolute (or from the home folder): it carries user, machine and
    temp folder names, which a shared report must not."""
    if not isinstance(value, str) or not value.strip():
        return None
    if value.startswith("~") or os.path.isabs(value):
        return Path(value).expanduser()
    return None


def shown_value(value: Any) -> Any:
    """A parameter's value for titles and the index: a local path as its name and a short content fingerprint
    ("speech.wav (sha256 1a2b3c4d)"), anything else as it is."""
    path = local_path(value)
    if path is None:
        return value
    digest = _fingerprint(str(path))
    return f"{path.name} (sha256 {digest})" if digest else path.name


def _fingerprint(path: str) -> str:
    """First 8 hex digits of the SHA-256 of a file's bytes, or of a folder's files (names and bytes); "" when
    it cannot be read (the run itself says why)."""
    try:
        p = Path(path)
        if p.is_file():
            st = p.stat()
            return _file_digest(str(p), st.st_size, st.st_mtime_ns)[:8]
        h = hashlib.sha256()
        for f in sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else []:
            st = f.stat()
            h.update(f"{f.name}|{_file_digest(str(f), st.st_size, st.st_mtime_ns)}|".encode())
        return h.hexdigest()[:8] if p.is_dir() else ""
    except OSError:
        return ""


@functools.lru_cache(maxsize=1024)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a changed file is read again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_matrix() -> Path:
    """notebooks/forum-matrix.yaml of the working folder, else the one of the source checkout gnaexp runs from.

    Notebooks and the matrix are not part of the installed package: batch runs need the repository checkout
    (``pip install -e .``), as the README says.
    """
    here = Path("notebooks") / MATRIX_NAME
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / "notebooks" / MATRIX_NAME


def notebook_parameters(path: Path) -> list[str]:
    """Names of the parameters in the notebook's one cell tagged ``parameters``: the names its top-level
    statements assign (``name = value`` or ``name: type = value``), which is what papermill reads from it.

    Read with ``ast`` rather than papermill: importing papermill costs the driver about 0.6 s before any run
    can start.
    """
    import ast

    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MatrixError(f"{path.name} is not a notebook (not JSON: {exc}); point the matrix at an .ipynb file") from None
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise MatrixError(f"{path.name} has {len(cells)} cells tagged 'parameters'; it needs exactly one")
    source = cells[0]["source"]
    try:
        tree = ast.parse("".join(source) if isinstance(source, list) else source, f"{path.name} parameters cell")
    except SyntaxError as exc:
        raise MatrixError(f"{path.name}: its parameters cell cannot be read (line {exc.lineno}: {exc.msg}); "
                          "fix the cell's syntax") from None
    names: list[str] = []
    for statement in tree.body:
        targets = (statement.targets if isinstance(statement, ast.Assign)
                   else [statement.target] if isinstance(statement, ast.AnnAssign) else [])
        names.extend(t.id for t in targets if isinstance(t, ast.Name) and t.id not in names)
    return names


def _run_name(notebook: str, params: dict[str, Any]) -> str:
    parts = [notebook]
    for k, v in params.items():
        path = local_path(v)
        v = path.name if path is not None else v  # a run (file) name never carries a local folder
        prefix = ABBREV.get(k, "" if isinstance(v, str) else k)
        value = f"{v:g}" if isinstance(v, float) else str(v)
        parts.append(f"{prefix}{value}")
    name = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)))
    return name.lstrip("._-") or "run"


def load_matrix(path: str | Path) -> list[Run]:
    """Parse and check a matrix file. Raises MatrixError naming the problem and the fix."""
    path = Path(path)
    if not path.exists():
        raise MatrixError(f"matrix file {path} does not exist; give a YAML file (see notebooks/{MATRIX_NAME})")
    data = _read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise MatrixError(f"{path}: expected a mapping with a non-empty 'runs:' list (and optional 'defaults:')")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise MatrixError(f"{path}: 'defaults' must be a mapping of parameter: value")
    unknown_top = set(data) - {"defaults", "runs", "description"}
    if unknown_top:
        raise MatrixError(f"{path}: unknown top-level key(s) {excerpt(sorted(map(str, unknown_top)))}; allowed: "
                          "description, defaults, runs")
    runs: list[Run] = []
    used_defaults: set[str] = set()
    valid_of: dict[Path, list[str]] = {}  # a notebook's parameters, read once however many runs name it
    names: dict[str, str] = {}  # a run name in lower case → the name as given: names that differ only in case
    for i, entry in enumerate(data["runs"], 1):
        where = f"{path}: run {i}"
        if not isinstance(entry, dict) or "notebook" not in entry:
            raise MatrixError(f"{where}: each run needs 'notebook: NAME' (e.g. conv), with 'parameters:' and/or 'grid:'")
        extra = set(entry) - {"notebook", "name", "parameters", "grid"}
        if extra:
            raise MatrixError(f"{where}: unknown key(s) {excerpt(sorted(map(str, extra)))}; allowed: notebook, name, "
                              "parameters, grid")
        nb_path = (path.parent / str(entry["notebook"])).with_suffix(".ipynb")
        if nb_path not in valid_of:
            if not nb_path.exists():
                have = ", ".join(sorted(p.stem for p in path.parent.glob("*.ipynb"))) or "none"
                raise MatrixError(f"{where}: unknown notebook {excerpt(entry['notebook'])} (no "
                                  f"{excerpt(nb_path.name)} beside the matrix); available: {have}")
            valid_of[nb_path] = notebook_parameters(nb_path)
        valid = valid_of[nb_path]
        used_defaults.update(k for k in defaults if k in valid)
        params = entry.get("parameters") or {}
        grid = entry.get("grid") or {}
        if not isinstance(params, dict) or not isinstance(grid, dict):
            raise MatrixError(f"{where}: 'parameters' and 'grid' must be mappings of parameter: value(s)")
        for key in itertools.chain(params, grid):
            if key not in valid:
                raise MatrixError(f"{where}: unknown parameter {excerpt(key)} for {nb_path.name}; valid: "
                                  f"{', '.join(valid)}")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise MatrixError(f"{where}: grid '{key}' must be a non-empty list of values")
        if entry.get("name") is not None:
            _check_name(where, entry["name"])
        combos = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())] if grid else [{}]
        for combo in combos:
            shown = {**params, **combo}
            base = entry.get("name") or nb_path.stem
            name = _run_name(str(base), shown) if (len(combos) > 1 or not entry.get("name")) else str(base)
            _check_name(where, name)
            same = names.setdefault(name.lower(), name)
            if same != name:  # one file on Windows and macOS, which do not tell the names apart
                raise MatrixError(f"{where}: run names {excerpt(same)} and {excerpt(name)} differ only in case; "
                                  "their files would overwrite each other on Windows and macOS: give each run a "
                                  "distinct 'name:'")
            chosen = {k: v for k, v in defaults.items() if k in valid}
            chosen.update(shown)
            chosen["record_dir"] = f"{name}.record"
            _check_values(where, nb_path.stem, chosen)
            runs.append(Run(name, nb_path, chosen))
    unused = sorted(set(defaults) - used_defaults)
    if unused:
        raise MatrixError(f"{path}: 'defaults' key(s) {excerpt(unused)} are parameters of none of the matrix's "
                          "notebooks; fix the name or remove it")
    counts = Counter(r.name for r in runs)
    dupes = sorted(n for n, c in counts.items() if c > 1)
    if dupes:
        raise MatrixError(f"{path}: run name{'s' if len(dupes) > 1 else ''} {excerpt(dupes)}"
                          f"{f' ({len(dupes)} names)' if len(dupes) > 6 else ''} occur more than once; give each run "
                          "a distinct 'name:'")
    return runs


# How many values YAML aliases (*name) may add to a matrix: reusing a block of parameters is fine, a "billion
# laughs" (aliases of aliases, each doubling the values) is refused before it is built.
MAX_ALIAS_VALUES = 100_000


def _read_yaml(path: Path) -> Any:
    """The matrix file's data: YAML read safely (no tags that run code), its aliases expanded only when they add
    at most MAX_ALIAS_VALUES values (counted on the parsed nodes, before anything is built)."""
    import yaml

    safe = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser where PyYAML was built with it
    try:
        loader = safe(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise MatrixError(f"{path} is not UTF-8 text (byte {exc.start}): save the matrix as UTF-8 YAML") from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_aliases(path, node)
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise MatrixError(f"{path} is not valid YAML: {exc}; fix the syntax at the line shown") from None
    except MatrixError:
        raise
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise MatrixError(f"{path}: a value cannot be read ({excerpt(str(exc))}); fix the value") from None
    except RecursionError:
        raise MatrixError(f"{path}: its values are nested too deeply to read; write them flat") from None
    finally:
        loader.dispose()


def _check_aliases(path: Path, root: Any) -> None:
    """Refuse a value that contains itself, or aliases that expand the document by more than MAX_ALIAS_VALUES
    values. Each node is visited once (its expanded size is kept): linear in the file, however deep the aliases."""
    import yaml

    size: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            open_nodes.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            continue
        if id(node) in size:
            continue
        if id(node) in open_nodes:
            raise MatrixError(f"{path}: line {node.start_mark.line + 1}: a YAML alias makes a value contain "
                              "itself; write the value out")
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise MatrixError(f"{path}: line {child.start_mark.line + 1}: a YAML alias makes a value contain "
                                  "itself; write the value out")
            if id(child) not in size:
                stack.append((child, False))
    added = size[id(root)] - len(size)
    if added > MAX_ALIAS_VALUES:
        raise MatrixError(f"{path}: its YAML aliases (*name) expand to {added:,} more values, more than the "
                          f"{MAX_ALIAS_VALUES:,} a matrix may add that way; write the values out or use a grid")


# Names the output folder uses itself; a run with one of them would overwrite or hide it.
RESERVED_NAMES = ("index",)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_name(where: str, name: Any) -> None:
    """A run name is a plain file name inside the output folder: no separators, no '..', not a reserved name."""
    text = str(name)
    if not NAME_PATTERN.fullmatch(text) or ".." in text:
        raise MatrixError(f"{where}: run name {excerpt(text)} is not a plain name (letters, digits and -_. only, "
                          "starting with a letter or digit, no '..'): every run's files stay inside --out")
    if text.lower() in RESERVED_NAMES:
        raise MatrixError(f"{where}: run name {excerpt(text)} is reserved ({text}.html is the batch's own page); "
                          "choose another name")


def _check_values(where: str, notebook: str, params: dict[str, Any]) -> None:
    """Reject values the notebook would reject, before any kernel starts (``parameters.check``)."""
    from gnaexp import parameters

    try:
        parameters.check(notebook, params)
    except (KeyError, ValueError) as exc:
        raise MatrixError(f"{where}: {exc.args[0] if exc.args else exc}") from None
