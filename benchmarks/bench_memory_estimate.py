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
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from benchmarks._common import MODELS, SHORT, markdown_table, section
from depthbench.engine.config import make_config
from depthbench.models import create_model
from depthbench.models.complexity import training_memory
from depthbench.study import packing

MiB = 2**20
FLOWERS = 3670  # images of the flowers folder: what a run holds on the device


class LivePeak(TorchDispatchMode):
    """The most bytes of tensor storage created inside the mode that are alive at once (a
    storage counts from the op that made it until its last reference goes)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.live:
                s = t.untyped_storage()
                self.live[s.data_ptr()] = (StorageWeakRef(s), s.nbytes())
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


def measured_step(name: str, batch: int, size: int) -> int:
    """Peak live bytes of an fp32 AdamW training step on the CPU: the weights and optimizer
    state (made by a first step), then what its forward and backward pass hold at most."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, img_size=size)
    opt = torch.optim.AdamW(model.parameters())
    x, y = torch.randn(batch, 3, size, size), torch.zeros(batch, dtype=torch.long)

    def step():
        torch.nn.functional.cross_entropy(model(x), y).backward()

    step()
    opt.step()
    opt.zero_grad()
    with LivePeak() as live:
        step()
    return 3 * 4 * sum(p.numel() for p in model.parameters()) + live.peak


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
