"""Forward hooks that read one model's real forward pass (eval mode only): block outputs (for
CKA, kept as one minibatch's Gram matrices), SE gates (the output of each `SEModule.gate`) and
Swin attention probabilities (the output of each `WindowAttention.softmax`, which only the
explicit attention path produces, so the probe switches the fused path off while it is attached).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from depthbench.analysis.attention import head_statistics
from depthbench.analysis.cka import gram
from depthbench.layers import SEModule, WindowAttention

SATURATED = 0.95  # a gate at or above this passes its channel (almost) unchanged


class TrainingModeError(RuntimeError):
    """A statistic was about to be read from a model in training mode."""


def _check_eval(module: nn.Module) -> None:
    if module.training:
        raise TrainingModeError(f"{type(module).__name__} is in training mode: the analysis reads "
                                "eval-mode forward passes only (call model.eval())")


@dataclass
class Block:
    """One residual / Swin block whose output feeds CKA."""
    name: str
    stage: int
    module: nn.Module
    grid: tuple[int, int] = (0, 0)  # spatial size of its output, filled on the first pass


@dataclass
class SEStats:
    name: str
    stage: int
    sums: torch.Tensor  # classes, C: sum of gates
    counts: torch.Tensor  # classes: images
    saturated: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    total: int = 0


@dataclass
class AttnStats:
    name: str
    stage: int
    window: int
    pitch: float  # input pixels per token at this stage
    shifted: bool
    mask: torch.Tensor | None = None  # nW, N, N shift mask (0 = allowed) or None
    dist: torch.Tensor | None = None
    ent: torch.Tensor | None = None
    queries: int = 0


def blocks_of(model: nn.Module) -> list[Block]:
    """Residual blocks of a ResNet (`layerS.j`) or Swin blocks (`layers.S.blocks.j`), in order."""
    if hasattr(model, "layer1"):
        return [Block(f"layer{s}.{j}", s, blk) for s in range(1, 5)
                for j, blk in enumerate(getattr(model, f"layer{s}"))]
    return [Block(f"layers.{s}.blocks.{j}", s + 1, blk) for s, stage in enumerate(model.layers)
            for j, blk in enumerate(stage.blocks)]


class Probe:
    """Attach to `model` (eval mode), feed minibatches with `step(x, y)`, then `detach()`."""

    def __init__(self, model: nn.Module, num_classes: int, patch: int = 4):
        self.model = model
        self.blocks = blocks_of(model)
        self.grams: list[torch.Tensor] = []  # per minibatch: blocks, n, n
        self._batch_grams: list[torch.Tensor] = []
        self._labels: torch.Tensor | None = None
        self.se: list[SEStats] = []
        self.attn: list[AttnStats] = []
        self._handles = []
        self._fused = None
        for blk in self.blocks:
            self._handles.append(blk.module.register_forward_hook(self._block_hook(blk)))
            for name, m in blk.module.named_modules():
                if isinstance(m, SEModule):
                    st = SEStats(f"{blk.name}.{name}", blk.stage,
                                 torch.zeros(num_classes, m.fc2.out_channels, dtype=torch.float64),
                                 torch.zeros(num_classes, dtype=torch.float64))
                    self.se.append(st)
                    self._handles.append(m.gate.register_forward_hook(self._se_hook(m, st)))
                elif isinstance(m, WindowAttention):
                    st = AttnStats(f"{blk.name}", blk.stage, m.window_size,
                                   float(patch * 2 ** (blk.stage - 1)),
                                   bool(getattr(blk.module, "shift_size", 0)),
                                   getattr(blk.module, "attn_mask", None))
                    self.attn.append(st)
                    mask = st.mask
                    self._handles.append(m.softmax.register_forward_hook(
                        self._attn_hook(m, st, mask)))
        if self.attn:
            self._fused = {m: m.fused_attn for m in model.modules()
                           if isinstance(m, WindowAttention)}
            for m in self._fused:
                m.fused_attn = False

    # hooks ------------------------------------------------------------------------------------
    def _block_hook(self, blk: Block):
        def hook(module, inputs, out):
            _check_eval(module)
            cnn = hasattr(module, "conv1")  # ResNet block: B, C, H, W; Swin block: B, H, W, C
            blk.grid = tuple(out.shape[2:4]) if cnn else tuple(out.shape[1:3])
            self._batch_grams.append(gram(out.detach().float()))
        return hook

    def _se_hook(self, se: SEModule, st: SEStats):
        def hook(module, inputs, out):
            _check_eval(se)
            g = out.detach().double().flatten(1).cpu()  # B, C
            y = self._labels
            st.sums.index_add_(0, y, g)
            st.counts.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
            st.saturated = st.saturated + (g >= SATURATED).sum()
            st.total += g.numel()
        return hook

    def _attn_hook(self, attn: WindowAttention, st: AttnStats, mask):
        def hook(module, inputs, out):
            _check_eval(attn)
            d, e, q = head_statistics(out.detach(), attn.window_size, st.pitch, mask)
            d, e = d.cpu(), e.cpu()
            st.dist = d if st.dist is None else st.dist + d
            st.ent = e if st.ent is None else st.ent + e
            st.queries += q
        return hook

    # driving ----------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One minibatch through the model; returns its logits."""
        _check_eval(self.model)
        self._labels = y.to(torch.long).cpu()
        self._batch_grams = []
        logits = self.model(x)
        self.grams.append(torch.stack([g.cpu() for g in self._batch_grams]))
        return logits

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        for m, fused in (self._fused or {}).items():
            m.fused_attn = fused
