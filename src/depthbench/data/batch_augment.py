"""The `modern` recipe's random stage on a whole batch, on the batch's own device.

`modern_random_stage(x, size, crop_scale, trivial_augment)`: uint8 (B, 3, r, r) -> uint8
(B, 3, size, size), with parameters drawn per image, as torchvision's per-image stage
`RandomResizedCrop(size, scale=(crop_scale, 1), antialias=True) + RandomHorizontalFlip() +
TrivialAugmentWide()` (transforms.augment_transform, the last one only with `trivial_augment`)
draws them:
- the crop: torchvision's rule (10 tries of scale (crop_scale, 1), by default (0.08, 1), and
  log-uniform ratio (3/4, 4/3), then the whole square), resized with its antialiased bilinear
  filter: per box with torch's uint8 kernel on the CPU, as two weight-matrix products (rows, then
  columns, the flip folded into the column weights) on an accelerator;
- TrivialAugmentWide: one of its 14 operations per image with one of its 31 magnitudes and a random
  sign, with torchvision's own arithmetic (nearest-neighbour affine grids with zero fill, blends
  truncated to uint8, PIL's equalize).
Every random number comes from torch's global RNG on the batch's device, a fixed number of draws
per batch, so a seeded epoch replays exactly after a resume, and nothing reads a value back to the
host on an accelerator. Written by hand because Kornia's augmentation module (0.9), the library
candidate, draws one TrivialAugment operation per batch rather than per image, with its own
magnitude ranges, and was slower on this CPU (BENCHMARKS.md, "The modern random stage, batched").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from depthbench.configio import FULL_CROP_SCALE, FULL_TRIVIAL_AUGMENT

CROP_SCALE = (FULL_CROP_SCALE, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CROP_TRIES = 10
MAGNITUDE_BINS = 31

# TrivialAugmentWide's operations, in torchvision's order
OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness",
       "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize")
GEOMETRIC = OPS[1:6]


def modern_random_stage(x: torch.Tensor, size: int, crop_scale: float = FULL_CROP_SCALE,
                        trivial_augment: bool = FULL_TRIVIAL_AUGMENT, per_image: bool | None = None
                        ) -> torch.Tensor:
    """uint8 (B, 3, r, r) -> uint8 (B, 3, size, size): a crop of at least `crop_scale` of the
    area, a flip and (with `trivial_augment`) TrivialAugmentWide, drawn per image from torch's
    global RNG on `x.device`. `per_image`: how the crop and the operations are computed (default:
    per image on the CPU, whole-batch arithmetic elsewhere); the draws, and so the images up to
    rounding, are the same either way."""
    top, left, h, w = crop_params(x.shape[0], x.shape[-2], x.shape[-1], x.device, crop_scale)
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    out = resized_crop(x, top, left, h, w, size, flip, per_image)
    return trivial_augment_batch(out, per_image) if trivial_augment else out


def crop_params(n: int, height: int, width: int, device: torch.device,
                crop_scale: float = FULL_CROP_SCALE) -> tuple[torch.Tensor, ...]:
    """(top, left, height, width) of `n` RandomResizedCrop boxes of scale (crop_scale, 1), int64
    (n,): torchvision's tries, all drawn at once (the first try that fits wins; none fits: the
    central crop)."""
    area = height * width
    lo, hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    target = area * (crop_scale + (CROP_SCALE[1] - crop_scale)
                     * torch.rand(n, CROP_TRIES, device=device, dtype=torch.float64))
    ratio = torch.exp(lo + (hi - lo) * torch.rand(n, CROP_TRIES, device=device, dtype=torch.float64))
    w = torch.round(torch.sqrt(target * ratio)).long()
    h = torch.round(torch.sqrt(target / ratio)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(1, keepdim=True)  # first fitting try (0 when none fits)
    found = fits.any(1)
    w = torch.where(found, w.gather(1, first)[:, 0], _fallback(height, width)[1])
    h = torch.where(found, h.gather(1, first)[:, 0], _fallback(height, width)[0])
    u = torch.rand(2, n, device=device, dtype=torch.float64)
    top = torch.where(found, (u[0] * (height - h + 1)).long(), (height - h) // 2)
    left = torch.where(found, (u[1] * (width - w + 1)).long(), (width - w) // 2)
    return top, left, h, w


def _fallback(height: int, width: int) -> tuple[int, int]:
    """(h, w) of torchvision's central crop when no try fits."""
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        return int(round(width / CROP_RATIO[0])), width
    if in_ratio > CROP_RATIO[1]:
        return height, int(round(height * CROP_RATIO[1]))
    return height, width


