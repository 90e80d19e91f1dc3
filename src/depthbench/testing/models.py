"""Checks of the models against what they claim: `randomized` (weights whose norms, biases, BN
statistics and position-bias tables are random, so parity with timm or torchvision cannot pass by
zero-initialised branches) and `measured_step` (the live tensors of a real training step: what
`models.complexity.training_memory` estimates)."""

from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from depthbench.models import create_model


def randomized(state: dict, seed: int = 0) -> dict:
    """A copy of `state` whose norms, biases, BN statistics and position-bias tables are random, so
    parity cannot pass by zero-initialised branches (timm zero-inits each block's last BN)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v.clone()
        elif k.endswith("running_var"):
            out[k] = 0.5 + torch.rand(v.shape, generator=g)
        elif "relative_position_bias_table" in k:
            out[k] = torch.randn(v.shape, generator=g)
        elif v.ndim == 1 and k.endswith("weight"):
            out[k] = 1 + 0.2 * torch.randn(v.shape, generator=g)
        elif v.ndim == 1:
            out[k] = 0.1 * torch.randn(v.shape, generator=g)
        else:
            out[k] = v.clone()
    return out


class LivePeak(TorchDispatchMode):
    """The most bytes of tensor storage created inside the mode that are alive at once (a
    storage counts from the op that made it until its last reference goes)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.live:
                s = t.untyped_storage()
                self.live[s.data_ptr()] = (StorageWeakRef(s), s.nbytes())
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


def measured_step(name: str, batch: int, size: int) -> int:
    """Peak live bytes of an fp32 AdamW training step on the CPU: the weights and optimizer
    state (made by a first step), then what its forward and backward pass hold at most."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, img_size=size)
    opt = torch.optim.AdamW(model.parameters())
    x, y = torch.randn(batch, 3, size, size), torch.zeros(batch, dtype=torch.long)

    def step():
        torch.nn.functional.cross_entropy(model(x), y).backward()

    step()
    opt.step()
    opt.zero_grad()
    with LivePeak() as live:
        step()
    return 3 * 4 * sum(p.numel() for p in model.parameters()) + live.peak
