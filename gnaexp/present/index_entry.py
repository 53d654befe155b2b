"""What a notebook leaves beside its record for the batch index page: key figures per backend, the verdict lines
and the finding (status, one sentence, next step). One type, one writer (``IndexEntry.save``), one reader
(``IndexEntry.load``), whichever notebook wrote it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from gnaexp.core.files import dumps
from gnaexp.core.output_folder import add_file
from gnaexp.core.records import INDEX_ENTRY_FILE
from gnaexp.diagnose.status import Finding


@dataclass
class MetricRow:
    """One backend's output against the reference; the forum team's measured figure beside GNA-like rows."""

    backend: str  # the result's label, "(emulated)" included where it is
    cosine: float | None = None
    sqnr_db: float | None = None
    l1: float | None = None
    kind: str = ""  # reference | measured | emulated | imported ("" where the notebook's rows mix no kinds)
    output: str = ""
    pearson: float | None = None
    max_abs_error: float | None = None
    verdict: str = ""
    forum_l1: float | str | None = None  # the forum's figures are quoted as the team wrote them
    forum_cosine: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MetricRow":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class IndexEntry:
    experiment: str
    verdict: list[str]  # Markdown lines ("**label**: text."), finding first
    rows: list[MetricRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finding: Finding | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"experiment": self.experiment, "notes": list(self.notes),
                                "verdict": list(self.verdict), "rows": [r.to_json() for r in self.rows]}
        if self.finding is not None:
            data["finding"] = self.finding.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "IndexEntry":
        found = data.get("finding")
        return cls(str(data.get("experiment", "")), [str(v) for v in data.get("verdict", [])],
                   [MetricRow.from_json(r) for r in data.get("rows", [])], [str(n) for n in data.get("notes", [])],
                   Finding(**found) if found else None)

    def save(self, record_dir: str | Path) -> Path:
        """Write the entry into the record folder (atomically, listed in its manifest)."""
        return add_file(Path(record_dir), INDEX_ENTRY_FILE, dumps(self.to_json()).encode("utf-8"))

    @classmethod
    def load(cls, record_dir: str | Path) -> "IndexEntry | None":
        """The entry a finished notebook left in ``record_dir``; None where there is none or it cannot be read."""
        try:
            data = json.loads((Path(record_dir) / INDEX_ENTRY_FILE).read_text(encoding="utf-8"))
            return cls.from_json(data)
        except (OSError, ValueError, TypeError, AttributeError):
            return None
