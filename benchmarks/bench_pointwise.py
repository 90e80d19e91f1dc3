"""1x1 convolutions as one matrix product (`PointwiseConv2d`) vs PyTorch's convolution, CPU.

`python -m benchmarks.bench_pointwise [--quick] [--threads 1,2] [--rounds 5]`

One channels_last training step (forward, cross-entropy, backward, Adam) of the same Bottleneck
network twice: as built (its 33 unstrided 1x1 convs are `PointwiseConv2d`, `F.linear` over NHWC)
and with those modules swapped for plain `nn.Conv2d` holding the same weights, timed interleaved
(`_common.compare`). One thread is timed by the process CPU clock; more threads by the wall clock
(CPU time would count their spin-waits), so those rows are noisier on a shared machine.
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
import torch.nn as nn

from benchmarks._common import build_model, compare, make_train_step, markdown_table, section
from depthbench.layers import PointwiseConv2d

CASES = [("resnet50", 224, 8), ("resnet50", 128, 16), ("resnet50", 64, 32), ("seresnet50", 224, 8)]


def with_plain_convs(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of `model` whose `PointwiseConv2d`s are `nn.Conv2d`s with the same weights."""
    model = copy.deepcopy(model)
    swaps = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if isinstance(child, PointwiseConv2d)]
    for parent, name, pw in swaps:
        conv = nn.Conv2d(pw.in_channels, pw.out_channels, 1, bias=pw.bias is not None)
        conv.load_state_dict(pw.state_dict())
        setattr(parent, name, conv)
    return model, len(swaps)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_pointwise",
                                description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    p.add_argument("--steps", type=int, default=2, help="steps per candidate per round")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--quick", action="store_true", help="one tiny case: checks it runs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    cases = [("resnet50", 32, 2)] if args.quick else CASES
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    old_threads = torch.get_num_threads()
    rows = []
    try:
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            clock = "cpu" if n_threads == 1 else "wall"
            for name, size, batch in cases:
                torch.manual_seed(0)
                model = build_model(name, size, num_classes=4)
                plain, swapped = with_plain_convs(model)
                fns = {"conv": make_train_step(plain, batch, size, 4, channels_last=True),
                       "matmul": make_train_step(model, batch, size, 4, channels_last=True)}
                t = compare(fns, rounds=rounds, steps=steps, clock=clock)
                rows.append({"model": name, "px": size, "batch": batch, "threads": n_threads,
                             "clock": clock, "1x1 convs": swapped, "nn.Conv2d s/step": t["conv"],
                             "PointwiseConv2d s/step": t["matmul"],
                             "speed-up": t["conv"] / t["matmul"]})
                print(f"  pointwise: {name} {size} px, {n_threads} thread(s): "
                      f"{rows[-1]['speed-up']:.2f}x", file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(old_threads)
    cmd = "python -m benchmarks.bench_pointwise " + " ".join(sys.argv[1:] if argv is None else argv)
    body = (f"channels_last training step (Adam, fp32) on the CPU, median of {rounds} interleaved "
            f"rounds x {steps} steps. Speed-up = nn.Conv2d time / PointwiseConv2d time.\n\n"
            f"Command: `{cmd.strip()}`\n\n" + markdown_table(rows))
    print(section("1x1 convolutions: PointwiseConv2d vs nn.Conv2d (CPU)", body), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
