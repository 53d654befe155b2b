"""Silero VAD (16 kHz) as a plain torch module on the weights the ``silero-vad`` package ships.

The package (MIT, pinned in requirements.txt) is the reference nobody here wrote: ``silero_vad.jit`` is its
TorchScript model of this small net:
reflect pad 64 → STFT as Conv1d(1→258, k 256, s 128, no bias) → magnitude over 129 bins → four
Conv1d(k 3, pad 1)+ReLU (129→128→64 s2→64 s2→128) → LSTMCell(128, 128) → ReLU → Conv1d 1×1 → Sigmoid → mean.
One step reads 512 new samples plus the previous 64 (the context) and carries the LSTM state (h, c).

The weights are read from the TorchScript model's 16 kHz branch. The package's ``silero_vad_16k.safetensors``
holds the same architecture with other weights (in 6.2.3 conv1's differ by up to 4.0), so it is not the model
the package runs. Streaming, the IR and everything that needs no torch live in ``gnaexp.vad.stream``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn

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
