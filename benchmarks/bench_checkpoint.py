"""Checkpoint seconds per epoch: both files written every epoch, against the cadence.

`python -m benchmarks.bench_checkpoint [--quick] [--models resnet18,...] [--epoch-seconds 3]`

Each model gets a 5-class head and AdamW state (one optimizer step), then, timed on this machine
(best of `--repeats`):
- every epoch: `save_resume_state` (last.ckpt: weights, AdamW's two moments, scheduler, RNG) and
  `save_weights` (best.safetensors), each fsynced;
- hold: what an epoch between two flushes of the cadence costs: the resume state and the best
  weights copied into the held tensors (`engine.cadence.Held`, allocated by a first, untimed
  hold);
- flush: the same two files written from the held tensors.
With the auto cadence a flush comes j = ceil(AUTO_RATIO * flush / E) epochs after the last one
for epochs of E seconds (`--epoch-seconds`: a Swin-B flowers epoch on a large GPU), so an epoch
costs (flush + (j - 1) * hold) / j under the cadence, against writing both files every epoch.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks._common import MODELS, build_model, markdown_table, section


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_checkpoint",
                                description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--repeats", type=int, default=2,
                   help="rounds of the three timings, interleaved (the best of each is kept)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a busy machine each copy's OpenMP barrier waits "
                        "for a time slice, which the hold would pay once per tensor)")
    p.add_argument("--epoch-seconds", type=float, default=3.0,
                   help="epoch time the amortized column assumes")
    p.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    p.add_argument("--quick", action="store_true", help="ResNet-18 only: checks it runs")
    return p


def _trained(name: str):
    """The model with a 5-class head, its AdamW state and scheduler after one step."""
    from depthbench.engine.optim import make_optimizer

    torch.manual_seed(0)
    model = build_model(name, 224 if "swin" in name else 64, num_classes=5)
    size = 224 if "swin" in name else 64
    opt = make_optimizer(model, "adamw", 1e-4, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    F.cross_entropy(model(torch.randn(2, 3, size, size)), torch.tensor([0, 1])).backward()
    opt.step()
    sched.step()
    return model, opt, sched


def _interleaved(fns: list, repeats: int) -> list[float]:
    """The best wall time of each of `fns`, timed in turn `repeats` times."""
    best = [math.inf] * len(fns)
    for _ in range(max(1, repeats)):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def measure(name: str, folder: Path, repeats: int) -> dict:
    from depthbench.engine import checkpoint as ckpt
    from depthbench.engine.cadence import Held

    model, opt, sched = _trained(name)
    meta = {"model": name, "classes": list("abcde"), "epoch": 1}
    history = [{"epoch": 1, "train_loss": 1.0}]
    parts = dict(model=model, optimizer=opt, scheduler=sched, epoch=1, history=history,
                 best={"epoch": 1, "val_acc": 0.5}, config={"model": name}, meta=meta)
    last, best = folder / "last.ckpt", folder / "best.safetensors"

    def every_epoch():
        ckpt.save_weights(best, model, meta)
        ckpt.save_resume_state(last, **parts)

    held_state, held_best = Held(), Held()
    held_state.hold(ckpt.resume_state(**parts))  # the first hold allocates
    held_best.hold(model.state_dict())

    def hold():
        held_state.hold(ckpt.resume_state(**parts))
        held_best.hold(model.state_dict())

    def flush():
        ckpt.save_weights(best, held_best.state, meta)
        ckpt.write_resume_state(last, held_state.state)

    t_every, t_hold, t_flush = _interleaved([every_epoch, hold, flush], repeats)
    return {"model": name, "last.ckpt MB": last.stat().st_size / 1e6,
            "best MB": best.stat().st_size / 1e6, "every epoch s/epoch": t_every,
            "hold s/epoch": t_hold, "flush s": t_flush}


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from depthbench.engine.cadence import AUTO_RATIO

    torch.set_num_threads(args.threads)
    names = ["resnet18"] if args.quick else [m.strip() for m in args.models.split(",") if m]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ckpt_", dir=args.dir) as tmp:
        for name in names:
            row = measure(name, Path(tmp), args.repeats)
            j = max(1, math.ceil(AUTO_RATIO * row["flush s"] / args.epoch_seconds))
            row["epochs per flush"] = j
            row["cadence s/epoch"] = (row["flush s"] + (j - 1) * row["hold s/epoch"]) / j
            row["every epoch / cadence"] = row["every epoch s/epoch"] / row["cadence s/epoch"]
            rows.append(row)
            print(f"  {name}: {row['every epoch s/epoch']:.2f} s every epoch, "
                  f"{row['cadence s/epoch']:.2f} s with the cadence", file=sys.stderr, flush=True)
    cmd = "python -m benchmarks.bench_checkpoint " + " ".join(sys.argv[1:] if argv is None else argv)
    body = (f"5-class heads with AdamW state, written to a local disk (fsync), best of "
            f"{args.repeats} interleaved rounds, {args.threads} torch thread(s); the amortized column assumes epochs of {args.epoch_seconds:g} s "
            f"and the auto cadence (a flush once {AUTO_RATIO}x the last flush's time has "
            "passed).\n\n"
            f"Command: `{cmd.strip()}`\n\n" + markdown_table(rows))
    print(section("Checkpoint seconds per epoch: every epoch against the cadence", body),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
