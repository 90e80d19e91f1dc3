"""When a run writes its checkpoints, and what it holds in memory between two writes.

A flush writes, together and for one epoch: best.safetensors (when the best epoch changed since
the last flush), last.ckpt, metrics.csv and result.json. The records on disk therefore always say
what a resume would continue from (`study.records.epochs_done` counts metrics.csv's rows; a
result.json's `epochs_completed` equals last.ckpt's epoch). Between flushes the last completed
epoch's resume state and the best weights are held in host memory, in tensors allocated once and
reused (`Held`); a stop (Ctrl-C, SIGTERM, SIGUSR2), a failure and the end of training flush them,
so a stop mid-epoch writes the last completed epoch exactly. A stop signal that arrives during a
flush waits for the whole flush (`_io.held_interrupts`): the four files never disagree because a
stop came between two of them. A kill -9 loses the epochs since the last flush, at most one
interval; rerunning trains them again, identically.

The cadence (`checkpoint_every`, minutes) flushes at the end of an epoch once that much time has
passed since the last flush ended; 0 flushes every epoch. Auto (None): after the first epoch,
then once the time since the last flush reaches AUTO_RATIO times that flush's duration (writing
then takes at most 1 / (1 + AUTO_RATIO), under 5%, of the run), and at least every AUTO_CAP_S
seconds (what a kill -9 may lose; only a flush of over AUTO_CAP_S / AUTO_RATIO = 30 s would then
take more than 5%). Epochs longer than the interval flush every epoch, as CPU runs do.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from depthbench._io import held_interrupts
from depthbench.engine import checkpoint as ckpt
from depthbench.runrecord import write_metrics

AUTO_RATIO = 20
AUTO_CAP_S = 600.0


@dataclass
class Cadence:
    """The flush decision: `due(now)` at an epoch's end, `flushed(start, end)` after a flush
    (times from `time.monotonic`)."""

    every_s: float | None = None  # None: auto
    last_end: float | None = None  # None: no flush yet
    last_seconds: float = 0.0

    @classmethod
    def from_minutes(cls, minutes: float | None) -> Cadence:
        return cls(None if minutes is None else 60.0 * minutes)

    def interval(self) -> float:
        """Seconds from the end of the last flush to the next one."""
        if self.every_s is not None:
            return self.every_s
        return min(AUTO_CAP_S, AUTO_RATIO * self.last_seconds)

    def due(self, now: float) -> bool:
        return self.last_end is None or now - self.last_end >= self.interval()

    def flushed(self, start: float, end: float) -> None:
        self.last_end, self.last_seconds = end, end - start


class Held:
    """A state (nested dicts and lists of tensors and plain values) copied into host tensors that
    are allocated by the first `hold` and reused (`copy_`) by the next ones: holding a state every
    epoch allocates nothing. Pinned when the state is on CUDA, so the copies run asynchronously
    (`state` waits for them)."""

    def __init__(self, pin: bool = False):
        self.pin = pin
        self._state: Any = None
        self._async = False

    def hold(self, state: Any) -> None:
        self._state = self._into(self._state, state)

    @property
    def state(self) -> Any:
        if self._async:
            torch.cuda.synchronize()
            self._async = False
        return self._state

    def _into(self, held: Any, new: Any) -> Any:
        if isinstance(new, torch.Tensor):
            new = new.detach()
            pin = self.pin and new.is_cuda
            if not (isinstance(held, torch.Tensor) and held.shape == new.shape
                    and held.dtype == new.dtype and held.stride() == new.stride()):
                held = torch.empty_strided(new.shape, new.stride(), dtype=new.dtype,
                                           device="cpu", pin_memory=pin)
            self._async |= pin
            return held.copy_(new, non_blocking=pin)
        if isinstance(new, dict):
            old = held if isinstance(held, dict) else {}
            return {k: self._into(old.get(k), v) for k, v in new.items()}
        if isinstance(new, (list, tuple)):
            old = held if type(held) is type(new) and len(held) == len(new) else [None] * len(new)
            return type(new)(self._into(h, v) for h, v in zip(old, new))
        return copy.deepcopy(new)


class Checkpoints:
    """A run's checkpoints on rank 0: `epoch_done` after each epoch (a flush when the cadence
    says so, else the state held), `flush` to write what is held (module docstring)."""

    def __init__(self, out: Path, cadence: Cadence, meta: dict, record, pin: bool = False,
                 history: list[dict] | None = None, best: dict | None = None):
        """`history`, `best`: what the files hold already (a resumed run's last.ckpt)."""
        self.out, self.cadence, self.meta, self.record = out, cadence, meta, record
        self.last, self.best = Held(pin), Held(pin)
        self.pending: int | None = None  # epoch of the held resume state, newer than last.ckpt
        self.best_pending: int | None = None  # epoch of the held best weights, newer than disk's
        self.written = (list(history or []), best)  # the history and best the files hold
        self.seconds = 0.0  # spent holding and writing (the benchmarks read it)

    def epoch_done(self, state: dict[str, Any], improved: bool) -> bool:
        """After epoch `state["epoch"]` (a `checkpoint.resume_state` of the live run): flush now,
        or hold it (and the weights, when `improved`). Returns whether it flushed."""
        epoch = state["epoch"]
        t0 = time.monotonic()
        if self.cadence.due(t0):
            if improved:
                best = (state["model"], epoch)
            else:
                best = (self.best.state, self.best_pending) if self.best_pending else None
            self._write(state, best)
            return True
        self.last.hold(state)
        self.pending = epoch
        if improved:
            self.best.hold(state["model"])
            self.best_pending = epoch
        self.seconds += time.monotonic() - t0
        return False

    def flush(self) -> None:
        """Write the held state, if it is newer than the files."""
        if self.pending is not None:
            best = (self.best.state, self.best_pending) if self.best_pending else None
            self._write(self.last.state, best)

    def close(self, status: str, failure: dict | None = None) -> None:
        """Flush, then record the run as `status` (`interrupted`, `failed`) at the epoch the files
        hold, which may be before the live run's last one (an interrupt that came between an
        epoch's end and its `epoch_done`). One hold for both: a stop waits for the record."""
        with held_interrupts():
            self.flush()
            self.record.write(status, *self.written, failure=failure)

    def _write(self, state: dict[str, Any], best: tuple[dict, int] | None) -> None:
        t0 = time.monotonic()
        with held_interrupts():  # one flush, one epoch: a stop waits for all four files
            if best is not None:
                weights, epoch = best
                ckpt.save_weights(self.out / "best.safetensors", weights,
                                  self.meta | {"epoch": epoch})
            ckpt.write_resume_state(self.out / "last.ckpt", state)
            write_metrics(self.out / "metrics.csv", state["history"])
            self.record.write("running", state["history"], state["best"])
            self.written = (list(state["history"]), state["best"])
            self.pending = self.best_pending = None
        t1 = time.monotonic()
        self.cadence.flushed(t0, t1)
        self.seconds += t1 - t0
