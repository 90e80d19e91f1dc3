"""Peak memory of a training step per model and batch size.

    python -m benchmarks.memory [--quick] [--models ...] [--batch-sizes 8,16] [--img-size 224]
                                [--device cpu|cuda]

CPU: each (model, batch) runs two training steps (forward, backward, Adam: the second step holds
the optimizer state too) in its own subprocess, which reports its resident set once its libraries
are imported (the idle baseline) and its high-water mark at the end; the table shows the
difference. (`VmHWM` from /proc, not `ru_maxrss`: Linux carries the parent's peak into a child's
`ru_maxrss` across fork/exec, so a child of a 1 GiB process never reports less than 1 GiB.)
Peak memory grows linearly in the batch size, so the two smallest measured batch sizes give a
per-image slope and a projection to the recipe's batch 128 (marked as projected).
CUDA: `torch.cuda.max_memory_allocated` after the same two steps, in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from benchmarks._common import (
    MODELS,
    SHORT,
    build_model,
    is_cnn,
    make_train_step,
    markdown_table,
    model_names,
    section,
)


def _proc_status_mib(key: str) -> float:
    """A `VmRSS`/`VmHWM` line of /proc/self/status, in MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def child(name: str, img_size: int, batch_size: int, steps: int) -> dict:
    """What one measured subprocess does: import, note the idle RSS, train, note the peak."""
    step = make_train_step(build_model(name, img_size), batch_size, img_size,
                           channels_last=is_cnn(name))
    idle = _proc_status_mib("VmRSS")  # libraries, interpreter and the model's weights
    for _ in range(steps):
        step()
    return {"idle_mib": idle, "peak_mib": _proc_status_mib("VmHWM")}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_peak_mb(name: str, img_size: int, batch_size: int, steps: int = 2,
                timeout: float = 900, threads: int | None = None) -> dict:
    """{idle_mib, peak_mib, train_mib} of a fresh subprocess running `child(name, ...)`:
    train_mib = peak - idle, the memory the training steps added (activations, gradients, Adam
    state, allocator caches); the weights are in idle_mib."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", name, str(img_size),
           str(batch_size), str(steps)]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"memory child {name} batch {batch_size} exited with {r.returncode}: "
                           f"{tail}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["train_mib"] = out["peak_mib"] - out["idle_mib"]
    return out


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
    p.add_argument("--models", default="", help="comma-separated names (default: every model)")
    p.add_argument("--batch-sizes", default="", help="measured batch sizes (default 8,16)")
    p.add_argument("--project", type=int, default=128,
                   help="batch size to project to from the two smallest measured (0: none)")
    p.add_argument("--img-size", type=int, default=None, help="default 224 (quick: 64)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0,
                   help="OMP_NUM_THREADS of each CPU child (default: torch's default)")
    p.add_argument("--child", nargs=4, metavar=("NAME", "IMG", "BATCH", "STEPS"),
                   help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.child:
        name, img, bs, steps = args.child
        print(json.dumps(child(name, int(img), int(bs), int(steps))), flush=True)
        return 0
    q = args.quick
    img = args.img_size or (64 if q else 224)
    sizes = sorted(int(b) for b in (args.batch_sizes or ("2,4" if q else "8,16")).split(","))
    names = model_names(args.models)
    names = names or (["resnet18"] if q else MODELS)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2

    rows = []
    idles = []
    if args.device == "cpu":
        head = ("Peak RSS (`VmHWM`) of a subprocess doing two training steps (Adam, fp32, CNNs "
                "channels_last) minus its RSS before the first step (python, torch, the model's "
                "weights: {idle}); " + f"{img} px.")
    else:
        head = f"`torch.cuda.max_memory_allocated` over two training steps (fp32), {img} px."
    for name in names:
        peaks = {}
        for bs in sizes:
            if args.device == "cpu":
                r = cpu_peak_mb(name, img, bs, threads=args.threads or None)
                peaks[bs] = r["train_mib"]
                idles.append(r["idle_mib"])
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
    if idles:
        head = head.replace("{idle}", f"{min(idles):.0f}-{max(idles):.0f} MiB")
    print(section(f"Peak memory per model and batch size ({args.device})",
                  head + "\n\n" + markdown_table(rows)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
