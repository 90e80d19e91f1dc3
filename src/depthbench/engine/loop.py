"""The two loops of a run, torchvision-references style: `train_one_epoch` and `predict_logits`.

Devices, precision, DDP and gradient scaling come from Lightning Fabric; these functions only say
what one epoch does. The hot loop keeps its running sums on the device and reads them back every
`check_every` steps (one host sync), never per step.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from depthbench.errors import StopSignal


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, value: float):
        super().__init__(f"non-finite training loss ({value}) near step {step}")
        self.step, self.value = step, value


class StopRequested(StopSignal):
    """SIGTERM / SIGUSR2 / Ctrl-C arrived: the partial epoch is dropped, and the trainer writes the
    last completed epoch's checkpoints."""


# SIGUSR2: what SLURM sends before a preemption or the time limit (`--signal`), and submitit's
# checkpoint-and-requeue signal
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR2", None))
                     if s is not None)


@dataclass
class StopFlag:
    """Set by SIGINT/SIGTERM/SIGUSR2; the loop checks it between steps and stops cleanly."""

    signum: int | None = None
    _old: dict = field(default_factory=dict)

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def forward(self) -> None:
        """Hand a SIGUSR2 on to the handler it found (submitit's, inside a SLURM job: it
        requeues the job), once the run's checkpoints are written. Other signals stop here."""
        old = self._old.get(self.signum)
        if self.signum == getattr(signal, "SIGUSR2", None) and callable(old):
            old(self.signum, None)


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: int = 0
    total: int = 0
    seconds: float = 0.0
    lr: float = 0.0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.total)

    @property
    def acc(self) -> float:
        return self.correct / max(1, self.total)


def train_one_epoch(fabric, model: nn.Module, criterion: nn.Module, optimizer, scheduler,
                    loader, *, grad_clip: float = 0.0, channels_last: bool = False,
                    limit_batches: int | None = None, stop: StopFlag | None = None,
                    check_every: int = 25, on_step=None, batch_transform=None,
                    random_stage=None, normalize=None) -> EpochStats:
    """One pass over `loader`. Returns sample-weighted means reduced over all ranks.
    Each batch of images, once on the device: `random_stage` (uint8 -> uint8, a batched random
    stage), `normalize` (uint8 -> normalized float), then `batch_transform` (e.g. `dihedral`).

    Raises `NonFiniteLoss` (checked every `check_every` steps and at the end: all ranks agree) or
    `StopRequested` (when `stop` was set; checked every step on one process)."""
    model.train()
    device = fabric.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = torch.zeros((), device=device, dtype=torch.int64)
    bad = torch.zeros((), device=device, dtype=torch.bool)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    t0 = time.perf_counter()
    step, lr = 0, optimizer.param_groups[0]["lr"]
    for step, (x, y) in enumerate(loader, 1):
        x, y = fabric.to_device(x), fabric.to_device(y)
        if random_stage is not None:
            x = random_stage(x)
        if normalize is not None:
            x = normalize(x)
        if batch_transform is not None:
            x = batch_transform(x)
        x = x.contiguous(memory_format=fmt)
        logits = model(x)
        loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(loss)
        if grad_clip:
            fabric.clip_gradients(model, optimizer, max_norm=grad_clip, error_if_nonfinite=False)
        lr = optimizer.param_groups[0]["lr"]  # a Python float: no sync
        optimizer.step()
        scheduler.step()
        with torch.no_grad():  # running sums on the device: no host sync here
            loss = loss.detach()
            bad |= ~torch.isfinite(loss)
            loss_sum += loss.double() * y.numel()
            correct += (logits.argmax(1) == y).sum()
            seen += y.numel()
        last = limit_batches is not None and step >= limit_batches
        if step % check_every == 0 or last:
            _check(fabric, bad, stop, loss_sum, seen, step)
        elif fabric.world_size == 1 and stop is not None and stop.signum is not None:
            raise StopRequested
        if on_step is not None:
            on_step(step)
        if last:
            break
    _check(fabric, bad, stop, loss_sum, seen, step)
    sums = fabric.all_reduce(torch.stack([loss_sum, correct.double(), seen.double()]),
                             reduce_op="sum").tolist()
    return EpochStats(loss_sum=sums[0], correct=int(sums[1]), total=int(sums[2]),
                      seconds=time.perf_counter() - t0, lr=lr)


