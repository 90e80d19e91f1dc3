"""Roofline: this CPU's fp32 GEMM peak, and each model's training FLOP/s as a fraction of it.

    python -m benchmarks.roofline [--quick] [--models resnet50,swin_t] [--img-size 224]
                                  [--batch-size 16] [--investigate] [--profile]

The peak is the best of several large `torch.mm` calls (n=2048, fp32) on all of torch's threads and
on one. A model's training FLOPs per image are counted by `torch.utils.flop_counter` over forward +
backward (conv and matmul FLOPs; elementwise ops, norms and the optimizer are not counted but their
time is), so "fraction of peak" is what the whole training step gets out of the GEMM units. CNNs
run channels_last, the layout oneDNN's convolutions prefer.

`--investigate` (ResNet-50 by default) asks why the fraction is what it is: channels_last vs
contiguous, batch size, one thread vs all, bf16 autocast (AMX) vs fp32, and `--profile` splits the
step's time between the GEMM-like ops (convolution, matmul) and everything else.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from benchmarks._common import (
    CLOCKS,
    MODELS,
    SHORT,
    build_model,
    compare,
    is_cnn,
    make_train_step,
    markdown_table,
    model_names,
    section,
    time_steps,
    train_flops_per_image,
)
from depthbench.names import canonical

GEMM_OPS = ("conv", "mm", "matmul", "addmm", "bmm", "linear", "scaled_dot_product", "baddbmm")


def gemm_peak(n: int = 2048, repeats: int = 7, threads: int | None = None,
              clock: str = "wall") -> dict[str, float]:
    """GFLOP/s of an n x n x n fp32 `torch.mm` on `threads` threads: best and median of `repeats`."""
    now = CLOCKS[clock]
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        c = torch.empty(n, n)
        for _ in range(2):
            torch.mm(a, b, out=c)
        rates = []
        for _ in range(repeats):
            t0 = now()
            torch.mm(a, b, out=c)
            rates.append(2 * n**3 / max(now() - t0, 1e-9) / 1e9)
    finally:
        torch.set_num_threads(old)
    return {"best": max(rates), "median": statistics.median(rates)}


def model_rate(name: str, img_size: int, batch_size: int, steps: int, channels_last: bool | None = None,
               amp_dtype: torch.dtype | None = None, gemm_n: int = 2048, clock: str = "wall") -> dict:
    """Seconds per training step and achieved GFLOP/s of `name` (fwd+bwd FLOPs / whole step time)."""
    model = build_model(name, img_size)
    cl = is_cnn(name) if channels_last is None else channels_last
    flops = train_flops_per_image(model, img_size, channels_last=cl)
    step = make_train_step(model, batch_size, img_size, channels_last=cl, amp_dtype=amp_dtype)
    step()
    # the machine is shared: the peak is re-measured right before and after the model's steps,
    # so the fraction compares two figures taken under the same load
    before = gemm_peak(n=gemm_n, repeats=3, clock=clock)["best"]
    sec = time_steps(step, warmup=1, steps=steps, clock=clock)
    peak = max(before, gemm_peak(n=gemm_n, repeats=3, clock=clock)["best"])
    return {"flops_per_image": flops, "seconds_per_step": sec, "peak_gflops": peak,
            "gflops": flops * batch_size / sec / 1e9, "images_per_s": batch_size / sec}


def profile_step(name: str, img_size: int, batch_size: int, top: int = 12,
                 clock: str = "wall") -> tuple[list[dict], dict]:
    """Self CPU time per op over two training steps; the share in GEMM-like ops; and their
    GFLOP/s, from that share of the step time measured by `clock` outside the profiler (the
    profiler's own times are wall time, inflated by other processes' load)."""
    from torch.profiler import ProfilerActivity, profile

    model = build_model(name, img_size)
    cl = is_cnn(name)
    flops = train_flops_per_image(model, img_size, channels_last=cl) * batch_size
    step = make_train_step(model, batch_size, img_size, channels_last=cl)
    step()
    step_s = time_steps(step, warmup=0, steps=2, clock=clock)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    rows = [{"op": e.key, "calls": e.count // 2, "ms/step": e.self_cpu_time_total / 2e3,
             "share": f"{e.self_cpu_time_total / total:.1%}"} for e in events[:top]]
    gemm_us = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in GEMM_OPS))
    share = gemm_us / total
    slow = sum(e.count // 2 for e in events if "_slow_conv2d_forward" in e.key)
    summary = {"step_ms": 1e3 * step_s, "gemm_share": share, "slow_convs": slow, "flops": flops,
               "gemm_gflops": flops / (share * step_s) / 1e9 if gemm_us else 0.0}
    return rows, summary


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.roofline", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 px, batch 4, two models, 1 timed step")
    p.add_argument("--models", default="", help="comma-separated names (default: every model)")
    p.add_argument("--img-size", type=int, default=None, help="default 224 (quick: 64)")
    p.add_argument("--batch-size", type=int, default=None, help="default 16 (quick: 4)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per model (default 3)")
    p.add_argument("--investigate", action=argparse.BooleanOptionalAction, default=None,
                   help="ResNet-50 experiments on layout, batch, threads, bf16 (default: on "
                        "unless --quick)")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.profiler op breakdown of the first model (default: on unless "
                        "--quick)")
    p.add_argument("--investigate-model", default="resnet50")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: time by this process's CPU time (needs --threads 1); robust to "
                        "other processes' load")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (default: torch's, one per core); 1 is steadier on a "
                        "shared machine")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    q = args.quick
    img = args.img_size or (64 if q else 224)
    bs = args.batch_size or (4 if q else 16)
    steps = args.steps or (1 if q else 3)
    names = model_names(args.models)
    names = names or (["resnet18", "swin_tiny_patch4_window7_224"] if q else MODELS)
    investigate = (not q) if args.investigate is None else args.investigate
    do_profile = (not q) if args.profile is None else args.profile
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    clock = args.clock
    if clock == "cpu" and threads != 1:
        print("error: --clock cpu needs --threads 1 (CPU time sums the threads, spin-waits "
              "included)", file=sys.stderr)
        return 2
    gemm_n = 512 if q else 2048

    peak = gemm_peak(n=gemm_n, repeats=3 if q else 7, clock=clock)
    peak1 = gemm_peak(n=gemm_n, repeats=3 if q else 7, threads=1, clock=clock)
    out = [f"fp32 GEMM peak (`torch.mm`, n={gemm_n}): **{peak['best']:.0f} GFLOP/s** "
           f"on {threads} threads (median {peak['median']:.0f}); {peak1['best']:.0f} GFLOP/s on 1 "
           f"thread (median {peak1['median']:.0f}).\n",
           f"{img} px, batch {bs}, Adam (fused, as `train` runs "
           f"it), fp32, CNNs channels_last; "
           f"train FLOPs = forward + backward counted by `torch.utils.flop_counter`; time = whole "
           f"step (median of {steps}, {clock} clock); \"of peak\" divides by the GEMM peak re-measured right "
           f"before and after that model's steps (best of both; \"peak now\"), so both figures see "
           f"the same machine load.\n"]
    rows = []
    for name in names:
        r = model_rate(name, img, bs, steps, gemm_n=gemm_n, clock=clock)
        rows.append({"model": SHORT.get(name, name), "train GFLOP/img": r["flops_per_image"] / 1e9,
                     "s/step": r["seconds_per_step"], "img/s": r["images_per_s"],
                     "GFLOP/s": r["gflops"], "peak now": r["peak_gflops"],
                     "of peak": f"{r['gflops'] / r['peak_gflops']:.0%}"})
        print(f"  roofline: {name} {r['gflops']:.1f} GFLOP/s, peak now {r['peak_gflops']:.0f}, "
              f"{rows[-1]['of peak']}, {r['images_per_s']:.2f} img/s ({clock} clock)",
              file=sys.stderr, flush=True)
    out.append(markdown_table(rows))

    target = canonical(args.investigate_model)
    if investigate:
        out.append(f"\n### Why {SHORT.get(target, target)} gets the fraction it does\n")
        out.append(investigate_model(target, img, bs, steps, peak["best"], peak1["best"], clock))
    if do_profile:
        prof_model = target if investigate else names[0]
        prof_rows, s = profile_step(prof_model, img, bs, clock=clock)
        out.append(f"\n### torch.profiler: {SHORT.get(prof_model, prof_model)}, {img} px, batch "
                   f"{bs}, self CPU time per op over one step\n")
        out.append(f"GEMM-like ops (convolution, matmul) take {s['gemm_share']:.0%} of the step "
                   f"({s['step_ms']:.0f} ms by the {clock} clock, without the profiler) and so run "
                   f"at about {s['gemm_gflops']:.0f} GFLOP/s = "
                   f"{s['gemm_gflops'] / peak['best']:.0%} of peak inside those ops; the rest is "
                   f"memory-bound (batch norm, ReLU, add, pooling, Adam).")
        rest_s = (1 - s["gemm_share"]) * s["step_ms"] / 1e3
        gemm_at_peak_s = s["flops"] / (peak["best"] * 1e9)
        out.append(f"Ceiling: were every GEMM-like op at the full peak, the rest "
                   f"({1e3 * rest_s:.0f} ms) would still hold the step to "
                   f"{gemm_at_peak_s / (gemm_at_peak_s + rest_s):.0%} of peak.")
        if s["slow_convs"]:
            out.append(f"{s['slow_convs']} convolutions per step take PyTorch's non-oneDNN path "
                       f"(`_slow_conv2d`): its heuristic sends unstrided 1x1 convs to oneDNN only "
                       f"with more than one thread or a batch of at least 16.")
        out.append("")
        out.append(markdown_table(prof_rows))
    print(section("Roofline: training FLOP/s vs this CPU's fp32 GEMM peak", "\n".join(out)),
          flush=True)
    return 0


def investigate_model(name: str, img: int, bs: int, steps: int, peak: float, peak1: float,
                      clock: str = "wall") -> str:
    """Side-by-side variants of one model's step, timed interleaved; GFLOP/s and fraction of peak."""
    model_flops = train_flops_per_image(build_model(name, img), img, channels_last=True)
    variants = {
        f"channels_last, batch {bs}": dict(channels_last=True, batch=bs),
        f"contiguous (NCHW), batch {bs}": dict(channels_last=False, batch=bs),
        f"channels_last, batch {max(2, bs // 4)}": dict(channels_last=True, batch=max(2, bs // 4)),
        f"channels_last, batch {bs * 2}": dict(channels_last=True, batch=bs * 2),
        f"channels_last, batch {bs}, Adam(for-loop)": dict(channels_last=True, batch=bs,
                                                          fused=False),
        f"channels_last, batch {bs}, bf16 autocast": dict(channels_last=True, batch=bs,
                                                         amp=torch.bfloat16),
    }
    fns = {k: make_train_step(build_model(name, img), v["batch"], img,
                              channels_last=v["channels_last"], amp_dtype=v.get("amp"),
                              fused=v.get("fused"))
           for k, v in variants.items()}
    secs = compare(fns, rounds=max(2, steps), steps=1, warmup=2, clock=clock)
    for k in variants:
        print(f"  roofline investigate: {k}: {variants[k]['batch'] / secs[k]:.2f} img/s",
              file=sys.stderr, flush=True)
    rows = []
    for k, v in variants.items():
        gflops = model_flops * v["batch"] / secs[k] / 1e9
        rows.append({"variant": k, "img/s": v["batch"] / secs[k], "GFLOP/s": gflops,
                     "of fp32 peak": f"{gflops / peak:.0%}"})
    old = torch.get_num_threads()
    if old > 1:
        torch.set_num_threads(1)
        try:
            sec1 = time_steps(make_train_step(build_model(name, img), bs, img, channels_last=True),
                              warmup=1, steps=max(1, steps - 1), clock=clock)
        finally:
            torch.set_num_threads(old)
        g1 = model_flops * bs / sec1 / 1e9
        rows.append({"variant": f"channels_last, batch {bs}, 1 thread", "img/s": bs / sec1,
                     "GFLOP/s": g1, "of fp32 peak": f"{g1 / peak1:.0%} (of 1-thread peak)"})
    return ("Variants timed interleaved in one process (bf16 uses AMX/AVX512-BF16 where the CPU "
            "has it, so its fraction of the fp32 peak can exceed what fp32 can reach).\n\n"
            + markdown_table(rows))


if __name__ == "__main__":
    sys.exit(main())
