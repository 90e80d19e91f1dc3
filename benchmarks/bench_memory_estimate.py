"""The GPU-packing memory estimate (`jobs: auto`) against measured training steps.

    python -m benchmarks.bench_memory_estimate [--quick] [--batch-size 128] [--img-size 224]
                                               [--gpu-gb 141] [--cores 16]

Two tables:
- measured: the live tensors of a real AdamW training step on this CPU at small sizes (weights
  and optimizer state, then the most bytes the forward and backward pass hold at once, tracked by
  a TorchDispatchMode over every storage created) against `training_memory` for the same step;
- at the study's size: each model's estimate (`training_memory`, and `run_peak` with the
  margin, the CUDA context and the flowers images on the device) and how many such runs
  `study.packing.slots` places at once on one GPU of `--gpu-gb` with `--cores` cores.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks._common import MODELS, SHORT, markdown_table, section
from depthbench.engine.config import make_config
from depthbench.models.complexity import training_memory
from depthbench.report.source import FLOWERS_COUNTS
from depthbench.study import packing
from depthbench.testing.models import measured_step

MiB = 2**20
FLOWERS = sum(FLOWERS_COUNTS.values())  # images of the flowers folder: what a run holds on the device


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory_estimate",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two models, tiny sizes")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--gpu-gb", type=float, default=141.0, help="one GPU's free memory, GB")
    p.add_argument("--cores", type=int, default=16)
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(1)
    names = ["resnet18", "swin_tiny_patch4_window7_224"] if args.quick else MODELS
    small = [(8, 32), (32, 64)] if not args.quick else [(4, 32)]
    rows = []
    for name in names:
        for batch, size in small:
            est = training_memory(name, size, batch).total
            meas = measured_step(name, batch, size)
            rows.append({"model": SHORT.get(name, name), "batch x px": f"{batch} x {size}",
                         "measured (MiB)": f"{meas / MiB:.0f}", "estimate (MiB)": f"{est / MiB:.0f}",
                         "estimate / measured": f"{est / meas:.2f}"})
    body = ("Live tensors of one fp32 AdamW training step on this CPU, measured, against "
            "`training_memory`:\n\n" + markdown_table(rows))
    budget = [int(args.gpu_gb * 1e9 * packing.GPU_SHARE)]
    rows = []
    for name in names:
        cfg = make_config({"model": name, "data": "synthetic", "img_size": args.img_size,
                           "batch_size": args.batch_size}).resolved()
        mem = training_memory(name, args.img_size, args.batch_size, cfg.optimizer)
        peak = packing.run_peak(cfg, FLOWERS)
        rows.append({"model": SHORT.get(name, name), "states (GiB)": f"{mem.states / 2**30:.2f}",
                     "activations (GiB)": f"{mem.activations / 2**30:.2f}",
                     "run peak (GiB)": f"{peak / 2**30:.1f}",
                     f"runs at once on {args.gpu_gb:g} GB, {args.cores} cores":
                         packing.slots([peak] * 64, budget, args.cores),
                     "by memory alone": packing.slots([peak] * 64, budget, 10**6)})
    body += (f"\n\nAt batch {args.batch_size}, {args.img_size} px (fp32 counts; run peak = "
             f"{packing.MARGIN} x (states + activations) + {packing.CUDA_CONTEXT / 2**30:g} GiB "
             f"CUDA context + {FLOWERS} images as uint8):\n\n" + markdown_table(rows))
    print(section("The memory estimate behind `jobs: auto`", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
