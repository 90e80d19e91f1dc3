"""End-to-end `train` throughput on cached data vs a bare PyTorch loop over the same model and
batches.

`python -m benchmarks.bench_engine [--quick] [--model resnet18] [--img-size 64] [--steps 24]`

Both candidates train a fresh model (same seed) for `--steps` steps of `--batch-size` images of
the same cached training split, in the same order, with the source recipe (cross-entropy, Adam):
- `engine`: `depthbench.engine.trainer.train` (Lightning Fabric, the DataLoader over the decoded cache,
  the real per-step work: device moves, running sums, scheduler, stop checks), timed by the
  engine's own `costs.train_seconds` (the training loop only: data + steps, not start-up,
  validation or checkpoints, which are reported separately);
- `bare`: a plain loop `zero_grad / forward / cross_entropy / backward / step` over the same
  batches, materialized in memory beforehand (no data cost at all).
They alternate round by round (engine, bare, bare, engine, ...) in one process; the figure is the
ratio of medians, bare time / engine time (goal >= 0.9: data + engine overhead <= 10%).
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


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_engine",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=24, help="training steps per timed run")
    p.add_argument("--rounds", type=int, default=3, help="timed runs of each candidate")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--cache-dir", default=None, help="decoded cache (default: a temporary folder)")
    p.add_argument("--quick", action="store_true", help="32 px, 4 steps, 1 round: checks it runs")
    return p


def bare_loop(model_name: str, img_size: int, num_classes: int, batches, seed: int) -> float:
    """Seconds of a plain PyTorch training loop over in-memory `batches` (fresh model)."""
    from depthbench.engine.optim import use_fused
    from depthbench.models import create_model

    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=num_classes, img_size=img_size).train()
    # the same optimizer as the engine's, so the comparison is of the loop around it
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, fused=use_fused(model.parameters()))
    t0 = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    loss.item()
    return time.perf_counter() - t0


def engine_run(cfg_kw: dict, out: Path) -> tuple[float, float, int]:
    """(train-loop seconds, whole train() call seconds, images) of one engine run."""
    from depthbench.engine.config import TrainConfig
    from depthbench.engine.trainer import train

    cfg = TrainConfig.for_recipe("source", **cfg_kw)
    t0 = time.perf_counter()
    result = train(cfg, out, progress=False, resume=False)
    wall = time.perf_counter() - t0
    c = result["costs"]
    return c["train_seconds"], wall, round(c["train_seconds"] * c["train_images_per_s"])


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.quick:
        args.img_size, args.steps, args.rounds, args.batch_size = 32, 4, 1, 16
    if args.threads:
        torch.set_num_threads(args.threads)
    from depthbench.data.datasets import build_datasets
    from depthbench.data.sources import open_source
    from depthbench.data.split import make_split

    tmp = tempfile.TemporaryDirectory(prefix="bench_engine_")
    cache = args.cache_dir or str(Path(tmp.name) / "cache")
    n_train = args.steps * args.batch_size
    # val = 0.1 per class: int(n * 0.1) per class; generate enough for n_train training images
    n = int(n_train / 0.9) + 8
    data = f"synthetic:n={n},size={args.img_size},classes=5,seed=0"
    source = open_source(data, cache_dir=cache)
    manifest = make_split(source, val=0.1)
    seed = 0
    cfg_kw = dict(model=args.model, data=data, img_size=args.img_size, epochs=1,
                  batch_size=args.batch_size, cache_dir=cache, accelerator="cpu", quiet=True,
                  limit_train_batches=args.steps, seed=seed, val=0.1, channels_last=False)

    # the engine's exact batches: same cached dataset, same sampler order (epoch 1, seed)
    ds = build_datasets(source, manifest, "source", args.img_size, cache_dir=cache)["train"]
    sampler = torch.utils.data.DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True,
                                                  seed=seed)
    sampler.set_epoch(1)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, sampler=sampler)
    batches = [b for _, b in zip(range(args.steps), loader)]
    images = sum(len(y) for _, y in batches)

    engine_run(cfg_kw, Path(tmp.name) / "warm")  # fills the decoded cache, warms imports
    eng, eng_wall, bare = [], [], []
    for r in range(args.rounds):
        order = ("engine", "bare") if r % 2 == 0 else ("bare", "engine")
        for who in order:
            if who == "engine":
                s, wall, n_img = engine_run(cfg_kw, Path(tmp.name) / f"run{r}")
                assert n_img == images, (n_img, images)
                eng.append(s)
                eng_wall.append(wall)
            else:
                bare.append(bare_loop(args.model, args.img_size, len(manifest.classes), batches,
                                      seed))
    e, b, w = statistics.median(eng), statistics.median(bare), statistics.median(eng_wall)
    rows = [
        {"candidate": "bare PyTorch loop (batches in memory)", "seconds": b, "img/s": images / b,
         "vs bare": 1.0},
        {"candidate": "depthbench train: training loop (data + steps)", "seconds": e,
         "img/s": images / e, "vs bare": b / e},
        {"candidate": "depthbench train: whole call (+ start, validation, final eval, "
                      "checkpoints)", "seconds": w, "img/s": images / w, "vs bare": b / w},
    ]
    cmd = "python -m benchmarks.bench_engine " + " ".join(sys.argv[1:] if argv is None else argv)
    body = (f"{args.model} at {args.img_size} px on the CPU, {args.steps} steps of "
            f"{args.batch_size} images ({images} images), source recipe (Adam, fp32), "
            f"{torch.get_num_threads()} torch threads, workers 0, median of {args.rounds} "
            "alternating runs each. Goal: training loop >= 0.9x the bare loop. The whole call "
            "adds fixed costs (model build, MACs count, validation, final evaluation of best and "
            "last, two checkpoints) that a 100-epoch run amortizes.\n\n"
            f"Command: `{cmd.strip()}`\n\n" + markdown_table(rows))
    print(section("Engine vs bare PyTorch loop", body), flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
