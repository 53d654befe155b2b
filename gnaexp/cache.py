"""The on-disk cache shared by runs: converted IRs, user model copies and torch reference outputs.

``GNAEXP_CACHE`` (default ``~/.cache/gnaexp``) holds ``ir/`` (exported nets), ``files/`` (user models saved
with names), ``reference/`` (torch outputs with the IR they came from, so that a later run of the same net
and inputs needs no torch), ``vad-reference/`` (torch's Silero VAD tracks per set of signals) and the
NNCF-quantized IRs beside their float IR. Entries are written to a temporary
folder and renamed into place; a damaged entry reads as absent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.backends import BackendResult, ModelBundle
from gnaexp.environment import package_version

# The sources that build nets, inputs and IRs: a change in any of them may change a cached reference.
_REFERENCE_SOURCES = ("nets.py", "inputs.py", "ir.py", "experiment.py")


def cache_dir() -> Path:
    folder = Path(os.environ.get("GNAEXP_CACHE") or Path.home() / ".cache" / "gnaexp")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the cache folder {folder} (GNAEXP_CACHE) is a file: point GNAEXP_CACHE at a folder, "
                         "or unset it")
    return folder


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
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        with np.load(folder / "reference.npz", allow_pickle=False) as z:
            outputs = {k: z[k] for k in z.files}
        bundle = ModelBundle(name=meta["name"], ir_xml=folder / "model.xml", input_names=meta["input_names"],
                             output_names=meta["output_names"],
                             input_shapes={k: tuple(v) for k, v in meta["input_shapes"].items()})
        info, fingerprint = dict(meta["info"], cached=True), meta["input_fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (folder / "model.bin").exists():
        return None
    return bundle, BackendResult("torch", "reference", outputs, {}, info, 0.0), fingerprint


def store_reference(key: str, model: ModelBundle, ref: BackendResult, input_fingerprint: str) -> None:
    """Keep a torch result and its IR (best effort: a cache that cannot be written only costs time)."""
    from gnaexp.files import dumps

    folder = cache_dir() / "reference" / key
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    except OSError:
        return
    try:
        shutil.copyfile(model.ir_xml, tmp / "model.xml")
        shutil.copyfile(Path(model.ir_xml).with_suffix(".bin"), tmp / "model.bin")
        np.savez(tmp / "reference.npz", **ref.outputs)
        meta = {"name": model.name, "input_names": model.input_names, "output_names": model.output_names,
                "input_shapes": {k: list(v) for k, v in model.input_shapes.items()}, "info": ref.info,
                "input_fingerprint": input_fingerprint}
        (tmp / "meta.json").write_text(dumps(meta), encoding="utf-8")
        if folder.exists() and load_reference(key) is None:  # a damaged entry: set it aside, then replace it
            shutil.rmtree(folder.rename(folder.with_name(f".damaged-{key}-{os.getpid()}")), ignore_errors=True)
        os.replace(tmp, folder)  # another process may have won the race: then its copy stays
    except OSError:
        pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --- Silero VAD: the torch reference's tracks ------------------------------------------------------------------

_VAD_SOURCES = ("vad.py", "vad_net.py")


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
    from gnaexp.vad import Stream

    try:
        with np.load(cache_dir() / "vad-reference" / f"{key}.npz", allow_pickle=False) as z:
            n = int(z["count"])
            return [Stream(z[f"probability{i}"], z[f"state{i}"]) for i in range(n)], float(z["seconds"])
    except (OSError, ValueError, KeyError):
        return None


def store_vad_streams(key: str, streams: Sequence[Any], seconds: float) -> None:
    """Keep torch's tracks (best effort, written whole: a partial file is never read)."""
    import io

    from gnaexp.files import atomic_write_bytes

    arrays: dict[str, np.ndarray] = {"count": np.asarray(len(streams)), "seconds": np.asarray(seconds)}
    for i, stream in enumerate(streams):
        arrays[f"probability{i}"], arrays[f"state{i}"] = stream.probability, stream.state
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write_bytes(cache_dir() / "vad-reference" / f"{key}.npz", buf.getvalue())
    except OSError:
        pass


