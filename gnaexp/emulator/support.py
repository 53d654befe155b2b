"""The support report of any model OpenVINO reads: every op with what the GNA plugin (2023.1.0) and the
emulator do with it, all blockers at once.

The model is read as the emulator reads it (``ir_reader.read_program`` in tolerant mode, after the plugin's
recurrent rewrites), so an op the emulator cannot run does not stop the report: it is a row that says why and
cites the plugin source (``porting.support_report``, ``plugin_ops``). Dynamic input dimensions are fixed by
``reshape_inputs`` from shapes the user gives (an input file, or ``--shape``), with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence
from gnaexp.core.errors import BadInput

STATUS_ORDER = ("native", "decomposed", "rewritten", "movement", "host", "folded", "refused")


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """"input=1,8,161" → ("input", (1, 8, 161)); a shape without a name is for the only input ("")."""
    name, _, dims = text.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise BadInput(f"--shape {text!r}: give NAME=D1,D2,... with positive integers, e.g. input=1,8,161")
    return name.strip(), shape


def _input_names(port: Any) -> list[str]:
    return sorted(port.get_names()) or [port.get_node().get_friendly_name()]


def reshape_inputs(model: Any, shapes: Mapping[str, Sequence[int]], origin: str) -> list[str]:
    """Give the model's dynamic inputs the ``shapes`` named (by input name; "" for a single-input model); the
    model is reshaped in place. Returns the notes; a shape that contradicts a static one is a ValueError."""
    from gnaexp.models.model_files import openvino_cause

    ports = list(model.inputs)
    if "" in shapes and len(ports) != 1:
        raise BadInput(f"a shape without an input name, but the model has {len(ports)} inputs: name them "
                         f"({', '.join(_input_names(p)[0] for p in ports)})")
    known = {n for p in ports for n in _input_names(p)}
    unknown = [k for k in shapes if k and k not in known]
    if unknown:
        raise BadInput(f"shape given for unknown input(s) {unknown}; the model's inputs are "
                         f"{[_input_names(p)[0] for p in ports]}")
    notes, new = [], {}
    for port in ports:
        names = _input_names(port)
        given = next((tuple(shapes[n]) for n in names if n in shapes), shapes.get("") if len(ports) == 1 else None)
        ps = port.get_partial_shape()
        if given is None:
            if ps.is_dynamic:
                notes.append(f"input {names[0]!r} has a dynamic shape {ps}: the ops that depend on it cannot be "
                             f"planned; give its shape (an input file, or --shape {names[0]}=...)")
            continue
        if not ps.compatible(_partial(given)):
            raise BadInput(f"input {names[0]!r}: shape {list(given)} ({origin}) does not fit the model's {ps}")
        if ps.is_dynamic:
            new[port] = _partial(given)
            notes.append(f"input {names[0]!r}: dynamic shape {ps} reshaped to {list(given)} ({origin})")
    if new:
        try:
            model.reshape(new)
        except Exception as exc:  # noqa: BLE001 - OpenVINO's shape inference raises RuntimeError and its own types
            raise BadInput(f"OpenVINO cannot reshape the model to {[list(v.to_shape()) for v in new.values()]}: "
                             f"{openvino_cause(exc)}") from None
    return notes


def _partial(shape: Sequence[int]) -> Any:
    import openvino as ov

    return ov.PartialShape([int(d) for d in shape])


@dataclass
class SupportReport:
    model: str  # file name
    inputs: dict[str, list[Any]]  # input name → shape (None for a dynamic dimension)
    rows: list[dict[str, str]]
    notes: list[str] = field(default_factory=list)
    porting: bool = True

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUS_ORDER}
        for r in self.rows:
            if r["status"] != "folded":
                out[r["status"]] = out.get(r["status"], 0) + 1
        return {k: v for k, v in out.items() if v}

    def refused(self) -> list[dict[str, str]]:
        return [r for r in self.rows if r["status"] == "refused"]

    def verdict(self) -> str:
        refused = self.refused()
        if not refused:
            return "every op runs on the emulator (GNA plugin 2023.1.0 rules)"
        ops = sorted({r["op"] for r in refused})
        labels = {"plugin": "refused by the GNA plugin", "emulator": "not modelled by the emulator yet",
                  "input shape": "waiting for a static input shape"}
        by = {k: sum(r.get("by", "emulator") == k for r in refused) for k in labels}
        return (f"{len(refused)} op(s) block the emulator ({', '.join(ops)}): "
                + ", ".join(f"{n} {labels[k]}" for k, n in by.items() if n))

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "inputs": self.inputs, "porting": self.porting, "notes": list(self.notes),
                "counts": self.counts(), "verdict": self.verdict(), "ops": [dict(r) for r in self.rows]}

    def text(self) -> str:
        lines = [f"{self.model}: support on GNA (plugin rules of OpenVINO 2023.1.0"
                 + (", with porting" if self.porting else "") + ")"]
        lines += [f"input {k}: {v}" for k, v in self.inputs.items()]
        lines += [f"note: {n}" for n in self.notes]
        w_status = max(len(r["status"]) for r in self.rows) if self.rows else 6
        w_op = max(len(r["op"]) for r in self.rows) if self.rows else 2
        for r in self.rows:
            src = f" [{r['source']}]" if r.get("source") else ""
            lines.append(f"{r['status']:<{w_status}}  {r['op']:<{w_op}}  {r['name']}: {r['how']}{src}")
        lines.append("summary: " + ", ".join(f"{n} {s}" for s, n in self.counts().items()))
        lines.append(self.verdict())
        return "\n".join(lines)


def shapes_of_arrays(model: Any, arrays: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Input shapes from the arrays a user gives (name → array; "" for a single array): an array of the input's
    rank is one sample, one dimension more is a batch of samples."""
    ports = {n: p for p in model.inputs for n in _input_names(p)}
    out = {}
    for key, arr in arrays.items():
        port = ports.get(key) if key else (next(iter(model.inputs)) if len(model.inputs) == 1 else None)
        if port is None:
            raise BadInput(f"input file holds {key or 'one array'!r}, the model's inputs are "
                             f"{[_input_names(p)[0] for p in model.inputs]}: name the arrays after them")
        rank = port.get_partial_shape().rank.get_length()
        shape = tuple(int(d) for d in arr.shape)
        if len(shape) == rank + 1:
            shape = shape[1:]
        elif len(shape) != rank:
            raise BadInput(f"input file array {key or _input_names(port)[0]!r} has shape {list(shape)}; the model "
                             f"expects rank {rank} ({port.get_partial_shape()}), or one more for a batch of samples")
        out[key] = shape
    return out


