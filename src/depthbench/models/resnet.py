"""ResNet and SE-ResNet.

Papers: `Deep Residual Learning for Image Recognition` - https://arxiv.org/abs/1512.03385
        `Squeeze-and-Excitation Networks` - https://arxiv.org/abs/1709.01507

One configurable `ResNet`: the block type (BasicBlock for 18/34, Bottleneck for 50) and an optional
`attn_layer` are passed in, so SE-ResNet is ResNet with `attn_layer=SEModule`, applied after the
block's last conv+BN and before the residual addition. SE-ResNet-50 is the Bottleneck network (the
source study's code built it from BasicBlocks by mistake). Module names follow timm's and
torchvision's (`layer1.0.conv1`, `layer1.0.se.fc1`, `downsample.0`, `fc`), so their state dicts
load with a plain `load_state_dict`.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from depthbench.layers import DropPath, PointwiseConv2d, SEModule, linear_rates
from depthbench.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, attn_layer=None, drop_path: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = attn_layer(planes) if attn_layer is not None else None  # name kept for weights
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.downsample = downsample
        self.act2 = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        return self.act2(x + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, "ResNet v1.5"), 1x1 expand x4 (ResNet-50).

    The unstrided 1x1 convs are `PointwiseConv2d`: one matrix product on channels_last CPU input.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, attn_layer=None, drop_path: float = 0.0):
        super().__init__()
        outplanes = planes * self.expansion
        self.conv1 = PointwiseConv2d(inplanes, planes, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = PointwiseConv2d(planes, outplanes, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.se = attn_layer(outplanes) if attn_layer is not None else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.downsample = downsample
        self.act3 = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        return self.act3(x + shortcut)


class ResNet(nn.Module):
    """ResNet with a 7x7 stem, four stages (64, 128, 256, 512 planes) and a linear classifier.

    `img_size` is recorded only (the network accepts any size >= 32 px); `zero_init_last`
    zero-initialises each block's last BN weight (timm's default: every block starts as identity).
    """

    channels_last_friendly = True  # convs and BN run faster with NHWC on CPU (oneDNN) and GPU

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, ...],
                 num_classes: int = 1000, in_chans: int = 3, attn_layer=None,
                 drop_path_rate: float = 0.0, img_size: int | None = None,
                 zero_init_last: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.img_size = img_size or 224
        self.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        dpr = iter(linear_rates(drop_path_rate, sum(layers)))  # stochastic depth, 0 -> rate
        inplanes = 64
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                out = planes * block.expansion  # 1x1 projection shortcut ("option B")
                proj = (PointwiseConv2d(inplanes, out, bias=False) if stride == 1
                        else nn.Conv2d(inplanes, out, 1, stride=stride, bias=False))
                downsample = nn.Sequential(proj, nn.BatchNorm2d(out))
            blocks = []
            for j in range(depth):
                blocks.append(block(inplanes, planes, stride if j == 0 else 1,
                                    downsample if j == 0 else None, attn_layer, next(dpr)))
                inplanes = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))  # name kept for weights
        self.num_features = inplanes
        self.fc = nn.Linear(inplanes, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_last:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))  # B, 64, H/4, W/4
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)  # B, 512*expansion, H/32, W/32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean((2, 3))  # global average pool: B, C
        return self.fc(x)


def _resnet(block, layers, se_drop: float | None = None, **kwargs) -> ResNet:
    attn_layer = None if se_drop is None else partial(SEModule, gate_drop=se_drop)
    return ResNet(block, layers, attn_layer=attn_layer, **kwargs)


@register_model("resnet", "ResNet-18")
def resnet18(**kwargs) -> ResNet:
    return _resnet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model("resnet", "ResNet-34")
def resnet34(**kwargs) -> ResNet:
    return _resnet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model("resnet", "ResNet-50")
def resnet50(**kwargs) -> ResNet:
    return _resnet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model("seresnet", "SE-ResNet-18")
def seresnet18(se_drop: float = 0.0, **kwargs) -> ResNet:
    return _resnet(BasicBlock, (2, 2, 2, 2), se_drop=se_drop, **kwargs)


@register_model("seresnet", "SE-ResNet-34")
def seresnet34(se_drop: float = 0.0, **kwargs) -> ResNet:
    return _resnet(BasicBlock, (3, 4, 6, 3), se_drop=se_drop, **kwargs)


@register_model("seresnet", "SE-ResNet-50")
def seresnet50(se_drop: float = 0.0, **kwargs) -> ResNet:
    return _resnet(Bottleneck, (3, 4, 6, 3), se_drop=se_drop, **kwargs)  # Bottleneck, as the paper
