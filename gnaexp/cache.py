"""The on-disk cache shared by runs: converted IRs, user model copies and torch reference outputs.

The cache folder (``cache_dir``) holds ``ir/`` (exported nets), ``files/`` (user models saved as IRs),
``reference/`` (torch outputs with the IR they came from, so that a later run of the same net and inputs needs
no torch), ``vad-reference/`` (torch's Silero VAD tracks per set of signals) and the NNCF-quantized IRs beside
their float IR.

Every entry is a folder, built in a temporary folder and renamed into place whole, with a seal (``seal.json``:
each file's size and SHA-256) written last. An entry is used only while its files are those that were sealed
(checked once per process while the files stay untouched, so a run pays for hashing a few kB): an entry
changed in place, truncated or half-written reads as absent and is built again, with a note on stderr when its
content disagrees with its seal. Nothing is ever read from an entry without a seal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import zipfile
import zlib
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnaexp.backends import BackendResult, ModelBundle
from gnaexp.core.environment import package_version
from gnaexp.core.errors import BadInput

# The sources that build nets, inputs and IRs: a change in any of them may change a cached reference.
_REFERENCE_SOURCES = ("models/forum_nets.py", "core/inputs.py", "models/ir.py", "experiment.py")
SEAL = "seal.json"
_TMP, _ASIDE = ".tmp-", ".damaged-"  # an entry being built; one set aside to be removed
SEAL_SCHEMA = "gnaexp.cache-seal/1"
IR_FILES = ("model.xml", "model.bin")
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error)


def cache_dir() -> Path:
    """``GNAEXP_CACHE``, else ``$XDG_CACHE_HOME/gnaexp``, else ``~/.cache/gnaexp``; without a usable home
    (``HOME`` empty or relative, as for some services) a folder of this user's own in the temp folder."""
    folder = os.environ.get("GNAEXP_CACHE") or _default_cache_dir()
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"the cache folder {folder} (GNAEXP_CACHE) is a file: point GNAEXP_CACHE at a folder, "
                         "or unset it")
    return folder


def _default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG rule: a relative value is ignored
        return Path(xdg) / "gnaexp"
    home = os.environ.get("HOME")
    if home is None:
        home = str(Path.home())  # the account's home, from the password database
    if os.path.isabs(home) and Path(home).resolve() != Path("/"):
        return Path(home) / ".cache" / "gnaexp"
    return _private_temp_dir()


def _private_temp_dir() -> Path:
    """``gnaexp-cache-UID`` in the temp folder, made private to this user; refused when someone else owns it
    (another user could otherwise plant entries in it)."""
    import getpass

    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"gnaexp-cache-{uid if uid is not None else getpass.getuser()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
    except OSError as exc:
        raise BadInput(f"no home folder (HOME is {os.environ.get('HOME')!r}) and the cache folder {folder} cannot "
                         f"be made ({exc.strerror}): set GNAEXP_CACHE to a folder of yours") from None
    if uid is not None and (not folder.is_dir() or folder.is_symlink() or st.st_uid != uid or st.st_mode & 0o022):
        raise BadInput(f"no home folder (HOME is {os.environ.get('HOME')!r}) and {folder} belongs to another user "
                         "or is writable by others: set GNAEXP_CACHE to a folder of yours")
    return folder


# --- seals: each entry's files as they were written --------------------------------------------------------------

_VERIFIED: dict[Path, tuple[Any, ...]] = {}  # seal → the stat of it and its files when they last checked out


def _stats(paths: Sequence[Path]) -> tuple[Any, ...] | None:
    try:  # the inode change time moves on any write, even one that sets the modification time back
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in (p.stat() for p in paths))
    except OSError:
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _seal(folder: Path, names: Sequence[str]) -> None:
    from gnaexp.core.files import atomic_write_text, dumps

    files = {n: {"size": (folder / n).stat().st_size, "sha256": _sha256(folder / n)} for n in names}
    atomic_write_text(folder / SEAL, dumps({"schema": SEAL_SCHEMA, "files": files}))


def _entry_name(folder: Path) -> str:
    """An entry as a note names it: relative to the cache folder (a note may end up in a shared report)."""
    try:
        return folder.resolve().relative_to(cache_dir().resolve()).as_posix()
    except (ValueError, OSError):
        return folder.name


def _note(folder: Path, problem: str) -> None:
    print(f"gnaexp: note: the cache entry {_entry_name(folder)} was changed or damaged ({problem}); "
          "building it again", file=sys.stderr, flush=True)