def resize_weights(start: torch.Tensor, length: torch.Tensor, side_in: int, side_out: int
                   ) -> torch.Tensor:
    """(n, side_out, side_in) float32: row k maps the crop [start, start + length) of a line of
    `side_in` pixels to output pixel k, with the antialiased bilinear (triangle) filter of
    torchvision's `resize(antialias=True)` (PIL's: support widened by the downscale factor)."""
    scale = (length.double() / side_out)[:, None, None]  # n, 1, 1
    support = scale.clamp(min=1.0)
    center = (torch.arange(side_out, device=start.device, dtype=torch.float64)[None, :, None]
              + 0.5) * scale  # n, out, 1
    j = torch.arange(side_in, device=start.device, dtype=torch.float64)[None, None, :] \
        - start.double()[:, None, None]  # n, 1, in: position inside the crop
    wgt = (1.0 - ((j + 0.5 - center) / support).abs()).clamp(min=0.0)
    wgt = wgt * ((j >= 0) & (j < length[:, None, None]))
    return (wgt / wgt.sum(-1, keepdim=True)).float()


def resized_crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor,
                 w: torch.Tensor, size: int, flip: torch.Tensor | None = None,
                 per_image: bool | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> uint8 (B, C, size, size): each image's box resized (antialiased
    bilinear, torchvision's filter), mirrored left-right where `flip`.

    `per_image` (default: on the CPU): one `F.interpolate` per box, torch's uint8 kernel (the
    one torchvision's per-image stage calls; on the CPU it beats the dense products below by 15x
    at 224 px, BENCHMARKS.md). Otherwise two batched matrix products with the filter's weights,
    rows then columns: no per-image kernel launch and no host sync on an accelerator."""
    if per_image if per_image is not None else x.device.type == "cpu":
        boxes = torch.stack([top, left, h, w], 1).tolist()
        flips = flip.tolist() if flip is not None else [False] * len(boxes)
        out = [F.interpolate(x[i:i + 1, :, t:t + hh, le:le + ww], size=(size, size),
                             mode="bilinear", antialias=True, align_corners=False)[0]
               for i, (t, le, hh, ww) in enumerate(boxes)]
        return torch.stack([y.flip(-1) if f else y for y, f in zip(out, flips)])
    rows = resize_weights(top, h, x.shape[-2], size)  # B, size, H
    cols = resize_weights(left, w, x.shape[-1], size)  # B, size, W
    if flip is not None:
        cols = torch.where(flip[:, None, None], cols.flip(1), cols)
    out = rows[:, None] @ x.float() @ cols.transpose(1, 2)[:, None]  # B, C, size, size
    return out.round_().clamp_(0, 255).to(torch.uint8)


def trivial_augment_batch(x: torch.Tensor, per_image: bool | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> uint8: TrivialAugmentWide with an operation, a magnitude bin and a
    sign drawn per image (three draws per batch, whatever the images).

    `per_image` (default: on the CPU): each operation runs on the images that drew it (finding
    them reads the draws back to the host: free on the CPU). Otherwise each runs on the whole
    batch and is kept where drawn: 13x the arithmetic, but no host sync, which would stall an
    accelerator's queue every step."""
    n = x.shape[0]
    op = torch.randint(len(OPS), (n,), device=x.device)
    level = torch.randint(MAGNITUDE_BINS, (n,), device=x.device)
    sign = torch.where(torch.rand(n, device=x.device) <= 0.5, -1.0, 1.0)
    out = x.clone()
    for k, name in enumerate(OPS[1:], 1):
        if per_image if per_image is not None else x.device.type == "cpu":
            idx = (op == k).nonzero().flatten()
            if len(idx):
                out[idx] = apply_op(name, x[idx], level[idx], sign[idx])
        else:
            out = torch.where((op == k)[:, None, None, None], apply_op(name, x, level, sign), out)
    return out


