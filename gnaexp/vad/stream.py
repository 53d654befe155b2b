"""Silero VAD (16 kHz) streaming: step inputs, the step's IR and bundle, and running a backend over a signal.

One step reads 512 new samples plus the previous 64 (the context) and carries the LSTM state (h, c). The torch
module with the package's trained weights is ``gnaexp.models.silero``; it is imported only where torch runs or the IR
is converted, so a run whose torch tracks come from the cache needs no torch at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
CHUNK = 512  # new samples per step
CONTEXT = 64  # samples of the previous step read again
STEP_INPUT = CHUNK + CONTEXT  # 576
STATE_SHAPE = (2, 1, 128)  # (h, c) × batch × hidden


def chunks(audio: np.ndarray) -> np.ndarray:
    """(steps, 576) step inputs of a mono float signal: zero-padded to whole chunks, each with its context."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    steps = -(-len(audio) // CHUNK)
    padded = np.zeros(CONTEXT + steps * CHUNK, dtype=np.float32)
    padded[CONTEXT:CONTEXT + len(audio)] = audio
    return np.stack([padded[i * CHUNK:i * CHUNK + STEP_INPUT] for i in range(steps)])


INPUTS = ("chunk", "state")
OUTPUTS = ("probability", "next_state")


def export_ir(folder: Path, net: Any = None) -> Path:
    """The step (``vad_net.SileroVAD``, built when not given) as an OpenVINO IR with static shapes (chunk 1×576,
    state 2×1×128 in; probability, state out), float32 weights, saved atomically. Written once per folder."""
    xml = Path(folder) / "silero_vad.xml"
    if xml.exists() and xml.with_suffix(".bin").exists():
        return xml
    import openvino as ov
    import torch

    from gnaexp.models import ir, silero as vad_net

    model = ov.convert_model(net or vad_net.build(), example_input=(torch.zeros(1, STEP_INPUT),
                                                                    torch.zeros(STATE_SHAPE)),
                             input=[(1, STEP_INPUT), STATE_SHAPE])
    for port, name in zip(model.inputs, INPUTS):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, OUTPUTS):
        port.get_tensor().set_names({name})
    return ir.save(model, xml)


def model_bundle(folder: Path, with_torch: bool = True) -> Any:
    """The step in every form a backend wants: the IR, and the torch module unless ``with_torch`` is False (a
    run whose torch tracks are cached: torch is then not imported)."""
    from gnaexp.backends.base import ModelBundle

    net = None
    if with_torch:
        from gnaexp.models import silero as vad_net

        net = vad_net.build()
    return ModelBundle("silero_vad", ir_xml=export_ir(folder, net), torch_module=net, input_names=list(INPUTS),
                       output_names=list(OUTPUTS),
                       input_shapes={"chunk": (1, STEP_INPUT), "state": STATE_SHAPE})


@dataclass
class Stream:
    """Per step: speech probability (steps,) and the state after it (steps, 2, 128)."""

    probability: np.ndarray
    state: np.ndarray


def stream(step, audio: np.ndarray) -> Stream:
    """Run a backend's step ({chunk, state} → {probability, next_state}) over a signal, carrying the state
    (``backends.base.stream_steps``, the engine every streaming model runs on)."""
    return stream_batch(step, [audio])[0]


def stream_batch(step, audios: list[np.ndarray]) -> list[Stream]:
    """Several signals streamed together: each step runs one chunk of every stream (a leading axis of
    streams, for a backend whose step takes one; the emulator's does; one signal runs without it). Shorter streams
    run on zeros after their end, and that part is cut off. Each stream's numbers are those of streaming it alone."""
    from gnaexp.backends.base import stream_steps

    parts = [chunks(a) for a in audios]
    steps, n = max(len(p) for p in parts), len(parts)
    batch = np.zeros((steps, n, 1, STEP_INPUT), dtype=np.float32)
    for i, p in enumerate(parts):
        batch[:len(p), i, 0] = p
    state = np.zeros((n,) + STATE_SHAPE, dtype=np.float32)
    if n == 1:  # a step that takes one stream at a time (torch, OpenVINO)
        batch, state = batch[:, 0], state[0]
    outs, _ = stream_steps(step, {"chunk": batch}, {"state": "next_state"}, {"state": state})
    probs = outs["probability"].reshape(steps, n)
    states = outs["next_state"].reshape(steps, n, 2, STATE_SHAPE[-1])
    return [Stream(probs[:len(p), i].copy(), states[:len(p), i].copy()) for i, p in enumerate(parts)]


def jit_probabilities(audio: np.ndarray) -> np.ndarray:
    """Speech probability per chunk from the package's own TorchScript model (it keeps context and state)."""
    import torch

    from gnaexp.models.silero import jit_model

    model = jit_model()
    model.reset_states()
    out = []
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    steps = -(-len(audio) // CHUNK)
    padded = np.zeros(steps * CHUNK, dtype=np.float32)
    padded[:len(audio)] = audio
    with torch.no_grad():
        for i in range(steps):
            out.append(float(model(torch.from_numpy(padded[i * CHUNK:(i + 1) * CHUNK])[None], SAMPLE_RATE)))
    return np.asarray(out, dtype=np.float32)
