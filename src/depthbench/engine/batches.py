"""Where a run's batches come from: device memory when a cached split fits, else a DataLoader.

- A cached split without a per-image random stage that fits the device budget lives on the device
  as one uint8 tensor (`data.device_batches`); an epoch indexes it in its sampler's order.
- Otherwise a DataLoader feeds it: uint8 items through the worker processes (normalization runs
  on the batch on the device), pinned memory on CUDA, workers kept for the whole run
  (`persistent_workers`), each split's loader built once.

Both paths give the same batches and leave torch's global RNG alike, so a run may resume on the
other one (the budget is an execution option): each epoch draws one number from it at its start,
as a DataLoader's iterator did before the loaders got a generator of their own, and the worker
processes reseed from that number and the batch's position, so an epoch's random stage replays
after a resume whatever the workers did before.
"""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Subset

from depthbench.data.device_batches import DeviceImages, EpochBatches
from depthbench.errors import ConfigError

# The auto budget on a GPU: this share of the memory free when the run starts (the rest is the
# model's, its activations' and, with several runs on one GPU, the other runs').
DEVICE_FRACTION = 0.25


def seed_all(key: str) -> None:
    """Seed Python's, NumPy's and torch's global RNGs from the string `key`."""
    s = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


class Budget:
    """Device memory the run's splits may still take, in bytes (`device_memory_mb`; None = auto:
    DEVICE_FRACTION of the free memory on CUDA; the CPU holds the cache in host memory already, so
    there it is unlimited)."""

    def __init__(self, device_memory_mb: int | None, device: torch.device):
        if device_memory_mb is not None:
            self.left = float(device_memory_mb) * 2**20
        elif device.type == "cuda":
            self.left = DEVICE_FRACTION * torch.cuda.mem_get_info(device)[0]
        else:
            self.left = math.inf
        self.device = device

    def place(self, dataset: Dataset) -> DeviceImages | None:
        """`dataset` on the device when it is a cached split with no per-image random stage and
        fits what is left of the budget; else None (a DataLoader feeds it)."""
        if not getattr(dataset, "cached", False) or dataset.augment is not None:
            return None
        need = DeviceImages.nbytes(dataset)
        if need > self.left:
            return None
        self.left -= need
        return DeviceImages(dataset, self.device)


def _own_generator() -> torch.Generator:
    """A DataLoader's own generator: its iterator draws its workers' base seed from it, not from
    the global RNG (module docstring)."""
    return torch.Generator().manual_seed(0)


class TrainFeed:
    """The training split's batches, epoch by epoch: uint8 images (B, 3, r, r) and targets."""

    def __init__(self, fabric, dataset: Dataset, batch_size: int, seed: int, budget: Budget,
                 workers: int, limit_batches: int | None = None):
        self.sampler = DistributedSampler(dataset, num_replicas=fabric.world_size,
                                          rank=fabric.global_rank, shuffle=True, seed=seed,
                                          drop_last=False)
        # a last batch of one sample would break BatchNorm: drop it only in that case
        drop_last = len(self.sampler) % batch_size == 1
        self.seed = [0]  # this epoch's draw (a list the batch sampler shares, not the feed)
        images = budget.place(dataset)
        self.resident = images is not None
        if images is not None:
            self.loader, workers = EpochBatches(images, self.sampler, batch_size, drop_last), 0
        elif workers == 0:
            self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler,
                                     drop_last=drop_last, generator=_own_generator())
        else:
            batches = _SeededBatches(BatchSampler(self.sampler, batch_size, drop_last), self.seed)
            self.loader = DataLoader(_SeededItems(dataset), batch_sampler=batches,
                                     num_workers=workers, persistent_workers=True,
                                     pin_memory=fabric.device.type == "cuda",
                                     generator=_own_generator())
        self.workers = workers
        self.steps = len(self.loader) if limit_batches is None else min(len(self.loader),
                                                                        limit_batches)
        if self.steps == 0:
            raise ConfigError(f"--batch-size {batch_size}: no training batch from "
                              f"{len(dataset)} training images")

    def start_epoch(self, epoch: int) -> None:
        """Call after seeding the epoch: its permutation, and its one draw from the global RNG
        (module docstring)."""
        self.sampler.set_epoch(epoch)
        self.seed[0] = int(torch.empty((), dtype=torch.int64).random_().item())

    def describe(self) -> str:
        """Where the batches come from, for the run's provenance."""
        return "device memory" if self.resident else f"data loader, {self.workers} workers"


class _SeededBatches:
    """The batch sampler of a loader with workers: each index comes with the seed of its batch,
    from the epoch's draw and the batch's position."""

    def __init__(self, batches: BatchSampler, seed: list[int]):
        self.batches, self.seed = batches, seed

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for b, indices in enumerate(self.batches):
            key = f"{self.seed[0]}:{b}"
            yield [(i, key) for i in indices]


class _SeededItems(Dataset):
    """`dataset`'s items, its random stage seeded per batch (a persistent worker's RNG would
    otherwise carry over from one epoch to the next)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        i, seed = key
        seed_all(seed)
        return self.dataset[i]

    def __getitems__(self, keys: list) -> list:
        seed_all(keys[0][1])
        indices = [i for i, _ in keys]
        many = getattr(self.dataset, "__getitems__", None)
        return many(indices) if many is not None else [self.dataset[i] for i in indices]


class EvalFeed:
    """One evaluation split's shard on this rank (samples r, r+W, ...; no padding), built once
    per run: from device memory, or a DataLoader whose workers persist."""

    def __init__(self, fabric, dataset: Dataset, batch_size: int, budget: Budget, workers: int):
        rank, world = fabric.global_rank, fabric.world_size
        self.n = len(dataset)
        self.normalize = dataset.normalize if getattr(dataset, "uint8_output", False) else None
        shard = range(rank, self.n, world)
        images = budget.place(dataset)
        if images is not None:
            self._images, self._shard, self._batch_size = images, shard, batch_size
            self._loader = None
        else:
            workers = min(workers, math.ceil(len(shard) / batch_size))
            self._loader = DataLoader(Subset(dataset, shard), batch_size=batch_size,
                                      shuffle=False, num_workers=workers,
                                      persistent_workers=workers > 0,
                                      pin_memory=fabric.device.type == "cuda",
                                      generator=_own_generator())

    def __iter__(self):
        if self._loader is not None:
            return iter(self._loader)
        return self._images.batches(self._shard, self._batch_size)
