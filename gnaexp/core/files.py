"""Writing files safely and JSON that keeps every number: the helpers every writer in gnaexp uses.

A file is written to a temporary name in its own folder (same filesystem) and renamed over the target, so a
reader never sees half a file and a failed write leaves the old file as it was. Written files get the mode the
user's umask gives, like any file the user creates (0644 under umask 022).
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from gnaexp.core.errors import BadInput


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any thread of ours runs
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def user_mode() -> int:
    """The mode the user's umask gives a new file (0644 under umask 022)."""
    return 0o666 & ~_UMASK


def _temporary(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` (mkstemp); its name is cut so that it stays a valid name wherever
    ``path``'s is."""
    try:
        return tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise naming(path, exc) from None


def naming(path: Path, exc: OSError) -> OSError:
    """``exc``, raised while writing ``path`` through a temporary file, as an error of ``path``: the user is told
    about the file they asked for, never a hidden ``.NAME.xxxx.tmp``."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a shared report must be readable like any file
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise naming(path, exc) from None
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """Make numpy scalars/arrays and non-finite floats JSON-safe (non-finite floats become strings)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, Path):
        return obj.as_posix()
    return obj


def decode_floats(obj: Any) -> Any:
    """Undo ``json_safe`` for floats: 'inf', '-inf' and 'nan' strings become floats again."""
    if isinstance(obj, dict):
        return {k: decode_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_floats(v) for v in obj]
    if isinstance(obj, str) and obj in ("inf", "-inf", "nan"):
        return float(obj)
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # mypy also matches **arrays with savez's allow_pickle: bool
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def check_writable_file(path: str | Path, suffixes: tuple[str, ...] = (), what: str = "output") -> Path:
    """A path a file can be written to, checked before any work: right suffix, not a folder, its folder (or the
    first existing one above it) a folder. Raises ValueError / OSError naming the path."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise BadInput(f"{what} {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(parent))
    return path


@contextmanager
def staged_files() -> Iterator[Callable[[Path, bytes], None]]:
    """Write several files all or nothing: ``stage(path, data)`` writes a temporary file in each file's own
    folder; only when the block ends without error are they all renamed into place."""
    staged: list[tuple[str, Path]] = []

    def stage(path: Path, data: bytes) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary(path)
        staged.append((tmp, path))
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise naming(path, exc) from None

    try:
        yield stage
    except BaseException:
        for tmp, _ in staged:
            with suppress(OSError):
                os.unlink(tmp)
        raise
    for i, (tmp, path) in enumerate(staged):
        try:
            os.replace(tmp, path)
        except OSError as exc:
            for rest, _ in staged[i:]:
                with suppress(OSError):
                    os.unlink(rest)
            raise naming(path, exc) from None


def portable_path(path: str | Path) -> str:
    """A path safe to share in a record: relative to the working folder when the file lies inside it, else only
    its name (never a home or temp folder; the record's fingerprints identify the content)."""
    p = Path(path).expanduser().absolute()
    try:
        return p.relative_to(Path.cwd().absolute()).as_posix()
    except ValueError:
        return p.name
