"""Swin Transformer.

Paper: `Swin Transformer: Hierarchical Vision Transformer using Shifted Windows`
- https://arxiv.org/abs/2103.14030 (Liu et al., ICCV 2021)

One configurable `SwinTransformer`; Swin-T/S/B are registered functions stating embed dim, depths and
heads. Module names follow timm's (`patch_embed.proj`, `layers.1.downsample.reduction`,
`layers.0.blocks.1.attn.qkv`, `head.fc`) so timm checkpoints load unchanged, and with the same
`img_size`/`window_size` the logits equal timm's.

Small inputs. The patch grid is img_size/4 and halves in each of the three later stages, so
img_size must be a multiple of 32. In each stage the window must tile the grid exactly (no padding:
padded tokens would cost compute and blur the comparison); a stage whose grid is no larger than the
window is one window with no shift, as in the paper's last stage at 224 px. `default_window_size`
picks the window for a size: see its docstring.

Key dropout (`key_drop`, `key_drop_mode`, `key_drop_schedule`) lives in `layers/key_drop.py`; it
works on the fused (SDPA) and the explicit attention path alike.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from depthbench.errors import ConfigError
from depthbench.layers import DropPath, WindowAttention, key_drop_rates, linear_rates
from depthbench.layers.window_attention import shifted_window_mask, window_partition, window_reverse
from depthbench.models.registry import register_model
from depthbench.names import DEFAULT_KEY_DROP_MODE, DEFAULT_KEY_DROP_SCHEDULE

PATCH_SIZE = 4
NUM_STAGES = 4
STRIDE = PATCH_SIZE * 2 ** (NUM_STAGES - 1)  # 32: img_size must be a multiple of this
MAX_WINDOW = 7  # the paper's window; the per-token attention cost never exceeds Swin-224's


def stage_resolutions(img_size: int) -> list[int]:
    return [img_size // PATCH_SIZE // 2 ** i for i in range(NUM_STAGES)]


def tiling_problem(img_size: int, window_size: int) -> str | None:
    """Why `window_size` cannot tile a Swin at `img_size`, or None when it can."""
    if img_size % STRIDE or img_size < STRIDE:
        return f"img_size {img_size} is not a multiple of {STRIDE} (patch 4, three 2x merges)"
    for i, r in enumerate(stage_resolutions(img_size)):
        if r > window_size and r % window_size:
            return (f"window_size {window_size} does not tile stage {i + 1}'s {r}x{r} token grid "
                    f"at img_size {img_size}")
    return None


def valid_img_sizes(window_size: int, near: int, count: int = 2) -> list[int]:
    """Up to `count` sizes below and above `near` that `window_size` tiles (multiples of 32)."""
    limit = max(4 * near, 32 * STRIDE * window_size)
    sizes = [s for s in range(STRIDE, limit + 1, STRIDE) if tiling_problem(s, window_size) is None]
    below = [s for s in sizes if s < near][-count:]
    above = [s for s in sizes if s > near][:count]
    return below + above


def default_window_size(img_size: int) -> int:
    """The window a Swin uses at `img_size` unless told otherwise.

    With g = img_size/32 (the last stage's grid): the largest divisor of g from 7 down to 2. At 224
    that is 7, the paper's setting, and for every g <= 7 it is g itself, which keeps the paper's
    layout at any size: 8x8 windows in stage 1, ..., one global window in stage 4 (64 px -> 2,
    128 -> 4, 192 -> 6). Larger grids use the largest window <= 7 that tiles them (256 -> 4,
    448 -> 7), so attention never costs more per token than in the paper. At 32 px (g = 1) a
    window of 1 would be no attention at all, so the window is 2 and the last stage is one token.
    A size that is not a multiple of 32, or whose g has no divisor in 2..7 (e.g. 352: g = 11), is
    a ConfigError naming the nearest sizes that work.
    """
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1:
        raise ConfigError(f"img_size must be a positive integer, got {img_size!r}")
    if img_size % STRIDE == 0:
        g = img_size // STRIDE
        if g == 1:
            return 2
        for w in range(MAX_WINDOW, 1, -1):
            if g % w == 0:
                return w
    ok = [s for s in range(STRIDE, 4 * img_size + 2 * STRIDE, STRIDE)
          if any((s // STRIDE) % w == 0 for w in range(2, MAX_WINDOW + 1)) or s == STRIDE]
    below = [s for s in ok if s < img_size][-1:]
    above = [s for s in ok if s > img_size][:1]
    raise ConfigError(f"no Swin window tiles img_size {img_size} (it must be a multiple of 32 whose "
                      f"/32 grid has a divisor in 2..7); nearest sizes that work: "
                      f"{', '.join(map(str, below + above))}")


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """(Shifted) window attention + MLP, both pre-norm residual branches with stochastic depth."""

    def __init__(self, dim: int, resolution: int, num_heads: int, window_size: int,
                 shift: bool, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 key_drop: float = 0.0, key_drop_mode: str = DEFAULT_KEY_DROP_MODE, fused_attn: bool = True):
        super().__init__()
        if resolution <= window_size:  # one window covers the grid: no shift needed (paper, stage 4)
            window_size, shift = resolution, False
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, key_drop=key_drop,
                                    key_drop_mode=key_drop_mode, fused_attn=fused_attn)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        mask = (shifted_window_mask(resolution, resolution, window_size, self.shift_size)
                if self.shift_size else None)
        self.register_buffer("attn_mask", mask, persistent=False)  # nW, N, N or None

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        s, ws = self.shift_size, self.window_size
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))  # cyclic shift
        windows = window_partition(x, ws)  # B*nW, ws*ws, C
        windows = self.attn(windows, self.attn_mask)
        x = window_reverse(windows, ws, H, W)  # B, H, W, C
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B, H, W, C -> B, H, W, C."""
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (4C) and project to 2C: B, H, W, C -> B, H/2, W/2, 2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        # channel order (w-offset, h-offset, C) as timm, so its weights apply unchanged
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    """4x4 patches -> embed_dim tokens: B, 3, H, W -> B, H/4, W/4, D."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int = PATCH_SIZE):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class SwinTransformerStage(nn.Module):
    def __init__(self, dim: int, out_dim: int, resolution: int, depth: int, num_heads: int,
                 window_size: int, downsample: bool, drop_path: list[float],
                 key_drop: list[float], **block_kwargs):
        super().__init__()
        self.downsample = PatchMerging(dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            SwinTransformerBlock(out_dim, resolution, num_heads, window_size, shift=j % 2 == 1,
                                 drop_path=drop_path[j], key_drop=key_drop[j], **block_kwargs)
            for j in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ClassifierHead(nn.Module):
    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)  # `head.fc` as timm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((1, 2)))  # B, H, W, C -> B, C -> B, classes


class SwinTransformer(nn.Module):
    """Swin Transformer for square `img_size` inputs (a multiple of 32)."""

    def __init__(self, img_size: int = 224, window_size: int | None = None, in_chans: int = 3,
                 num_classes: int = 1000, embed_dim: int = 96, depths=(2, 2, 6, 2),
                 num_heads=(3, 6, 12, 24), mlp_ratio: float = 4.0, drop_path_rate: float = 0.1,
                 key_drop: float = 0.0, key_drop_mode: str = DEFAULT_KEY_DROP_MODE,
                 key_drop_schedule: str = DEFAULT_KEY_DROP_SCHEDULE, fused_attn: bool = True):
        super().__init__()
        window_size = default_window_size(img_size) if window_size is None else window_size
        problem = tiling_problem(img_size, window_size)
        if problem:
            sizes = valid_img_sizes(window_size, img_size)
            try:
                alt = f"; or keep {img_size} px with window_size {default_window_size(img_size)}"
            except ConfigError:
                alt = ""
            raise ConfigError(f"Swin cannot be built: {problem}. Nearest sizes that window "
                              f"{window_size} tiles: {', '.join(map(str, sizes))}{alt}")
        self.img_size, self.window_size, self.num_classes = img_size, window_size, num_classes
        dims = [embed_dim * 2 ** i for i in range(NUM_STAGES)]
        self.num_features = dims[-1]
        self.patch_embed = PatchEmbed(in_chans, embed_dim)

        n = sum(depths)
        dpr = linear_rates(drop_path_rate, n)  # stochastic depth rising over all blocks
        kdr = key_drop_rates(key_drop, n, key_drop_schedule)
        stages, start = [], 0
        for i, (res, depth) in enumerate(zip(stage_resolutions(img_size), depths)):
            stages.append(SwinTransformerStage(
                dims[max(i - 1, 0)], dims[i], res, depth, num_heads[i], window_size,
                downsample=i > 0, drop_path=dpr[start:start + depth],
                key_drop=kdr[start:start + depth], mlp_ratio=mlp_ratio,
                key_drop_mode=key_drop_mode, fused_attn=fused_attn))
            start += depth
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes)
        self.apply(_init_weights)

    def set_fused_attn(self, enabled: bool) -> None:
        for m in self.modules():
            if isinstance(m, WindowAttention):
                m.fused_attn = enabled

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):  # windows and masks are built per size
            raise ValueError(f"this Swin was built for {self.img_size}x{self.img_size} inputs, got "
                             f"{tuple(x.shape[-2:])}; resize the input or rebuild with img_size")
        x = self.patch_embed(x)  # B, H/4, W/4, C
        x = self.layers(x)  # B, H/32, W/32, 8C
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _init_weights(m: nn.Module) -> None:
    """timm's ViT init: truncated normal (std 0.02) linear weights, zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


@register_model("swin", "Swin-T", aliases=("swin_t",), modern_drop_path=0.2)
def swin_tiny_patch4_window7_224(**kwargs) -> SwinTransformer:
    return SwinTransformer(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), **kwargs)


@register_model("swin", "Swin-S", aliases=("swin_s",), modern_drop_path=0.3)
def swin_small_patch4_window7_224(**kwargs) -> SwinTransformer:
    return SwinTransformer(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), **kwargs)


@register_model("swin", "Swin-B", aliases=("swin_b",), modern_drop_path=0.5)
def swin_base_patch4_window7_224(**kwargs) -> SwinTransformer:
    return SwinTransformer(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), **kwargs)
