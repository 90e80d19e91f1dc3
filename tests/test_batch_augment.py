"""The modern recipe's random stage on whole batches (data.batch_augment) against torchvision's
per-image stage: the same draws' distributions, the same arithmetic, on tiny images."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import RandomResizedCrop, TrivialAugmentWide
from torchvision.transforms.v2 import functional as TF

from depthbench.data import batch_augment as B
from depthbench.data.datasets import build_datasets
from depthbench.data.split import make_split
from depthbench.data.transforms import (
    CPU_BATCHED_MAX_SIZE,
    augment_transform,
    batch_random_stage,
    resize_size,
)
from depthbench.errors import ConfigError

# our operation names -> torchvision's TrivialAugmentWide names
TV_NAMES = {"shear_x": "ShearX", "shear_y": "ShearY", "translate_x": "TranslateX",
            "translate_y": "TranslateY", "rotate": "Rotate", "brightness": "Brightness",
            "color": "Color", "contrast": "Contrast", "sharpness": "Sharpness",
            "posterize": "Posterize", "solarize": "Solarize", "autocontrast": "AutoContrast",
            "equalize": "Equalize"}


def images(n: int, side: int, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 3, side, side) with structure (blurred noise: every operation changes it)."""
    g = torch.Generator().manual_seed(seed)
    return TF.gaussian_blur((torch.rand(n, 3, side, side, generator=g) * 255).to(torch.uint8), 3)


@pytest.mark.parametrize("per_image", [True, False])
def test_shapes_dtype_device_and_seeded_replay(per_image):
    x = images(6, 19)
    torch.manual_seed(3)
    a = B.modern_random_stage(x, 16, per_image=per_image)
    torch.manual_seed(3)
    b = B.modern_random_stage(x, 16, per_image=per_image)
    torch.manual_seed(4)
    c = B.modern_random_stage(x, 16, per_image=per_image)
    assert a.shape == (6, 3, 16, 16) and a.dtype == torch.uint8 and a.device == x.device
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_parameters_are_drawn_per_image():
    x = images(1, 19).expand(16, -1, -1, -1).contiguous()  # one image, 16 times
    torch.manual_seed(0)
    out = B.modern_random_stage(x, 16)
    distinct = {bytes(o.flatten().tolist()) for o in out}
    assert len(distinct) >= 14  # each copy got its own crop, flip and operation
    top, left, h, w = B.crop_params(64, 37, 37, x.device)
    assert len(set(zip(h.tolist(), w.tolist()))) > 30 and len(set(top.tolist())) > 5


def test_crops_follow_random_resized_crop():
    side, n = 64, 3000
    torch.manual_seed(0)
    top, left, h, w = B.crop_params(n, side, side, torch.device("cpu"))
    area = (h * w).double() / side**2
    ratio = w.double() / h.double()
    assert ((h >= 1) & (h <= side) & (w >= 1) & (w <= side)).all()
    assert ((top >= 0) & (top + h <= side) & (left >= 0) & (left + w <= side)).all()
    assert area.min() < 0.09 and area.max() > 0.97 and area.min() >= 0.07  # rounding of h, w
    assert ratio.min() < 0.78 and ratio.max() > 1.28
    assert ratio.min() > 0.75 * 0.9 and ratio.max() < 4 / 3 * 1.1
    ref = RandomResizedCrop(side)
    box = torch.zeros(1, 3, side, side)
    torch.manual_seed(1)
    tv = torch.tensor([[p["height"], p["width"], p["top"]] for p in
                       (ref.make_params([box]) for _ in range(n))], dtype=torch.float64)
    tv_area = tv[:, 0] * tv[:, 1] / side**2
    assert abs(area.mean() - tv_area.mean()) < 0.03  # ~3.5 standard errors
    assert abs(ratio.log().mean() - (tv[:, 1] / tv[:, 0]).log().mean()) < 0.03
    # the box's position is uniform over where it fits
    slack = (side - h).double()
    assert abs((top.double() / slack.clamp(min=1))[slack > 8].mean() - 0.5) < 0.03


