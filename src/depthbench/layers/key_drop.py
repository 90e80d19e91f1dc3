"""Key dropout for window attention: the source study's proposal, in two forms.

- `element`: dropout on the key tensor K (entries zeroed, survivors scaled by 1/(1-p)) before the
  query-key product. Each dropped entry removes one channel of one key from every logit it feeds.
- `dropkey`: DropKey (Li et al., CVPR 2023, https://arxiv.org/abs/2208.02646): a Bernoulli(p) mask
  on the attention logits; a masked logit gets a large negative number before the softmax, so that
  query ignores that key; no rescaling (the softmax renormalises over the surviving keys).

Both act only in training: in eval mode, or at rate 0, attention is exactly the plain one. The
default mode is `depthbench.names.DEFAULT_KEY_DROP_MODE` (`dropkey`), for every caller.
`key_drop_rates` spreads a rate over the blocks: `constant`, or `linear`, falling from the given rate
at the first block to 0 at the last (DropKey's advice that shallow layers need more dropping; the
mirror image of stochastic depth, which rises from 0 to its rate).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from depthbench.names import (
    DEFAULT_KEY_DROP_MODE,
    DEFAULT_KEY_DROP_SCHEDULE,
    KEY_DROP_MODES,
    KEY_DROP_SCHEDULES,
)


def key_drop_rates(rate: float, n: int, schedule: str = DEFAULT_KEY_DROP_SCHEDULE) -> list[float]:
    """One key-drop rate per block for `n` blocks."""
    if schedule == "constant":
        return [rate] * n
    if schedule == "linear":
        return [rate * (n - 1 - i) / (n - 1) for i in range(n)] if n > 1 else [rate] * n
    raise ValueError(f"key_drop_schedule must be one of {KEY_DROP_SCHEDULES}, got {schedule!r}")


def dropkey_logit_mask(shape: tuple[int, ...], p: float, dtype: torch.dtype,
                       device: torch.device) -> torch.Tensor:
    """Additive logit mask: 0 where a key is kept, a large negative number where it is dropped.

    Half of the dtype's most negative value rather than -inf: a row whose every key is dropped then
    becomes a uniform softmax instead of NaN, and adding the -100 shift mask or the position bias
    cannot overflow (also in float16).
    """
    drop = torch.rand(shape, device=device) < p
    return torch.zeros(shape, dtype=dtype, device=device).masked_fill_(drop, torch.finfo(dtype).min / 2)


class KeyDrop(nn.Module):
    """Key dropout at rate `p` in `mode` ('element' | 'dropkey'); a no-op in eval or at p = 0."""

    def __init__(self, p: float = 0.0, mode: str = DEFAULT_KEY_DROP_MODE):
        super().__init__()
        if mode not in KEY_DROP_MODES:
            raise ValueError(f"key_drop_mode must be one of {KEY_DROP_MODES}, got {mode!r}")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"key_drop must be in [0, 1), got {p}")
        self.p = p
        self.mode = mode

    @property
    def active(self) -> bool:
        return self.training and self.p > 0.0

    def drop_keys(self, k: torch.Tensor) -> torch.Tensor:
        """`element` mode: dropout on K. Identity otherwise."""
        if self.active and self.mode == "element":
            return F.dropout(k, self.p, training=True)
        return k

    def logit_mask(self, shape: tuple[int, ...], dtype: torch.dtype,
                   device: torch.device) -> torch.Tensor | None:
        """`dropkey` mode: an additive mask of `shape` for the logits. None otherwise."""
        if self.active and self.mode == "dropkey":
            return dropkey_logit_mask(shape, self.p, dtype, device)
        return None

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}, mode={self.mode}"