def magnitude(name: str, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """TrivialAugmentWide's magnitude of `name` at bins `level` (float64, from torchvision's own
    float32 tables), signed where the operation is."""
    bins = torch.arange(MAGNITUDE_BINS, device=level.device)
    if name == "posterize":
        return (8 - (bins / ((MAGNITUDE_BINS - 1) / 6))).round()[level].double()
    if name == "solarize":
        return torch.linspace(1.0, 0.0, MAGNITUDE_BINS, device=level.device)[level].double()
    span = 32.0 if name.startswith("translate") else 135.0 if name == "rotate" else 0.99
    table = torch.linspace(0.0, span, MAGNITUDE_BINS, device=level.device)
    return table[level].double() * sign.double()


def apply_op(name: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One TrivialAugmentWide operation on uint8 images (n, C, H, W), each with its own
    magnitude bin and sign; the arithmetic of torchvision.transforms.v2.functional."""
    m = magnitude(name, level, sign) if name not in ("autocontrast", "equalize") else None
    if name in GEOMETRIC:
        return _affine(x, _inverse_affine(name, m, x.shape[-2], x.shape[-1]))
    if name == "brightness":  # a blend with black
        return x.float().mul_(_per_image(1.0 + m)).clamp_(0, 255).to(torch.uint8)
    if name == "color":
        return _blend(x, _gray(x), 1.0 + m)
    if name == "contrast":
        return _blend(x, _gray(x).mean(dim=(-3, -2, -1), keepdim=True), 1.0 + m)
    if name == "sharpness":
        return _sharpness(x, 1.0 + m)
    if name == "posterize":
        bits = m.long()
        mask = ((1 << bits) - 1) << (8 - bits)
        return x & mask.to(torch.uint8)[:, None, None, None]
    if name == "solarize":
        return torch.where(x >= (255.0 * m).float()[:, None, None, None], 255 - x, x)
    if name == "autocontrast":
        return _autocontrast(x)
    if name == "equalize":
        return TF.equalize(x)
    raise ValueError(f"unknown TrivialAugment operation {name!r}")


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    """torchvision's autocontrast (each channel stretched to 0-255; a flat channel kept), with
    `torch.where` instead of its boolean-mask assignment (a host sync on an accelerator)."""
    f = x.float()
    lo, hi = f.amin(dim=(-2, -1), keepdim=True), f.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    inv_scale = torch.where(flat, 1.0, (hi - lo).mul_(1.0 / 255))
    return (f - torch.where(flat, 0.0, lo)).div_(inv_scale).clamp_(0, 255).to(torch.uint8)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """float32 (n, 1, H, W): torchvision's luma of uint8 RGB, floored."""
    r, g, b = x.float().unbind(-3)
    return (r * 0.2989 + g * 0.587 + b * 0.114).floor_().unsqueeze(-3)


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """ratio * x + (1 - ratio) * other per image, clamped and truncated to uint8 (as
    torchvision's `_blend`)."""
    out = x.float().mul_(_per_image(ratio))
    return out.add_(other * _per_image(1.0 - ratio)).clamp_(0, 255).to(torch.uint8)


def _per_image(v: torch.Tensor) -> torch.Tensor:
    """(n,) -> float32 (n, 1, 1, 1), to broadcast over images."""
    return v.float()[:, None, None, None]


def _sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_sharpness per image: the interior blended with a 3x3 smoothing
    (rounded), the one-pixel border kept."""
    c = x.shape[-3]
    kernel = torch.full((3, 3), 1.0 / 13.0, device=x.device)
    kernel[1, 1] = 5.0 / 13.0
    out = x.float()
    blurred = F.conv2d(out, kernel.expand(c, 1, 3, 3), groups=c).round_()
    inner = out[..., 1:-1, 1:-1]
    inner.add_((blurred - inner) * _per_image(1.0 - factor))
    return out.clamp_(0, 255).to(torch.uint8)


def _inverse_affine(name: str, m: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(n, 2, 3) float32: torchvision's inverse affine matrices (`_get_inverse_affine_matrix`,
    scale 1) of the geometric operation `name` at magnitudes `m`: shears about the top-left
    corner, translations by whole pixels, rotations about the centre."""
    zero = torch.zeros_like(m)
    angle, sx, sy, tx, ty, cx, cy = zero, zero, zero, zero, zero, zero, zero
    if name in ("shear_x", "shear_y"):
        cx, cy = zero - width * 0.5, zero - height * 0.5  # center=[0, 0] in centred pixels
        shear = torch.atan(m)  # TrivialAugment's magnitude is tan(shear)
        sx, sy = (shear, zero) if name == "shear_x" else (zero, shear)
    elif name == "translate_x":
        tx = m.trunc()
    elif name == "translate_y":
        ty = m.trunc()
    else:  # rotate: F.rotate passes -angle to the matrix
        angle = -torch.deg2rad(m)
    a = torch.cos(angle - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(angle))
    c = torch.sin(angle - sy) / torch.cos(sy)
    d = torch.cos(angle) - c * torch.tan(sx)
    m00, m01, m10, m11 = d, -b, -c, a
    m02 = cx - m00 * (cx + tx) - m01 * (cy + ty)
    m12 = cy - m10 * (cx + tx) - m11 * (cy + ty)
    return torch.stack([m00, m01, m02, m10, m11, m12], -1).reshape(-1, 2, 3).float()


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """uint8 (n, C, H, W) through per-image inverse matrices `theta` (n, 2, 3): torchvision's
    `_affine_grid`, then the pixels nearest-neighbour `grid_sample` would pick (its float
    arithmetic, round half to even), gathered as uint8, zero outside the image."""
    n, c, h, w = x.shape
    t = (theta / torch.tensor([0.5 * w, 0.5 * h], device=x.device)[:, None]).unbind(-1)  # 3 x (n, 2)
    px = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=x.device)[None, None, :]
    py = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=x.device)[None, :, None]
    gx = px * t[0][:, 0, None, None] + py * t[1][:, 0, None, None] + t[2][:, 0, None, None]
    gy = px * t[0][:, 1, None, None] + py * t[1][:, 1, None, None] + t[2][:, 1, None, None]
    ix = ((gx + 1) * w - 1).div_(2).round_().flatten(1)  # n, H*W
    iy = ((gy + 1) * h - 1).div_(2).round_().flatten(1)
    inside = (ix >= 0) & (ix <= w - 1) & (iy >= 0) & (iy <= h - 1)
    index = (iy.clamp_(0, h - 1) * w + ix.clamp_(0, w - 1)).long()  # n, H*W
    out = x.reshape(n, c, h * w).gather(2, index[:, None].expand(n, c, h * w))
    return (out * inside[:, None]).view(n, c, h, w)
