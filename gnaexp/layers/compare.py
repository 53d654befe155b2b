"""The per-layer comparison: the reference and every backend under test run the same inputs, layer by layer.

Each reference layer gets one row per backend under test, in the reference model's topological order, never
dropped: ``compared`` (accumulated SQNR, cosine, max-abs against the reference tensor of the same name, and the
local SQNR where the backend can run the layer alone), ``fused`` or ``missing`` (no tensor of that name);
layers only the tested model has follow as ``inserted``. The first diverging layer is the first compared one
whose local SQNR is below the threshold (accumulated for a loaded dump, which has no local error).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gnaexp.core import environment, metrics
from gnaexp.core.errors import BadInput
from gnaexp.core.gna_settings import GnaSettings
from gnaexp.layers import emulated, runners, taps, torch_taps
from gnaexp.layers.backends import LayerBackend, check_torch, threshold_for
from gnaexp.layers.measured import Measured
from gnaexp.layers.results import LayerComparison, LayerDiff


def model_for(backend: LayerBackend, float_xml: Path, calibration: Mapping[str, Any]) -> Path:
    return runners.nncf_int8_ir(float_xml, calibration) if backend.kind == "nncf" else float_xml


def calibration_note(calibration: Mapping[str, Any]) -> str:
    if calibration.get("calibration_file"):
        return f"calibrated on {Path(calibration['calibration_file']).name}"
    return (f"calibrated on {calibration.get('calibration_size', 32)} generated "
            f"{calibration.get('calibration_kind', 'uniform01')} samples (seed {calibration.get('calibration_seed', 0)}); "
            "--set calibration_file=FILE calibrates on yours")


def measure(float_xml: Path, feed: Mapping[str, np.ndarray], backends: Sequence[LayerBackend],
            settings: GnaSettings | None = None, calibration: Mapping[str, Any] | None = None,
            torch: tuple[Any, Sequence[str]] | None = None,
            ) -> tuple[Measured, list[tuple[str, str]], set[str], list[Measured]]:
    """(reference, its layers (key, op) in topological order, its output layers, each backend under test).
    ``torch``: the net's (module, input names), for the torch backend."""
    ref_backend, tests = backends[0], list(backends[1:])
    calibration = dict(calibration or {})
    if any(b.kind == "gna-emu" for b in tests) and (ref_backend.kind, ref_backend.device,
                                                    ref_backend.precision) != ("openvino", "CPU", "f32"):
        raise BadInput(f"gna-emu's per-layer values are compared against openvino:CPU (FP32), not "
                       f"{ref_backend.spec}: give openvino:CPU as the reference (first backend)")
    check_torch(backends, torch is not None)
    for b in backends:  # an absent device stops the run before anything is computed
        if b.kind not in ("gna-emu", "torch"):
            runners.check_device(b)
    ref_xml = float_xml if ref_backend.kind == "torch" else model_for(ref_backend, float_xml, calibration)
    ref_model = runners.read(ref_xml)
    order = [(t.key, t.op) for t in taps.taps(ref_model)]
    net_outputs = [taps.key_of(o.get_node().input_value(0)) for o in ref_model.outputs]
    if torch is not None and ref_backend.kind == "torch":
        reference = torch_taps.run(torch[0], feed, torch[1], order, net_outputs, ref_backend.spec)
        order = [(k, op) for k, op in order if k in reference.values or k in reference.fused_into]
    else:
        reference = runners.run_openvino(ref_backend, ref_xml, feed, {}, [], with_local=False)
    keys = [k for k, _ in order]
    measured = []
    for b in tests:
        if b.kind == "gna-emu":
            measured.append(emulated.run(float_xml, feed, settings or GnaSettings(), b.spec, keys))
            continue
        if b.kind == "torch" and torch is not None:
            measured.append(torch_taps.run(torch[0], feed, torch[1], order, net_outputs, b.spec))
            continue
        xml = model_for(b, float_xml, calibration)
        m = runners.run_openvino(b, xml, feed, reference.values, keys)
        if b.kind == "nncf":
            m.notes.append(calibration_note(calibration))
        untapped = runners.untapped_outputs(b, xml, feed)
        for key, value in untapped.items():
            if key in reference.values and reference.values[key].shape == value.shape:
                tapped = metrics.sqnr_db(reference.values[key], m.values[key]) if key in m.values else math.nan
                m.notes.append(f"output {key} with no layer tapped (the device free to fuse): SQNR "
                               f"{metrics.sqnr_db(reference.values[key], value):.1f} dB (tapped: {tapped:.1f} dB)")
        measured.append(m)
    return reference, order, taps.output_keys(ref_model), measured


