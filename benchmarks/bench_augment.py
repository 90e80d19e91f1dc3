"""The `modern` recipe's random stage: torchvision per image vs Kornia vs ours, batched (CPU).

`python -m benchmarks.bench_augment [--quick] [--sizes 224,64] [--batch-size 128] [--rounds 3]`

One batch of uint8 images as the decoded cache holds them (B, 3, r, r), r = round(s / 0.875), goes
through each candidate, timed interleaved (`_common.compare`), one torch thread, CPU clock:
- `torchvision`: the per-image stage the dataset runs today (`transforms.augment_transform`:
  RandomResizedCrop + RandomHorizontalFlip + TrivialAugmentWide, one image at a time);
- `kornia`: Kornia's RandomResizedCrop + RandomHorizontalFlip + TrivialAugment on the batch
  (floats in [0, 1], converted from and back to uint8). Its TrivialAugment draws one operation per
  call, for the whole batch, not one per image;
- `ours`: `data.batch_augment.modern_random_stage` (per-image crops, flips, operations) as the
  CPU runs it (a uint8 resize per box, each operation on the images that drew it), and as it
  runs on an accelerator (`per_image=False`: dense resize products, every operation on the whole
  batch, no host sync), timed here on the CPU for reference;
- the crop and flip alone, batched, for Kornia and for ours.
Images/s per core = batch size / seconds per batch. Needs `pip install kornia` (the bench extra);
without it the Kornia columns are left out.
"""

from __future__ import annotations

import argparse
import sys

import torch

from benchmarks._common import compare, markdown_table, section
from depthbench.data.batch_augment import crop_params, modern_random_stage, resized_crop
from depthbench.data.transforms import augment_transform, resize_size

try:
    import kornia
    import kornia.augmentation as K
    from kornia.augmentation.auto import TrivialAugment
except ImportError:  # the Kornia columns need the bench extra
    kornia = None


def candidates(size: int) -> dict:
    """name -> function of a uint8 batch (B, 3, r, r) returning uint8 (B, 3, size, size)."""
    per_image = augment_transform("modern", size, train=True)

    def ours_crop(x):
        top, left, h, w = crop_params(x.shape[0], x.shape[-2], x.shape[-1], x.device)
        return resized_crop(x, top, left, h, w, size, torch.rand(x.shape[0]) < 0.5)

    fns = {"torchvision per image": lambda x: torch.stack([per_image(xi) for xi in x]),
           "ours": lambda x: modern_random_stage(x, size), "ours crop+flip": ours_crop,
           "ours, accelerator path": lambda x: modern_random_stage(x, size, per_image=False)}
    if kornia is not None:
        crop = K.AugmentationSequential(K.RandomResizedCrop((size, size)),
                                        K.RandomHorizontalFlip())
        full = K.AugmentationSequential(K.RandomResizedCrop((size, size)),
                                        K.RandomHorizontalFlip(), TrivialAugment())

        def as_uint8(f):
            return lambda x: (f(x.float() / 255) * 255).round_().clamp_(0, 255).to(torch.uint8)

        fns |= {"kornia": as_uint8(full), "kornia crop+flip": as_uint8(crop)}
    return fns


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_augment",
                                description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="224,64", help="comma-separated output sizes s")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--steps", type=int, default=2, help="batches per candidate per round")
    p.add_argument("--quick", action="store_true", help="one tiny case: checks it runs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    sizes = [32] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    batch = 8 if args.quick else args.batch_size
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for size in sizes:
            torch.manual_seed(0)
            r = resize_size(size)
            x = torch.randint(0, 256, (batch, 3, r, r), dtype=torch.uint8)
            fns = candidates(size)
            t = compare({k: (lambda f=f, x=x: f(x)) for k, f in fns.items()}, rounds=rounds,
                        steps=steps, clock="cpu")
            row = {"s (from r)": f"{size} ({r})", "batch": batch}
            row |= {f"{k} img/s": batch / v for k, v in t.items()}
            row["ours / torchvision"] = t["torchvision per image"] / t["ours"]
            rows.append(row)
            print(f"  augment: {size} px: ours {row['ours / torchvision']:.2f}x torchvision",
                  file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(old_threads)
    cmd = "python -m benchmarks.bench_augment " + " ".join(sys.argv[1:] if argv is None else argv)
    flags = (f"AMX tiles {torch.cpu._is_amx_tile_supported()}, AVX512-BF16 "
             f"{torch.cpu._is_avx512_bf16_supported()}, ATen CPU capability "
             f"{torch.backends.cpu.get_cpu_capability()}")
    versions = f"torchvision {__import__('torchvision').__version__}" + (
        f", kornia {kornia.__version__}" if kornia is not None else ", kornia not installed")
    body = (f"Images/s per core (1 torch thread, CPU clock, median of {rounds} interleaved rounds x "
            f"{steps} batches), uint8 in, uint8 out; {versions}; {flags}.\n\n"
            f"Command: `{cmd.strip()}`\n\n" + markdown_table(rows))
    print(section("The modern random stage: per image vs batched (CPU)", body), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
