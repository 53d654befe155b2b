"""The one owner of every output folder: what gnaexp wrote there (a manifest), who is writing (a lock), and the
all-or-nothing publishing of a command's results.

A command owns only what it wrote. Each output folder holds ``.gnaexp-manifest.json``, the names of the entries
gnaexp wrote there; an entry it does not list is the user's and is never replaced or deleted. Two ways to write:

- ``publish_folder(dest)``: a command whose results make up the whole folder (``run``, ``evaluate``, ``export``,
  ``quantize``). The results are built in a staging folder inside ``dest`` and moved into place only when the
  command succeeded; the previous results (the entries the manifest lists) go at the same moment. A folder that
  holds anything else is refused before any work, naming the entries.
- ``shared_folder(dest, names)``: a folder many runs write into over time (``batch``). Every name the batch will
  write is claimed up front: a claimed name that exists but is not in the manifest is refused; other files of the
  user's may stay in the folder.

Either way the folder is locked for the command's lifetime (an OS lock on ``.gnaexp.lock``, released by the OS
when the process dies, so a killed command leaves no stale lock): a second command on the same folder stops at
once with exit 2, naming the process that holds it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterable, Iterator

from gnaexp.core.files import atomic_write_bytes, atomic_write_text, check_writable_file
from gnaexp.core.errors import BadInput

MANIFEST = ".gnaexp-manifest.json"
LOCK = ".gnaexp.lock"  # holds the pid of the command that has the folder, after a byte that is the lock
STAGE_PREFIX = ".gnaexp-stage-"
OLD_PREFIX = ".gnaexp-old-"
SCHEMA = "gnaexp.manifest/1"
_CONTROL = (MANIFEST, LOCK)
_PID_OFFSET = 16


class FolderInUse(BadInput):
    """Another process writes into the folder (exit 2)."""


def _is_control(name: str) -> bool:
    return name in _CONTROL or name.startswith((STAGE_PREFIX, OLD_PREFIX))


def read_manifest(folder: Path) -> set[str]:
    """The entries gnaexp wrote in ``folder``; an absent or unreadable manifest lists none (so nothing in the
    folder is taken for ours)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return set()
    return {e for e in entries if isinstance(e, str) and e and "/" not in e and "\\" not in e and e not in (".", "..")}


def _write_manifest(folder: Path, entries: Iterable[str]) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps({"schema": SCHEMA, "entries": sorted(set(entries))}, indent=1))


