"""The two transform recipes (torchvision.transforms.v2), split into a cacheable and a random stage.

- `source`: the source study exactly. Train: Resize(s) + CenterCrop(s), no augmentation; eval:
  Resize((s, s)); normalize with mean = std = 0.5.
- `modern`: train: RandomResizedCrop(s, scale=(crop_scale, 1)) + horizontal flip +
  TrivialAugmentWide (only with `trivial_augment`); eval: Resize(r) + CenterCrop(r * eval_crop)
  (+ Resize(s) when that is not s), with r = round(s / 0.875); ImageNet mean and std. At full
  strength (the defaults here: `crop_scale` 0.08, `trivial_augment` on, `eval_crop` 0.875) it is
  the published recipes' augmentation and view; the training config chooses them per run
  (`engine.config`: milder, and the whole square to evaluate, for short runs).

Every transform is `pre` (deterministic, on the PIL image: the stage the decoded cache stores as
uint8) followed by `post` (random augmentation on the uint8 tensor, then float conversion and
normalization). Streaming and cached data run the same two stages, so they give the same tensors.
The modern train recipe's `pre` is Resize(r) + CenterCrop(r) with r = round(s / 0.875) (256 for
224): RandomResizedCrop samples from that central square rather than from the full-resolution
file, the price of never decoding again after the first epoch. The eval view is the central
`eval_crop` of the same square, resized to s: the published 0.875 is its central s x s (timm's
Resize(s / crop_pct) + CenterCrop(s)), and 1.0 is the square itself, exactly what a training crop
of the whole area shows.

`batch_random_stage` is the same random stage on whole batches on their device
(`batch_augment.modern_random_stage`); the trainer uses it where it is the faster choice and the
dataset then hands over the cached uint8 squares untouched (`build_datasets(batch_augment=True)`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torchvision.transforms import InterpolationMode, v2

from depthbench.configio import (
    FULL_CROP_SCALE,
    FULL_EVAL_CROP,
    FULL_TRIVIAL_AUGMENT,
    RECIPE_NAMES,
    recipe_name,
)
from depthbench.data.batch_augment import CROP_SCALE, modern_random_stage
from depthbench.data.images import to_rgb
from depthbench.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_BILINEAR = InterpolationMode.BILINEAR
# the largest img_size at which the batched random stage beats the per-image one on the CPU
CPU_BATCHED_MAX_SIZE = 224


def _check(recipe: str, img_size: int) -> str:
    """The recipe's current name (a checkpoint may carry an old one), or a ConfigError."""
    recipe = recipe_name(recipe)
    if recipe not in RECIPE_NAMES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPE_NAMES)}")
    if not isinstance(img_size, int) or img_size < 1:
        raise ConfigError(f"img_size {img_size!r} must be a positive integer")
    return recipe


def normalization(recipe: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the recipe's Normalize."""
    recipe = _check(recipe, 1)
    return ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) if recipe == "source" else (IMAGENET_MEAN, IMAGENET_STD)


def resize_size(img_size: int) -> int:
    """The side of the modern recipe's square before the crops (256 for 224): the published eval
    view's centre crop of 87.5% of it is `img_size` exactly."""
    return max(img_size, round(img_size / FULL_EVAL_CROP))


def eval_crop_side(img_size: int, eval_crop: float | None = None) -> int:
    """The side of the modern eval view's centre crop of that square, keeping `eval_crop` of it
    (None: the published 0.875, whose crop is `img_size` itself)."""
    r = resize_size(img_size)
    return min(r, round(r * (FULL_EVAL_CROP if eval_crop is None else eval_crop)))


def cache_side(recipe: str, img_size: int, train: bool) -> int:
    """Side of the square images the deterministic stage produces (and the cache stores)."""
    recipe = _check(recipe, img_size)
    return resize_size(img_size) if recipe == "modern" and train else img_size


def stage_key(recipe: str, img_size: int, train: bool, eval_crop: float | None = None) -> str:
    """A name for the deterministic stage: equal names cache equal arrays."""
    recipe = _check(recipe, img_size)
    s = img_size
    if recipe == "source":
        return f"resize{s}-crop{s}" if train else f"squash{s}"
    r = resize_size(s)
    if train:
        return f"resize{r}-crop{r}"
    c = eval_crop_side(s, eval_crop)
    return f"resize{r}-crop{c}" + (f"-resize{s}" if c != s else "")


