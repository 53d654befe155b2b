"""Stateful streaming for any model: frames in, each step's state output fed back to its state input.

A streaming net (a VAD, a denoiser, a wake-word detector exported for GNA) takes one frame and its recurrent state
and returns its outputs and the next state; the host carries the state between inferences, as GNA ports do when
the state is a network input (the GNA plugin's own ReadValue/Assign memory does the same on the device). The user
names the pairs, ``state=stateN`` or ``h=hn,c=cn``.

The input file holds every non-state input with a leading axis of steps, ``(T, *shape)``; a state input starts
at zeros unless the file holds its initial value in the model's shape (or a value per step, as a record's inputs
do: the first is the initial one). ``stream`` runs one backend's step function
over the frames (``backends.base.stream_steps``: closed loop, each backend carries its own state, so drift shows
as it would on the device) and returns every output per step together with the inputs each step received.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from gnaexp.core import inputs as inputs_mod
from gnaexp.core.excerpt import excerpt
from gnaexp.core.errors import BadInput

def parse_state_pairs(text: str) -> dict[str, str]:
    """``in=out,in2=out2`` → {state input: state output}; a malformed or repeated pair is a ValueError."""
    pairs: dict[str, str] = {}
    for word in (w.strip() for w in str(text).split(",")):
        if not word:
            continue
        name, sep, out = (p.strip() for p in word.partition("="))
        if not sep or not name or not out:
            raise BadInput(f"state pair {excerpt(word)} is not INPUT=OUTPUT; name each state input and the "
                             "output that feeds it, e.g. state=stateN or h=hn,c=cn")
        if name in pairs:
            raise BadInput(f"state input {name!r} is paired twice; give each state input one output")
        pairs[name] = out
    return pairs


def check_pairs(pairs: Mapping[str, str], input_shapes: Mapping[str, tuple[int, ...]],
                output_shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Every pair names a model input and a model output of the same number of values."""
    for name, out in pairs.items():
        if name not in input_shapes:
            raise BadInput(f"state input {name!r} is not an input of the model; its inputs are "
                             f"{sorted(input_shapes)}")
        if out not in output_shapes:
            raise BadInput(f"state output {out!r} (paired with {name!r}) is not an output of the model; its outputs "
                             f"are {sorted(output_shapes)}")
        if int(np.prod(input_shapes[name])) != int(np.prod(output_shapes[out])):
            raise BadInput(f"state {name}={out}: the input has shape {list(input_shapes[name])}, the output "
                             f"{list(output_shapes[out])}; pair an output of the same size")
    if len(pairs) == len(input_shapes):
        raise BadInput("every input is a state input: leave at least one input for the frames")


def frames_and_initial(arrays: Mapping[str, np.ndarray], input_shapes: Mapping[str, tuple[int, ...]],
                       pairs: Mapping[str, str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split the user's arrays into per-step frames ``(T, *shape)`` and initial states (zeros when absent)."""
    frames: dict[str, np.ndarray] = {}
    for name, shape in input_shapes.items():
        if name in pairs:
            continue
        if name not in arrays:
            raise BadInput(f"the input file lacks frames for input {name!r}; it holds {sorted(arrays)}")
        a = np.asarray(arrays[name], dtype=np.float32)
        if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != tuple(shape):
            raise BadInput(f"input {name!r} has shape {list(a.shape)}; streaming takes its frames as (steps, "
                             f"{', '.join(map(str, shape))}), one model input per step")
        frames[name] = a
    steps = {len(a) for a in frames.values()}
    if len(steps) > 1:
        raise BadInput(f"the frame inputs have different numbers of steps: {sorted(steps)}")
    if not steps or not next(iter(steps)):
        raise BadInput("the input file holds no steps; give at least one frame")
    initial = {}
    for name in pairs:
        given = arrays.get(name)
        shape = tuple(input_shapes[name])
        if given is None:
            initial[name] = np.zeros(shape, dtype=np.float32)
        elif tuple(np.shape(given)) == shape:
            initial[name] = np.asarray(given, dtype=np.float32)
        elif tuple(np.shape(given)) == (len(next(iter(frames.values()))),) + shape:
            initial[name] = np.asarray(given[0], dtype=np.float32)  # a state per step (a record's inputs)
        else:
            raise BadInput(f"state input {name!r} in the input file has shape {list(np.shape(given))}; as the "
                             f"initial state it needs the model's shape {list(shape)}, or one per step (or leave "
                             "it out for zeros)")
    return frames, initial


def note(pairs: Mapping[str, str], fed: Mapping[str, np.ndarray]) -> str:
    """What a streamed record's numbers are, for its notes."""
    steps = len(next(iter(fed.values())))
    memory = sorted(k[len("memory:"):] for k in fed if k.startswith("memory:"))
    state = ", ".join([f"{k}←{v}" for k, v in pairs.items()] + [f"memory {m}" for m in memory])
    return (f"streamed over {steps} steps, state {state}: each backend "
            "carries its own state (closed loop, so drift accumulates as on the device); the emulated floor sweep "
            "and the diagnosis run each step on the reference's state (teacher-forced)")


def streamed(state: str, model: Any, input_file: str = "") -> bool:
    """Whether a model runs as a stream: state pairs named, or memory layers (ReadValue/Assign) in it and an input
    file of frames (without one, a memory model runs one inference from its initial state)."""
    return bool(state or (model.info.get("memory") and input_file))


def model_stream_inputs(state: str, input_file: str, model: Any) -> tuple[dict[str, str], dict[str, np.ndarray],
                                                                          dict[str, np.ndarray]]:
    """(state pairs, frames (steps, *shape), initial states) of ``model`` (a ModelBundle with its IR) from the
    ``state`` setting and the input file, checked against the model."""
    import openvino as ov

    pairs = parse_state_pairs(state)
    if not input_file:
        what = f"state={state}" if state else "a model with memory layers (ReadValue/Assign)"
        raise BadInput(f"{what} streams frames: give them in input_file=FRAMES.npz (--input), each frame input "
                         "as (steps, *shape)")
    outputs = {p.any_name: tuple(int(d) for d in p.get_shape())
               for p in ov.Core().read_model(str(model.ir_xml)).outputs}
    check_pairs(pairs, model.input_shapes, outputs)
    arrays = inputs_mod.read_file(input_file)
    if not isinstance(arrays, dict):
        arrays = {next(n for n in model.input_names if n not in pairs): arrays}
    frames, initial = frames_and_initial(arrays, model.input_shapes, pairs)
    for name, a in frames.items():
        inputs_mod.validate(name, a, model.input_shapes[name], batched=True)
    return pairs, frames, initial



_REFERENCE: dict[tuple, tuple] = {}


def reference_stream(model: Any, pairs: Mapping[str, str], frames: Mapping[str, np.ndarray],
                     initial: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str, Any]:
    """(the inputs of every step as the FP32 reference streamed them, its backend, its BackendResult): OpenVINO
    CPU, kept for the process (a diagnosis asks for it several times)."""
    from gnaexp.backends import make_backend

    key = (str(model.ir_xml), tuple(pairs.items()), inputs_mod.fingerprint({**frames, **initial}))
    if key not in _REFERENCE:
        _REFERENCE.clear()
        _REFERENCE[key] = make_backend("openvino:CPU").stream(model, frames, pairs, initial)
    result, fed = _REFERENCE[key]
    return fed, "openvino:CPU", result
