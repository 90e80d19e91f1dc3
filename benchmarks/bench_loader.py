"""Loader throughput from the warm decoded cache vs ResNet-18's training consumption.

`python -m benchmarks.bench_loader [--quick] [--data elpv] [--sizes 64,224] [--workers 2]`

For each image size: images/s the DataLoader delivers (augmented, normalized, batched float
tensors; `train` split, `num_workers` workers, warm cache, timed after the first batch) for both
recipes, beside images/s of one ResNet-18 training step (forward + backward + Adam step,
channels_last) on a fixed batch. Both are measured in this one process, one after the other, so
the ratio (loader / model) is the figure to quote; the goal is >= 5x, so data never limits a run.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from benchmarks._common import build_model, make_train_step, markdown_table, section, time_steps


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_loader",
                                description=__doc__.splitlines()[0])
    p.add_argument("--data", default="elpv", help="dataset (default elpv, the bundled one)")
    p.add_argument("--sizes", default="64,224", help="image sizes, comma-separated")
    p.add_argument("--recipes", default="source,modern", help="transform recipes, comma-separated")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    p.add_argument("--batch-size", type=int, default=64, help="loader batch size (default 64)")
    p.add_argument("--batches", type=int, default=30, help="timed loader batches per case")
    p.add_argument("--model-batch", type=int, default=32, help="ResNet-18 step batch size")
    p.add_argument("--model-steps", type=int, default=5, help="timed ResNet-18 steps")
    p.add_argument("--device", default="cpu", help="device of the ResNet-18 step (cpu, cuda)")
    p.add_argument("--uint8", action="store_true",
                   help="loader delivers uint8 batches (normalized by the consumer on its device)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the ResNet-18 step (default: torch's)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast for the ResNet-18 step")
    p.add_argument("--cache-dir", default=None, help="decoded cache folder (default: the usual)")
    p.add_argument("--quick", action="store_true",
                   help="synthetic data, 32 px, few batches: checks that it runs")
    return p


def loader_images_per_s(ds, batch_size: int, workers: int, batches: int) -> float:
    """Images/s delivered after the first batch (workers started, cache pages warm)."""
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True,
                                         num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    n, seen, t0 = 0, 0, None
    while seen < batches + 1:
        for x, _ in loader:
            if t0 is None:
                t0 = time.perf_counter()  # after the first batch
            else:
                n += x.shape[0]
            seen += 1
            if seen >= batches + 1:
                break
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from depthbench.data.datasets import build_datasets
    from depthbench.data.sources import open_source
    from depthbench.data.split import make_split

    if args.quick:
        args.data, args.sizes = "synthetic:n=300,size=48,classes=4,seed=0", "32"
        args.batches, args.model_steps, args.batch_size = 3, 2, 32
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    source = open_source(args.data, cache_dir=args.cache_dir)
    manifest = make_split(source)
    rows = []
    for size in sizes:
        step = make_train_step(build_model("resnet18", img_size=size,
                                           num_classes=len(manifest.classes)),
                               args.model_batch, size, num_classes=len(manifest.classes),
                               channels_last=True, device=args.device,
                               amp_dtype=torch.bfloat16 if args.amp else None)
        model_ips = args.model_batch / time_steps(step, warmup=2, steps=args.model_steps,
                                                  device=args.device)
        for recipe in recipes:
            t0 = time.perf_counter()
            ds = build_datasets(source, manifest, recipe, size, cache_dir=args.cache_dir,
                                splits=("train",), uint8=args.uint8)
            build_s = time.perf_counter() - t0
            ips = loader_images_per_s(ds["train"], args.batch_size, args.workers, args.batches)
            rows.append({"size": size, "recipe": recipe, "train images": len(ds["train"]),
                         "cache build or open (s)": build_s,
                         f"loader img/s ({args.workers} workers{', uint8' if args.uint8 else ''})": ips,
                         f"resnet18 train img/s ({args.device})": model_ips,
                         "loader / model": ips / model_ips})
    cmd = "python -m benchmarks.bench_loader " + " ".join(sys.argv[1:] if argv is None else argv)
    body = (f"Data: `{source.name}`, train split of the default manifest; loader batch "
            f"{args.batch_size}, {args.batches} timed batches after the first; ResNet-18 step on "
            f"{args.device}: "
            f"batch {args.model_batch}, channels_last{', bf16 autocast' if args.amp else ''}, "
            f"median of {args.model_steps} steps, {torch.get_num_threads()} torch threads. "
            "`cache build or open` is the first call (cold: decodes every image once; warm: opens "
            f"the memory-mapped arrays). Goal: loader / model >= 5.\n\nCommand: `{cmd.strip()}`\n\n"
            + markdown_table(rows))
    print(section("Loader vs ResNet-18 training consumption", body), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
