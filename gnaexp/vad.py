"""Silero VAD (16 kHz) as a plain torch module on the weights the ``silero-vad`` package ships, and streaming.

The package (MIT, pinned in requirements.txt) is the reference nobody here wrote: ``silero_vad.jit`` is its
TorchScript model of this small net:
reflect pad 64 → STFT as Conv1d(1→258, k 256, s 128, no bias) → magnitude over 129 bins → four
Conv1d(k 3, pad 1)+ReLU (129→128→64 s2→64 s2→128) → LSTMCell(128, 128) → ReLU → Conv1d 1×1 → Sigmoid → mean.
One step reads 512 new samples plus the previous 64 (the context) and carries the LSTM state (h, c).

The weights are read from the TorchScript model's 16 kHz branch. The package's ``silero_vad_16k.safetensors``
holds the same architecture with other weights (in 6.2.3 conv1's differ by up to 4.0), so it is not the model
the package runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
CHUNK = 512  # new samples per step
CONTEXT = 64  # samples of the previous step read again
STEP_INPUT = CHUNK + CONTEXT  # 576
STATE_SHAPE = (2, 1, 128)  # (h, c) × batch × hidden
JIT_FILE = "silero_vad.jit"
# our parameter → the TorchScript 16 kHz model's (``_model``)
JIT_NAMES = {"stft_conv.weight": "stft.forward_basis_buffer", "lstm_cell.weight_ih": "decoder.rnn.weight_ih",
             "lstm_cell.weight_hh": "decoder.rnn.weight_hh", "lstm_cell.bias_ih": "decoder.rnn.bias_ih",
             "lstm_cell.bias_hh": "decoder.rnn.bias_hh", "final_conv.weight": "decoder.decoder.2.weight",
             "final_conv.bias": "decoder.decoder.2.bias",
             **{f"conv{i + 1}.{p}": f"encoder.{i}.reparam_conv.{p}" for i in range(4) for p in ("weight", "bias")}}


def package_file(name: str) -> Path:
    """A file of the installed silero-vad package's data folder."""
    try:
        return Path(str(resources.files("silero_vad.data").joinpath(name)))
    except ModuleNotFoundError:
        raise RuntimeError("the silero-vad package is not installed: pip install -r requirements.txt") from None


def jit_model() -> torch.jit.ScriptModule:
    return torch.jit.load(str(package_file(JIT_FILE)), map_location="cpu").eval()


