"""Shared fixtures. Sections: the order of files, the cache folder, tiny images, image folders,
bundled sources.

Every test runs with `DEPTHBENCH_CACHE` pointing at a per-session temporary folder, so nothing
touches the user's `~/.cache/depthbench`. Images are a few pixels each, so the full flowers
layout (`FLOWERS_COUNTS`) is cheap to generate.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from threadpoolctl import threadpool_limits

from depthbench.report.source import FLOWERS_COUNTS  # the source study's data, one home

# torch's OpenMP threads wait for work by spinning (libgomp's default) unless told otherwise. The
# suite runs two workers beside each other (`make test`) on a machine that may have no more
# cores than threads, and every training subprocess inherits this: set before torch is imported
# here or in any subprocess, so a waiting thread sleeps and leaves its core to the other worker.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# ------------------------------------------------------------------------- the order of files

# `make test` runs the suite on two pytest-xdist workers that take one test file at a time, in
# the order collected (`--dist loadfile --no-loadscope-reorder`): the files that hold the longest
# tests go first, so that no worker starts one of them while the other is left with nothing to
# do. Longest first; every other file keeps pytest's order, after these.
LONGEST_FIRST = ("test_reliability.py", "test_run.py", "test_gpu_check.py", "test_engine.py",
                 "test_report.py", "test_slurm_executor.py", "test_cv.py", "test_analysis.py",
                 "test_bad_input.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


# ------------------------------------------------------------------------- the cache folder


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Point `DEPTHBENCH_CACHE` at a session temp folder (decoded caches, synthetic images)."""
    old = os.environ.get("DEPTHBENCH_CACHE")
    os.environ["DEPTHBENCH_CACHE"] = str(tmp_path_factory.mktemp("depthbench-cache"))
    yield Path(os.environ["DEPTHBENCH_CACHE"])
    if old is None:
        os.environ.pop("DEPTHBENCH_CACHE", None)
    else:
        os.environ["DEPTHBENCH_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """One BLAS thread for numpy and scipy in the test process (torch keeps its own): the
    suite's matrices are small, and on a shared two-core machine OpenBLAS's threads spend the
    statistics tests waiting on each other at every product."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ---------------------------------------------------------------------------- tiny images

# Every Pillow mode an image file can arrive in, and a format that stores it.
MODE_FORMATS = {
    "1": "PNG", "L": "PNG", "LA": "PNG", "P": "PNG", "PA": None, "RGB": "PNG", "RGBA": "PNG",
    "CMYK": "JPEG", "YCbCr": "JPEG", "I;16": "PNG", "I": "TIFF", "F": "TIFF", "LAB": "TIFF",
    "HSV": None, "RGBa": None, "La": None,
}
ALL_MODES = list(MODE_FORMATS)


def make_image(mode: str = "RGB", size: tuple[int, int] = (6, 4), seed: int = 0) -> Image.Image:
    """A seeded noise image of `mode` and `size` (w, h); 16-bit and float modes span their range,
    palette images get a transparent entry in mode PA / with `transparency` in P."""
    rng = np.random.default_rng(seed)
    w, h = size
    if mode in ("I;16", "I"):
        a = rng.integers(0, 65536, (h, w))
        if mode == "I;16":
            return Image.frombytes("I;16", size, a.astype("<u2").tobytes())
        return Image.fromarray(a.astype(np.int32), "I")
    if mode == "F":
        return Image.fromarray(rng.uniform(0, 255, (h, w)).astype(np.float32), "F")
    if mode in ("P", "PA"):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        img = img.quantize(colors=8)
        if mode == "PA":
            return img.convert("PA")
        img.info["transparency"] = 0
        return img
    base = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    return base.convert(mode) if mode != "RGBA" else base


@pytest.fixture
def image_factory() -> Callable[..., Image.Image]:
    """`image_factory(mode, size=(6, 4), seed=0)` -> a PIL image of any mode in ALL_MODES."""
    return make_image


def unique_png(path: Path, i: int, size: tuple[int, int] = (2, 2)) -> Path:
    """A tiny RGB PNG whose pixels encode `i`: distinct files never share content."""
    n = size[0] * size[1] * 3
    data = i.to_bytes(n, "big")
    Image.frombytes("RGB", size, data).save(path, "PNG", compress_level=0)
    return path


def make_image_folder(root: Path, counts: dict[str, int], start: int = 0,
                      ext: str = ".png") -> Path:
    """`counts` = {class: n}: one sub-folder per class of distinct images `0000.png`, ...: tiny
    PNGs whose pixels encode their number (`unique_png`), or with `ext=".jpg"` 16 px noise JPEGs.
    `start` offsets the numbering, so folders made with other starts share no image."""
    root.mkdir(parents=True, exist_ok=True)
    k = start
    for cls, n in counts.items():
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for j in range(n):
            k += 1
            if ext == ".png":
                unique_png(d / f"{j:04d}.png", k)
            else:
                make_image("RGB", (16, 16), seed=k).save(d / f"{j:04d}{ext}", quality=90)
    return root


def make_grouped_folder(root: Path, counts: dict[str, int], ext: str = ".png") -> Path:
    """`make_image_folder` plus exact duplicates (a copy of `a/0000` in class a, of `a/0001` in
    class b) and a groups file `<root>/../groups.csv` (`path,group`): images in pairs, and one
    group across classes a and b (their `0003` images). Returns the groups file's path."""
    make_image_folder(root, counts, ext=ext)
    shutil.copy(root / "a" / f"0000{ext}", root / "a" / f"copy{ext}")
    shutil.copy(root / "a" / f"0001{ext}", root / "b" / f"copy{ext}")
    rows = ["path,group"]
    for p in sorted(q.relative_to(root).as_posix() for q in root.rglob(f"*{ext}")):
        cls, name = p.split("/")
        group = "across" if name == f"0003{ext}" and cls in "ab" else f"{cls}-{len(rows) // 2}"
        rows.append(f"{p},{group}")
    groups = root.parent / "groups.csv"
    groups.write_text("\n".join(rows) + "\n")
    return groups


@pytest.fixture
def image_folder(tmp_path) -> Callable[..., Path]:
    """`image_folder({"a": 10, "b": 12}, name="data")` -> a fresh image folder under tmp_path."""

    def make(counts: dict[str, int], name: str = "data", start: int = 0) -> Path:
        return make_image_folder(tmp_path / name, counts, start)

    return make


# ---------------------------------------------------------------------------- the flowers layout


@pytest.fixture(scope="session")
def flowers_dir(tmp_path_factory) -> Path:
    """The source study's flower_photos layout (class names and counts) of tiny distinct PNGs.
    Read-only for tests: copy it before changing anything."""
    return make_image_folder(tmp_path_factory.mktemp("flowers") / "flower_photos", FLOWERS_COUNTS)


# ---------------------------------------------------------------------------- bundled sources

SYNTHETIC = "synthetic:n=60,size=16,classes=3,seed=0"


@pytest.fixture(scope="session")
def synthetic_source():
    """A small synthetic source (60 images of 16 px, 3 classes) in the session cache folder."""
    from depthbench.data.sources import open_source

    return open_source(SYNTHETIC)


# ---------------------------------------------------------------------------- a signal mid-write


class _SignalInsideWrite:
    """A file being written whose first `write` raises `signum` in this process: its handler
    runs there, in the middle of the write (inside torch's zip writer, for a checkpoint)."""

    def __init__(self, f, signum: int):
        self._f, self._signum, self.sent = f, signum, False

    def write(self, data):
        if not self.sent:
            self.sent = True
            signal.raise_signal(self._signum)  # runs the Python handler now, before returning
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def signal_inside_write(monkeypatch) -> Callable[..., None]:
    """`signal_inside_write(name, signum, nth=1)`: the `nth` atomic write of a file named `name`
    (its temporary `.name.*.tmp`) in this process gets `signum` in the middle of its data."""
    import depthbench._io as dio

    real = os.fdopen

    def arm(name: str, signum: int, nth: int = 1) -> None:
        seen = []

        def fdopen(fd, *args, **kwargs):
            f = real(fd, *args, **kwargs)
            if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{name}."):
                seen.append(fd)
                if len(seen) == nth:
                    return _SignalInsideWrite(f, signum)
            return f

        monkeypatch.setattr(dio.os, "fdopen", fdopen)

    return arm
