"""A 1x1, stride-1 convolution that runs as one matrix product on channels_last CPU tensors.

On a channels_last (NHWC) tensor such a convolution *is* a matrix product: every pixel's channel
vector times the (out, in) weight. PyTorch's CPU dispatch does not always see it that way: with
one thread and a batch under 16 it sends unstrided 1x1 convolutions to `_slow_conv2d` (im2col +
GEMM), and with more threads oneDNN's 1x1 kernels run below what one large GEMM gets. Written as
`F.linear` over the NHWC view, ResNet-50's 33 such convolutions make its training step faster on
the CPU (`python -m benchmarks.bench_pointwise`; the figures are in BENCHMARKS.md). GPUs, and
contiguous (NCHW) input, keep the ordinary convolution: not measured there, and on NCHW the
matrix-product form was slower.

The parameters, their shapes and state-dict keys are nn.Conv2d's, so timm and torchvision weights
load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class PointwiseConv2d(nn.Conv2d):
    """`nn.Conv2d(in_channels, out_channels, 1)`, computed as a matrix product over NHWC on CPU."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True,
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, 1, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        if nhwc and x.device.type == "cpu":
            y = F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias)  # B, H, W, out
            return y.permute(0, 3, 1, 2)  # B, out, H, W, still channels_last in memory
        return super().forward(x)
