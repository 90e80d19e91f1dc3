"""bf16 autocast vs fp32: one training step of each model on the CPU, side by side.

`python -m benchmarks.bench_precision [--quick] [--models resnet18,...] [--sizes 32,64]`

One training step (forward, cross-entropy, backward, fused Adam) on a fixed synthetic batch,
fp32 and under `torch.autocast("cpu", torch.bfloat16)` (what `--precision bf16-mixed` does), on
two copies of the same model, timed interleaved (`_common.compare`). Whether bf16 pays depends on
the CPU: native bf16 matrix units (AMX) or instructions (AVX512-BF16), else emulated and slower;
the report's first line says which this CPU has.
"""

from __future__ import annotations

import sys

import torch

from benchmarks._common import ab_args_parser, ab_report, compare_step_variants

MODELS = ["resnet18", "seresnet18", "resnet50", "swin_t"]


def get_args_parser():
    p = ab_args_parser("python -m benchmarks.bench_precision", __doc__)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    p.add_argument("--sizes", default="32,64", help="comma-separated image sizes")
    p.add_argument("--batch-size", type=int, default=32)
    return p


def main(argv: list[str] | None = None) -> int:
    from depthbench.engine.devices import cpu_bf16_support

    args = get_args_parser().parse_args(argv)
    models = ["resnet18"] if args.quick else [m for m in args.models.split(",") if m]
    sizes = [32] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    batch = 4 if args.quick else args.batch_size
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    torch.set_num_threads(args.threads)
    variants = {"fp32": {}, "bf16": {"amp_dtype": torch.bfloat16}}
    rows = []
    for name in models:
        for size in sizes:
            _, t = compare_step_variants(name, size, batch, variants, rounds, steps, args.clock)
            rows.append({"model": name, "px": size, "batch": batch, "fp32 s/step": t["fp32"],
                         "bf16 s/step": t["bf16"], "bf16 speed-up": t["fp32"] / t["bf16"]})
            print(f"  precision: {name} {size} px: {rows[-1]['bf16 speed-up']:.2f}x",
                  file=sys.stderr, flush=True)
    what = (f"Training step, fp32 vs bf16 autocast (native bf16 on this CPU: "
            f"{cpu_bf16_support() or 'none'})")
    print(ab_report("bf16 autocast vs fp32 (CPU)", "bench_precision", argv, what, rounds, steps,
                    args.threads, args.clock, "fp32 time / bf16 time", rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