def _intact(folder: Path, names: Sequence[str], tell: bool = True) -> bool:
    """Whether ``folder`` holds the files ``names`` as they were sealed. No seal (an entry never finished, or made
    before seals existed): False. A seal the files disagree with: False, and the user is told (with ``tell``)."""
    seal = folder / SEAL
    if not seal.is_file():
        return False
    key = _stats([seal, *(folder / n for n in names)])
    if key is not None and _VERIFIED.get(seal) == key:
        return True
    try:
        recorded = json.loads(seal.read_text(encoding="utf-8"))["files"]
        problem = "its seal lists other files" if sorted(recorded) != sorted(names) else None
        for name in names if problem is None else ():
            size = (folder / name).stat().st_size
            if size != recorded[name]["size"]:
                problem = f"{name} has {size} bytes, {recorded[name]['size']} were written"
            elif _sha256(folder / name) != recorded[name]["sha256"]:
                problem = f"{name} is not the file that was written"
            if problem:
                break
    except FileNotFoundError as exc:
        problem = f"{Path(exc.filename or '?').name} is missing"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = f"unreadable: {exc.strerror if isinstance(exc, OSError) else 'its seal is not valid'}"
    if problem:
        if tell:
            _note(folder, problem)
        _VERIFIED.pop(seal, None)
        return False
    if key is not None:
        _VERIFIED[seal] = key
    return True


