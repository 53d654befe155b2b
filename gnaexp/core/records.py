"""Versioned JSON records of runs, with atomic writes.

A record folder holds ``record.json`` (config, fingerprints, backend metadata, metrics, environment,
relative artifact paths), ``inputs.npz`` and ``outputs.npz`` (key ``<backend>/<output>``). Everything
reloads into the same objects. Files are written to a temporary name in the same folder and renamed, so
a crash never leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gnaexp.core.floor_sweep import FloorSweep
from gnaexp.backends.base import BackendResult
from gnaexp.diagnose.results import RecordVerdicts
from gnaexp.core.files import atomic_write_bytes, atomic_write_text, decode_floats, dumps, npz_bytes
from gnaexp.core.metrics import Comparison
from gnaexp.core.errors import BadInput

SCHEMA = "gnaexp.record/1"
VAD_SCHEMA = "gnaexp.vad.stream-record/1"  # a silero_vad run's record (gnaexp.vad.run): tracks.npz and ir/silero_vad.*
RECORD_FILE = "record.json"
# What a notebook leaves in its record folder for the batch index: key metric rows and the verdict lines.
INDEX_ENTRY_FILE = "index-entry.json"
# What a record of each kind holds, and of which JSON type: checked once, by read_json, for every reader.
REQUIRED = {
    SCHEMA: {"experiment": str, "config": dict, "reference": str, "backends": list, "metrics": dict,
             "artifacts": dict, "input_fingerprint": str, "model_fingerprint": str, "environment": dict},
    VAD_SCHEMA: {"experiment": str, "backends": list, "reference": str, "files": list, "labels": dict},
}
RERUN = "rerun the experiment with gnaexp run --out"


def read_json(folder: str | Path, schemas: tuple[str, ...] = (SCHEMA, VAD_SCHEMA)) -> dict[str, Any]:
    """A record folder's record.json, checked: a JSON object of one of ``schemas`` with every key its kind needs,
    and artifact paths that stay inside the folder. Raises ValueError naming the file, the problem and the fix."""
    folder = Path(folder)
    path = folder / RECORD_FILE
    if not path.is_file():
        raise BadInput(f"{folder} holds no {RECORD_FILE}: give a folder from gnaexp run --out, or a batch run's "
                         "NAME.record folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{path} is not JSON ({exc}): the record is damaged; {RERUN}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} holds a JSON {type(data).__name__}, not a gnaexp record (an object with a "
                         f"\"schema\"): give the record.json gnaexp run --out wrote, or {RERUN}")
    kind = data.get("schema")
    if kind not in schemas:
        raise BadInput(f"{path} has schema {kind!r}; this gnaexp reads {' and '.join(schemas)}: give the "
                         f"record.json gnaexp run --out wrote, or {RERUN}")
    for key, kind_of in REQUIRED[kind].items():
        if not isinstance(data.get(key), kind_of):
            raise BadInput(f"{path}: {key!r} is {'missing' if key not in data else 'not a ' + kind_of.__name__};"
                             f" the record is damaged: {RERUN}")
    for key, rel in (data.get("artifacts") or {}).items():
        artifact_path(folder, rel, f"{path}: artifact {key!r}")
    return data


def artifact_path(folder: str | Path, rel: Any, what: str) -> Path:
    """``folder / rel`` when it names a regular file inside ``folder`` (after symlinks), else ValueError naming
    ``what``: a record never points outside its own folder, nor at a link that leads out of it."""
    folder = Path(folder)
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or Path(rel).drive:
        raise BadInput(f"{what} is {rel!r}: a record's files are named relative to its folder; {RERUN}")
    path = folder / rel
    inside_file(path, folder, what)
    return path


def inside_file(path: Path, root: Path, what: str) -> Path:
    """``path`` when it is a regular file that resolves inside ``root`` (no link leading out, no device or pipe);
    else ValueError naming ``what`` and where it leads."""
    real, top = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if real != top and top not in real.parents:
        raise BadInput(f"{what} ({path.name}) leads outside {root.name or root} (to {real}): only files inside "
                         "the run folder are read: put the file itself there (no link or '..' leading out)")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise BadInput(f"{what}: {path.name} does not exist in {root}; {RERUN}") from None
    if not stat.S_ISREG(mode):
        raise BadInput(f"{what} ({path.name}) is not a regular file: only files are read; {RERUN}")
    return real




@dataclass
class Record:
    experiment: str
    config: dict[str, Any]
    reference: str
    results: list[BackendResult]
    metrics: dict[str, dict[str, Comparison]]  # backend label -> output name -> comparison
    inputs: dict[str, np.ndarray]
    input_fingerprint: str
    model_fingerprint: str
    environment: dict[str, Any]
    artifacts: dict[str, str] = field(default_factory=dict)  # relative to the record folder
    diagnosis: RecordVerdicts = field(default_factory=RecordVerdicts)
    sweep: FloorSweep | None = None  # emulated floor sweep (emulator.sweep.floor_sweep); None where none was made
    sweep_error: str = ""  # why the emulator made no floor for this model
    model_info: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    created: str = ""

    def result(self, backend: str) -> BackendResult:
        for r in self.results:
            if r.backend == backend or r.label == backend:
                return r
        raise KeyError(f"no result for backend {backend!r}; have {[r.backend for r in self.results]}")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "experiment": self.experiment,
            "created": self.created,
            "config": self.config,
            "seed": self.config.get("seed"),
            "reference": self.reference,
            "input_fingerprint": self.input_fingerprint,
            "model_fingerprint": self.model_fingerprint,
            "model": self.model_info,
            "backends": [r.to_json() for r in self.results],
            "metrics": {b: {o: c.to_json() for o, c in per.items()} for b, per in self.metrics.items()},
            "sweep": self.sweep.to_json() if self.sweep else ({"error": self.sweep_error} if self.sweep_error else {}),
            "diagnosis": self.diagnosis.to_json(),
            "artifacts": self.artifacts,
            "duration_s": self.duration_s,
            "environment": self.environment,
        }

    def save(self, folder: str | Path) -> Path:
        """Write the record into ``folder`` (arrays first, then the JSON that points at them)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / "inputs.npz", npz_bytes(self.inputs))
        outputs = {f"{r.label}/{name}": arr for r in self.results for name, arr in r.outputs.items()}
        atomic_write_bytes(folder / "outputs.npz", npz_bytes(outputs))
        self.artifacts.setdefault("inputs", "inputs.npz")
        self.artifacts.setdefault("outputs", "outputs.npz")
        atomic_write_text(folder / "record.json", dumps(self.to_json()))
        return folder / "record.json"

    @classmethod
    def load(cls, path: str | Path) -> "Record":
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        data = read_json(folder, (SCHEMA,))
        with np.load(folder / data["artifacts"].get("outputs", "outputs.npz"), allow_pickle=False) as z:
            stored = dict(z)
        with np.load(folder / data["artifacts"].get("inputs", "inputs.npz"), allow_pickle=False) as z:
            inputs = dict(z)
        results = []
        for b in data["backends"]:
            label = BackendResult(b["backend"], b["kind"], {}).label
            # the label may hold a "/" itself (import:pack/outputs.npz): the key is "<label>/<output>"
            outs = {k[len(label) + 1:]: v for k, v in stored.items() if k.startswith(label + "/")}
            results.append(BackendResult.from_json(b, outs))
        metrics = {b: {o: Comparison.from_json(c) for o, c in per.items()} for b, per in data["metrics"].items()}
        sweep = decode_floats(data.get("sweep") or {})
        return cls(
            experiment=data["experiment"], config=data["config"], reference=data["reference"], results=results,
            metrics=metrics, inputs=inputs, input_fingerprint=data["input_fingerprint"],
            model_fingerprint=data["model_fingerprint"], environment=data["environment"],
            artifacts=data["artifacts"], diagnosis=RecordVerdicts.from_json(decode_floats(data.get("diagnosis") or {})),
            sweep=FloorSweep.from_json(sweep) if "floor_sqnr_db" in sweep else None,
            sweep_error=str(sweep.get("error", "")), model_info=data.get("model", {}),
            duration_s=data.get("duration_s", 0.0), created=data.get("created", ""),
        )