def test_a_crop_scale_bounds_the_area_as_torchvisions_does():
    side, n, scale = 64, 2000, 0.5
    torch.manual_seed(0)
    top, left, h, w = B.crop_params(n, side, side, torch.device("cpu"), crop_scale=scale)
    area = (h * w).double() / side**2
    assert area.min() >= scale - 0.03 and area.min() < scale + 0.02 and area.max() > 0.97
    ref = RandomResizedCrop(side, scale=(scale, 1.0))
    box = torch.zeros(1, 3, side, side)
    torch.manual_seed(1)
    tv = torch.tensor([p["height"] * p["width"] / side**2 for p in
                       (ref.make_params([box]) for _ in range(n))], dtype=torch.float64)
    assert abs(area.mean() - tv.mean()) < 0.02  # ~5 standard errors


@pytest.mark.parametrize("per_image", [True, False])
def test_without_trivial_augment_the_stage_is_crop_and_flip(per_image):
    x = images(8, 10)
    torch.manual_seed(2)
    top, left, h, w = B.crop_params(8, 10, 10, x.device, crop_scale=0.3)
    flip = torch.rand(8) < 0.5
    expected = B.resized_crop(x, top, left, h, w, 8, flip, per_image)
    torch.manual_seed(2)
    out = B.modern_random_stage(x, 8, crop_scale=0.3, trivial_augment=False, per_image=per_image)
    assert torch.equal(out, expected)


def test_per_image_and_batched_stages_take_the_same_strength():
    """The dataset's per-image stage and the trainer's batched one get the same options."""
    per_image = augment_transform("modern", 8, True, crop_scale=0.4, trivial_augment=False)
    crop = per_image.transforms[0]
    assert isinstance(crop, RandomResizedCrop) and crop.scale == (0.4, 1.0)
    assert not any(isinstance(t, TrivialAugmentWide) for t in per_image.transforms)
    assert isinstance(augment_transform("modern", 8, True).transforms[-1], TrivialAugmentWide)
    assert augment_transform("modern", 8, True).transforms[0].scale == B.CROP_SCALE
    batched = batch_random_stage("modern", 8, "cpu", crop_scale=0.4, trivial_augment=False)
    assert (batched.keywords["crop_scale"], batched.keywords["trivial_augment"]) == (0.4, False)


def test_flips_are_half_and_the_stage_is_crop_flip_then_operation():
    x = images(400, 10)
    torch.manual_seed(5)
    top, left, h, w = B.crop_params(400, 10, 10, x.device)
    flip = torch.rand(400) < 0.5
    expected = B.trivial_augment_batch(B.resized_crop(x, top, left, h, w, 8, flip))
    torch.manual_seed(5)
    assert torch.equal(B.modern_random_stage(x, 8), expected)
    assert 0.42 < flip.double().mean() < 0.58
    one = B.resized_crop(x[:2], top[:2], left[:2], h[:2], w[:2], 8, torch.tensor([True, False]))
    plain = B.resized_crop(x[:2], top[:2], left[:2], h[:2], w[:2], 8)
    assert torch.equal(one[0], plain[0].flip(-1)) and torch.equal(one[1], plain[1])


@pytest.mark.parametrize("per_image", [True, False])
def test_crop_and_resize_equal_torchvisions_within_one_level(per_image):
    x = images(12, 37)
    torch.manual_seed(0)
    top, left, h, w = B.crop_params(12, 37, 37, x.device)
    for size in (16, 32, 50):  # down, mixed, up
        ours = B.resized_crop(x, top, left, h, w, size, per_image=per_image)
        ref = torch.stack([TF.resized_crop(xi, t, le, hh, ww, [size, size],
                                           InterpolationMode.BILINEAR, antialias=True)
                           for xi, t, le, hh, ww in zip(x, *(v.tolist() for v in
                                                             (top, left, h, w)))])
        assert (ours.int() - ref.int()).abs().max() <= 1
    whole = torch.zeros(12, dtype=torch.long), torch.full((12,), 37)
    full = B.resized_crop(x, whole[0], whole[0], whole[1], whole[1], 32, per_image=per_image)
    resized = TF.resize(x, [32, 32], InterpolationMode.BILINEAR, antialias=True)
    assert (full.int() - resized.int()).abs().max() <= 1  # the full-image crop is the resize
    same = B.resized_crop(x, whole[0], whole[0], whole[1], whole[1], 37, per_image=per_image)
    assert torch.equal(same, x)  # identity parameters: the image itself