def foreign_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` gnaexp did not write (dot-entries included: a ``.git`` or ``.env`` is the user's)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    ours = read_manifest(folder)
    return sorted(p.name for p in folder.iterdir() if p.name not in ours and not _is_control(p.name))


def _names(entries: list[str]) -> str:
    return ", ".join(entries[:5]) + (f", … ({len(entries)} in all)" if len(entries) > 5 else "")


def _check_dest(dest: Path, what: str) -> Path:
    dest = Path(dest).absolute()
    cwd = Path.cwd().absolute()
    if dest == cwd or dest in cwd.parents:
        raise BadInput(f"{what} {dest} is the current folder or holds it: give a folder of its own")
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(dest))
    check_writable_file(dest / "x", what=what)
    return dest


def _try_lock(fd: int) -> bool:
    """An exclusive, non-blocking OS lock on byte 0 of the open lock file (flock on POSIX, msvcrt on Windows)."""
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
            return False
        raise


def _unlock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def _locked(dest: Path, what: str) -> Iterator[None]:
    """Hold ``dest``'s lock (no waiting: a second command is told who holds it)."""
    fd = os.open(dest / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not _try_lock(fd):
            try:
                os.lseek(fd, _PID_OFFSET, os.SEEK_SET)
                holder = f"process {int(os.read(fd, 32).decode('ascii').strip())}"
            except (OSError, ValueError):
                holder = "another process"
            raise FolderInUse(f"{what} {dest} is in use by {holder}: wait until it has finished, or choose "
                              "another folder")
        try:
            os.lseek(fd, _PID_OFFSET, os.SEEK_SET)
            os.write(fd, f"{os.getpid():<16}\n".encode("ascii"))
            for p in dest.iterdir():  # what a killed command left half-done is ours to clear, now that we hold it
                if p.name.startswith((STAGE_PREFIX, OLD_PREFIX)):
                    shutil.rmtree(p, ignore_errors=True)
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _remove_if_only_control(dest: Path) -> None:
    """A folder this command created and never filled goes again, with its lock."""
    with suppress(OSError):
        if all(_is_control(p.name) for p in dest.iterdir()):
            for p in dest.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            dest.rmdir()


@contextmanager
def _held(dest: Path, what: str) -> Iterator[None]:
    """``dest`` made where absent and locked for the block; a folder made here and left empty goes again."""
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(dest, what):
            yield
    finally:
        if created:
            _remove_if_only_control(dest)


def _refuse_foreign(dest: Path, what: str) -> None:
    foreign = foreign_entries(dest)
    if foreign:
        raise BadInput(f"{what} {dest} holds files gnaexp did not write there ({_names(foreign)}): give an "
                         "empty or new folder, or move them out")


@contextmanager
def publish_folder(dest: str | Path, what: str = "output folder") -> Iterator[Path]:
    """Yield a staging folder inside ``dest``; when the block ends without error its entries replace the
    entries of the earlier results in ``dest``, and the manifest lists them. On error ``dest`` stays as it was.

    A ``dest`` holding anything gnaexp did not write is refused before any work (ValueError naming it)."""
    dest = _check_dest(Path(dest), what)
    _refuse_foreign(dest, what)
    with _held(dest, what):
        _refuse_foreign(dest, what)  # again under the lock: nothing arrived in between
        stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=dest))
        try:
            yield stage
            _swap_in(dest, stage)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _swap_in(dest: Path, stage: Path) -> None:
    """Move the staged entries into ``dest`` in place of the earlier ones. The manifest first lists both, so an
    interruption half-way leaves nothing that a later command would take for the user's."""
    old = sorted(n for n in read_manifest(dest) if os.path.lexists(dest / n))
    new = sorted(p.name for p in stage.iterdir())
    _write_manifest(dest, set(old) | set(new))
    trash = Path(tempfile.mkdtemp(prefix=OLD_PREFIX, dir=dest))
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for name in old:
            os.replace(dest / name, trash / name)
            moved_out.append(name)
        for name in new:
            os.replace(stage / name, dest / name)
            moved_in.append(name)
    except BaseException:
        for name in moved_in:  # put the earlier results back as they were
            with suppress(OSError):
                os.replace(dest / name, stage / name)
        for name in moved_out:
            with suppress(OSError):
                os.replace(trash / name, dest / name)
        _write_manifest(dest, old)
        raise
    _write_manifest(dest, new)
    shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def shared_folder(dest: str | Path, names: Iterable[str], what: str = "output folder") -> Iterator[Path]:
    """Lock ``dest`` (made if absent) for a command that writes the entries ``names`` into it over time, and claim
    them: an existing entry of one of these names that gnaexp did not write is refused (ValueError naming it).
    Other entries of the user's are left alone."""
    dest = _check_dest(Path(dest), what)
    names = set(names)
    with _held(dest, what):
        ours = read_manifest(dest)
        clash = sorted(n for n in names if n not in ours and os.path.lexists(dest / n))
        if clash:
            raise BadInput(f"{what} {dest} holds files gnaexp did not write there under the names this "
                             f"command writes ({_names(clash)}): move them out, or choose another folder")
        if not names <= ours:
            _write_manifest(dest, ours | names)
        yield dest


def add_file(folder: str | Path, name: str, data: bytes, what: str = "record folder") -> Path:
    """Write one more file (atomically) into a folder gnaexp owns or makes, and list it in the manifest: e.g. a
    notebook's index entry beside the record it published. A file of that name the user put there is refused."""
    folder = _check_dest(Path(folder), what)
    with _held(folder, what):
        ours = read_manifest(folder)
        if name not in ours and os.path.lexists(folder / name):
            raise BadInput(f"{what} {folder} holds a {name} gnaexp did not write: move it out, or choose "
                             "another folder")
        if name not in ours:
            _write_manifest(folder, ours | {name})
        return atomic_write_bytes(folder / name, data)


def check_folder(dest: str | Path, what: str = "output folder") -> None:
    """Before any work: would ``publish_folder(dest)`` accept ``dest`` now? Raises as it would (a file of the
    user's there, a folder in use, a path that cannot be a folder); writes nothing."""
    dest = _check_dest(Path(dest), what)
    _refuse_foreign(dest, what)
    if dest.is_dir() and (dest / LOCK).exists():
        with _locked(dest, what):
            pass
