"""The `synthetic` dataset: small learnable images generated from a seed, written once to disk.

Class k of K is a striped pattern with its own hue (k/K of the colour wheel) and stripe angle
(k*180/K degrees), jittered per image (hue, angle, stripe frequency, phase, brightness) under
Gaussian pixel noise. A small CNN separates the classes within a few epochs at 32 px, yet the task
is not a constant: hue and angle overlap between neighbouring classes near their jitter limits.

The images are written as PNGs into `<cache>/synthetic/<params>/` (atomically: a temporary folder
renamed into place), so the synthetic source is an ordinary image folder and every code path the
tests take is the one real data takes.
"""

from __future__ import annotations

import colorsys
import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from depthbench.errors import ConfigError


@dataclass(frozen=True)
class SyntheticSpec:
    n: int = 300  # images in all, spread evenly over the classes
    size: int = 32  # side in pixels
    classes: int = 4
    seed: int = 0

    def __post_init__(self):
        if not 2 <= self.classes <= 36:
            raise ConfigError(f"synthetic: classes={self.classes} is out of range; use 2..36")
        if self.n < self.classes:
            raise ConfigError(f"synthetic: n={self.n} is fewer than classes={self.classes}; "
                              "give at least one image per class")
        if not 1 <= self.size <= 1024:
            raise ConfigError(f"synthetic: size={self.size} is out of range; use 1..1024")

    @property
    def key(self) -> str:
        return f"n{self.n}-s{self.size}-c{self.classes}-seed{self.seed}"

    @classmethod
    def parse(cls, text: str = "", **overrides) -> SyntheticSpec:
        """`"n=200,size=32,classes=4,seed=0"` (any subset, keys case-insensitive) plus kwargs."""
        values: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in cls.__dataclass_fields__:
                raise ConfigError(f"synthetic: bad option {part!r}; use "
                                  "synthetic:n=300,size=32,classes=4,seed=0 (any subset)")
            values[key] = value
        for key, value in overrides.items():
            if key not in cls.__dataclass_fields__:
                raise ConfigError(f"synthetic: unknown option {key!r}; "
                                  f"valid: {', '.join(cls.__dataclass_fields__)}")
            values[key] = value
        try:
            return cls(**{k: int(v) for k, v in values.items()})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"synthetic: options must be integers ({e})") from None


def class_names(k: int) -> list[str]:
    return [f"hue{round(360 * c / k):03d}_angle{round(180 * c / k):03d}" for c in range(k)]


def render(spec: SyntheticSpec) -> list[tuple[int, np.ndarray]]:
    """(label, HxWx3 uint8) for every image, deterministic for `spec`."""
    rng = np.random.default_rng(spec.seed)
    s, k = spec.size, spec.classes
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) / max(s, 1)
    out = []
    for i in range(spec.n):
        label = i % k
        hue = (label / k + rng.uniform(-0.3, 0.3) / k) % 1.0
        angle = np.pi * (label / k + rng.uniform(-0.3, 0.3) / k)
        freq = rng.uniform(2.0, 4.0)
        phase = rng.uniform(0, 2 * np.pi)
        bright = rng.uniform(0.7, 1.0)
        fg = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), bright)) * 255
        bg = fg * rng.uniform(0.1, 0.35)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * t + phase)
        img = wave[..., None] * fg + (1 - wave[..., None]) * bg
        img += rng.normal(0, 18, img.shape)
        out.append((label, np.clip(np.rint(img), 0, 255).astype(np.uint8)))
    return out


def materialize(spec: SyntheticSpec, cache_dir: Path) -> Path:
    """The folder holding `spec`'s images (one sub-folder per class), generated if missing."""
    root = Path(cache_dir) / "synthetic" / spec.key
    if (root / "synthetic.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key}.", dir=root.parent))
    try:
        names = class_names(spec.classes)
        for name in names:
            (tmp / name).mkdir()
        for i, (label, arr) in enumerate(render(spec)):
            Image.fromarray(arr, "RGB").save(tmp / names[label] / f"{i:05d}.png", compress_level=1)
        (tmp / "synthetic.json").write_text(json.dumps(asdict(spec)) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first: its folder is identical
            if not (root / "synthetic.json").is_file():
                raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return root
