"""Per-epoch overhead of `depthbench train`: epoch wall time minus its compute, at the paper's epoch
shape, for the DataLoader path and batches from device memory, each with checkpoints every epoch
and at the cadence.

`python -m benchmarks.bench_epoch_overhead [--quick] [--all] [--model resnet18] [--img-size 32]`

The data is the flowers epoch's shape: 3,270 synthetic images of 5 classes, 10% of each class to
validation (325), 2,945 to training: 23 steps of 128 (the last image dropped, as a one-image
batch is) and 3 validation batches. Each candidate is a real `train` run (source recipe, fp32,
the CPU); its epoch wall time is the time between two epoch ends (the progress callback), epochs
2 to N, so it holds everything an epoch does: the seeding, the batches, the steps, validation,
the checkpoints, the loggers. The compute is a bare PyTorch loop on the same model: the 23
training steps on batches already in memory plus the validation forward passes, timed between
the candidates. Overhead = epoch wall - compute. Candidates (`TrainConfig` options):
- before: `device_memory_mb: 0, checkpoint_every: 0`, the DataLoader and a checkpoint every
  epoch, as before batches came from device memory and checkpoints at a cadence;
- after: the defaults, batches from device memory and checkpoints at the auto cadence;
- with `--all` also the two halves: `device_memory_mb: 0` (the DataLoader, checkpoints at the
  cadence) and `checkpoint_every: 0` (device memory, a checkpoint every epoch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks._common import markdown_table, section

BEFORE_AFTER = {
    "before: data loader, checkpoint every epoch": {"device_memory_mb": 0, "checkpoint_every": 0},
    "after: device memory, checkpoints at the cadence": {},
}
HALVES = {
    "data loader, checkpoints at the cadence": {"device_memory_mb": 0},
    "device memory, checkpoint every epoch": {"checkpoint_every": 0},
}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_epoch_overhead",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is not timed)")
    p.add_argument("--rounds", type=int, default=1, help="runs of each candidate, interleaved")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a busy machine every OpenMP barrier of a step waits "
                        "for a time slice)")
    p.add_argument("--all", action="store_true", help="also the two halves (module docstring)")
    p.add_argument("--quick", action="store_true", help="16 px, 2 steps, 3 epochs: checks it runs")
    return p


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _run(cfg_kw: dict, out: Path) -> list[tuple[float, float]]:
    """(wall, CPU) seconds between consecutive epoch ends of one `train` run."""
    from depthbench.engine.config import TrainConfig
    from depthbench.engine.trainer import train

    ends: list[tuple[float, float]] = []
    train(TrainConfig.for_recipe("source", **cfg_kw), out, resume=False,
          progress=lambda row: ends.append(_clocks()))
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(ends, ends[1:])]


def _bare(model_name: str, img_size: int, train_batches, val_batches) -> tuple[float, float]:
    """(wall, CPU) seconds of the bare compute of one epoch: the training steps, then
    validation."""
    from depthbench.engine.optim import use_fused
    from depthbench.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=5, img_size=img_size).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, fused=use_fused(model.parameters()))
    t0 = _clocks()
    for x, y in train_batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        for x, _ in val_batches:
            model(x)
    t1 = _clocks()
    return t1[0] - t0[0], t1[1] - t0[1]


def _batches(source, manifest, img_size: int, batch: int, steps: int, cache: str):
    from depthbench.data.datasets import build_datasets

    ds = build_datasets(source, manifest, "source", img_size, cache_dir=cache)
    loader = torch.utils.data.DataLoader(ds["train"], batch_size=batch, shuffle=True)
    train_batches = [b for _, b in zip(range(steps), loader)]
    return train_batches, list(torch.utils.data.DataLoader(ds["val"], batch_size=batch))


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    n, batch, steps = 3270, 128, 23
    if args.quick:
        n, batch, steps, args.img_size, args.epochs = 60, 16, 2, 16, 3
    torch.set_num_threads(args.threads)
    from depthbench.data.sources import open_source
    from depthbench.data.split import make_split

    tmp = tempfile.TemporaryDirectory(prefix="bench_overhead_")
    cache = str(Path(tmp.name) / "cache")
    data = f"synthetic:n={n},size={args.img_size},classes=5,seed=0"
    source = open_source(data, cache_dir=cache)
    manifest = make_split(source, val=0.1)
    cfg_kw = dict(model=args.model, data=data, img_size=args.img_size, epochs=args.epochs,
                  batch_size=batch, cache_dir=cache, accelerator="cpu", quiet=True, val=0.1,
                  test=0.0, precision="32", limit_train_batches=steps if args.quick else None)
    train_batches, val_batches = _batches(source, manifest, args.img_size, batch, steps, cache)
    _run(cfg_kw | {"epochs": 1, "limit_train_batches": 1}, Path(tmp.name) / "warm")
    candidates = BEFORE_AFTER | (HALVES if args.all else {})
    walls: dict[str, list[tuple[float, float]]] = {k: [] for k in candidates}
    compute: list[tuple[float, float]] = []
    for r in range(args.rounds):
        names = list(candidates)[r % len(candidates):] + list(candidates)[:r % len(candidates)]
        for k, name in enumerate(names):
            walls[name] += _run(cfg_kw | candidates[name], Path(tmp.name) / f"{r}-{k}")
            compute.append(_bare(args.model, args.img_size, train_batches, val_batches))
            print(f"  {name}: epochs {', '.join(f'{w:.2f}' for w, _ in walls[name])} s; bare "
                  f"{compute[-1][0]:.2f} s", file=sys.stderr, flush=True)
    rows = []
    for clock, k in (("wall", 0), ("CPU", 1)):
        c = statistics.median(t[k] for t in compute)
        for name, w in walls.items():
            epoch = statistics.median(t[k] for t in w)
            rows.append({"clock": clock, "candidate": name, "epoch s": epoch, "compute s": c,
                         "overhead s": epoch - c, "overhead %": 100 * (epoch - c) / c})
    cmd = "python -m benchmarks.bench_epoch_overhead " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv)
    body = (f"{args.model} at {args.img_size} px on the CPU, {len(train_batches)} steps of "
            f"{batch} and {len(val_batches)} validation batches per epoch, fp32, "
            f"{torch.get_num_threads()} torch thread(s), workers 0; epoch: median of epochs "
            f"2-{args.epochs} over {args.rounds} run(s) per candidate; compute: median of "
            f"{len(compute)} bare loops timed between the runs. Wall and process CPU clocks (the "
            "CPU clock shrugs off other processes' load but misses the time a write waits for "
            "the disk).\n\n"
            f"Command: `{cmd.strip()}`\n\n" + markdown_table(rows))
    print(section("Per-epoch overhead: the DataLoader against batches from device memory", body),
          flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
