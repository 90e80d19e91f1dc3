"""Seconds on this machine: a few training steps and evaluation batches of each model, timed the
way a study's worker runs them, and the rates kept per machine for `run`'s first lines.

Each model is timed in a fresh process forked from a server that preloaded what a study's
worker preloads, with the study's threads, precision and batch, through the engine's own
`train_one_epoch` and `predict_batches` (Fabric, autocast, the fused optimizer, the recipe's
random stage): its first step (what a new worker pays for kernels it has not run yet), then a
few more. As many processes run at once as the study runs runs at once, so they share the cores
as the runs will. On a CPU a step counts its process's CPU seconds over its threads, not the wall
clock, so other work on the machine while `plan` times does not inflate the plan. A batch that
would take long is timed smaller and scaled per image.

What was measured is kept in `<cache>/plan_rates.json`, keyed by what changes it (the CPU or
GPU, torch's version, the precision and the threads of one run): `plan` reuses a model timed
before under the same key, and `run` estimates from it without timing anything.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import signal
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from depthbench._io import atomic_write_json
from depthbench.cpus import usable_cpu_count
from depthbench.data.sources import default_cache_dir
from depthbench.data.transforms import (
    augment_transform,
    batch_random_stage,
    cache_side,
    normalize_transform,
)
from depthbench.engine.config import TrainConfig, augmentation
from depthbench.engine.devices import default_channels_last, device_type, make_fabric
from depthbench.engine.loop import dihedral, flips, predict_batches, train_one_epoch
from depthbench.engine.optim import build_optimizer, build_scheduler
from depthbench.errors import DepthbenchError
from depthbench.models import create_model
from depthbench.study.worker import PRELOAD

FORMAT = "depthbench-rates/1"
RATES_FILE = "plan_rates.json"
# When nothing was measured on this machine: a rough rate of one CPU core for the training
# FLOPs of these models (labelled as rough wherever it is used).
ROUGH_FLOPS_PER_CORE = 20e9
# A timed step should take about this long at the rough rate: a batch that would take longer
# is timed smaller and scaled per image, so `plan` answers within a minute; but not below
# MIN_TIMED_BATCH images: a smaller step's fixed cost and small matrix products overstate the
# per-image time (a deep CNN timed at a few images is far slower per image than at its batch).
# The rough rate picks it, not a rate measured under another load.
STEP_TARGET_S = 2.0
MIN_TIMED_BATCH = 16
# Timed training steps after the first (cold) one; their mean is the step's time.
WARM_STEPS = 2
# Bytes written once to time this disk's writes (checkpoints).
WRITE_PROBE_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Timing:
    """One model's measured seconds at one batch and size: per training image (forward,
    backward, optimizer step, random stage), per evaluated image, the first step's and first
    evaluation's extra over a warm one, and the set-up (Fabric, the model, the optimizer)."""

    train_s_per_image: float
    eval_s_per_image: float
    cold_s: float
    setup_s: float
    batch_timed: int
    flops_per_s: float  # the training FLOPs per second this timing implies
    measured: str  # date


def machine_key(device: str, precision: str, threads: int) -> str:
    """What changes a rate: the processor (CPU model or GPU name), torch, precision, threads."""
    return f"{device} | torch {torch.__version__} | {precision} | {threads} threads"


def processor_name(device: str) -> str:
    """The CPU's model name (or the GPU's): the machine part of a rate's key."""
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timing_key(config: TrainConfig) -> str:
    """What one model's timing depends on besides the machine: model, options, size, batch,
    the recipe's random stage, the optimizer, the batch transforms (not the classes: the
    classifier's few outputs cost next to nothing)."""
    return json.dumps([config.model, config.model_kwargs(), config.img_size, config.batch_size,
                       config.recipe, config.optimizer, config.flips, config.dihedral,
                       config.channels_last], sort_keys=True)


