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
    run on zeros after their end, and that part is cut off. Each stream's numbers are those of streaming it alone.
    Each step's chunks are cut when it runs (``StepChunks``): memory holds the signals and the tracks, whatever
    their length."""
    from gnaexp.backends.base import stream_steps

    frames = StepChunks(audios)
    n, lengths = len(frames.audios), frames.lengths
    state = np.zeros((n,) + STATE_SHAPE, dtype=np.float32)
    if n == 1:  # a step that takes one stream at a time (torch, OpenVINO)
        state = state[0]
    outs, _ = stream_steps(step, {"chunk": frames}, {"state": "next_state"}, {"state": state}, keep_fed=False)
    steps = len(frames)
    probs = outs.pop("probability").reshape(steps, n)
    states = outs.pop("next_state").reshape(steps, n, 2, STATE_SHAPE[-1])
    # each stream's tracks are views of these arrays: no second copy of every track at the end
    return [Stream(probs[:m, i], states[:m, i]) for i, m in enumerate(lengths)]


class StepChunks:
    """The step inputs of one or more signals, cut when a step asks for them: ``[t]`` is step t's (N, 1, 576)
    chunks, or (1, 576) for one signal; the same values as ``chunks`` (after a signal's end, zeros).

    Many signals are cut BLOCK_STEPS steps at a time into one (N, samples) block, so that a step's chunks are one
    slice of it rather than one Python copy per signal (0.35 ms a step for 250 streams, a twentieth of the
    emulator's step); the block is a bounded buffer, not a copy of the audio."""

    BLOCK_STEPS = 16

    def __init__(self, audios: list[np.ndarray]) -> None:
        self.audios = [np.asarray(a, dtype=np.float32).reshape(-1) for a in audios]
        self.lengths = [-(-len(a) // CHUNK) for a in self.audios]  # steps per signal
        self._block: tuple[int, np.ndarray] | None = None  # (first step, the block's samples (N, CONTEXT + …))
        self._spare: np.ndarray | None = None  # the last block's memory, cut into again (its chunks were copied)

    def __len__(self) -> int:
        return max(self.lengths)

    def __getitem__(self, t: int) -> np.ndarray:
        if len(self.audios) == 1:
            return self._cut(t, 1)[0]
        first = t - t % self.BLOCK_STEPS
        if self._block is None or self._block[0] != first:
            self._block = (first, self._cut(first, self.BLOCK_STEPS, self._spare).reshape(len(self.audios), -1))
            self._spare = self._block[1]
        at = (t - first) * CHUNK
        return self._block[1][:, None, at:at + STEP_INPUT].copy()

    def _cut(self, t: int, steps: int, into: np.ndarray | None = None) -> np.ndarray:
        """Steps t … t + steps − 1 of every signal as (N, 1, CONTEXT + steps·CHUNK) samples: the context before
        step t (zeros before the signal), then the steps' own samples (zeros past the signal's end). ``into``:
        memory of that size to write them in (a block's memory, reused: 1 ms less per block of 250 streams)."""
        shape = (len(self.audios), 1, CONTEXT + steps * CHUNK)
        out = into.reshape(shape) if into is not None and into.size == np.prod(shape) else np.empty(shape, np.float32)
        start = t * CHUNK - CONTEXT
        skip = max(0, -start)
        rows = out[:, 0]
        if skip:
            rows[:, :skip] = 0.0
        whole = shape[2] - skip
        for i, a in enumerate(self.audios):
            part = a[start + skip:(t + steps) * CHUNK]
            rows[i, skip:skip + len(part)] = part
            if len(part) < whole:  # past the signal's end
                rows[i, skip + len(part):] = 0.0
        return out


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
