"""Window attention pieces of the Swin Transformer.

Paper: `Swin Transformer: Hierarchical Vision Transformer using Shifted Windows`
- https://arxiv.org/abs/2103.14030

Parameter names and buffers follow timm's `swin_transformer.py` (`qkv`, `proj`,
`relative_position_bias_table`) so timm checkpoints load; the index and the shifted-window mask can
be recomputed and are not saved (`persistent=False`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from depthbench.layers.key_drop import KeyDrop
from depthbench.names import DEFAULT_KEY_DROP_MODE

SHIFT_MASK_VALUE = -100.0  # the reference implementation's value for "different region"


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """B, H, W, C -> B*nW, ws*ws, C (windows in row-major order, batch outermost)."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)


def window_reverse(windows: torch.Tensor, ws: int, H: int, W: int) -> torch.Tensor:
    """B*nW, ws*ws, C -> B, H, W, C (inverse of `window_partition`)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // ws, W // ws, ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def relative_position_index(ws: int) -> torch.Tensor:
    """N, N (N = ws*ws): index into the (2ws-1)^2 bias table for each query/key pair."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N: dy, dx in [-(ws-1), ws-1]
    rel = rel + (ws - 1)  # shift to start from 0
    return rel[0] * (2 * ws - 1) + rel[1]


def shifted_window_mask(H: int, W: int, ws: int, shift: int) -> torch.Tensor:
    """nW, N, N additive mask (0 / -100) for shifted windows: after the cyclic shift a window can
    hold tokens from up to four image regions that were not neighbours; they must not attend."""
    region = torch.zeros(1, H, W, 1)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            region[:, hs, wsl, :] = cnt
            cnt += 1
    win = window_partition(region, ws).squeeze(-1)  # nW, N: region id of each token
    diff = win.unsqueeze(1) - win.unsqueeze(2)  # nW, N, N
    return torch.zeros_like(diff).masked_fill_(diff != 0, SHIFT_MASK_VALUE)


class WindowAttention(nn.Module):
    """Multi-head self attention inside windows, with relative position bias and key dropout.

    `fused_attn` switches between `F.scaled_dot_product_attention` (default) and the explicit
    softmax(q k^T * scale + bias + mask) v; only the explicit path exposes the probabilities (the
    output of `self.softmax`, shape B, nW, heads, N, N with a shift mask, else B, heads, N, N) to
    a forward hook, which is how `depthbench analyze` reads them. Both honour the shift mask and
    both forms of key dropout: `element` drops K before either path; `dropkey` adds its logit mask
    to the float `attn_mask` SDPA receives, so the fused path never falls back silently.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 key_drop: float = 0.0, key_drop_mode: str = DEFAULT_KEY_DROP_MODE, fused_attn: bool = True):
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.window_area = window_size * window_size
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.fused_attn = fused_attn

        # (2*ws-1)^2, heads: one learned bias per relative offset and head
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size),
                             persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.key_drop = KeyDrop(key_drop, key_drop_mode)
        self.softmax = nn.Softmax(dim=-1)  # timm's name; explicit path only, a hook reads it
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _rel_pos_bias(self) -> torch.Tensor:
        N = self.window_area
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # N*N, heads
        return bias.view(N, N, -1).permute(2, 0, 1)  # heads, N, N

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: B*nW, N, C (windows of one image consecutive); mask: nW, N, N (0 / -100) for shifted
        windows, else None."""
        B_, N, C = x.shape
        h = self.num_heads
        nW = 1 if mask is None else mask.shape[0]
        # Layout. The windows of one image sit side by side (B, nW, heads, N, head_dim) so the
        # per-window bias broadcasts over the batch, except where SDPA may run a fused kernel: those
        # take 4-D inputs, and the bias is then copied per image (B*nW, heads, N, N). On CPU the
        # fused kernel returns no gradient for a mask, so in training SDPA runs its math path
        # anyway and the broadcast layout is the faster one there.
        math_anyway = (x.device.type == "cpu" and torch.is_grad_enabled()
                       and self.relative_position_bias_table.requires_grad)
        expand = nW > 1 and self.fused_attn and not math_anyway
        batch = (B_ // nW, nW) if nW > 1 and not expand else (B_,)
        qkv = self.qkv(x).view(*batch, N, 3, h, C // h)
        q, k, v = qkv.movedim(-3, 0).transpose(-3, -2).unbind(0)  # *batch, heads, N, head_dim
        k = self.key_drop.drop_keys(k)

        bias = self._rel_pos_bias()  # heads, N, N
        if mask is not None:
            bias = bias + mask.unsqueeze(1)  # nW, heads, N, N
            if expand:
                bias = bias.expand(B_ // nW, nW, h, N, N).reshape(B_, h, N, N)
        bias = bias.to(q.dtype)
        drop = self.key_drop.logit_mask(q.shape[:-1] + (N,), q.dtype, q.device)
        if drop is not None:
            bias = bias + drop  # *batch, heads, N, N: DropKey

        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # *batch, heads, N, N
            attn = self.softmax(attn + bias)  # the attention probabilities
            x = attn @ v  # *batch, heads, N, head_dim

        x = x.transpose(-3, -2).reshape(B_, N, C)
        return self.proj(x)

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, num_heads={self.num_heads}, fused_attn={self.fused_attn}"
