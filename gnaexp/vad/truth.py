"""The ground truth of a VAD dataset: the ``segments.json`` beside the audio files, read and checked.

Its format (data/speech/README.md): an object keyed by file name, each entry holding ``speech``, a list of
``[start, end]`` times in seconds. Every entry a run uses is checked before any audio is streamed.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Sequence

from gnaexp.vad import audio, metrics as vad_metrics, stream as vad
from gnaexp.core.errors import BadInput


def ground_truth(paths: Sequence[Path]) -> list[list[tuple[int, int]] | None]:
    """Each file's true speech segments in chunks, from the ``segments.json`` beside it (None where there is
    none, or no entry for the file); a file that does not say what data/speech/README.md describes is a
    ValueError naming it, the entry and the key."""
    tables: dict[Path, dict[str, Any] | None] = {}
    out = []
    for path in paths:
        seg_file = path.parent / "segments.json"
        if seg_file not in tables:
            tables[seg_file] = _segments_file(seg_file)
        table = tables[seg_file]
        entry = table.get(path.name) if table is not None else None
        out.append(None if entry is None else _speech(seg_file, path.name, entry))
    return out


_SEGMENTS_FORMAT = ('an object keyed by file name, each entry {"speech": [[START, END], ...]} in seconds (see '
                    "data/speech/README.md)")


def _segments_file(seg_file: Path) -> dict[str, Any] | None:
    if not os.path.lexists(seg_file):
        return None
    try:
        data = json.loads(seg_file.read_bytes().decode("utf-8"))
    except IsADirectoryError:
        raise BadInput(f"{seg_file} is a folder; the ground truth is a file: rename or move it") from None
    except UnicodeDecodeError:
        raise BadInput(f"{seg_file} is not UTF-8 text: save it as UTF-8 JSON, {_SEGMENTS_FORMAT}") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{seg_file} is not JSON ({exc.msg} at line {exc.lineno}): write {_SEGMENTS_FORMAT}") \
            from None
    except (ValueError, RecursionError):  # a number of thousands of digits, arrays nested thousands deep
        raise BadInput(f"{seg_file} is JSON that cannot be ground truth (too deep or too long a number): write "
                         f"{_SEGMENTS_FORMAT}") from None
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):  # a link that leads nowhere
            raise BadInput(f"{seg_file} is a symbolic link that leads nowhere (a loop or a missing target): "
                             "replace it with the file, or remove it") from None
        raise
    if not isinstance(data, dict):
        raise BadInput(f"{seg_file} holds a JSON {_json_type(data)}, not {_SEGMENTS_FORMAT}")
    return data


def _speech(seg_file: Path, name: str, entry: Any) -> list[tuple[int, int]]:
    where = f"{seg_file}: the entry for {name!r}"
    if not isinstance(entry, dict):
        raise BadInput(f"{where} is a JSON {_json_type(entry)}; write {_SEGMENTS_FORMAT}")
    if "speech" not in entry:
        raise BadInput(f"{where} lacks the key 'speech' (a list of [START, END] in seconds): add it, or remove "
                         "the entry")
    segs = entry["speech"]
    if not isinstance(segs, list):
        raise BadInput(f"{where} has a JSON {_json_type(segs)} as 'speech', not a list of [START, END] in "
                         "seconds")
    for i, seg in enumerate(segs):
        # Compared, never converted: NaN fails every comparison, and a huge JSON integer does not overflow.
        if not (isinstance(seg, list) and len(seg) == 2
                and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in seg)
                and 0 <= seg[0] < seg[1] <= audio.MAX_SECONDS):
            shown = json.dumps(seg)
            raise BadInput(f"{where} has 'speech' item {i} = {shown[:60]}{'…' if len(shown) > 60 else ''}; each "
                             f"item is [START, END] in seconds with 0 <= START < END <= {audio.MAX_SECONDS}")
    return vad_metrics.seconds_to_chunks(segs, vad.CHUNK / vad.SAMPLE_RATE)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
