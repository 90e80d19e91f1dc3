"""Stochastic depth ("drop path"): drop a whole residual branch per sample.

Paper: `Deep Networks with Stochastic Depth` - https://arxiv.org/abs/1603.09382
Same semantics as timm's `DropPath` (survivors scaled by 1/keep), written out here so the layer
stack has no runtime dependency on timm (timm is a dev dependency, used for parity tests only).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def drop_path(x: torch.Tensor, p: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zero the branch `x` for a random fraction `p` of the samples; scale the rest by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample, broadcast over the rest
    mask = x.new_empty(shape).bernoulli_(keep)
    if keep > 0.0:
        mask.div_(keep)
    return x * mask


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"


def linear_rates(rate: float, n: int) -> list[float]:
    """`n` rates rising linearly from 0 (first block) to `rate` (last block), as timm does."""
    if n <= 1:
        return [0.0] * n
    return [rate * i / (n - 1) for i in range(n)]
