"""Batches from device memory: a cached split's uint8 images as one tensor on the training device.

When a split's decoded cache (`CachedImages.array`, N x 3 x s x s uint8) fits the device's
budget, the trainer puts it there once, with its targets. An epoch is then a list of indices
applied on the device (those of the run's sampler, so the batches equal a DataLoader's over the
same sampler): no worker processes, no host copies, and normalization (and a batched random
stage) on each batch where it lies. On the CPU the tensor is the cache array itself (a memory
map or the in-memory array), not a copy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import Sampler

from depthbench.data.datasets import CachedImages


class DeviceImages:
    """A cached split's uint8 images (N, 3, s, s) and int64 targets (N,) on `device`."""

    def __init__(self, dataset: CachedImages, device: torch.device | str):
        with warnings.catch_warnings():  # a read-only memory map: nothing writes through it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            images = torch.from_numpy(dataset.array)
        self.images = images.to(device)  # on the CPU: the array itself
        self.targets = torch.as_tensor(dataset.targets, dtype=torch.long).to(device)
        self.normalize = dataset.normalize

    def __len__(self) -> int:
        return len(self.targets)

    @staticmethod
    def nbytes(dataset: CachedImages) -> int:
        """Device memory the split would take (images and targets)."""
        return dataset.array.nbytes + 8 * len(dataset)

    def batches(self, indices: Iterable[int], batch_size: int,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images, targets) of `indices` in order, `batch_size` at a time (a last partial
        batch dropped with `drop_last`, as a DataLoader does)."""
        idx = torch.as_tensor(list(indices), dtype=torch.long).to(self.images.device)
        end = len(idx) - len(idx) % batch_size if drop_last else len(idx)
        for k in range(0, end, batch_size):
            i = idx[k:k + batch_size]
            yield self.images.index_select(0, i), self.targets.index_select(0, i)


class EpochBatches:
    """The training batches of one epoch in `sampler`'s order (its `set_epoch` decides the
    permutation), as a DataLoader with that sampler and `drop_last` would give them."""

    def __init__(self, images: DeviceImages, sampler: Sampler, batch_size: int, drop_last: bool):
        self.images, self.sampler = images, sampler
        self.batch_size, self.drop_last = batch_size, drop_last

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.images.batches(self.sampler, self.batch_size, self.drop_last)