class SileroVAD(nn.Module):
    """One streaming step: (chunk with context (N, 576), state (2, N, 128)) → (probability (N, 1), state)."""

    def __init__(self) -> None:
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, bias=False)
        self.conv1 = nn.Conv1d(129, 128, 3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
        self.lstm_cell = nn.LSTMCell(128, 128)
        self.final_conv = nn.Conv1d(128, 1, 1)

    def forward(self, chunk: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = nn.functional.pad(chunk.unsqueeze(1), (0, 64), mode="reflect")
        x = self.stft_conv(x)
        x = torch.sqrt(x[:, :129] ** 2 + x[:, 129:] ** 2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = torch.relu(conv(x))
        h, c = self.lstm_cell(x.squeeze(-1), (state[0], state[1]))
        p = torch.sigmoid(self.final_conv(torch.relu(h).unsqueeze(-1)))
        return p.squeeze(1).mean(dim=1, keepdim=True), torch.stack([h, c])


def build() -> SileroVAD:
    """The module with the package's trained weights, in eval mode."""
    inner = jit_model()._model
    tensors = dict(inner.named_parameters()) | dict(inner.named_buffers())
    net = SileroVAD()
    net.load_state_dict({ours: tensors[theirs].detach().clone() for ours, theirs in JIT_NAMES.items()})
    return net.eval()


def chunks(audio: np.ndarray) -> np.ndarray:
    """(steps, 576) step inputs of a mono float signal: zero-padded to whole chunks, each with its context."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    steps = -(-len(audio) // CHUNK)
    padded = np.zeros(CONTEXT + steps * CHUNK, dtype=np.float32)
    padded[CONTEXT:CONTEXT + len(audio)] = audio
    return np.stack([padded[i * CHUNK:i * CHUNK + STEP_INPUT] for i in range(steps)])


INPUTS = ("chunk", "state")
OUTPUTS = ("probability", "next_state")


def export_ir(folder: Path, net: SileroVAD | None = None) -> Path:
    """The step as an OpenVINO IR with static shapes (chunk 1×576, state 2×1×128 in; probability, state out),
    float32 weights, saved atomically. Written once per folder."""
    import openvino as ov

    from gnaexp import ir

    xml = Path(folder) / "silero_vad.xml"
    if xml.exists() and xml.with_suffix(".bin").exists():
        return xml
    model = ov.convert_model(net or build(), example_input=(torch.zeros(1, STEP_INPUT), torch.zeros(STATE_SHAPE)),
                             input=[(1, STEP_INPUT), STATE_SHAPE])
    for port, name in zip(model.inputs, INPUTS):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, OUTPUTS):
        port.get_tensor().set_names({name})
    return ir.save(model, xml)


def model_bundle(folder: Path):
    """The step in every form a backend wants (torch module and IR)."""
    from gnaexp.backends.base import ModelBundle

    net = build()
    return ModelBundle("silero_vad", ir_xml=export_ir(folder, net), torch_module=net, input_names=list(INPUTS),
                       output_names=list(OUTPUTS),
                       input_shapes={"chunk": (1, STEP_INPUT), "state": STATE_SHAPE})


@dataclass
class Stream:
    """Per step: speech probability (steps,) and the state after it (steps, 2, 128)."""

    probability: np.ndarray
    state: np.ndarray


def stream(step, audio: np.ndarray) -> Stream:
    """Run a backend's step ({chunk, state} → {probability, next_state}) over a signal, carrying the state."""
    state = np.zeros(STATE_SHAPE, dtype=np.float32)
    probs, states = [], []
    for x in chunks(audio):
        out = step({"chunk": x[None], "state": state})
        state = np.asarray(out["next_state"], dtype=np.float32).reshape(STATE_SHAPE)
        probs.append(float(np.asarray(out["probability"]).reshape(-1)[0]))
        states.append(state.reshape(2, -1))
    return Stream(np.asarray(probs, dtype=np.float32), np.stack(states))


def stream_batch(step, audios: list[np.ndarray]) -> list[Stream]:
    """Several signals streamed together: each step runs one chunk of every stream (a leading axis of
    streams, for a backend whose step takes one; the emulator's does). Shorter streams run on zeros after their
    end, and that part is cut off. Each stream's numbers are those of streaming it alone."""
    parts = [chunks(a) for a in audios]
    steps, n = max(len(p) for p in parts), len(parts)
    batch = np.zeros((steps, n, 1, STEP_INPUT), dtype=np.float32)
    for i, p in enumerate(parts):
        batch[:len(p), i, 0] = p
    state = np.zeros((n,) + STATE_SHAPE, dtype=np.float32)
    probs = np.empty((steps, n), dtype=np.float32)
    states = np.empty((steps, n, 2, STATE_SHAPE[-1]), dtype=np.float32)
    for t in range(steps):
        out = step({"chunk": batch[t], "state": state})
        state = np.asarray(out["next_state"], dtype=np.float32).reshape((n,) + STATE_SHAPE)
        probs[t] = np.asarray(out["probability"]).reshape(n)
        states[t] = state.reshape(n, 2, -1)
    return [Stream(probs[:len(p), i].copy(), states[:len(p), i].copy()) for i, p in enumerate(parts)]


def jit_probabilities(audio: np.ndarray) -> np.ndarray:
    """Speech probability per chunk from the package's own TorchScript model (it keeps context and state)."""
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
