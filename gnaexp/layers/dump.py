"""Per-layer tensors that travel: ``--dump DIR`` writes every backend's tensors, ``--load DIR`` compares a dump
made on another machine (a device this one lacks) with the reference computed here.

A dump folder holds ``manifest.json`` and one ``NN.npz`` per backend. The manifest (schema
``gnaexp.layer-dump/1``) names the model (``model_sha256``: the IR's content hash; a dump is compared only with
the same model and inputs), the inputs' fingerprint, and per backend: its spec, device, precision asked and run,
OpenVINO version, the layers it fused, its file and ``tensors``: layer name → the array's key in the file (layer
names hold characters an npz key should not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.core.errors import BadInput
from gnaexp.layers.backends import LayerBackend, parse_layer_backend
from gnaexp.layers.measured import Measured

SCHEMA = "gnaexp.layer-dump/1"
MANIFEST = "manifest.json"


def write(folder: Path, model_name: str, model_sha256: str, input_fingerprint: str,
          measured: Sequence[Measured]) -> None:
    """Every measured backend's tensors into ``folder`` (a staging folder: publish_folder puts it in place)."""
    from gnaexp.core.files import atomic_write_bytes, atomic_write_text, dumps, npz_bytes

    entries = []
    for i, m in enumerate(x for x in measured if x.kind != "loaded"):
        names = sorted(m.values)
        keys = {name: f"t{j}" for j, name in enumerate(names)}
        file = f"{i:02d}.npz"
        atomic_write_bytes(folder / file, npz_bytes({keys[n]: np.asarray(m.values[n]) for n in names}))
        entries.append({"backend": m.label, "kind": m.kind, **m.meta, "file": file, "tensors": keys,
                        "fused_into": dict(m.fused_into)})
    atomic_write_text(folder / MANIFEST, dumps({"schema": SCHEMA, "model": model_name, "model_sha256": model_sha256,
                                               "input_fingerprint": input_fingerprint, "backends": entries}))


def _bad(folder: Path, problem: str) -> BadInput:
    return BadInput(f"--load {folder.name}: {problem}; give a folder that gnaexp layers --dump wrote")


def read_manifest(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise _bad(folder, "no such folder" if not folder.exists() else "not a folder")
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _bad(folder, f"it holds no {MANIFEST}") from None
    except (ValueError, UnicodeDecodeError):
        raise _bad(folder, f"its {MANIFEST} is not JSON") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("backends"), list):
        raise _bad(folder, f"its {MANIFEST} is not a layer dump ({SCHEMA})")
    return data


def load(folder: str | Path, model_sha256: str, input_fingerprint: str,
         reference: str) -> list[tuple[Measured, LayerBackend]]:
    """Each backend of the dump but the reference (that one is computed here), as a backend under test; its
    tensors only (no local error: that needs the device)."""
    from gnaexp.core.inputs import read_file

    folder = Path(folder)
    data = read_manifest(folder)
    if data.get("model_sha256") != model_sha256:
        raise _bad(folder, f"it was made for another model (model_sha256 {data.get('model_sha256')}, this one is "
                   f"{model_sha256}): compare the same model file (--model FILE on both machines)")
    if data.get("input_fingerprint") != input_fingerprint:
        raise _bad(folder, "it was made for other inputs (input_fingerprint differs): give the same --input on "
                   "both machines")
    found = []
    for entry in data["backends"]:
        try:
            spec, file, keys = str(entry["backend"]), str(entry["file"]), dict(entry["tensors"])
        except (KeyError, TypeError, ValueError):
            raise _bad(folder, f"a backend entry of its {MANIFEST} lacks backend, file or tensors") from None
        if spec == reference:
            continue
        if Path(file).name != file or not (folder / file).is_file():
            raise _bad(folder, f"{file} (the tensors of {spec}) is missing")
        arrays = read_file(folder / file, what="layer dump file")
        if not isinstance(arrays, dict) or any(k not in arrays for k in keys.values()):
            raise _bad(folder, f"{file} lacks tensors its manifest lists")
        values = {name: np.asarray(arrays[key], dtype=np.float32) for name, key in keys.items()}
        meta: Mapping[str, Any] = {k: entry.get(k) for k in ("device", "precision", "effective_precision", "openvino")}
        m = Measured(f"{spec} (loaded)", "loaded", values, None, dict(entry.get("fused_into") or {}), [],
                     [f"loaded from {folder.name}/{file} (made with OpenVINO {meta.get('openvino')} on "
                      f"{meta.get('device')})"], dict(meta))
        found.append((m, parse_layer_backend(spec)))
    if not found:
        raise _bad(folder, f"it holds no backend other than the reference {reference}")
    return found
