"""What a training run shows while it runs: a progress bar, or one line per epoch."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from depthbench.engine.config import TrainConfig


def log(msg: str) -> None:
    print(f"depthbench: {msg}", file=sys.stderr, flush=True)


class RunProgress:
    """A rich progress bar over the run's steps with ETA; with --quiet (or no terminal) one log
    line per epoch instead."""

    def __init__(self, cfg: TrainConfig, steps: int, start_epoch: int, enabled: bool):
        self.cfg, self.enabled = cfg, enabled
        self.bar = None
        if enabled and not cfg.quiet and sys.stderr.isatty():
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                                TimeRemainingColumn(), console=Console(stderr=True))
            total = steps * cfg.epochs
            self.task = self.bar.add_task(cfg.model, total=total, completed=steps * (start_epoch - 1))

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def step(self, i: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def epoch_done(self, row: dict, epochs: int) -> None:
        if not self.enabled:
            return
        va = "n/a" if row["val_acc"] is None else f"{row['val_acc']:.4f} ({row['val_correct']}/{row['val_total']})"
        line = (f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.4f}  val acc {va}  lr {row['lr']:.3g}  {row['seconds']:.1f}s")
        if self.bar is not None:
            self.bar.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)
