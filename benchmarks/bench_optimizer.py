"""The optimizer's fused kernel vs PyTorch's CPU default (for-loop) in a whole training step.

`python -m benchmarks.bench_optimizer [--quick] [--threads 1] [--rounds 5]`

The same model and batch trained twice, with the recipe's optimizer built `fused=False` (PyTorch's
default on the CPU, the for-loop implementation: per parameter, one pass per elementwise op of the
update) and `fused=True` (one kernel
per parameter, what `depthbench train` uses on CPU and CUDA, `engine.optim.use_fused`), timed
interleaved (`_common.compare`, process CPU clock with one thread). The update is the same; only
the memory traffic differs, so the gain is largest where the model's compute is small next to its
parameter count: small images, the `quick` preset.
"""

from __future__ import annotations

import argparse
import sys

import torch

from benchmarks._common import (
    ab_args_parser,
    ab_report,
    compare_step_variants,
)

# (model, px, batch, optimizer, channels_last): the quick preset's size for the three families and
# the other two optimizers, and the 224 px CNN step of the roofline
CASES = [("resnet18", 32, 32, "adam", False), ("seresnet50", 32, 32, "adam", False),
         ("swin_tiny_patch4_window7_224", 32, 32, "adam", False),
         ("resnet18", 32, 32, "adamw", False), ("resnet18", 32, 32, "sgd", False),
         ("resnet18", 224, 8, "adam", True), ("resnet50", 224, 8, "adam", True)]


def get_args_parser() -> argparse.ArgumentParser:
    return ab_args_parser("python -m benchmarks.bench_optimizer", __doc__)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [("resnet18", 32, 2, "adam", False)] if args.quick else CASES
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    rows = []
    for name, size, batch, opt, cl in cases:
        model, t = compare_step_variants(name, size, batch, {
            kind: {"channels_last": cl, "optimizer": opt, "fused": kind == "fused"}
            for kind in ("for-loop", "fused")}, rounds, steps, args.clock)
        rows.append({"model": name, "px": size, "batch": batch, "optimizer": opt,
                     "params (M)": sum(p.numel() for p in model.parameters()) / 1e6,
                     "for-loop s/step": t["for-loop"], "fused s/step": t["fused"],
                     "fused speed-up": t["for-loop"] / t["fused"]})
        print(f"  optimizer: {name} {size} px {opt}: {rows[-1]['fused speed-up']:.2f}x",
              file=sys.stderr, flush=True)
    print(ab_report("Optimizer: fused vs for-loop (CPU)", "bench_optimizer", argv,
                    "Training step (fp32)", rounds, steps, args.threads, args.clock,
                    "for-loop time / fused time", rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
