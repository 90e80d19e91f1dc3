"""Model costs: parameters and multiply-accumulates (MACs) of one forward pass of one image, and
the memory one training step holds (`training_memory`).

MACs are counted by `torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products;
MACs = FLOPs / 2). Attention is counted on the explicit path (two batched matmuls per window),
because the fused CPU kernel of `scaled_dot_product_attention` has no flop formula there and would
be missed; the explicit and fused paths do the same arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from depthbench.errors import ConfigError
from depthbench.models.registry import create_model, family, list_models
from depthbench.models.swin import default_window_size


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, img_size: int, in_chans: int = 3) -> int:
    """MACs of one eval-mode forward pass of one `img_size` x `img_size` image."""
    p = next(model.parameters())
    x = torch.zeros(1, in_chans, img_size, img_size, device=p.device, dtype=p.dtype)
    fused = {m: m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")}
    was_training = model.training
    try:
        for m in fused:
            m.fused_attn = False
        model.eval()
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for m, v in fused.items():
            m.fused_attn = v
        model.train(was_training)
    return counter.get_total_flops() // 2


def meta_model(name: str, num_classes: int = 2, **kwargs) -> nn.Module:
    """Model `name` built on the meta device: shapes only, no memory, no arithmetic (for counting
    and for checking options); the one place that does it."""
    with torch.device("meta"):
        return create_model(name, num_classes=num_classes, **kwargs)


def model_macs(name: str, img_size: int, num_classes: int = 2, **kwargs) -> int:
    """MACs of one `img_size` image through model `name` built with `kwargs` on the meta device
    (`img_size` in `kwargs` is replaced by the argument)."""
    kwargs = {**kwargs, "img_size": img_size}
    return count_macs(meta_model(name, num_classes, **kwargs), img_size)


def macs_224(name: str, num_classes: int = 2, **kwargs) -> int:
    """MACs of one 224 x 224 image for model `name` with the options `kwargs` (e.g. a run's
    `model_kwargs()`): `img_size` is replaced by 224 and a Swin `window_size` by 224's default
    (7), so runs at different resolutions compare on one scale."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("img_size", "window_size")}
    return model_macs(name, 224, num_classes, **kwargs)


def model_costs(img_size: int = 224, num_classes: int = 1000) -> list[dict]:
    """One row per registered model (`depthbench models`): name, family, params, macs,
    img_size (+ window_size for Swin).

    Models are built on the meta device: shapes only, no weights, so listing every model takes
    seconds; parameter counts and MACs depend on shapes alone.
    """
    if img_size < 32:
        raise ConfigError(f"--img-size {img_size} is too small: the models downsample by 32; "
                          "use 32 or more")
    if num_classes < 1:
        raise ConfigError(f"--num-classes {num_classes} must be at least 1")
    window = default_window_size(img_size)  # ConfigError (one line) if no Swin window tiles it
    rows = []
    for name in list_models():
        fam = family(name)
        kwargs = {"img_size": img_size}
        if fam == "swin":
            kwargs["window_size"] = window
        model = meta_model(name, num_classes, **kwargs)
        row = {"name": name, "family": fam, "params": count_params(model),
               "macs": count_macs(model, img_size), "img_size": img_size}
        if fam == "swin":
            row["window_size"] = window
        rows.append(row)
    return rows


# fp32 tensors the optimizer keeps per parameter: Adam(W)'s two moments, SGD's momentum
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes of the live tensors of one fp32 training step at its peak, estimated."""

    states: int  # weights, gradients, optimizer state and the backward pass's temporaries
    activations: int  # what autograd saves for backward at the batch size

    @property
    def total(self) -> int:
        return self.states + self.activations


def training_memory(name: str, img_size: int, batch_size: int, optimizer: str = "adamw",
                    num_classes: int = 2, **kwargs) -> TrainingMemory:
    """The memory a training step of model `name` holds at `img_size` and `batch_size`, built on
    the meta device (shapes only: no memory, no arithmetic).

    Activations are the tensors autograd saves in a training-mode forward pass (each storage
    once, parameters left out), counted with `saved_tensors_hooks`; they grow linearly with the
    batch, so two images are counted and scaled. An upper bound of the live tensors: gradients
    grow while the saved tensors are freed, and bf16-mixed saves most of them in half the
    bytes (tests/test_study.py compares it with a step measured on the CPU)."""
    model = meta_model(name, num_classes, **{**kwargs, "img_size": img_size}).train()
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in params:  # a view saved twice is one storage
            saved[storage._cdata] = storage.nbytes()
        return t

    probe = 2
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.zeros(probe, 3, img_size, img_size, device="meta"))
    # fp32 weights, gradients and optimizer state, and as much again as the gradients for the
    # temporaries of the backward pass (a Swin step measured on the CPU needs it)
    states = 4 * count_params(model) * (3 + OPTIMIZER_STATES.get(optimizer, 2))
    return TrainingMemory(states, sum(saved.values()) * batch_size // probe)
