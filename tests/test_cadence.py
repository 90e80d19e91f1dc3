"""Checkpoints at a cadence (`engine.cadence`), the stop signals, batches from device memory
(`data.device_batches`, `engine.batches`) and the CUDA settings, without training: the trainer
around them is tests/test_engine.py's."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from depthbench.cpus import usable_cpu_count
from depthbench.data.datasets import CachedImages
from depthbench.data.device_batches import DeviceImages, EpochBatches
from depthbench.data.transforms import normalize_transform
from depthbench.engine.batches import Budget
from depthbench.engine.cadence import AUTO_CAP_S, AUTO_RATIO, Cadence, Held
from depthbench.engine.devices import configure_backends
from depthbench.engine.loop import StopFlag


def test_cadence_flushes_first_then_keeps_writing_under_five_percent():
    auto = Cadence.from_minutes(None)
    assert auto.due(0.0)  # no flush yet: the first epoch's end writes (and times the write)
    auto.flushed(10.0, 12.0)  # a 2 s flush
    assert AUTO_RATIO * 2.0 / (AUTO_RATIO * 2.0 + 2.0) > 0.95  # writing: under 5% of the time
    assert not auto.due(12.0 + AUTO_RATIO * 2.0 - 0.1)
    assert auto.due(12.0 + AUTO_RATIO * 2.0)
    auto.flushed(100.0, 160.0)  # a slow 60 s flush: the cap bounds what a kill -9 loses
    assert not auto.due(160.0 + AUTO_CAP_S - 1) and auto.due(160.0 + AUTO_CAP_S)
    every = Cadence.from_minutes(2)
    every.flushed(0.0, 0.1)
    assert not every.due(120.0) and every.due(120.1)
    always = Cadence.from_minutes(0)
    always.flushed(0.0, 5.0)
    assert always.due(5.0)  # 0: every epoch, however long writing takes


def test_held_state_reuses_its_tensors_and_owns_its_values():
    w = torch.randn(4, 3).to(memory_format=torch.contiguous_format)
    conv = torch.randn(2, 3, 3, 3).to(memory_format=torch.channels_last)
    state = {"model": {"w": w, "conv": conv}, "optimizer": {"state": {0: {"step": torch.tensor(3.0)}},
                                                           "param_groups": [{"lr": 0.1}]},
             "history": [{"epoch": 1}], "epoch": 1}
    held = Held()
    held.hold(state)
    first = held.state
    ptrs = [first["model"]["w"].data_ptr(), first["model"]["conv"].data_ptr()]
    w.add_(1.0)
    state["history"].append({"epoch": 2})
    assert not torch.equal(first["model"]["w"], w) and len(first["history"]) == 1  # a copy
    held.hold(state | {"epoch": 2})
    again = held.state
    assert [again["model"]["w"].data_ptr(), again["model"]["conv"].data_ptr()] == ptrs  # reused
    assert torch.equal(again["model"]["w"], w) and again["epoch"] == 2
    assert again["model"]["conv"].stride() == conv.stride()  # channels_last kept
    assert again["optimizer"]["param_groups"] == [{"lr": 0.1}] and len(again["history"]) == 2


def test_sigusr2_stops_the_loop_and_is_handed_on_once_written():
    calls = []
    old = signal.signal(signal.SIGUSR2, lambda s, f: calls.append(s))
    try:
        with StopFlag() as stop:
            os.kill(os.getpid(), signal.SIGUSR2)
            assert stop.signum == signal.SIGUSR2 and calls == []  # stopped, not handed on yet
        stop.forward()  # after the trainer wrote its checkpoints
        assert calls == [signal.SIGUSR2]
        with StopFlag() as term:
            os.kill(os.getpid(), signal.SIGTERM)
        term.forward()  # SIGTERM stops here
        assert term.signum == signal.SIGTERM and calls == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, old)


def _cached(n: int = 11, side: int = 4) -> CachedImages:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)
    return CachedImages([i % 3 for i in range(n)], ["a", "b", "c"], None,
                        normalize_transform("source"), array=array, uint8=True)


@pytest.mark.parametrize("world, batch, drop_last", [(1, 4, False), (2, 2, True), (3, 4, False)])
def test_device_batches_are_the_data_loaders(world, batch, drop_last):
    """An epoch from device memory: the batches of a DataLoader over the same DistributedSampler
    (its permutation, padding and shard), uint8 to the bit."""
    ds = _cached()
    images = DeviceImages(ds, "cpu")
    for rank in range(world):
        sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=7)
        sampler.set_epoch(3)
        ours = list(EpochBatches(images, sampler, batch, drop_last))
        theirs = list(DataLoader(ds, batch_size=batch, sampler=sampler, drop_last=drop_last))
        assert len(ours) == len(theirs) == len(EpochBatches(images, sampler, batch, drop_last))
        for (x, y), (u, v) in zip(ours, theirs):
            assert x.dtype == torch.uint8 and torch.equal(x, u) and torch.equal(y, v)
            assert torch.equal(images.normalize(x), ds.normalize(u))


def test_budget_places_what_fits_and_never_a_per_image_random_stage():
    ds = _cached()
    budget = Budget(1, torch.device("cpu"))  # 1 MiB
    assert budget.place(ds) is not None and budget.left == 2**20 - DeviceImages.nbytes(ds)
    assert Budget(0, torch.device("cpu")).place(ds) is None  # 0: always a data loader
    augmented = _cached()
    augmented.augment = lambda x: x
    assert Budget(None, torch.device("cpu")).place(augmented) is None
    assert Budget(None, torch.device("cpu")).left == float("inf")  # the CPU: host memory already


def test_backends_are_left_alone_on_the_cpu_and_set_for_cuda():
    assert configure_backends("cpu") == {"tf32": False, "cudnn_benchmark": False}
    before = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32,
              torch.backends.cudnn.benchmark)
    try:
        assert configure_backends("cuda") == {"tf32": True, "cudnn_benchmark": True}
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark
        assert torch.get_float32_matmul_precision() == "high"  # what Lightning reads: no error
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = before[1:]
    assert usable_cpu_count() == len(os.sched_getaffinity(0))


def test_usable_cpus_fall_back_to_every_core_without_affinity(monkeypatch):
    from depthbench import cpus

    monkeypatch.delattr(cpus.os, "sched_getaffinity")
    assert cpus.usable_cpus() == list(range(os.cpu_count() or 1))
    assert cpus.usable_cpu_count() == (os.cpu_count() or 1)
