"""Everything a team needs to measure an experiment on a machine with a real GNA, and bring it back.

The folder holds the IR, the inputs, the torch reference output, the config, and a standalone
``measure_on_device.py`` that runs the IR with OpenVINO's GNA plugin (archive installs 2022.3–2023.3) and
writes ``outputs.npz`` in the format the ``import:`` backend reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from gnaexp import experiment
from gnaexp.backends import make_backend, streaming
from gnaexp.core import inputs as inputs_mod
from gnaexp.core.files import atomic_write_bytes, atomic_write_text, dumps, npy_bytes, npz_bytes
from gnaexp.core.output_folder import check_folder, publish_folder
from gnaexp.support.device_scripts import shipped

if TYPE_CHECKING:
    from gnaexp.vad.options import VadOptions


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


def write_portable_ir(src_xml: Path, xml: Path) -> None:
    """The IR at ``src_xml`` written to ``xml`` in the oldest operation versions that compute the same: a Pad-12
    with no negative pads is a Pad-1 (opset12 only added negative pads), which OpenVINO 2022.3–2023.0 read."""
    import numpy as np
    import openvino as ov
    import openvino.opset1 as ops1

    from gnaexp.models import ir

    model = ov.Core().read_model(str(src_xml))
    if any(op.get_type_name() == "Pad" and op.get_type_info().version_id == "opset12" for op in model.get_ops()):
        from openvino.passes import ConstantFolding, Manager

        manager = Manager()  # pads computed from constants (an ONNX export's Split of a Concat) become constants
        manager.register_pass(ConstantFolding())
        manager.run_passes(model)
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Pad" or op.get_type_info().version_id != "opset12":
            continue
        pads = [op.input_value(i).get_node() for i in (1, 2)]
        if all(p.get_type_name() == "Constant" and np.all(p.get_data() >= 0) for p in pads):
            value = op.input_value(3) if op.get_input_size() > 3 else None
            old = ops1.pad(op.input_value(0), op.input_value(1), op.input_value(2), op.get_attributes()["pad_mode"],
                           value)
            old.set_friendly_name(op.get_friendly_name())
            op.output(0).replace(old.output(0))
    ir.save(model, xml)


def export(config: experiment.ExperimentConfig, folder: Path) -> Path:
    """Write the export folder whole (staged, then put in place); returns it.

    A folder holding anything an export did not write (e.g. the device's outputs.npz) is refused, not replaced.
    """
    check_folder(folder, "export folder")
    model = experiment.build_model(config)
    streams = streaming.streamed(config.state, model, config.input_file)
    stream = experiment.stream_inputs(config, model) if streams else None
    # a stream's pack holds the frames (steps, *shape) and the initial states: the script carries the state
    feed = {**stream[1], **stream[2]} if stream else experiment.make_inputs(config, model)
    with publish_folder(folder, "export folder") as stage:
        write_portable_ir(model.require_ir(), stage / "model.xml")
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
        if stream:
            cfg["stream"] = {"state": stream[0], "sequences": [""]}
        atomic_write_text(stage / "config.json", dumps(cfg))
        atomic_write_text(stage / "measure_on_device.py", shipped("measure_on_device.py"))
    return folder


def export_vad(audio_files: list[Path], options: Mapping[str, Any] | VadOptions | None, folder: Path) -> Path:
    """A Silero VAD pack: the step IR, every file's chunks (``STEM/chunk``: steps × 1 × 576) and initial state
    (``STEM/state``), and the device settings; its measure_on_device.py streams each file chunk by chunk, carrying
    the state, and writes ``STEM/probability`` and ``STEM/next_state`` per chunk — the tracks ``gnaexp run
    silero_vad --backends torch,import:outputs.npz`` compares."""
    import numpy as np

    from gnaexp import cache
    from gnaexp.vad import audio as audio_mod, run as vad_run, stream as vad

    check_folder(folder, "export folder")
    loaded = [(Path(f), audio_mod.load_wav(f)) for f in audio_files]
    opts = vad_run.device_options(options, [sound.samples for _, sound in loaded])
    feed = {}
    for path, sound in loaded:
        feed[f"{path.stem}/chunk"] = vad.chunks(sound.samples)[:, None, :].astype(np.float32)
        feed[f"{path.stem}/state"] = np.zeros(vad.STATE_SHAPE, np.float32)
    with publish_folder(folder, "export folder") as stage:
        xml = cache.vad_ir(stage)
        write_portable_ir(xml, stage / "model.xml")
        for suffix in (".xml", ".bin"):
            (stage / ("silero_vad" + suffix)).unlink()
        atomic_write_bytes(stage / "inputs.npz", npz_bytes(feed))
        cfg = {"experiment": "silero_vad", "audio": [p.name for p, _ in loaded], "scale_factor": opts.gna.per_input,
               "precision": opts.gna.precision, "execution_mode": opts.execution_mode or "SW_EXACT",
               "input_fingerprint": inputs_mod.fingerprint(feed),
               "unreadable_ops_by_release": unreadable_ops(stage / "model.xml"),
               "stream": {"state": {"state": "next_state"}, "sequences": [p.stem for p, _ in loaded]}}
        atomic_write_text(stage / "config.json", dumps(cfg))
        atomic_write_text(stage / "measure_on_device.py", shipped("measure_on_device.py"))
    return folder
