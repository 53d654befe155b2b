"""Rerun this bundle's comparison: python reproduce.py [--plain] [--json]

Checks that inputs.npz and the IR are the ones the record was made with (their fingerprints), recomputes L1,
cosine and SQNR of every backend's stored outputs against the stored reference, reruns the IR on OpenVINO CPU
(FP32) with the stored inputs, and checks all of it against record.json. Uses gnaexp when it is installed; --plain
(or no gnaexp) uses only NumPy and OpenVINO. Exit 0 when everything matches, 1 when something differs (one line
says what), 2 when the bundle is damaged.
"""
import math

import numpy as np

from device_common import fail, input_fingerprint, run_main
from reproduce_common import (HERE, RERUN_NOTE, close, compiled_ir, finish, ir_fingerprint, measure, number,
                              read_npz, read_record, rerun_agrees)

# ---- shipped from here ----


def main():
    record = read_record({"reference": str, "metrics": dict, "input_fingerprint": str, "model_fingerprint": str})
    inputs, outputs = read_npz("inputs.npz"), read_npz("outputs.npz")
    xml = HERE / "ir" / "model.xml"
    if not xml.is_file() or not xml.with_suffix(".bin").is_file():
        fail("ir/model.xml or ir/model.bin is missing: take the bundle again")
    ref_label, problems = record["reference"], []
    if input_fingerprint(inputs) != record["input_fingerprint"]:
        problems.append("inputs.npz is not the input the record was made with (fingerprint %s, record.json says %s)"
                        % (input_fingerprint(inputs), record["input_fingerprint"]))
    if record["model_fingerprint"] and ir_fingerprint(xml) != record["model_fingerprint"]:
        problems.append("ir/ is not the IR the record was made with (fingerprint %s, record.json says %s)"
                        % (ir_fingerprint(xml), record["model_fingerprint"]))
    report = {"metrics": {}, "openvino_cpu": None}
    lines = []
    for label, per in sorted(record["metrics"].items()):
        for out_name, want in sorted((per if isinstance(per, dict) else {}).items()):
            key, ref_key = "%s/%s" % (label, out_name), "%s/%s" % (ref_label, out_name)
            if key not in outputs or ref_key not in outputs:
                problems.append("outputs.npz has no %s (record.json has figures for it)"
                                % (key if key not in outputs else ref_key))
                continue
            got = measure(outputs[ref_key], outputs[key])
            same = got is not None and isinstance(want, dict) and all(close(got[k], want.get(k)) for k in got)
            if not same:
                problems.append("%s: the metrics of the stored outputs are not record.json's" % key)
            report["metrics"][key] = dict(got or {}, matches_record=same)
            if got:
                lines.append("%s: L1 %.3e, cosine %.6f, SQNR %.1f dB%s" % (
                    key, got["l1"], got["cosine"], got["sqnr_db"], "" if same else "  (DIFFERS from record.json)"))
    made = compiled_ir(xml)
    if made is None:
        report["openvino_cpu"] = "OpenVINO is not installed: the IR was not rerun"
    else:
        model, compiled = made
        missing = [p.any_name for p in model.inputs if p.any_name not in inputs]
        if missing:
            problems.append("inputs.npz has no input %s of the IR" % missing)
        else:
            feed = {p.any_name: inputs[p.any_name] for p in model.inputs}
            if all(feed[p.any_name].ndim == len(p.get_shape()) + 1 for p in model.inputs):
                # a streamed run stores every step's inputs (states as the reference fed them): one inference each,
                # memory layers (ReadValue/Assign) set to the state the reference read at that step
                request, steps = compiled.create_infer_request(), []
                for t in range(len(next(iter(feed.values())))):
                    for state in request.query_state():
                        stored = inputs.get("memory:" + state.name)
                        if stored is not None:
                            state.state.data[...] = stored[t]
                    result = request.infer({k: v[t] for k, v in feed.items()})
                    steps.append({out: np.array(r) for out, r in result.items()})
                result = {out: np.stack([r[out] for r in steps]) for out in compiled.outputs}
            else:
                result = compiled(feed)
            report["openvino_cpu"] = {}
            for port, out in zip(model.outputs, compiled.outputs):
                name = port.any_name
                stored = outputs.get("%s/%s" % (ref_label, name))
                got = measure(stored, np.asarray(result[out])) if stored is not None else None
                if got is None:
                    problems.append("the OpenVINO CPU rerun's %s does not match the stored reference's shape" % name)
                    continue
                # the record's figure for OpenVINO CPU; a CPU reference is its own figure (identical)
                recorded = math.inf if ref_label == "openvino:CPU" else \
                    ((record["metrics"].get("openvino:CPU") or {}).get(name) or {}).get("sqnr_db")
                agrees = rerun_agrees(got["sqnr_db"], recorded)
                if agrees is False:
                    problems.append("the OpenVINO CPU rerun of ir/ gives SQNR %.1f dB on %s against the stored "
                                    "reference; record.json says %.1f dB" % (got["sqnr_db"], name, number(recorded)))
                report["openvino_cpu"][name] = dict(got, matches_record=agrees)
                lines.append("OpenVINO CPU rerun vs stored reference, %s: SQNR %.1f dB%s"
                             % (name, got["sqnr_db"], RERUN_NOTE[agrees]))
    if made is None:
        lines.append(report["openvino_cpu"])
    return finish(report, problems, lines)


if __name__ == "__main__":
    run_main(main)
