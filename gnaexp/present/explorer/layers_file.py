"""The per-layer table as ``gnaexp layers --json`` writes it (``layers.json``), read and checked.

{"reference": "openvino:CPU", "backends": ["openvino:CPU:bf16", ...], "first_diverging": {backend: layer | null},
 "threshold_db": {backend: dB}, "environment": {...},
 "rows": [{"layer": friendly name, "op": op type, "backend": one of backends, "sqnr_db": dB | null (accumulated),
           "local_sqnr_db": dB | null, "cosine": float | null, "max_abs": float | null,
           "status": "compared" | "fused" | "missing" | "inserted", "is_output": bool}]}

Non-finite numbers may be written as the strings "inf", "-inf" and "nan" (``gnaexp.core.files.dumps``); they are
read back as floats. A table that breaks this shape is refused with a BadInput naming the file, the problem and
the fix, before anything is written or started.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from gnaexp.core.errors import BadInput
from gnaexp.core.files import decode_floats

STATUSES = ("compared", "fused", "missing", "inserted")
NUMBERS = ("sqnr_db", "local_sqnr_db", "cosine", "max_abs")
FIX = "write it again with gnaexp layers --json (or --out DIR)"


def read_layers(path: str | Path) -> dict[str, Any]:
    """The checked table of a layers.json file (a missing file is an OSError naming it)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{path} is not JSON ({exc}): {FIX}") from None
    return check_layers(data, str(path))


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def check_layers(data: Any, source: str = "layers.json") -> dict[str, Any]:
    """``data`` (a layers.json document as loaded) checked, with non-finite numbers as floats; ``source`` names
    it in messages."""
    if not isinstance(data, dict):
        raise BadInput(f"{source} holds a JSON {type(data).__name__}, not a per-layer table (an object with "
                       f"\"reference\", \"backends\" and \"rows\"): {FIX}")
    data = decode_floats(data)
    for key, kind in (("reference", str), ("backends", list), ("rows", list), ("threshold_db", dict),
                      ("first_diverging", dict)):
        if not isinstance(data.get(key), kind):
            raise BadInput(f"{source}: {key!r} is {'missing' if key not in data else 'not a ' + kind.__name__}; "
                           f"the table is damaged: {FIX}")
    if not isinstance(data.get("environment", {}), dict):
        raise BadInput(f"{source}: 'environment' is not an object; the table is damaged: {FIX}")
    backends = data["backends"]
    if not backends or not all(isinstance(b, str) and b for b in backends) or len(set(backends)) != len(backends):
        raise BadInput(f"{source}: 'backends' must list each compared backend once, by name (got {backends!r}): "
                       f"{FIX}")
    for backend in backends:
        threshold = data["threshold_db"].get(backend)
        if not (_number(threshold) and threshold is not None and math.isfinite(threshold)):
            raise BadInput(f"{source}: 'threshold_db' gives no finite threshold for {backend!r} (got "
                           f"{threshold!r}): {FIX}")
    for i, row in enumerate(data["rows"]):
        _check_row(row, i, backends, source)
    return data


def _check_row(row: Any, i: int, backends: list[str], source: str) -> None:
    where = f"{source}: rows[{i}]"
    if not isinstance(row, Mapping):
        raise BadInput(f"{where} is not an object: {FIX}")
    for key in ("layer", "op"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise BadInput(f"{where} has no {key!r} name: {FIX}")
    if row.get("backend") not in backends:
        raise BadInput(f"{where} ({row['layer']}) is of backend {row.get('backend')!r}, which 'backends' does "
                       f"not list ({', '.join(backends)}): {FIX}")
    for key in NUMBERS:
        if key not in row:
            raise BadInput(f"{where} ({row['layer']}) has no {key!r} (a number, or null where not compared): {FIX}")
        if not _number(row[key]):
            raise BadInput(f"{where} ({row['layer']}): {key!r} is {row.get(key)!r}, not a number or null: {FIX}")
    if row.get("status") not in STATUSES:
        raise BadInput(f"{where} ({row['layer']}): 'status' is {row.get('status')!r}; one of "
                       f"{', '.join(STATUSES)}: {FIX}")
    if not isinstance(row.get("is_output"), bool):
        raise BadInput(f"{where} ({row['layer']}): 'is_output' is {row.get('is_output')!r}, not true or false: "
                       f"{FIX}")
