"""A generated folder shaped like TensorFlow's flower_photos: its classes and counts
(`report.source.FLOWERS_COUNTS`), 320x240 images of about its files' size, for the GPU check and
its CPU test.

    python -m benchmarks.flowers DIR [--images N] [--size 320x240]

Each image is one of depthbench's `synthetic` patterns (a class's hue and stripe angle, jittered:
learnable), rendered small, resized to the photo size and overlaid with noise, so decoding it
costs what a photo of that size costs and a JPEG is some tens of kB. A folder that holds the same
images already is kept (`flowers.json` records what was made).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from depthbench.cpus import usable_cpu_count
from depthbench.data.synthetic import SyntheticSpec, render  # learnable class patterns
from depthbench.report.source import FLOWERS_COUNTS

PATTERN_SIDE = 48  # the synthetic pattern's side before it is resized to the photo size


def scaled_counts(images: int) -> dict[str, int]:
    """FLOWERS_COUNTS scaled to `images` in all (at least 2 a class), largest remainders first."""
    total = sum(FLOWERS_COUNTS.values())
    exact = {c: max(2.0, n * images / total) for c, n in FLOWERS_COUNTS.items()}
    counts = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - counts[c], reverse=True):
        if sum(counts.values()) >= max(images, 2 * len(counts)):
            break
        counts[c] += 1
    return counts


def _write_class(job: tuple[Path, list[np.ndarray], tuple[int, int], int]) -> None:
    folder, patterns, size, seed = job
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, pattern in enumerate(patterns):
        img = np.asarray(Image.fromarray(pattern).resize(size, Image.BILINEAR), np.int16)
        img = img + rng.integers(-14, 15, img.shape, dtype=np.int16)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=88)


FLOWERS_IMAGES = sum(FLOWERS_COUNTS.values())


def make_flowers_folder(root: Path, images: int = FLOWERS_IMAGES, size: tuple[int, int] = (320, 240),
                        seed: int = 0, workers: int | None = None) -> Path:
    """`root` holding class folders of JPEGs (FLOWERS_COUNTS scaled to `images`), made if missing."""
    root = Path(root)
    spec = {"images": images, "size": list(size), "seed": seed, "format": "flowers/1"}
    marker = root / "flowers.json"
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == spec:
        return root
    if root.exists():
        shutil.rmtree(root)
    counts = scaled_counts(images)
    k = len(counts)
    # render's labels run i % k: enough patterns that the largest class gets its count
    rendered = render(SyntheticSpec(n=k * max(counts.values()), size=PATTERN_SIDE, classes=k,
                                    seed=seed))
    jobs = [(root / cls, [a for lab, a in rendered if lab == c][:n], tuple(size), seed * 100 + c)
            for c, (cls, n) in enumerate(counts.items())]
    workers = workers or min(len(jobs), usable_cpu_count())
    if workers > 1 and images > 200:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_class, jobs))
    else:
        for job in jobs:
            _write_class(job)
    marker.write_text(json.dumps(spec) + "\n", encoding="utf-8")
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.flowers",
                                description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("--images", type=int, default=FLOWERS_IMAGES)
    p.add_argument("--size", default="320x240", help="WxH")
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    root = make_flowers_folder(a.root, a.images, (w, h))
    files = list(root.rglob("*.jpg"))
    mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"{root}: {len(files)} JPEGs, {mb:.0f} MB ({1000 * mb / max(1, len(files)):.0f} kB each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
