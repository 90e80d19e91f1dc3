"""Squeeze-and-Excitation channel attention, with optional dropout on the channel gates.

Paper: `Squeeze-and-Excitation Networks` - https://arxiv.org/abs/1709.01507

Parameter layout follows timm's `SEModule` (`fc1`, `fc2`: 1x1 convs with bias) so timm's
`seresnet*` checkpoints load unchanged. The reduced width is channels/16 rounded to a multiple of 8,
at least 8 (timm's `make_divisible`): 64 channels -> 8, 256 -> 16, 2048 -> 128.

`gate_drop` is the "switch off some channels" proposal of the source study: during training each
gate (after the sigmoid) is zeroed with probability p and the survivors are scaled by 1/(1-p), so the
expected gate is unchanged and eval mode is exactly the plain SE block.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """`v` rounded to the nearest multiple of `divisor`, at least `min_value` (default divisor)."""
    min_value = min_value or divisor
    return max(min_value, int(v + divisor / 2) // divisor * divisor)


class SEModule(nn.Module):
    def __init__(self, channels: int, rd_ratio: float = 1 / 16, rd_divisor: int = 8,
                 gate_drop: float = 0.0, act_layer: type[nn.Module] = nn.ReLU):
        super().__init__()
        if not 0.0 <= gate_drop < 1.0:
            raise ValueError(f"gate_drop must be in [0, 1), got {gate_drop}")
        rd_channels = make_divisible(channels * rd_ratio, rd_divisor)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1)
        self.gate = nn.Sigmoid()  # a module (timm's name, no weights) so a hook can read the gates
        self.gate_drop = gate_drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # B, C, 1, 1: squeeze
        g = self.gate(self.fc2(self.act(self.fc1(s))))  # B, C, 1, 1: excitation gates
        if self.gate_drop > 0.0 and self.training:
            g = F.dropout(g, self.gate_drop, training=True)  # per sample and channel, x 1/(1-p)
        return x * g

    def extra_repr(self) -> str:
        return f"gate_drop={self.gate_drop}" if self.gate_drop else ""