def _publish(folder: Path, build: Callable[[Path], Any], names: Sequence[str]) -> None:
    """Build an entry in a temporary folder beside ``folder`` (``build(tmp)`` writes ``names`` there), seal it
    and rename it into place; an entry already there (damaged, or unsealed) is set aside and removed first. An
    intact entry another process put in place meanwhile stays."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    _clear_abandoned(folder.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP}{_owner()}-", dir=folder.parent))
    try:
        build(tmp)
        _seal(tmp, names)
        if folder.exists() and _intact(folder, names, tell=False):
            return  # another process put its entry in place meanwhile: processes may be reading it
        _remove(folder)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise  # not a lost race: the folder cannot be written
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _owner() -> str:
    """This process as the temporary names it makes say it: host and process id (a cache folder may be shared by
    several machines, whose process ids mean nothing here)."""
    host = "".join(c if c.isalnum() or c == "." else "_" for c in socket.gethostname()[:40]) or "host"
    return f"{host}-{os.getpid()}"


def _clear_abandoned(parent: Path) -> None:
    """Remove the temporary and set-aside folders of this host's processes that no longer exist: a process killed
    while it built or removed an entry (a batch interrupted with its kernels) ran no clean-up of its own."""
    host = _owner().rsplit("-", 1)[0]
    for prefix in (_TMP, _ASIDE):
        mine = f"{prefix}{host}-"
        for p in parent.glob(f"{mine}*"):
            pid = p.name[len(mine):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
                shutil.rmtree(p, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or a platform that cannot tell: leave it
        return True
    return True


def _remove(folder: Path) -> None:
    """Set an entry aside (one rename: no reader sees half of it), then delete it."""
    aside = folder.with_name(f"{_ASIDE}{_owner()}-{os.urandom(4).hex()}-{folder.name}")
    try:
        folder.rename(aside)
    except FileNotFoundError:
        return  # not there, or another process set it aside already
    shutil.rmtree(aside, ignore_errors=True)


def _best_effort(folder: Path, build: Callable[[Path], Any], names: Sequence[str]) -> None:
    """``_publish`` for entries that only save time: a cache that cannot be written costs a rerun, no error."""
    try:
        _publish(folder, build, names)
    except OSError:
        pass


# --- torch references --------------------------------------------------------------------------------------------

_REFERENCE_FILES = (*IR_FILES, "reference.npz", "meta.json")


def reference_key(net: Mapping[str, Any]) -> str:
    """Key of a torch reference: the net's and inputs' settings, the versions, and the sources that build them."""
    data = dict(net, versions=[package_version("torch"), package_version("openvino"), package_version("gnaexp")])
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    here = Path(__file__).resolve().parent
    for name in _REFERENCE_SOURCES:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:20]


def load_reference(key: str) -> tuple[ModelBundle, BackendResult, str] | None:
    """(model with its IR, torch result, input fingerprint) from the cache, or None when absent or damaged."""
    folder = cache_dir() / "reference" / key
    if not _intact(folder, _REFERENCE_FILES):
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        with np.load(folder / "reference.npz", allow_pickle=False) as z:
            outputs = {k: z[k] for k in z.files}
        bundle = ModelBundle(name=meta["name"], ir_xml=folder / "model.xml", input_names=meta["input_names"],
                             output_names=meta["output_names"],
                             input_shapes={k: tuple(v) for k, v in meta["input_shapes"].items()})
        info, fingerprint = dict(meta["info"], cached=True), meta["input_fingerprint"]
    except _UNREADABLE:
        return None
    return bundle, BackendResult("torch", "reference", outputs, {}, info, 0.0), fingerprint


def discard_reference(key: str, problem: str) -> None:
    """Remove an entry that is intact but wrong (made for other inputs), telling the user."""
    folder = cache_dir() / "reference" / key
    _note(folder, problem)
    with suppress(OSError):
        _remove(folder)


def store_reference(key: str, model: ModelBundle, ref: BackendResult, input_fingerprint: str) -> None:
    """Keep a torch result and its IR, replacing an entry that was damaged or wrong (best effort)."""
    from gnaexp.core.files import dumps, npz_bytes

    def build(tmp: Path) -> None:
        xml = model.require_ir()
        shutil.copyfile(xml, tmp / "model.xml")
        shutil.copyfile(xml.with_suffix(".bin"), tmp / "model.bin")
        (tmp / "reference.npz").write_bytes(npz_bytes(ref.outputs))
        meta = {"name": model.name, "input_names": model.input_names, "output_names": model.output_names,
                "input_shapes": {k: list(v) for k, v in model.input_shapes.items()}, "info": ref.info,
                "input_fingerprint": input_fingerprint}
        (tmp / "meta.json").write_text(dumps(meta), encoding="utf-8")

    _best_effort(cache_dir() / "reference" / key, build, _REFERENCE_FILES)


# --- Silero VAD: the torch reference's tracks ------------------------------------------------------------------

_VAD_SOURCES = ("vad/stream.py", "models/silero.py")


def vad_reference_key(audios: Sequence[np.ndarray]) -> str:
    """Key of torch's tracks for these signals: their samples, the silero-vad and torch versions and the sources
    that build and stream the net (no device option changes what torch computes)."""
    h = hashlib.sha256(json.dumps([package_version("silero-vad"), package_version("torch")]).encode())
    here = Path(__file__).resolve().parent
    for name in _VAD_SOURCES:
        h.update((here / name).read_bytes())
    for samples in audios:
        data = np.ascontiguousarray(samples, dtype=np.float32)
        h.update(str(data.shape).encode())
        h.update(data.tobytes())
    return h.hexdigest()[:20]


def load_vad_streams(key: str) -> tuple[list[Any], float] | None:
    """(streams, seconds torch took when they were computed), or None when absent or damaged."""
    from gnaexp.vad.stream import Stream

    folder = cache_dir() / "vad-reference" / key
    if not _intact(folder, ("tracks.npz",)):
        return None
    try:
        with np.load(folder / "tracks.npz", allow_pickle=False) as z:
            n = int(z["count"])
            return [Stream(z[f"probability{i}"], z[f"state{i}"]) for i in range(n)], float(z["seconds"])
    except _UNREADABLE:
        return None


def store_vad_streams(key: str, streams: Sequence[Any], seconds: float) -> None:
    """Keep torch's tracks (best effort)."""
    from gnaexp.core.files import npz_bytes

    arrays: dict[str, np.ndarray] = {"count": np.asarray(len(streams)), "seconds": np.asarray(seconds)}
    for i, stream in enumerate(streams):
        arrays[f"probability{i}"], arrays[f"state{i}"] = stream.probability, stream.state
    _best_effort(cache_dir() / "vad-reference" / key,
                 lambda tmp: (tmp / "tracks.npz").write_bytes(npz_bytes(arrays)), ("tracks.npz",))


# --- IRs: converted nets, copies of user models, NNCF-quantized IRs ----------------------------------------------

def torch_ir(module: Any, input_shape: tuple[int, ...]) -> Path:
    """IR of a torch module under ``ir/<net fingerprint>-ov<version>/model.xml``; converted only the first time.

    The same net (architecture, weights, shape) always maps to the same folder, so repeated runs and batch runs
    share one conversion.
    """
    from gnaexp.models import ir

    key = ir.fingerprint_torch(module, input_shape) + "-ov" + (package_version("openvino") or "none").split("-")[0]
    folder = cache_dir() / "ir" / key
    if not _intact(folder, IR_FILES):
        _publish(folder, lambda tmp: ir.save(ir.convert_torch(module, input_shape), tmp / "model.xml"), IR_FILES)
    return folder / "model.xml"


