"""Outputs computed on another machine (e.g. a team's real GNA box), brought back as an .npz.

File format (what ``gnaexp export``'s ``measure_on_device.py`` writes):
    one array per output name, plus optionally ``__meta__``: a 0-d string array holding JSON with the
    backend/device/settings/environment of the machine that produced the outputs.
The import is labelled *imported*; the metadata says what it claims to be (e.g. a GNA measurement).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gnaexp.backends.base import Backend, BackendResult, ModelBundle
from gnaexp.core.files import portable_path
from gnaexp.core.errors import BadInput

META_KEY = "__meta__"


def write_outputs(path: str | Path, outputs: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write outputs + metadata in the import format (atomically)."""
    from gnaexp.core.files import atomic_write_bytes, npz_bytes

    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}
    return atomic_write_bytes(Path(path), npz_bytes({**arrays, META_KEY: np.array(json.dumps(meta))}))


def read_outputs(path: str | Path, what: str = "imported outputs") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} do not exist")
    if path.suffix != ".npz":
        raise BadInput(f"{what} must be an .npz (one array per output name), got {path.name}")
    from gnaexp.core.inputs import read_file

    data = read_file(path, what, keep_meta=True)
    if not isinstance(data, dict):  # an .npz always reads as arrays by name
        raise RuntimeError(f"{path.name}: an .npz read as a single array")
    try:
        meta = json.loads(str(data.pop(META_KEY))) if META_KEY in data else {}
    except ValueError as exc:
        raise BadInput(f"{path.name}: its {META_KEY} entry is not JSON ({exc}); write the file with "
                         "measure_on_device.py (or gnaexp.backends.imported.write_outputs), or leave the entry out") \
            from None
    if not data:
        raise BadInput(f"{path.name} holds no output arrays")
    return data, meta


def read_observed(path: str | Path) -> tuple[np.ndarray, str | None]:
    """A device output given to the diagnosis (.npy, or an .npz from measure_on_device.py holding one output):
    the array, and the fingerprint of the inputs it was measured on where the file records it."""
    from gnaexp.core.inputs import read_one

    path = Path(path)
    if path.suffix != ".npz":
        return read_one(path, "observed output"), None
    outputs, meta = read_outputs(path, "observed output")
    if len(outputs) != 1:
        raise BadInput(f"observed output {path.name} holds {len(outputs)} arrays {sorted(outputs)}; give a file "
                         "with one")
    return next(iter(outputs.values())), meta.get("input_fingerprint")


def check_same_inputs(name: str, claimed: str | None, inputs: dict[str, np.ndarray]) -> None:
    """Refuse outputs measured on other inputs than ``inputs`` (when their file records a fingerprint): compared
    with the wrong inputs, any device would look broken."""
    from gnaexp.core.inputs import fingerprint

    actual = fingerprint(inputs)
    if claimed is not None and claimed != actual:
        raise BadInput(f"{name} was measured on other inputs (input fingerprint {claimed}; the inputs here have "
                         f"{actual}): measure again on these inputs (gnaexp export, then measure_on_device.py in the "
                         "pack), or give the inputs it was measured on")


class ImportedBackend(Backend):
    name = "import"
    kind = "imported"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Named by its file, as the record keeps it: two device files in one run stay two results (metrics and
        # outputs.npz are keyed by the label, "import:pack/outputs.npz (imported)")
        self.name = f"import:{portable_path(self.path)}"

    def settings(self) -> dict[str, Any]:
        return {"file": self.path.name}

    def stream(self, model: ModelBundle, frames: Mapping[str, np.ndarray], pairs: Mapping[str, str],
               initial: Mapping[str, np.ndarray]) -> tuple[BackendResult, dict[str, np.ndarray]]:
        """The tracks as measured elsewhere, one row per step (their file may record the frames' fingerprint);
        the device carried its own state, which the file does not hold."""
        given = {**frames, **initial}
        result = self.run(model, given)
        result.info["streamed"] = {"steps": len(next(iter(frames.values()))), "state": dict(pairs)}
        return result, given

    def _run(self, model: ModelBundle, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        outputs, meta = read_outputs(self.path)
        if model.output_names:
            missing = [n for n in model.output_names if n not in outputs]
            if len(outputs) == 1 and len(model.output_names) == 1:
                outputs = {model.output_names[0]: next(iter(outputs.values()))}
            elif missing:
                raise BadInput(f"{self.path.name} lacks output(s) {missing}; it holds {sorted(outputs)}")
        # Warn in-band if the file was produced from other inputs than the ones compared against.
        from gnaexp.core.inputs import fingerprint

        claimed = meta.get("input_fingerprint")
        info = {"source_meta": meta, "input_fingerprint_matches": claimed == fingerprint(inputs) if claimed else None}
        return outputs, info