class RateStore:
    """`<cache>/plan_rates.json`: per machine key, the model timings, the machine's training
    FLOP rate (their median), the time a study's worker server takes to start, and the disk's
    write rate."""

    def __init__(self, path: Path | None = None):
        self.path = path or default_cache_dir() / RATES_FILE
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError(doc.get("format"))
            self.machines, self._counts = dict(doc["machines"]), dict(doc.get("counts", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # none kept yet, or unreadable: measured again and rewritten
            self.machines, self._counts = {}, {}

    def machine(self, key: str) -> dict:
        return self.machines.get(key, {})

    def timing(self, key: str, model_key: str) -> Timing | None:
        entry = self.machine(key).get("models", {}).get(model_key)
        try:
            return Timing(**entry) if entry else None
        except TypeError:
            return None

    def gpu_record(self) -> tuple[str, float] | None:
        """A GPU's measured training FLOP rate kept here (`plan` run on a GPU machine with this
        cache), as (its key, FLOP/s); the fastest when several are."""
        gpus = [(k, m["flops_per_s"]) for k, m in self.machines.items()
                if m.get("device_type") == "cuda" and m.get("flops_per_s")]
        return max(gpus, key=lambda g: g[1]) if gpus else None

    def counts(self, key: str) -> dict | None:
        """A model's parameters and MACs as counted before (they depend on no machine)."""
        return self._counts.get(key)

    def keep_counts(self, key: str, counts: dict) -> None:
        self._counts[key] = counts
        self._save()

    def update(self, key: str, device: str, timings: dict[str, Timing], **machine) -> None:
        entry = self.machines.setdefault(key, {})
        models = entry.setdefault("models", {})
        models.update({k: asdict(t) for k, t in timings.items()})
        rates = [m["flops_per_s"] for m in models.values() if m.get("flops_per_s")]
        entry.update(device_type=device, measured=_today(), **machine,
                     flops_per_s=statistics.median(rates) if rates else None)
        self._save()

    def _save(self) -> None:
        try:
            atomic_write_json(self.path, {"format": FORMAT, "machines": self.machines,
                                          "counts": self._counts})
        except DepthbenchError:
            pass  # an unwritable cache: measured again next time, nothing lost


def timed_batch(batch_size: int, flops_per_image: float, device: str, threads: int) -> int:
    """The batch a model is timed at: the study's, or smaller where a step of it would take
    longer than STEP_TARGET_S at the rough rate."""
    step_s = flops_per_image * batch_size / rough_rate(device, threads)
    if step_s <= STEP_TARGET_S:
        return batch_size
    return min(batch_size, max(MIN_TIMED_BATCH, int(batch_size * STEP_TARGET_S / step_s)))


def measure(configs: dict[str, TrainConfig], *, num_classes: int, threads: int, at_once: int,
            flops_per_image: dict[str, float], device: str,
            progress=None) -> tuple[dict[str, Timing], float]:
    """Time each config's model in its own fresh worker process, `at_once` at a time with
    `threads` threads each. Returns the timings by key and the seconds until the first worker
    ran (a study pays the same to start its worker server)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD + [__name__])
    share = max(1.0, min(at_once, len(configs)) * threads / usable_cpu_count())
    jobs = [(key, config.model_dump(mode="json"), num_classes, threads, share,
             timed_batch(config.batch_size, flops_per_image[key], device, threads))
            for key, config in configs.items()]
    t0 = time.time()
    started, out = [], {}
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server ignores Ctrl-C, as a study's
    try:
        pool = ctx.Pool(processes=max(1, min(at_once, len(jobs))), maxtasksperchild=1)
    finally:
        signal.signal(signal.SIGINT, old)
    with pool:
        for key, result, began in pool.imap_unordered(_time_one, jobs):
            started.append(began)
            seconds = flops_per_image[key] / result["train_s_per_image"]
            out[key] = Timing(**result, flops_per_s=seconds, measured=_today())
            if progress is not None:
                progress(key)
    return out, max(0.0, min(started) - t0) if started else 0.0


def write_rate(folder: Path) -> float:
    """Bytes per second this disk takes a written, fsynced file at (checkpoints are written so)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = os.urandom(WRITE_PROBE_BYTES)
    fd, tmp = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=folder)
    try:
        t0 = time.perf_counter()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return len(data) / max(time.perf_counter() - t0, 1e-6)
    finally:
        os.unlink(tmp)


def _time_one(job) -> tuple[str, dict, float]:
    """In a fresh worker process: time one model (see the module docstring)."""
    began = time.time()
    key, values, num_classes, threads, share, batch = job
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    cfg = TrainConfig(**values)
    t0 = time.perf_counter()
    fabric = make_fabric(cfg.accelerator, cfg.precision)
    torch.manual_seed(0)
    net = create_model(cfg.model, num_classes=num_classes, **cfg.model_kwargs())
    channels_last = cfg.channels_last
    if channels_last is None:
        channels_last = default_channels_last(net, fabric.device.type, cfg.img_size)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = fabric.setup_module(net)
    optimizer = fabric.setup_optimizers(build_optimizer(net, cfg))
    scheduler = build_scheduler(optimizer.optimizer, 1 + WARM_STEPS, cfg)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    setup_s = time.perf_counter() - t0

    device = fabric.device.type
    random_stage = batch_random_stage(cfg.recipe, cfg.img_size, device, **augmentation(cfg))
    per_image = None if random_stage else augment_transform(cfg.recipe, cfg.img_size, True,
                                                            **augmentation(cfg))
    side = cache_side(cfg.recipe, cfg.img_size, True)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=gen)
    targets = torch.randint(0, num_classes, (batch,), generator=gen)
    normalize = normalize_transform(cfg.recipe)

    def batches(n: int):
        for _ in range(n):  # the per-image random stage runs in the dataset, on this process
            yield (torch.stack([per_image(x) for x in images]) if per_image else images), targets

    def train(n: int) -> float:
        cpu = time.process_time()
        wall = train_one_epoch(fabric, model, criterion, optimizer, scheduler, batches(n),
                               grad_clip=cfg.grad_clip, channels_last=channels_last,
                               limit_batches=n, random_stage=random_stage, normalize=normalize,
                               batch_transform=dihedral if cfg.dihedral else
                               flips if cfg.flips else None).seconds
        return _free_seconds(wall, time.process_time() - cpu, device, threads, share)

    eval_images = torch.randint(0, 256, (batch, 3, cfg.img_size, cfg.img_size), dtype=torch.uint8,
                                generator=gen)

    def evaluate(n: int) -> float:
        t, cpu = time.perf_counter(), time.process_time()
        predict_batches(fabric, net, [(eval_images, targets)] * n, n * batch, normalize=normalize,
                        channels_last=channels_last)
        if device == "cuda":
            torch.cuda.synchronize()
        return _free_seconds(time.perf_counter() - t, time.process_time() - cpu, device, threads,
                             share)

    first_train, warm_train = _first_and_warm(train, WARM_STEPS)
    first_eval, warm_eval = _first_and_warm(evaluate, 1)  # no backward: a small part of a run
    return key, {"train_s_per_image": warm_train / batch, "eval_s_per_image": warm_eval / batch,
                 "cold_s": max(0.0, first_train - warm_train) + max(0.0, first_eval - warm_eval),
                 "setup_s": setup_s, "batch_timed": batch}, began


def _free_seconds(wall: float, cpu: float, device: str, threads: int, share: float) -> float:
    """The seconds a step takes when the study has the machine to itself. On a CPU, other work
    on the cores stretches the wall clock but not the process's CPU clock: the step's CPU
    seconds spread over its threads, stretched only by the study's own runs sharing the cores
    (`share`), unless the wall clock says less."""
    if device != "cpu":
        return wall
    return min(wall, cpu / threads * share)


def _first_and_warm(run, steps: int) -> tuple[float, float]:
    """The first call's seconds (`run(1)`: what a new worker pays once), and a warm call's:
    the mean of `steps` more."""
    first = run(1)
    return first, run(steps) / steps


def rough_rate(device: str, threads: int) -> float:
    """A rough training FLOP rate where none was measured (CPU: per core)."""
    return ROUGH_FLOPS_PER_CORE * threads


def device_of(config: TrainConfig) -> str:
    return device_type(config.accelerator)


def _today() -> str:
    return time.strftime("%Y-%m-%d")
