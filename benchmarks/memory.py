"""Peak memory of a training step per model and batch size.

    python -m benchmarks.memory [--quick] [--models ...] [--batch-sizes 8,16] [--img-size 224]
                                [--device cpu|cuda]

CPU: each (model, batch) runs two training steps (forward, backward, Adam: the second step holds
the optimizer state too) in its own subprocess; its peak resident set size comes from
`os.wait4`'s rusage for that child (`ru_maxrss`, the per-child figure that
`getrusage(RUSAGE_CHILDREN)` takes the maximum of), minus the peak of an idle child that imports the
same libraries. Peak memory grows linearly in the batch size, so the two smallest measured batch
sizes give a per-image slope and a projection to the recipe's batch 128 (marked as projected).
CUDA: `torch.cuda.max_memory_allocated` after the same two steps, in this process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading

import torch

from benchmarks._common import (
    MODELS,
    SHORT,
    SHORT_TO_TIMM,
    build_model,
    is_cnn,
    make_train_step,
    markdown_table,
    model_source,
    section,
)


def child(name: str, img_size: int, batch_size: int, steps: int) -> None:
    """What one measured subprocess does: `idle` imports the model code and builds nothing."""
    if name == "idle":
        model_source()  # imports depthbench.models (or timm's fallback check)
        return
    step = make_train_step(build_model(name, img_size), batch_size, img_size,
                           channels_last=is_cnn(name))
    for _ in range(steps):
        step()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_peak_mb(name: str, img_size: int, batch_size: int, steps: int = 2,
                timeout: float = 900) -> float:
    """Peak RSS in MiB of a fresh subprocess running `child(name, ...)`."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", name, str(img_size),
           str(batch_size), str(steps)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        # wait4 reaps this child and returns its own rusage (ru_maxrss in KiB on Linux), where
        # getrusage(RUSAGE_CHILDREN) would give the maximum over every child reaped so far.
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {name} batch {batch_size} exited with {proc.returncode}")
    return usage.ru_maxrss / 1024


def cuda_peak_mb(name: str, img_size: int, batch_size: int, steps: int = 2,
                 amp_dtype: torch.dtype | None = None) -> float:
    """`torch.cuda.max_memory_allocated` in MiB over `steps` training steps, in this process."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    step = make_train_step(build_model(name, img_size), batch_size, img_size,
                           channels_last=is_cnn(name), device="cuda", amp_dtype=amp_dtype)
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20
    del step
    torch.cuda.empty_cache()
    return peak


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="resnet18 at 64 px, batches 2 and 4")
    p.add_argument("--models", default="", help="comma-separated names (default: all nine)")
    p.add_argument("--batch-sizes", default="", help="measured batch sizes (default 8,16)")
    p.add_argument("--project", type=int, default=128,
                   help="batch size to project to from the two smallest measured (0: none)")
    p.add_argument("--img-size", type=int, default=None, help="default 224 (quick: 64)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--child", nargs=4, metavar=("NAME", "IMG", "BATCH", "STEPS"),
                   help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.child:
        name, img, bs, steps = args.child
        child(name, int(img), int(bs), int(steps))
        return 0
    q = args.quick
    img = args.img_size or (64 if q else 224)
    sizes = sorted(int(b) for b in (args.batch_sizes or ("2,4" if q else "8,16")).split(","))
    names = [SHORT_TO_TIMM.get(n.strip(), n.strip()) for n in args.models.split(",") if n.strip()]
    names = names or (["resnet18"] if q else MODELS)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2

    rows = []
    if args.device == "cpu":
        idle = cpu_peak_mb("idle", img, 1)
        head = (f"Peak RSS of a subprocess doing two training steps (Adam, fp32, CNNs channels_last) "
                f"minus an idle subprocess's {idle:.0f} MiB (python + torch + models imported); "
                f"models from `{model_source()}`, {img} px.")
    else:
        idle = 0.0
        head = f"`torch.cuda.max_memory_allocated` over two training steps (fp32), {img} px."
    for name in names:
        peaks = {}
        for bs in sizes:
            if args.device == "cpu":
                peaks[bs] = cpu_peak_mb(name, img, bs) - idle
            else:
                peaks[bs] = cuda_peak_mb(name, img, bs)
            print(f"  memory: {name} batch {bs}: {peaks[bs]:.0f} MiB", file=sys.stderr, flush=True)
        row = {"model": SHORT.get(name, name)}
        row.update({f"batch {bs} (MiB)": round(peaks[bs]) for bs in sizes})
        if len(sizes) >= 2:
            a, b = sizes[0], sizes[1]
            slope = (peaks[b] - peaks[a]) / (b - a)
            row["MiB/image"] = round(slope, 1)
            if args.project and args.project not in peaks:
                row[f"batch {args.project} (projected, MiB)"] = round(
                    peaks[a] + slope * (args.project - a))
        rows.append(row)
    print(section(f"Peak memory per model and batch size ({args.device})",
                  head + "\n\n" + markdown_table(rows)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
