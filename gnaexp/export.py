"""Everything a team needs to measure an experiment on a machine with a real GNA, and bring it back.

The folder holds the IR, the inputs, the torch reference output, the config, and a standalone
``measure_on_device.py`` that runs the IR with OpenVINO's GNA plugin (archive installs 2022.3–2023.3) and
writes ``outputs.npz`` in the format the ``import:`` backend reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gnaexp import experiment, inputs as inputs_mod
from gnaexp.backends import make_backend
from gnaexp.files import atomic_write_bytes, atomic_write_text, dumps, npy_bytes, npz_bytes
from gnaexp.output_folder import check_folder, publish_folder
from gnaexp.standalone import MEASURE_SCRIPT


# The newest operation set each GNA release's IR reader knows (OpenVINO release notes: opset11 came with 2023.0,
# opset12 with 2023.1, opset13 with 2023.2); 2022.3 reads up to opset10.
GNA_RELEASE_OPSETS = (("2022.3", 10), ("2023.0", 11), ("2023.1", 12), ("2023.3", 13))


def unreadable_ops(xml: Path) -> dict[str, list[str]]:
    """Per GNA release, the IR's operations (type and opset) newer than its reader knows; {} when all read it."""
    import xml.etree.ElementTree as ElementTree

    used = {(layer.get("type"), layer.get("version")) for layer in ElementTree.parse(xml).getroot().iter("layer")}
    out: dict[str, list[str]] = {}
    for release, newest in GNA_RELEASE_OPSETS:
        late = sorted(f"{t} ({v})" for t, v in used
                      if v and v.startswith("opset") and v[5:].isdigit() and int(v[5:]) > newest)
        if late:
            out[release] = late
    return out


def export(config: experiment.ExperimentConfig, folder: Path) -> Path:
    """Write the export folder whole (staged, then put in place); returns it.

    A folder holding anything an export did not write (e.g. the device's outputs.npz) is refused, not replaced.
    """
    check_folder(folder, "export folder")
    model = experiment.build_model(config)
    feed = experiment.make_inputs(config, model)
    with publish_folder(folder, "export folder") as stage:
        for src in (model.ir_xml, model.ir_xml.with_suffix(".bin")):
            shutil.copyfile(src, stage / ("model" + src.suffix))
        atomic_write_bytes(stage / "inputs.npz", npz_bytes(feed))
        for name, arr in feed.items():
            atomic_write_bytes(stage / f"{name}.npy", npy_bytes(arr))
        if model.torch_module is not None:
            ref = make_backend("torch").run(model, feed)
            for name, arr in ref.outputs.items():
                atomic_write_bytes(stage / f"reference_{name}.npy", npy_bytes(arr))
        cfg = config.to_record_json()
        cfg["input_fingerprint"] = inputs_mod.fingerprint(feed)
        cfg["unreadable_ops_by_release"] = unreadable_ops(stage / "model.xml")
        atomic_write_text(stage / "config.json", dumps(cfg))
        atomic_write_text(stage / "measure_on_device.py", MEASURE_SCRIPT)
    return folder
