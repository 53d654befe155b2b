"""The forum's three nets as PyTorch modules (a user's model file is read by ``ir.convert_file``).

All forum nets are 1-D, batch 1, NCW. Weights come from a seed so that the same config gives the same net.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from gnaexp.core.errors import BadInput


@dataclass(frozen=True)
class NetSpec:
    """Shape parameters shared by the forum nets (defaults are the forum's)."""

    in_channels: int = 2  # channels of one concat input
    copies: int = 3  # how many times concat repeats its input
    conv_in_channels: int = 6  # channels the conv sees (= in_channels * copies for concat_conv)
    out_channels: int = 4
    kernel: int = 3
    stride: int = 2
    length: int = 255


class SelfConcat(nn.Module):
    """The input concatenated with itself ``copies`` times on the channel axis ("self-cat")."""

    def __init__(self, copies: int) -> None:
        super().__init__()
        self.copies = copies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x] * self.copies, dim=1)


def _seeded_conv(c_in: int, c_out: int, kernel: int, stride: int, seed: int) -> nn.Conv1d:
    # torch's default (Kaiming-uniform) init under a private generator: same seed, same weights,
    # whatever else the process has drawn from the global RNG.
    gen = torch.Generator().manual_seed(seed)
    conv = nn.Conv1d(c_in, c_out, kernel_size=kernel, stride=stride, padding=0, bias=True)
    bound = 1.0 / (c_in * kernel) ** 0.5
    with torch.no_grad():
        for p in conv.parameters():  # the weight, then the bias: the order of the draws
            p.uniform_(-bound, bound, generator=gen)
    return conv


def build_net(name: str, spec: NetSpec, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    """Return (module in eval mode, input shape) for a forum net: conv | concat | concat_conv."""
    if name == "conv":
        net: nn.Module = _seeded_conv(spec.conv_in_channels, spec.out_channels, spec.kernel, spec.stride, seed)
        shape = (1, spec.conv_in_channels, spec.length)
    elif name == "concat":
        net = SelfConcat(spec.copies)
        shape = (1, spec.in_channels, spec.length)
    elif name == "concat_conv":
        c = spec.in_channels * spec.copies
        net = nn.Sequential(SelfConcat(spec.copies), _seeded_conv(c, spec.out_channels, spec.kernel, spec.stride, seed))
        shape = (1, spec.in_channels, spec.length)
    else:
        raise BadInput(f"unknown net {name!r}; valid: conv, concat, concat_conv")
    return net.eval(), shape
