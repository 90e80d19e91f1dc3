"""Datasets for training and evaluation, backed by a decoded uint8 cache or by streaming decode.

The decoded cache holds each split's images after the recipe's deterministic stage
(`transforms.pre_transform`) as one uint8 array of shape (N, 3, s, s). On disk it is a `.npy` file
per split and stage, `<cache>/decoded/<manifest hash>/<stage>/<split>.npy`, written to a temporary
name and renamed when complete (a crash never leaves half a cache; a file lock keeps two runs of a
study from building it twice), then memory-mapped: the OS page cache keeps it in memory and every
DataLoader worker shares those pages. The manifest hash covers every file's content, so a cache can
never be stale. After the build no epoch decodes a JPEG or PNG; the random stage
(`transforms.augment_transform`) runs per item on the uint8 tensor, then normalization, unless
the caller runs it on whole batches (`batch_augment=True`, `transforms.batch_random_stage`).

When the arrays would exceed `memory_budget_mb`, the datasets stream instead (decode and transform
every item every epoch) and a warning says so. A file that cannot be decoded mid-epoch (changed or
deleted behind the run's back) is replaced by the next image of the same class, with a warning;
training does not crash.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from filelock import FileLock
from torch.utils.data import DataLoader, Dataset

from depthbench.configio import FULL_CROP_SCALE, FULL_TRIVIAL_AUGMENT
from depthbench.cpus import usable_cpu_count
from depthbench.data.images import read_image
from depthbench.data.sources import default_cache_dir
from depthbench.data.transforms import (
    augment_transform,
    cache_side,
    normalize_transform,
    pil_to_uint8,
    pre_transform,
    stage_key,
)
from depthbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from depthbench.data.sources import ImageSource
    from depthbench.data.split import Entry, Manifest

log = logging.getLogger("depthbench.data")

# dataset name -> (manifest split, train transforms?)
DATASET_SPLITS = {"train": ("train", True), "train_eval": ("train", False),
                  "val": ("val", False), "test": ("test", False)}


def decode(root: Path, path: str, pre: Callable) -> torch.Tensor:
    """One file -> RGB -> deterministic stage -> uint8 CHW tensor (what the cache stores)."""
    return pil_to_uint8(pre(read_image(root / path)))


class StreamingImages(Dataset):
    """Decodes every item from its file every time: `(float32 CHW normalized, label)`, or
    `(uint8 CHW, label)` with `uint8=True` (then apply `normalize` to the batch on its device)."""

    cached = False

    def __init__(self, root: Path, entries: list[Entry], classes: list[str], pre: Callable,
                 augment: Callable | None, normalize: Callable, uint8: bool = False):
        self.root = Path(root)
        self.paths = [e.path for e in entries]
        self.targets = [e.label for e in entries]
        self.classes = list(classes)
        self.pre, self.augment, self.normalize, self.uint8_output = pre, augment, normalize, uint8
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        for j in self._same_class_from(i):
            try:
                x = decode(self.root, self.paths[j], self.pre)
            except DataError as e:
                if self.paths[j] not in self._warned:
                    self._warned.add(self.paths[j])
                    log.warning("%s; using the next image of its class instead; run "
                                "`depthbench data check`", e)
                continue
            if self.augment is not None:
                x = self.augment(x)
            return (x if self.uint8_output else self.normalize(x)), self.targets[i]
        raise DataError(f"no image of class {self.classes[self.targets[i]]!r} in {self.root} "
                        "can be decoded any more; run `depthbench data check`")

    def _same_class_from(self, i: int, tries: int = 8):
        label, n = self.targets[i], len(self.paths)
        yield i
        found, j = 0, i
        for _ in range(n - 1):
            j = (j + 1) % n
            if self.targets[j] == label:
                yield j
                found += 1
                if found >= tries:
                    return


class CachedImages(Dataset):
    """Items from a uint8 array (N, 3, s, s): `(float32 CHW normalized, label)`, or
    `(uint8 CHW, label)` with `uint8=True` (then apply `normalize` to the batch on its device).

    The array is either in memory or a `.npy` file opened lazily (memory-mapped) in each process,
    so pickling the dataset for DataLoader workers copies a path, not the images. A DataLoader
    fetches a batch through `__getitems__`: one indexed read of the array, the random stage per
    image, then float conversion and normalization a few images at a time (the same values as
    item by item; faster for small images).
    """

    cached = True

    def __init__(self, targets: list[int], classes: list[str], augment: Callable | None,
                 normalize: Callable, array: np.ndarray | None = None, path: Path | None = None,
                 paths: list[str] | None = None, uint8: bool = False):
        self.targets, self.classes = list(targets), list(classes)
        self.augment, self.normalize, self.uint8_output = augment, normalize, uint8
        self.paths = list(paths or [])
        self.path = path
        self._array = array

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_array"] = None
        return state

    def __len__(self) -> int:
        return len(self.targets)

    def uint8(self, i: int) -> torch.Tensor:
        """The cached uint8 CHW image `i` (before the random stage)."""
        return torch.from_numpy(np.array(self.array[i]))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.uint8(i)
        if self.augment is not None:
            x = self.augment(x)
        return (x if self.uint8_output else self.normalize(x)), self.targets[i]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        x = torch.from_numpy(self.array[np.asarray(indices, dtype=np.int64)])  # B, 3, s, s uint8
        if self.augment is not None:
            x = torch.stack([self.augment(xi) for xi in x])
        if self.uint8_output:
            return list(zip(x.unbind(0), (self.targets[i] for i in indices)))
        # normalize a few images at a time: the floats stay in the CPU cache (at 224 px a whole
        # batch at once is slower than image by image)
        step = max(1, (1 << 20) // max(1, x[0].numel()))
        out = [y for k in range(0, len(x), step) for y in self.normalize(x[k:k + step]).unbind(0)]
        return list(zip(out, (self.targets[i] for i in indices)))


class _Decode(Dataset):
    def __init__(self, root: Path, paths: list[str], pre: Callable):
        self.root, self.paths, self.pre = root, paths, pre

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            return decode(self.root, self.paths[i], self.pre)
        except DataError as e:
            raise DataError(f"{e} (building the decoded cache); run `depthbench data check` "
                            "and start a new study on the current data") from None


def fill(array: np.ndarray, root: Path, paths: list[str], pre: Callable,
         workers: int | None = None) -> None:
    """Decode `paths` through `pre` into `array` (N, 3, s, s), in parallel worker processes."""
    if workers is None:
        workers = min(4, usable_cpu_count()) if len(paths) >= 512 else 0
    if multiprocessing.current_process().daemon:  # a daemonic process may not start workers
        workers = 0
    if len(paths) >= 512:
        log.info("decoding %d images from %s into the cache (once per study and size)",
                 len(paths), root)
    loader = DataLoader(_Decode(root, paths, pre), batch_size=64, num_workers=workers)
    k = 0
    for batch in loader:
        array[k:k + len(batch)] = batch.numpy()
        k += len(batch)


def _load_or_build(file: Path, shape: tuple, root: Path, paths: list[str], pre: Callable,
                   workers: int | None) -> None:
    """Make `file` hold the decoded array of `shape` (reuse a complete one, else build it)."""
    def complete() -> bool:
        try:
            a = np.load(file, mmap_mode="r")
            return a.shape == shape and a.dtype == np.uint8
        except (OSError, ValueError, EOFError):
            return False

    if complete():
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(file) + ".lock"):
        if complete():  # another run built it while we waited
            return
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        try:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            fill(arr, root, paths, pre, workers)
            arr.flush()
            del arr
            os.replace(tmp, file)
        finally:
            if tmp.exists():
                tmp.unlink()


def cache_bytes(manifest: Manifest, img_size: int, recipe: str,
                splits: tuple[str, ...] = tuple(DATASET_SPLITS)) -> int:
    """Bytes the decoded cache of these datasets takes (distinct split/stage arrays)."""
    total, seen = 0, set()
    for name in splits:
        split, train = DATASET_SPLITS[name]
        key = (split, stage_key(recipe, img_size, train))
        if key in seen:
            continue
        seen.add(key)
        side = cache_side(recipe, img_size, train)
        total += len(manifest.entries(split)) * 3 * side * side
    return total


def build_datasets(source: ImageSource, manifest: Manifest, recipe: str, img_size: int,
                   cache_dir: str | os.PathLike | bool | None = None,
                   memory_budget_mb: float | None = None, workers: int | None = None,
                   splits: tuple[str, ...] | None = None, uint8: bool = False,
                   batch_augment: bool = False, crop_scale: float = FULL_CROP_SCALE,
                   trivial_augment: bool = FULL_TRIVIAL_AUGMENT, eval_crop: float | None = None
                   ) -> dict[str, Dataset]:
    """`train` (train transforms), `train_eval` (train images, eval transforms), `val`, `test`;
    a split with no images is left out. Items are `(float32 CHW normalized, int label)`.

    `cache_dir`: None = the default cache folder, a path, or False for an in-memory cache only.
    `memory_budget_mb`: stream instead of caching when the cache would take more (0 = stream).
    `splits`: build only these datasets (e.g. `("val",)` for an evaluation); default all.
    `uint8`: items are augmented uint8 CHW tensors instead; the caller normalizes each batch with
    `dataset.normalize(batch)` after moving it to its device (4x less data through the workers
    and no float work in them: what a GPU run needs to keep the accelerator fed).
    `batch_augment`: the train dataset carries no random stage; its items are the cached
    uint8 squares and the caller applies `transforms.batch_random_stage` to each batch (with
    `uint8=True`, then normalizes).
    `crop_scale`, `trivial_augment`: the strength of the train split's random stage
    (`transforms.augment_transform`); `eval_crop`: the other splits' view (`pre_transform`).
    """
    unknown = set(splits or ()) - set(DATASET_SPLITS)
    if unknown:
        raise ConfigError(f"unknown dataset split(s) {sorted(unknown)}; "
                          f"choose from {', '.join(DATASET_SPLITS)}")
    needed = tuple(n for n in DATASET_SPLITS if (splits is None or n in splits)
                   and manifest.entries(DATASET_SPLITS[n][0]))
    size = cache_bytes(manifest, img_size, recipe, needed)
    stream = memory_budget_mb is not None and size > memory_budget_mb * 2**20
    if stream:
        log.warning("decoded cache would take %.0f MB, over the memory budget of %s MB: "
                    "streaming instead (every epoch decodes every image; slower)",
                    size / 2**20, memory_budget_mb)
    base = None
    if not stream and cache_dir is not False:
        base = (Path(cache_dir) if cache_dir else default_cache_dir()) / "decoded" / manifest.hash[:24]
    out: dict[str, Dataset] = {}
    memory: dict[tuple, np.ndarray] = {}
    for name in needed:
        split, train = DATASET_SPLITS[name]
        entries = manifest.entries(split)
        pre = pre_transform(recipe, img_size, train, eval_crop)
        augment = None if batch_augment else augment_transform(
            recipe, img_size, train, crop_scale=crop_scale, trivial_augment=trivial_augment)
        normalize = normalize_transform(recipe)
        if stream:
            out[name] = StreamingImages(source.root, entries, manifest.classes, pre, augment,
                                        normalize, uint8)
            continue
        key = stage_key(recipe, img_size, train, eval_crop)
        paths, targets = [e.path for e in entries], [e.label for e in entries]
        side = cache_side(recipe, img_size, train)
        shape = (len(entries), 3, side, side)
        if base is not None:
            file = base / key / f"{split}.npy"
            try:
                _load_or_build(file, shape, source.root, paths, pre, workers)
            except OSError as e:  # read-only or full disk: the run still gets an in-memory cache
                log.warning("cannot write the decoded cache under %s (%s): keeping it in memory "
                            "only, so the next run decodes again", base, e.strerror or e)
                base = None
            else:
                out[name] = CachedImages(targets, manifest.classes, augment, normalize, path=file,
                                         paths=paths, uint8=uint8)
                continue
        if (split, key) not in memory:
            memory[(split, key)] = arr = np.empty(shape, np.uint8)
            fill(arr, source.root, paths, pre, workers)
        out[name] = CachedImages(targets, manifest.classes, augment, normalize,
                                 array=memory[(split, key)], paths=paths, uint8=uint8)
    return out