def dihedral(x: torch.Tensor) -> torch.Tensor:
    """Each square image of the batch `x` (B, C, H, H) under one of the 8 symmetries of the
    square (a horizontal flip or not, then 0-3 quarter turns), drawn from torch's global RNG (so
    an epoch replays after a resume). For images with no preferred orientation (not ELPV's
    cells: their busbars run one way, and `flips` keeps it); done on the batch because the
    recipes' per-image transforms have no rotation."""
    x = _flip_some(x, -1)
    turns = torch.randint(0, 4, (x.shape[0],), device=x.device)
    out = x.clone()
    for k in (1, 2, 3):
        idx = (turns == k).nonzero().flatten()
        if len(idx):
            out[idx] = torch.rot90(x[idx], k, dims=(-2, -1))
    return out


def flips(x: torch.Tensor) -> torch.Tensor:
    """Each image of the batch `x` (B, C, H, W) flipped left-right, top-bottom, both or neither,
    drawn from torch's global RNG: the symmetries that keep rows rows and columns columns (a solar
    cell's busbars stay as they were; `dihedral`'s quarter turns would turn them)."""
    return _flip_some(_flip_some(x, -1), -2)


def _flip_some(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Each image of the batch `x` flipped along `dim` or not, with probability 1/2 each (one
    `torch.rand` draw per image)."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(dim), x)


def _check(fabric, bad, stop, loss_sum, seen, step) -> None:
    flags = torch.stack([bad.to(torch.float64),
                         torch.tensor(float(stop is not None and stop.signum is not None),
                                      dtype=torch.float64, device=bad.device)])
    flags = fabric.all_reduce(flags, reduce_op="sum").tolist()  # all ranks stop together
    if flags[0]:
        raise NonFiniteLoss(step, float(loss_sum / seen.clamp(min=1)))
    if flags[1]:
        raise StopRequested


def predict_logits(fabric, model: nn.Module, dataset: Dataset, batch_size: int, *,
                   workers: int = 0, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of every sample of `dataset`, in dataset order, on every rank.

    Rank r evaluates samples r, r+W, r+2W, ... (no sampler padding, so every sample counts exactly
    once) through a DataLoader over its shard; `predict_batches` does the rest."""
    rank, world = fabric.global_rank, fabric.world_size
    shard = Subset(dataset, range(rank, len(dataset), world))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=fabric.device.type == "cuda")
    normalize = dataset.normalize if getattr(dataset, "uint8_output", False) else None
    return predict_batches(fabric, model, loader, len(dataset), normalize=normalize,
                           channels_last=channels_last)


@torch.no_grad()
def predict_batches(fabric, model: nn.Module, batches, n: int, *, normalize=None,
                    channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets of the `n` samples of a split, in its order, on every rank, from this
    rank's `batches` of its shard (samples r, r+W, ...: images, `normalize`d on the device when
    given, and targets); an all-gather then interleaves the shards back into the split's order.
    `model` is the plain module: each rank runs its own shard without DDP's collectives."""
    world = fabric.world_size
    if world > 1:
        sync_buffers(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    logits, targets = [], []
    with fabric.autocast():
        for x, y in batches:
            x = fabric.to_device(x)
            if normalize is not None:
                x = normalize(x)
            logits.append(model(x.contiguous(memory_format=fmt)).float())
            targets.append(fabric.to_device(torch.as_tensor(y)))
    model.train(was_training)
    k = _num_outputs(model, logits)
    out = torch.cat(logits) if logits else torch.zeros(0, k, device=fabric.device)
    tgt = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long, device=fabric.device)
    if world > 1:
        per_rank = math.ceil(n / world)
        pad = per_rank - len(out)
        out = torch.cat([out, out.new_zeros(pad, k)])
        tgt = torch.cat([tgt, tgt.new_zeros(pad)])
        # (W, per_rank, k) -> row i*W + r is sample r + i*W; padding rows all land past n
        with warnings.catch_warnings():  # Lightning's own call of a deprecated torch helper
            warnings.filterwarnings("ignore", message=".*all_gather is deprecated")
            out = fabric.all_gather(out).transpose(0, 1).reshape(-1, k)[:n]
            tgt = fabric.all_gather(tgt).transpose(0, 1).reshape(-1)[:n]
    return out.cpu(), tgt.cpu()


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank. DDP broadcasts them
    at the start of each training forward, so after the last step every rank holds its own; the
    evaluated model must be the one rank 0 saves."""
    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)


def _num_outputs(model: nn.Module, logits: list[torch.Tensor]) -> int:
    if logits:
        return logits[0].shape[1]
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
