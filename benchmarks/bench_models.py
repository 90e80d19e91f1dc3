"""Our models vs timm's same architectures: seconds per training step, side by side.

    python -m benchmarks.bench_models [--quick] [--models resnet18,swin_t] [--configs 224:8,64:32]
                                      [--rounds 3] [--steps 2] [--attn fused|explicit|both]

For each model and (img_size, batch) pair, depthbench's model and timm's (same name, same
img_size/window, the same weights copied in) each get a training-step closure (forward,
cross-entropy, backward, optimizer step on one fixed synthetic batch; `_common.make_train_step`),
channels_last for the CNNs on both sides. The closures are timed interleaved round by round in this
one process, so load on the shared machine hits both alike; the table gives the ratio of
throughputs, ours / timm (>= 1: ours is at least as fast). Swin away from 224 px uses
`depthbench.models.default_window_size` on both sides. timm's Swin runs its own default attention
path (explicit unless TIMM_FUSED_ATTN is set); ours runs the path(s) chosen with `--attn`.
"""

from __future__ import annotations

import argparse
import sys

import torch

from benchmarks._common import (
    MODELS,
    SHORT,
    compare,
    is_cnn,
    make_train_step,
    markdown_table,
    section,
)

DEFAULT_MODELS = [SHORT.get(m, m) for m in MODELS]
DEFAULT_CONFIGS = "224:8,64:32"


def build_pair(name: str, img_size: int, num_classes: int = 5):
    """(ours, timm's) with identical weights, sized for `img_size`."""
    import timm

    from depthbench.models import create_model, default_window_size, family, resolve_name

    canonical = resolve_name(name)
    kw = {}
    if family(canonical) == "swin":
        kw = {"img_size": img_size, "window_size": default_window_size(img_size)}
    ours = create_model(canonical, num_classes=num_classes, **kw)
    ref = timm.create_model(canonical, pretrained=False, num_classes=num_classes, **kw)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def compare_cpu_time(fns: dict, rounds: int, steps: int) -> dict[str, float]:
    """Like `_common.compare`, but on process CPU seconds: on a shared, overloaded machine the time
    a process waits for a core is not its cost. Meaningful with one torch thread (--threads 1)."""
    import statistics
    import time

    for fn in fns.values():
        fn()
    names = list(fns)
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for r in range(max(1, rounds)):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.process_time()
            for _ in range(max(1, steps)):
                fns[name]()
            per_round[name].append((time.process_time() - t0) / max(1, steps))
    return {n: statistics.median(v) for n, v in per_round.items()}


def bench_one(name: str, img_size: int, batch: int, rounds: int, steps: int,
              attn_modes: list[str], clock: str = "wall") -> dict:
    ours, ref = build_pair(name, img_size)
    cl = is_cnn(name)
    fns = {"timm": make_train_step(ref, batch, img_size, channels_last=cl)}
    for mode in attn_modes:
        m = ours
        if hasattr(ours, "set_fused_attn"):
            import copy

            m = copy.deepcopy(ours)
            m.set_fused_attn(mode == "fused")
        elif mode != attn_modes[0]:
            continue  # CNNs have no attention path to switch
        fns[f"ours_{mode}" if hasattr(ours, "set_fused_attn") else "ours"] = make_train_step(
            m, batch, img_size, channels_last=cl)
    t = (compare(fns, rounds=rounds, steps=steps, warmup=1) if clock == "wall"
         else compare_cpu_time(fns, rounds=rounds, steps=steps))
    row = {"model": name, "img": img_size, "batch": batch,
           "timm ms/step": 1000 * t["timm"]}
    for key, sec in t.items():
        if key == "timm":
            continue
        label = key.replace("ours_", "ours ") if key != "ours" else "ours"
        row[f"{label} ms/step"] = 1000 * sec
        row[f"{label} / timm"] = t["timm"] / sec  # throughput ratio
    return row


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_models",
                                description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated names")
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help="comma-separated img_size:batch pairs (default 224:8,64:32)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median is reported)")
    p.add_argument("--steps", type=int, default=2, help="training steps per candidate per round")
    p.add_argument("--attn", choices=["fused", "explicit", "both"], default="fused",
                   help="our Swin attention path(s) to time (default: fused, the default path)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall seconds (default) or process CPU seconds (robust to a loaded "
                        "machine; use with --threads 1)")
    p.add_argument("--quick", action="store_true",
                   help="resnet18, seresnet50, swin_t only; 2 rounds of 1 step")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    rounds, steps = args.rounds, args.steps
    if args.quick:
        models, rounds, steps = ["resnet18", "seresnet50", "swin_t"], 2, 1
    configs = [tuple(int(v) for v in c.split(":")) for c in args.configs.split(",") if c]
    attn_modes = ["fused", "explicit"] if args.attn == "both" else [args.attn]
    rows = []
    for img_size, batch in configs:
        for name in models:
            rows.append(bench_one(name, img_size, batch, rounds, steps, attn_modes, args.clock))
            print(f"  done {name} @ {img_size} px, batch {batch}", file=sys.stderr, flush=True)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    body = (f"Training step (forward, cross-entropy, backward, Adam) on one synthetic batch; "
            f"median of {rounds} interleaved rounds x {steps} steps ({args.clock} clock, "
            f"{torch.get_num_threads()} threads); channels_last for CNNs. "
            f"Ratio = timm seconds / ours seconds (throughput ours / timm; goal >= 0.95).\n\n"
            + markdown_table(rows, cols))
    print(section("Models vs timm (training step)", body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