def rows_for(reference: Measured, order: list[tuple[str, str]], outputs: set[str], test: Measured) -> list[LayerDiff]:
    rows = []
    for key, op in order:
        row = LayerDiff(key, op, test.label, is_output=key in outputs)
        ref, got = reference.values.get(key), test.values.get(key)
        if got is None or ref is None:
            row.status = "fused" if key in test.fused_into or key in reference.fused_into else "missing"
        elif got.size != ref.size:
            row.status = "missing"
            test.notes.append(f"{key}: {list(got.shape)} values, the reference has {list(ref.shape)}: not compared")
        else:
            got = got.reshape(ref.shape)
            with np.errstate(invalid="ignore", over="ignore"):
                row.sqnr_db = metrics.sqnr_db(ref, got)
                row.cosine = metrics.cosine_checked(ref, got)[0]
                row.max_abs = metrics.max_abs_error(ref, got)[0]
            row.local_sqnr_db = None if test.local is None else test.local.get(key)
        rows.append(row)
    rows += [LayerDiff(key, op, test.label, status="inserted") for key, op in test.inserted]
    return rows


def first_diverging(rows: list[LayerDiff], threshold: float, by_local: bool) -> str | None:
    for r in rows:
        value = r.local_sqnr_db if by_local else r.sqnr_db
        if r.status == "compared" and value is not None and not math.isnan(value) and value < threshold:
            return r.layer
    return None


def compare(float_xml: Path, feed: Mapping[str, np.ndarray], backends: Sequence[LayerBackend],
            threshold: float | None = None, settings: GnaSettings | None = None, model_name: str = "",
            loaded: Sequence[tuple[Measured, LayerBackend]] = (), calibration: Mapping[str, Any] | None = None,
            torch: tuple[Any, Sequence[str]] | None = None) -> tuple[LayerComparison, Measured, list[Measured]]:
    """The comparison, the reference's tensors and every tested backend's (for ``--dump``).

    ``loaded``: tensors from a dump (``dump.load``), each with the backend it was made with (for its threshold)."""
    from gnaexp.core.inputs import fingerprint

    reference, order, outputs, measured = measure(float_xml, feed, backends, settings, calibration, torch)
    tests: list[tuple[Measured, LayerBackend]] = list(zip(measured, backends[1:])) + list(loaded)
    rows: list[LayerDiff] = []
    first: dict[str, str | None] = {}
    limits: dict[str, float] = {}
    notes: dict[str, list[str]] = {}
    for m, b in tests:
        own = rows_for(reference, order, outputs, m)
        limits[m.label] = threshold_for(b, threshold)
        first[m.label] = first_diverging(own, limits[m.label], by_local=m.local is not None)
        if m.kind == "loaded":
            m.notes.append("loaded from a dump: no local error (it needs the device); the first diverging layer is "
                           "judged by the accumulated SQNR")
        rows += own
        notes[m.label] = list(m.notes)
        if backends[0].kind == "torch":  # what the reference matched and left out concerns every row
            notes[m.label] += [f"reference: {n}" for n in reference.notes]
    result = LayerComparison(backends[0].spec, [m.label for m, _ in tests], first, limits, environment.capture(),
                             rows, model_name, fingerprint(feed), {k: v for k, v in notes.items() if v})
    return result, reference, [m for m, _ in tests]