def pre_transform(recipe: str, img_size: int, train: bool, eval_crop: float | None = None
                  ) -> v2.Compose:
    """PIL RGB image -> PIL image, deterministic (what the cache stores). `eval_crop`: the share
    of the training square's side the modern eval view keeps, resized to `img_size` (None: the
    published 0.875, the central `img_size` pixels of the square)."""
    recipe = _check(recipe, img_size)
    s = img_size
    if recipe == "source":
        ops = [v2.Resize(s, _BILINEAR), v2.CenterCrop(s)] if train else [
            v2.Resize((s, s), _BILINEAR)]
    else:
        r = resize_size(s)
        c = r if train else eval_crop_side(s, eval_crop)
        ops = [v2.Resize(r, _BILINEAR), v2.CenterCrop(c),
               *([v2.Resize(s, _BILINEAR)] if not train and c != s else [])]
    return v2.Compose(ops)


def augment_transform(recipe: str, img_size: int, train: bool, crop_scale: float = FULL_CROP_SCALE,
                      trivial_augment: bool = FULL_TRIVIAL_AUGMENT) -> v2.Compose | None:
    """The random stage on a uint8 CHW tensor (None when the recipe has none, as `source`): a
    crop of at least `crop_scale` of the area, a flip and, with `trivial_augment`,
    TrivialAugmentWide."""
    recipe = _check(recipe, img_size)
    if recipe == "modern" and train:
        crop = v2.RandomResizedCrop(img_size, scale=(crop_scale, CROP_SCALE[1]),
                                    interpolation=_BILINEAR, antialias=True)
        return v2.Compose([crop, v2.RandomHorizontalFlip(),
                           *([v2.TrivialAugmentWide()] if trivial_augment else [])])
    return None


def batch_random_stage(recipe: str, img_size: int, device_type: str,
                       crop_scale: float = FULL_CROP_SCALE,
                       trivial_augment: bool = FULL_TRIVIAL_AUGMENT
                       ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The recipe's random stage on whole batches on their device, uint8 (B, 3, r, r) -> uint8
    (B, 3, s, s) (`batch_augment.modern_random_stage`: the same per-image draws as
    `augment_transform` with the same `crop_scale` and `trivial_augment`, from torch's global RNG
    on the batch's device), when the recipe has a
    random stage and batching is the faster choice on `device_type`; else None, and the
    per-image stage runs in the dataset. Accelerators: always (it takes the stage off the
    loader's CPU workers). The CPU: up to `CPU_BATCHED_MAX_SIZE` px, where the batched stage
    measured faster per core than torchvision's per image (BENCHMARKS.md, "The modern random
    stage, batched")."""
    recipe = _check(recipe, img_size)
    if recipe != "modern" or (device_type == "cpu" and img_size > CPU_BATCHED_MAX_SIZE):
        return None
    return functools.partial(modern_random_stage, size=img_size, crop_scale=crop_scale,
                             trivial_augment=trivial_augment)


def normalize_transform(recipe: str) -> v2.Compose:
    """uint8 -> float32 in [0, 1] -> normalized; works on one image or a batch (B, C, H, W)."""
    mean, std = normalization(recipe)
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def post_transform(recipe: str, img_size: int, train: bool) -> v2.Compose:
    """uint8 CHW tensor -> normalized float32 CHW tensor (with the random augmentation)."""
    augment = augment_transform(recipe, img_size, train)
    return v2.Compose([*([augment] if augment else []), normalize_transform(recipe)])


def pil_to_uint8(img) -> torch.Tensor:
    """PIL RGB -> uint8 CHW tensor (shares no memory with the image)."""
    return v2.functional.pil_to_tensor(img)


def build_transform(recipe: str, img_size: int, train: bool, eval_crop: float | None = None
                    ) -> v2.Compose:
    """The whole transform, PIL RGB image -> normalized float32 CHW tensor."""
    return v2.Compose([pre_transform(recipe, img_size, train, eval_crop), v2.PILToTensor(),
                       post_transform(recipe, img_size, train)])


def preprocess_image(img, recipe: str, img_size: int, eval_crop: float | None = None
                     ) -> torch.Tensor:
    """One image (any PIL mode) -> the eval tensor a model of this recipe and eval view expects
    (`predict`)."""
    return build_transform(recipe, img_size, False, eval_crop)(to_rgb(img))