# --- IRs: converted nets, copies of user models, NNCF-quantized IRs ----------------------------------------------

def torch_ir(module: Any, input_shape: tuple[int, ...]) -> Path:
    """IR of a torch module under ``ir/<net fingerprint>-ov<version>/model.xml``; converted only the first time.

    The same net (architecture, weights, shape) always maps to the same folder, so repeated runs and batch runs
    share one conversion.
    """
    from gnaexp import ir

    key = ir.fingerprint_torch(module, input_shape) + "-ov" + (package_version("openvino") or "none").split("-")[0]
    xml = cache_dir() / "ir" / key / "model.xml"
    if xml.exists() and xml.with_suffix(".bin").exists():
        return xml
    return ir.save(ir.convert_torch(module, input_shape), xml)


def vad_ir(folder: Path) -> Path:
    """Silero VAD's step IR (``vad.export_ir``) in ``folder``: converted once per silero-vad, OpenVINO and gnaexp
    version under ``ir/silero_vad-…/`` (tracing and converting cost about 2 s), then copied."""
    from gnaexp import __version__, vad

    target = Path(folder) / "silero_vad.xml"
    if target.exists() and target.with_suffix(".bin").exists():
        return target
    key = "-".join(["silero_vad", package_version("silero-vad") or "none",
                    (package_version("openvino") or "none").split("-")[0], __version__])
    cached = vad.export_ir(cache_dir() / "ir" / key)
    from gnaexp.files import atomic_write_bytes

    for suffix in (".bin", ".xml"):  # the .xml last: export_ir takes the pair as present when both exist
        atomic_write_bytes(target.with_suffix(suffix), cached.with_suffix(suffix).read_bytes())
    return target


def user_model_ir(path: Path, model: Any, renamed: bool) -> Path:
    """The IR file other backends read for a user's model file: the file itself when it is an IR as given, else
    a copy saved under ``files/<content digest>/`` (an ONNX file, or an IR whose tensors were named on loading)."""
    from gnaexp import ir

    path = Path(path)
    if path.suffix.lower() == ".xml" and not renamed:
        return path
    digest = (ir.fingerprint_ir(path) if path.suffix.lower() == ".xml"  # weights too, not just the graph
              else hashlib.sha256(path.read_bytes()).hexdigest()[:16])
    cached = cache_dir() / "files" / digest / (path.stem + ".xml")
    return cached if cached.exists() and cached.with_suffix(".bin").exists() else ir.save(model, cached)


def quantized_ir(float_xml: str | Path, settings: Any) -> Any:
    """The NNCF-quantized IR of ``float_xml`` for ``settings``, saved next to the float one and keyed by the
    settings and the calibration content; reused when present and readable."""
    import openvino as ov

    from gnaexp import ir, quantization
    from gnaexp.files import atomic_write_text, dumps

    float_xml = Path(float_xml)
    settings.validate()
    samples = quantization.calibration_set(settings, ir.input_shapes(ov.Core().read_model(str(float_xml))))
    # Every setting that changes the IR is in the key (calibration content via its fingerprint).
    ir_settings = {k: v for k, v in dataclasses.asdict(settings).items() if not k.startswith("calibration")}
    digest = hashlib.sha256((json.dumps(ir_settings, sort_keys=True)
                             + quantization.calibration_fingerprint(samples)).encode())
    out_xml = float_xml.parent / f"quantized-{settings.tag()}-{digest.hexdigest()[:12]}" / "model.xml"
    meta = out_xml.with_name("quantization.json")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        if out_xml.exists() and out_xml.with_suffix(".bin").exists():
            return quantization.QuantizationResult(
                float_xml, out_xml, settings, data["calibration_fingerprint"], data["calibration_count"],
                data["fake_quantize"], data["notes"], data["duration_s"])
    except (OSError, ValueError, KeyError):
        pass  # absent or damaged: quantize again
    result = quantization.quantize_ir(float_xml, out_xml, settings)
    atomic_write_text(meta, dumps(result.to_json(relative_to=out_xml.parent)))
    return result
