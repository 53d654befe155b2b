"""Versioned JSON records of runs, with atomic writes.

A record folder holds ``record.json`` (config, fingerprints, backend metadata, metrics, environment,
relative artifact paths), ``inputs.npz`` and ``outputs.npz`` (key ``<backend>/<output>``). Everything
reloads into the same objects. Files are written to a temporary name in the same folder and renamed, so
a crash never leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gnaexp.backends.base import BackendResult
from gnaexp.files import atomic_write_bytes, atomic_write_text, decode_floats, dumps, npz_bytes
from gnaexp.metrics import Comparison

SCHEMA = "gnaexp.record/1"
# What a notebook leaves in its record folder for the batch index: key metric rows and the verdict lines.
INDEX_ENTRY_FILE = "index-entry.json"




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
    diagnosis: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)  # emulated floor sweep (emulator.sweep.floor_sweep)
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
            "sweep": self.sweep,
            "diagnosis": self.diagnosis,
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
        data = json.loads((folder / "record.json").read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA:
            raise ValueError(f"{folder / 'record.json'} has schema {data.get('schema')!r}; this gnaexp reads {SCHEMA}")
        with np.load(folder / data["artifacts"].get("outputs", "outputs.npz"), allow_pickle=False) as z:
            stored = dict(z)
        with np.load(folder / data["artifacts"].get("inputs", "inputs.npz"), allow_pickle=False) as z:
            inputs = dict(z)
        results = []
        for b in data["backends"]:
            label = BackendResult(b["backend"], b["kind"], {}).label
            outs = {k.split("/", 1)[1]: v for k, v in stored.items() if k.split("/", 1)[0] == label}
            results.append(BackendResult.from_json(b, outs))
        metrics = {b: {o: Comparison.from_json(c) for o, c in per.items()} for b, per in data["metrics"].items()}
        return cls(
            experiment=data["experiment"], config=data["config"], reference=data["reference"], results=results,
            metrics=metrics, inputs=inputs, input_fingerprint=data["input_fingerprint"],
            model_fingerprint=data["model_fingerprint"], environment=data["environment"],
            artifacts=data["artifacts"], diagnosis=data.get("diagnosis", {}),
            sweep=decode_floats(data.get("sweep", {})), model_info=data.get("model", {}),
            duration_s=data.get("duration_s", 0.0), created=data.get("created", ""),
        )
