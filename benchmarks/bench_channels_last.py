"""channels_last vs contiguous memory format for a CNN training step on the CPU, by image size.

`python -m benchmarks.bench_channels_last [--quick] [--threads 1] [--rounds 5]`

One training step (forward, cross-entropy, backward, Adam) of the same model on a fixed synthetic
batch in both memory formats, timed interleaved (`_common.compare`, process CPU clock by default).
The engine's default (`depthbench.engine.devices.CPU_CHANNELS_LAST_MIN_SIZE`) comes from this
table: channels_last on the CPU only at the sizes where it is faster.
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

CASES = [("resnet18", 32, 32), ("resnet18", 64, 32), ("resnet18", 96, 32), ("resnet18", 128, 16),
         ("resnet18", 224, 8), ("resnet50", 32, 32), ("resnet50", 64, 32), ("resnet50", 128, 16),
         ("resnet50", 224, 8), ("seresnet18", 64, 32), ("seresnet50", 224, 8)]


def get_args_parser() -> argparse.ArgumentParser:
    return ab_args_parser("python -m benchmarks.bench_channels_last", __doc__)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [("resnet18", 32, 4)] if args.quick else CASES
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    rows = []
    for name, size, batch in cases:
        _, t = compare_step_variants(name, size, batch, {
            "contiguous": {"channels_last": False}, "channels_last": {"channels_last": True}},
            rounds, steps, args.clock)
        rows.append({"model": name, "px": size, "batch": batch,
                     "contiguous s/step": t["contiguous"],
                     "channels_last s/step": t["channels_last"],
                     "channels_last speed-up": t["contiguous"] / t["channels_last"]})
        print(f"  channels_last: {name} {size} px: {rows[-1]['channels_last speed-up']:.2f}x",
              file=sys.stderr, flush=True)
    print(ab_report("channels_last vs contiguous (CPU)", "bench_channels_last", argv,
                    "Training step (Adam, fp32)", rounds, steps, args.threads, args.clock,
                    "contiguous time / channels_last time", rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
