"""What `--compile` (torch.compile) does to a training step on this machine: measured, not assumed.

    python -m benchmarks.bench_compile [--quick] [--models resnet18,swin_t] [--img-size 224]
                                       [--batch-size 8] [--mode default]

For each model, two copies with the same weights: one eager, one wrapped in `torch.compile` (the
model only, as the engine does; the Adam step stays eager). The compiled one's first step pays for
tracing and code generation, reported separately as compile time; then both are warmed up and
timed interleaved in this process, so the speed-up is a side-by-side ratio.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch

from benchmarks._common import (
    SHORT,
    build_model,
    compare,
    is_cnn,
    make_train_step,
    markdown_table,
    model_names,
    section,
    sync,
)


def compile_vs_eager(name: str, img_size: int, batch_size: int, rounds: int, mode: str | None,
                     device: str = "cpu", amp_dtype: torch.dtype | None = None,
                     clock: str = "wall") -> dict:
    """Compile seconds, and seconds per step eager vs compiled (interleaved) for one model."""
    import torch._dynamo

    torch._dynamo.reset()
    eager_model = build_model(name, img_size)
    compiled_model = torch.compile(copy.deepcopy(eager_model), mode=mode)
    cl = is_cnn(name)
    eager = make_train_step(eager_model, batch_size, img_size, channels_last=cl, device=device,
                            amp_dtype=amp_dtype)
    compiled = make_train_step(compiled_model, batch_size, img_size, channels_last=cl,
                               device=device, amp_dtype=amp_dtype)
    eager()
    sync(device)
    t0 = time.perf_counter()
    eager()
    sync(device)
    eager_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled()  # traces forward and backward, generates and builds the kernels
    sync(device)
    first = time.perf_counter() - t0
    secs = compare({"eager": eager, "compiled": compiled}, rounds=rounds, steps=1, warmup=2,
                   device=device, clock=clock)
    return {"compile_s": max(0.0, first - eager_first), "eager_s": secs["eager"],
            "compiled_s": secs["compiled"]}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_compile",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="resnet18 only, 32 px, batch 2, 2 rounds")
    p.add_argument("--models", default="", help="default resnet18,swin_t")
    p.add_argument("--img-size", type=int, default=None, help="default 224 (quick: 32)")
    p.add_argument("--batch-size", type=int, default=None, help="default 8 (quick: 2)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    p.add_argument("--mode", default=None, help="torch.compile mode (default: PyTorch's)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: step times by process CPU time (needs --threads 1); compile time "
                        "stays wall-clock")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    q = args.quick
    img = args.img_size or (32 if q else 224)
    bs = args.batch_size or (2 if q else 8)
    rounds = args.rounds or (2 if q else 5)
    names = model_names(args.models)
    names = names or (["resnet18"] if q else ["resnet18", "swin_tiny_patch4_window7_224"])
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and torch.get_num_threads() != 1:
        print("error: --clock cpu needs --threads 1", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        r = compile_vs_eager(name, img, bs, rounds, args.mode, clock=args.clock)
        rows.append({"model": SHORT.get(name, name), "compile (s)": r["compile_s"],
                     "eager s/step": r["eager_s"], "compiled s/step": r["compiled_s"],
                     "speed-up": f"{r['eager_s'] / r['compiled_s']:.2f}x",
                     "break-even (steps)": _break_even(r)})
        print(f"  compile: {name} {r['eager_s'] / r['compiled_s']:.2f}x", file=sys.stderr,
              flush=True)
    head = (f"Training step (forward, backward, Adam) of depthbench's models, {img} px, "
            f"batch {bs}, fp32, CNNs channels_last, on the CPU ({torch.get_num_threads()} threads, "
            f"{args.clock} clock); `torch.compile(model, "
            f"mode={args.mode!r})` vs eager, median of {rounds} interleaved rounds after warm-up. "
            f"Compile time = first compiled step minus an eager step. Break-even = steps after "
            f"which the compile time is paid back.\n\n")
    print(section("`--compile`: torch.compile vs eager", head + markdown_table(rows)), flush=True)
    return 0


def _break_even(r: dict) -> str:
    gain = r["eager_s"] - r["compiled_s"]
    return f"{r['compile_s'] / gain:.0f}" if gain > 0 else "never"


if __name__ == "__main__":
    sys.exit(main())