VAD_IR_FILES = ("silero_vad.xml", "silero_vad.bin")


def vad_ir(folder: Path) -> Path:
    """Silero VAD's step IR (``vad.export_ir``) written into ``folder`` from the cache, where it is converted once
    per silero-vad, OpenVINO and gnaexp version under ``ir/silero_vad-…/`` (tracing and converting cost about
    2 s). Always copied anew: an IR already in ``folder`` (from an older version, or edited) is never used."""
    from gnaexp import __version__
    from gnaexp.core.files import atomic_write_bytes
    from gnaexp.vad import stream as vad

    key = "-".join(["silero_vad", package_version("silero-vad") or "none",
                    (package_version("openvino") or "none").split("-")[0], __version__])
    entry = cache_dir() / "ir" / key
    if not _intact(entry, VAD_IR_FILES):
        _publish(entry, vad.export_ir, VAD_IR_FILES)
    target = Path(folder) / "silero_vad.xml"
    for suffix in (".bin", ".xml"):  # the .xml last: export_ir takes the pair as present when both exist
        atomic_write_bytes(target.with_suffix(suffix), (entry / ("silero_vad" + suffix)).read_bytes())
    return target


def user_model_ir(path: Path, model: Any, renamed: bool, shapes: Mapping[str, Sequence[int]] | None = None) -> Path:
    """The IR file other backends read for a user's model file: the file itself when it is an IR as given, else
    a copy saved under ``files/<content digest>/`` (an ONNX file, or an IR whose tensors were named on loading).
    ``shapes``: the static input shapes a dynamic model was reshaped to; each set of shapes is its own sealed
    entry (``files/<digest>-<shapes digest>/``)."""
    from gnaexp.models import ir

    path = Path(path)
    if path.suffix.lower() == ".xml" and not renamed and not shapes:
        return path
    digest = (ir.fingerprint_ir(path) if path.suffix.lower() == ".xml"  # weights too, not just the graph
              else hashlib.sha256(path.read_bytes()).hexdigest()[:16])
    if shapes:
        text = json.dumps({k: [int(d) for d in v] for k, v in sorted(shapes.items())})
        digest += "-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    folder = cache_dir() / "files" / digest
    if not _intact(folder, IR_FILES):
        _publish(folder, lambda tmp: ir.save(model, tmp / "model.xml"), IR_FILES)
    return folder / "model.xml"


_QUANTIZED_FILES = (*IR_FILES, "quantization.json")


def quantized_ir(float_xml: str | Path, settings: Any) -> Any:
    """The NNCF-quantized IR of ``float_xml`` for ``settings``, saved next to the float one and keyed by the
    settings and the calibration content; reused while intact."""
    import openvino as ov

    from gnaexp.core.files import atomic_write_text, dumps
    from gnaexp.models import ir, nncf_quantize as quantization

    float_xml = Path(float_xml)
    settings.validate()
    samples = quantization.calibration_set(settings, ir.input_shapes(ov.Core().read_model(str(float_xml))))
    # Every setting that changes the IR is in the key (calibration content via its fingerprint).
    ir_settings = {k: v for k, v in dataclasses.asdict(settings).items() if not k.startswith("calibration")}
    digest = hashlib.sha256((json.dumps(ir_settings, sort_keys=True)
                             + quantization.calibration_fingerprint(samples)).encode())
    folder = float_xml.parent / f"quantized-{settings.tag()}-{digest.hexdigest()[:12]}"
    if _intact(folder, _QUANTIZED_FILES):
        try:
            data = json.loads((folder / "quantization.json").read_text(encoding="utf-8"))
            return quantization.QuantizationResult(
                float_xml, folder / "model.xml", settings, data["calibration_fingerprint"], data["calibration_count"],
                data["fake_quantize"], data["notes"], data["duration_s"])
        except _UNREADABLE:
            pass  # sealed yet unreadable: quantize again
    made: list[Any] = []

    def build(tmp: Path) -> None:
        made.append(quantization.quantize_ir(float_xml, tmp / "model.xml", settings))
        atomic_write_text(tmp / "quantization.json", dumps(made[0].to_json(relative_to=tmp)))

    _publish(folder, build, _QUANTIZED_FILES)
    return dataclasses.replace(made[0], quantized_xml=folder / "model.xml")
