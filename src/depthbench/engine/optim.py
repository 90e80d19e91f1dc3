"""Optimizer and learning-rate schedule of a recipe."""

from __future__ import annotations

import math

import torch
from torch import nn

from depthbench.engine.config import TrainConfig

# Parameters that get no weight decay besides biases and norm weights (all 1-d): timm's
# `no_weight_decay()` names for Swin's position tables.
_NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed", "pos_embed", "cls_token")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and norms / biases / position tables without decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or any(k in name for k in _NO_DECAY_NAMES):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


# Devices with PyTorch's fused (one kernel per step) Adam, AdamW and SGD.
FUSED_DEVICES = ("cpu", "cuda")


def use_fused(params) -> bool:
    """Whether the optimizer of `params` can run fused: every parameter a float on a FUSED_DEVICE.

    Fused is the same update as PyTorch's CPU default (the for-loop implementation), in one pass
    over each parameter instead of one per elementwise op: faster at small images, where the
    optimizer step weighs most, and within noise at 224 px (`python -m
    benchmarks.bench_optimizer`; the figures are in BENCHMARKS.md).
    """
    params = list(params)
    return bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point()
                                for p in params)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 0.0,
                   fused: bool | None = None) -> torch.optim.Optimizer:
    """The recipe's optimizer `name` ("adam", "adamw", "sgd") for `model`; `fused`: PyTorch's fused
    kernel on or off, None: `use_fused` (the engine's choice; benchmarks pass False to compare)."""
    if fused is None:
        fused = use_fused(model.parameters())
    if name == "adam" and not weight_decay:
        # the source study: torch.optim.Adam(model.parameters(), lr) and nothing else
        return torch.optim.Adam(model.parameters(), lr=lr, fused=fused)
    groups = param_groups(model, weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, fused=fused)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, fused=fused)


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): linear warmup, then cosine
    down to `min_lr` at the end of the last epoch (or constant)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total - 1)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if cfg.scheduler == "constant":
        return 1.0
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def build_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                    cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per optimizer step. A plain closure: its state_dict holds only numbers."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg))