def model_support(model: Any, shapes: Mapping[str, Sequence[int]] | None = None, porting: bool = True,
                  arrays: Mapping[str, Any] | None = None) -> SupportReport:
    """The support report of ``model`` (a file OpenVINO reads, or an ``openvino.Model``); dynamic inputs get
    ``shapes`` (input name → shape) or the shapes of ``arrays`` (the user's inputs)."""
    from gnaexp.emulator.ir_reader import read_program
    from gnaexp.emulator.porting import inner_reduce_means, read_as_converter, support_report
    from gnaexp.models.model_files import read_model

    name = "model"
    if isinstance(model, (str, Path)):
        name = Path(model).name
        model = read_model(model)
    else:
        model = model.clone()  # reshaping is in place: the caller's model stays as it was
    given = dict(shapes_of_arrays(model, arrays)) if arrays else {}
    notes = reshape_inputs(model, given, "from the input file") if given else []
    notes += reshape_inputs(model, shapes or {}, "--shape") if shapes or not given else []
    prog = read_program(model, strict=False)
    if porting and inner_reduce_means(prog):
        prog, note = read_as_converter(model, prog, strict=False)
        notes.append(note)
    inputs = {_input_names(p)[0]: [d.get_length() if d.is_static else None for d in p.get_partial_shape()]
              for p in model.inputs}
    return SupportReport(name, inputs, support_report(prog, porting), notes, porting)
