"""The per-layer table a support bundle carries: ``layers.json`` (``gnaexp layers --out``, or the layers notebook's
record folder), read and checked before any work, and what the bundle's README says of it."""

from __future__ import annotations

import json
from pathlib import Path

from gnaexp.core import records
from gnaexp.core.errors import BadInput
from gnaexp.layers.results import LayerComparison

LAYERS_FILE = "layers.json"
RERUN = "rerun gnaexp layers --out (or the layers notebook)"


def has_table(folder: Path) -> bool:
    return (folder / LAYERS_FILE).exists() or (folder / LAYERS_FILE).is_symlink()


def read(folder: Path) -> LayerComparison:
    """The folder's layers.json as a comparison: a regular file inside the folder, of the layers schema; BadInput
    naming the file, the problem and the fix otherwise."""
    path = records.inside_file(folder / LAYERS_FILE, folder, f"{folder}: the per-layer table")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{folder / LAYERS_FILE} is not JSON ({exc}): the per-layer table is damaged; {RERUN}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{folder / LAYERS_FILE} holds a JSON {type(data).__name__}, not a per-layer comparison; {RERUN}")
    try:
        return LayerComparison.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{folder / LAYERS_FILE} is not a per-layer comparison ({exc.args[0] if exc.args else exc}); "
                       f"{RERUN}") from None


def rerun_command(result: LayerComparison) -> str:
    """The command that makes the table again (a forum net by name; a model file as the user gives it)."""
    from gnaexp.core.gna_settings import FORUM_NETS

    backends = ",".join([result.reference] + [b for b in result.backends if not b.endswith("(loaded)")])
    target = result.model if result.model in FORUM_NETS else "--model MODEL --input INPUTS"
    return f"gnaexp layers {target} --backends {backends} --out DIR"


def readme(result: LayerComparison, report: bool) -> str:
    """The bundle README's lines on the per-layer table."""
    return (f"layers.json: the per-layer comparison of {result.model or 'the model'} against {result.reference}\n"
            f"(schema {result.to_json()['schema']}: per backend and layer the accumulated and local SQNR, cosine,\n"
            "max |err| and status; the first diverging layer per backend)"
            + ("; report.html: its report" if report else "") + ".\n"
            f"Make it again: {rerun_command(result)}\n(with the settings its notes name, e.g. --set scale_factor=N).\n")
