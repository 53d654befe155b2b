"""The diagnosis a support bundle carries: the ladder rerun from the bundled record, with the device output it
holds (a GNA measurement or an imported file) as the observed one, judged by what ran."""

from __future__ import annotations

from typing import Any

from gnaexp.diagnose.results import Diagnosis, WhatRan

from gnaexp.core.inputs import read_file
from gnaexp.diagnose.ladder import device_backends, ladder
from gnaexp.experiment import ExperimentConfig
from gnaexp.support.bundle import Plan
from gnaexp.core.errors import BadInput


def diagnose(plan: Plan, porting: bool = False) -> Diagnosis:
    """The ladder on the record's experiment (a user's model: the folder's own IR and inputs), its stored device
    output observed. ValueError naming the record when its config is not one this gnaexp runs."""
    settings = dict(plan.record["config"])
    if settings.get("experiment") == "model":  # the record keeps a portable path: rerun the folder's own copy
        settings.update(model=str(plan.files["ir/model.xml"]), input_file=str(plan.files["inputs.npz"]))
    if porting:
        settings["porting"] = True
    device = device_backends(settings.get("backends", []))
    settings["backends"] = [b for b in settings.get("backends", []) if b not in device]
    observed, measured_as = None, None  # type: Any, WhatRan | None
    if device:  # the device's stored output is the observed one, judged by what ran (the record says)
        stored = read_file(plan.files["outputs.npz"], "stored outputs")
        if not isinstance(stored, dict):
            raise BadInput(f"{plan.files['outputs.npz']}: one array, not each backend's outputs; rerun the experiment")
        measured: dict[str, Any] = next((b for b in plan.record.get("backends", [])
                                         if b.get("kind") in ("measured", "imported")), {})
        label = str(measured.get("backend", device[0])) + (" (imported)" if measured.get("kind") == "imported" else "")
        observed = next((v for k, v in stored.items() if k.startswith(label + "/") or k.startswith(device[0])), None)
        ran = measured.get("info", {}).get("what_ran")
        measured_as = WhatRan.from_json(ran) if ran else None
    try:
        config = ExperimentConfig().with_settings(settings)
    except (KeyError, ValueError) as exc:
        raise BadInput(f"{plan.folder / 'record.json'}: its config is not one this gnaexp runs "
                         f"({exc.args[0] if exc.args else exc}); rerun the experiment, or pass --no-diagnosis") from None
    return ladder(config, observed, measured_as=measured_as)