@pytest.mark.parametrize("name", B.OPS[1:])
def test_each_operation_equals_torchvisions(name):
    x = images(4, 17, seed=1)
    ta = TrivialAugmentWide()
    magnitudes, signed = ta._AUGMENTATION_SPACE[TV_NAMES[name]]
    table = magnitudes(B.MAGNITUDE_BINS, 17, 17)
    for level in (0, 5, 17, 30):
        for sign in (-1.0, 1.0):
            ours = B.apply_op(name, x, torch.full((4,), level), torch.full((4,), sign))
            m = 0.0 if table is None else float(table[level]) * (sign if signed else 1.0)
            ref = torch.stack([ta._apply_image_or_video_transform(
                xi, TV_NAMES[name], m, InterpolationMode.NEAREST, ta._fill) for xi in x])
            assert ours.dtype == torch.uint8 and ours.shape == x.shape
            # saturation's blend rounds one way or the other in torch's fused kernel
            assert (ours.int() - ref.int()).abs().max() <= (1 if name == "color" else 0)
    mixed = B.apply_op(name, x, torch.tensor([0, 10, 20, 30]), torch.tensor([1.0, -1, 1, -1]))
    for i in range(4):  # per-image magnitudes: each image as if alone
        alone = B.apply_op(name, x[i:i + 1], torch.tensor([[0, 10, 20, 30][i]]),
                           torch.tensor([[1.0, -1, 1, -1][i]]))
        assert torch.equal(mixed[i:i + 1], alone)


def test_trivial_augment_draws_every_operation_and_both_paths_agree():
    x = images(280, 9)
    torch.manual_seed(2)
    a = B.trivial_augment_batch(x, per_image=True)
    torch.manual_seed(2)
    b = B.trivial_augment_batch(x, per_image=False)
    torch.manual_seed(2)
    op = torch.randint(len(B.OPS), (280,))
    assert torch.equal(a, b)
    assert set(op.tolist()) == set(range(len(B.OPS)))
    assert torch.equal(a[op == 0], x[op == 0])  # identity
    assert (a[op != 0] != x[op != 0]).any()
    counts = torch.bincount(op, minlength=len(B.OPS)).double() / 280
    assert counts.max() < 3 / len(B.OPS)  # uniform over 14: ~0.07 each


def test_batch_random_stage_seam():
    assert batch_random_stage("source", 64, "cuda") is None
    stage = batch_random_stage("modern", 24, "cuda")
    x = images(3, resize_size(24))
    assert stage(x).shape == (3, 3, 24, 24)
    assert batch_random_stage("modern", CPU_BATCHED_MAX_SIZE, "cpu") is not None
    assert batch_random_stage("modern", CPU_BATCHED_MAX_SIZE + 1, "cpu") is None
    with pytest.raises(ConfigError, match="recipe"):
        batch_random_stage("nope", 24, "cpu")


def test_train_split_without_its_random_stage(synthetic_source, tmp_path):
    m = make_split(synthetic_source)
    ds = build_datasets(synthetic_source, m, "modern", 12, cache_dir=tmp_path, uint8=True,
                        batch_augment=True, splits=("train", "val"))
    x0, x1 = ds["train"][0][0], ds["train"][0][0]
    assert x0.dtype == torch.uint8 and x0.shape == (3, resize_size(12), resize_size(12))
    assert torch.equal(x0, x1) and torch.equal(x0, ds["train"].uint8(0))  # no random stage
    assert ds["val"][0][0].shape == (3, 12, 12)
    normalized = ds["train"].normalize(B.modern_random_stage(x0[None], 12))
    assert normalized.dtype == torch.float32 and math.isfinite(normalized.sum().item())
