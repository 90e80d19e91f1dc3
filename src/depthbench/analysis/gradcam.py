"""Grad-CAM (Selvaraju et al., ICCV 2017) through the maintained `grad-cam` package
(`pytorch_grad_cam`), for the CNNs and for Swin (its blocks output B, H, W, C token maps, which the
reshape transform turns into B, C, H, W feature maps).

The target layer is the last block of the deepest stage whose output grid is at least `MIN_GRID`
on a side (the usual choice, the last stage, at 224 px; at 32 px the last stage is 1 x 1 and its
map would be a constant, so an earlier stage is taken and named in the record).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from depthbench.analysis.probe import Block

MIN_GRID = 4


def target_block(blocks: list[Block]) -> Block:
    """The last block whose grid is >= MIN_GRID on both sides, else the largest
    grid's."""
    big = [b for b in blocks if min(b.grid) >= MIN_GRID]
    if big:
        return big[-1]
    return max(reversed(blocks), key=lambda b: min(b.grid))


def _tokens_to_map(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)  # Swin block output B, H, W, C -> B, C, H, W


def grad_cam(model: nn.Module, block: Block, x: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """Grad-CAM maps (n, H, W of the input, each scaled to [0, 1] by the library) for the class
    `classes[i]` of image i, at `block`'s output. The model stays in eval mode."""
    # imported on use: grad-cam loads OpenCV (seconds), which only this function needs
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cnn = hasattr(block.module, "conv1")
    with torch.enable_grad(), GradCAM(model=model, target_layers=[block.module],
                                      reshape_transform=None if cnn else _tokens_to_map) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])
    return torch.from_numpy(maps).float()
