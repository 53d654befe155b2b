"""A vendor-support bundle: one zip with everything needed to see, and rerun, one comparison elsewhere.

From a run folder (``gnaexp run --out``) or a batch run's ``NAME.record`` folder: the HTML report (``NAME.html``
beside a batch record, or any ``.html`` inside the folder), the IR, the inputs, every backend's outputs, the
JSON record (config, environment, plugin settings, metrics, verdicts), the ladder's diagnosis and
``reproduce.py``; and the per-layer table (``layers.json``) where the folder holds one. A folder of a per-layer
comparison alone (``gnaexp layers --out``, the layers notebook's record) bundles its table and report. Paths
inside are relative; nothing absolute is written.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gnaexp.core import records
from gnaexp.diagnose.results import Diagnosis
from gnaexp.core.files import atomic_write_bytes, dumps
from gnaexp.layers.results import LayerComparison
from gnaexp.support import bundle_layers
from gnaexp.support.device_scripts import shipped
from gnaexp.vad.record import VadRecord

VAD_IR = "silero_vad"  # a silero_vad record folder's IR: ir/silero_vad.xml and .bin, which its reproduce.py reruns


@dataclass
class Plan:
    """What a bundle of one run folder holds, every file checked before any work: name in the zip → file."""

    folder: Path
    record: dict[str, Any]  # record.json as read (either kind)
    files: dict[str, Path] = field(default_factory=dict)
    vad_record: VadRecord | None = None  # a silero_vad run's record, read
    layers: LayerComparison | None = None  # the folder's per-layer table, read

    @property
    def vad(self) -> bool:
        return self.vad_record is not None

    @property
    def layers_only(self) -> bool:
        """A per-layer comparison's folder: no record, so no IR, outputs, diagnosis or reproduce.py."""
        return not self.record


def _member(folder: Path, rel: str, what: str, rerun: str) -> Path:
    path = folder / rel
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{folder} has no {rel}: {rerun}")
    records.inside_file(path, folder, f"{folder}: {what}")
    return path


def _find_report(folder: Path) -> Path | None:
    """NAME.html beside a batch's NAME.record folder, else the first .html inside the folder; a report that is a
    link leading out of the batch's (or run's) folder is refused, not followed."""
    beside = folder.with_suffix(".html")
    if folder.suffix == ".record" and os.path.lexists(beside):
        records.inside_file(beside, folder.parent, f"the report {beside.name} beside {folder.name}")
        return beside
    found = sorted(folder.glob("*.html"))
    if found:
        records.inside_file(found[0], folder, f"{folder}: the report")
    return found[0] if found else None


def plan(folder: str | Path) -> Plan:
    """Check a run folder for bundling: its record (one reader, records.read_json) and every file that goes in,
    each a regular file inside the folder. Raises ValueError / FileNotFoundError naming the problem and the fix."""
    folder = Path(folder)
    if not (folder / records.RECORD_FILE).exists() and folder.is_dir() and bundle_layers.has_table(folder):
        return _layers_plan(folder)
    record = records.read_json(folder)
    out = Plan(folder, record, {"record.json": folder / records.RECORD_FILE},
               VadRecord.from_json(record, str(folder / records.RECORD_FILE))
               if record["schema"] == records.VAD_SCHEMA else None)
    if out.vad:
        rerun = "rerun it with gnaexp run silero_vad --out"
        out.files["tracks.npz"] = _member(folder, "tracks.npz", "the tracks", rerun)
        for suffix in (".xml", ".bin"):
            out.files[f"ir/{VAD_IR}{suffix}"] = _member(folder, f"ir/{VAD_IR}{suffix}", "the IR", rerun)
    else:
        rerun = "rerun the experiment with gnaexp run --out"
        artifacts = record["artifacts"]
        for key in ("inputs", "outputs"):
            out.files[f"{key}.npz"] = _member(folder, artifacts.get(key, f"{key}.npz"), f"the {key}", rerun)
        xml = artifacts.get("ir", "ir/model.xml")
        out.files["ir/model.xml"] = _member(folder, xml, "the IR", rerun)
        out.files["ir/model.bin"] = _member(folder, str(Path(xml).with_suffix(".bin")), "the IR weights", rerun)
    report = _find_report(folder)
    if report is not None:
        out.files["report.html"] = report
    if bundle_layers.has_table(folder):
        out.layers = bundle_layers.read(folder)
        out.files[bundle_layers.LAYERS_FILE] = folder / bundle_layers.LAYERS_FILE
    return out


def _layers_plan(folder: Path) -> Plan:
    out = Plan(folder, {}, {bundle_layers.LAYERS_FILE: folder / bundle_layers.LAYERS_FILE},
               layers=bundle_layers.read(folder))
    report = _find_report(folder)
    if report is not None:
        out.files["report.html"] = report
    return out


def _as_release(checked: Plan) -> str:
    """" (as GNA plugin 2023.3)": the plugin release the emulator computed as, from the record."""
    release = (checked.vad_record.plugin_release() if checked.vad_record is not None
               else (checked.record.get("config") or {}).get("plugin_release"))
    return f" (as GNA plugin {release})" if release else ""


def make_bundle(folder: str | Path | Plan, out: str | Path, diagnosis: Diagnosis | None = None) -> dict[str, Any]:
    """Write the zip (atomically); returns what went in. folder: a run folder, or its checked ``plan``."""
    checked = folder if isinstance(folder, Plan) else plan(folder)
    record = checked.record
    members = {name: path.read_bytes() for name, path in checked.files.items()}
    if diagnosis is not None:
        members["diagnosis.json"] = dumps(diagnosis.to_json()).encode()
    layers = bundle_layers.readme(checked.layers, "report.html" in members) if checked.layers else ""
    if checked.layers_only and checked.layers is not None:
        members["README.txt"] = (f"gnaexp support bundle: the per-layer comparison of {checked.layers.model or 'a model'}."
                                 f"\n{layers}Figures of 'gna-emu' are emulated, not measured.\n").encode()
        return _write_zip(members, Path(out))
    members["reproduce.py"] = shipped("reproduce_vad.py" if checked.vad else "reproduce_record.py").encode()
    if checked.vad:
        what = ("tracks.npz: every backend's speech probability per chunk (keys 'FILE/backend'); ir/: the streaming\n"
                "step of Silero VAD. The audio is not in the bundle (only its file names are, in record.json).\n"
                "Check the tracks against the record: python reproduce.py; rerun the IR on OpenVINO CPU over the\n"
                "same audio: python reproduce.py --audio FOLDER (gnaexp optional; --plain: NumPy + OpenVINO only).\n")
    else:
        what = ("diagnosis.json: the diagnosis ladder; ir/: the model; inputs.npz / outputs.npz: inputs and every\n"
                "backend's outputs (keys 'backend/output').\n"
                "Rerun the comparison: python reproduce.py (gnaexp optional; --plain uses NumPy + OpenVINO only).\n")
    members["README.txt"] = (
        f"gnaexp support bundle: {record.get('experiment')} (reference {record.get('reference')}).\n"
        "report.html: the report; record.json: config, environment, plugin settings, metrics and verdicts;\n"
        + what + layers + f"Figures of 'gna-emu' are emulated{_as_release(checked)}, not measured.\n").encode()
    return _write_zip(members, Path(out))


def _write_zip(members: dict[str, bytes], out: Path) -> dict[str, Any]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed stamp: same run → same zip
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            z.writestr(info, data)
    atomic_write_bytes(out, buf.getvalue())
    return {"bundle": str(out), "files": sorted(members), "report": "report.html" in members}
