"""Deterministic input generators, and loading/validating a user's inputs.

Every generator takes a seed; the same (kind, shape, seed, amplitude) always gives the same array.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Mapping

import numpy as np
from gnaexp.core.errors import BadInput
from gnaexp.core.gna_settings import INPUT_KINDS as INPUT_KINDS  # named here too, where inputs are made


def generate(kind: str, shape: tuple[int, ...], seed: int = 0, amplitude: float = 1.0) -> np.ndarray:
    """One float32 input of ``shape``.

    uniform01: U[0,1) like ``torch.rand`` (what the forum team fed); uniform11: U[-1,1); normal: N(0,1);
    sines: per channel a sum of three sines of random frequency and phase along the last axis, scaled so
    that max|x| = 1 — smooth like audio features. Every kind is multiplied by ``amplitude``.
    """
    rng = np.random.default_rng(seed)
    if kind == "uniform01":
        x = rng.random(shape)
    elif kind == "uniform11":
        x = rng.uniform(-1.0, 1.0, shape)
    elif kind == "normal":
        x = rng.standard_normal(shape)
    elif kind == "sines":
        n = shape[-1]
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        t = np.arange(n)[None, None, :]
        freq = rng.uniform(0.5, 12.0, (rows, 3, 1)) / n  # cycles per sample
        phase = rng.uniform(0.0, 2 * np.pi, (rows, 3, 1))
        weight = rng.uniform(0.3, 1.0, (rows, 3, 1))
        x = (weight * np.sin(2 * np.pi * freq * t + phase)).sum(axis=1)
        x = x / np.abs(x).max()
        x = x.reshape(shape)
    else:
        raise BadInput(f"unknown input kind {kind!r}; valid: {', '.join(INPUT_KINDS)}")
    return (x * amplitude).astype(np.float32)


def generate_batch(
    kind: str, shape: tuple[int, ...], count: int, seed: int = 0, amplitude: float = 1.0
) -> np.ndarray:
    """``count`` inputs stacked on a new leading axis; sample i uses seed (seed, i) so prefixes are stable."""
    return np.stack([generate(kind, shape, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]), amplitude)
                     for i in range(count)])


def validate(name: str, array: np.ndarray, expected_shape: tuple[int, ...], batched: bool = False) -> np.ndarray:
    """Check one input against the model; return it as float32 or raise ValueError naming the fix."""
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise BadInput(f"input {name!r} has dtype {array.dtype}; expected a float array (float32)")
    shape = tuple(array.shape[1:]) if batched else tuple(array.shape)
    if shape != tuple(expected_shape):
        what = "per-sample shape" if batched else "shape"
        raise BadInput(
            f"input {name!r} has {what} {shape}; the model expects {tuple(expected_shape)}"
            + (" (a leading batch axis is allowed)" if batched else "")
        )
    bad = ~np.isfinite(array)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise BadInput(f"input {name!r} has {int(bad.sum())} NaN/Inf value(s); first at index {pos}: {array[pos]}")
    return array.astype(np.float32, copy=False)


class _Damaged(Exception):
    """A file that declares more than it holds (its text is the reason)."""


def _check_member(fp: IO[bytes], holds: int, label: str) -> None:
    """Refuse an array whose header declares more bytes than the file (or archive member) holds, before numpy
    allocates them: a damaged header can claim hundreds of GiB."""
    try:
        version = np.lib.format.read_magic(fp)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fp)
    except Exception:  # noqa: BLE001 — numpy parses the header as Python literals: tokenizer and syntax errors too
        raise BadInput("not a NumPy array header") from None
    declared = math.prod(shape) * dtype.itemsize
    if declared > holds - fp.tell():
        raise _Damaged(f"{label}declares a {dtype} array of shape {tuple(shape)} ({_size(declared)}) but holds "
                       f"{_size(max(0, holds - fp.tell()))}")


def _size(n: int) -> str:
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def _check_declared_sizes(path: Path) -> None:
    if path.suffix == ".npy":
        with open(path, "rb") as f:
            _check_member(f, os.fstat(f.fileno()).st_size, "it ")
        return
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            # Deflate packs at most ~1032:1 and storing packs nothing: a larger claim is a damaged directory,
            # which would make numpy allocate what it claims.
            if (info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size) or (
                    info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > 1032 * info.compress_size + 64):
                raise _Damaged(f"its member {info.filename} claims {_size(info.file_size)} from "
                               f"{_size(info.compress_size)} of data")
            with z.open(info) as m:
                if m.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                    raise _Damaged(f"its member {info.filename} is not a NumPy array")
            with z.open(info) as m:
                _check_member(m, info.file_size, f"its member {info.filename} ")


def read_file(path: str | Path, what: str = "input file",
              keep_meta: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """The one reader of array files: an .npy gives its array, an .npz its arrays by name ("__" keys, metadata
    written beside device outputs, are left out unless ``keep_meta``). Never unpickles; a damaged file (truncated,
    failing its CRC, declaring more data than it holds) is a ValueError naming it, before anything is allocated."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.suffix not in (".npy", ".npz"):
        raise BadInput(f"unsupported {what} {path.name}: use .npy or .npz")
    kind = "NumPy array file (.npy)" if path.suffix == ".npy" else "NumPy archive (.npz)"
    try:
        _check_declared_sizes(path)
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files if keep_meta or not k.startswith("__")}
    except _Damaged as exc:
        raise BadInput(f"{what} {path} is a damaged {kind}: {exc}; copy it again, or save the arrays again "
                         "with numpy.save or numpy.savez") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        reason = str(exc).strip() or "it ends early"
        if reason != "File is not a zip file":  # that one is the generic case below: text, or cut short
            raise BadInput(f"{what} {path} is a damaged {kind} ({reason[:80]}): copy it again, or save the "
                             "arrays again with numpy.savez") from None
    except MemoryError:
        raise BadInput(f"{what} {path} holds more data than this machine's memory: give a smaller file") from None
    except (ValueError, OSError, struct.error, NotImplementedError, RuntimeError, OverflowError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # permission, a folder, …: the CLI names the path and the fix
    raise BadInput(f"{what} {path} is not a {kind} gnaexp can read (it holds text, pickled objects or damaged "
                     "data; pickled data is never loaded): save the arrays with numpy.save or numpy.savez")


def read_one(path: str | Path, what: str = "array file") -> np.ndarray:
    """One array from an .npy, or from an .npz that holds exactly one."""
    data = read_file(path, what)
    if isinstance(data, dict):
        if len(data) != 1:
            raise BadInput(f"{what} {Path(path).name} holds {len(data)} arrays {sorted(data)}; give a file with one")
        return next(iter(data.values()))
    return data


def read_arrays(path: str | Path, names: list[str], what: str = "input file") -> dict[str, np.ndarray]:
    """Arrays by input name from .npy (one-input models) or .npz (keyed by name, or one unnamed array)."""
    stored = read_file(path, what)
    if not isinstance(stored, dict):
        if len(names) != 1:
            raise BadInput(f"{Path(path).name} holds one array but the model has inputs {names}; use an .npz "
                             "keyed by name")
        return {names[0]: stored}
    if len(stored) == 1 and len(names) == 1:
        return {names[0]: next(iter(stored.values()))}
    missing = [n for n in names if n not in stored]
    if missing:
        raise BadInput(f"{what} {Path(path).name} lacks input(s) {missing}; it holds {sorted(stored)}")
    return {n: stored[n] for n in names}


def load(path: str | Path, expected: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Load inputs from .npy (one input) or .npz (by name, or one unnamed array) and validate them."""
    arrays = read_arrays(path, list(expected))
    return {n: validate(n, a, expected[n]) for n, a in arrays.items()}


def fingerprint(inputs: Mapping[str, np.ndarray]) -> str:
    """Short content hash of named arrays (name, dtype, shape and bytes)."""
    h = hashlib.sha256()
    for name in sorted(inputs):
        a = np.ascontiguousarray(inputs[name])
        h.update(f"{name}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
