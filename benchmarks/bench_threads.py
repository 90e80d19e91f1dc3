"""Thread settings for several trainings on the CPU at once (`depthbench run --jobs N`).

    python -m benchmarks.bench_threads [--quick] [--model resnet18] [--img-size 64]
                                       [--batch-size 32] [--seconds 20] [--rounds 2]

Compares total training throughput (images/s summed over the jobs) of
  - 1 job x all cores' threads (runs one after another),
  - N jobs x 1 thread each (the cores split between concurrent runs),
  - N jobs x all threads each (what happens when nothing is set: oversubscribed),
where N = the number of cores. Every job is its own process with `OMP_NUM_THREADS` set before torch
starts (as the study runner must); the jobs warm up, wait at a common start line, then train for
a fixed number of seconds, so no job ever runs alone at the tail. Configurations alternate round
by round; the table shows the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks._common import SHORT, markdown_table, section
from depthbench.cpus import usable_cpu_count
from depthbench.names import canonical

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(model: str, img_size: int, batch_size: int, seconds: float) -> None:
    """One job: warm up, say `ready`, wait for a line on stdin, train `seconds`, print JSON."""
    import torch

    from benchmarks._common import build_model, is_cnn, make_train_step

    step = make_train_step(build_model(model, img_size), batch_size, img_size,
                           channels_last=is_cnn(model))
    step()
    step()
    print("ready", flush=True)
    sys.stdin.readline()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    elapsed = time.perf_counter() - t0
    print(json.dumps({"images_per_s": n * batch_size / elapsed, "steps": n,
                      "threads": torch.get_num_threads()}), flush=True)


def run_jobs(jobs: int, threads: int, model: str, img_size: int, batch_size: int,
             seconds: float) -> dict:
    """Start `jobs` workers with `threads` threads each; total images/s once all run together."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "benchmarks.bench_threads", "--worker", model, str(img_size),
           str(batch_size), str(seconds)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
    try:
        for p in procs:
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"thread-bench worker failed before starting (got {line!r})")
        for p in procs:  # the start line
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=seconds * 10 + 120)
            if p.returncode != 0:
                raise RuntimeError(f"thread-bench worker exited with {p.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return {"total": sum(r["images_per_s"] for r in results),
            "threads_seen": results[0]["threads"]}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_threads",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="32 px, batch 4, 2 s, one round")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--img-size", type=int, default=None, help="default 64 (quick: 32)")
    p.add_argument("--batch-size", type=int, default=None, help="default 32 (quick: 4)")
    p.add_argument("--seconds", type=float, default=None, help="timed seconds per run (default 20)")
    p.add_argument("--rounds", type=int, default=None, help="default 2 (quick: 1)")
    p.add_argument("--cores", type=int, default=None, help="default: the CPUs this process may use")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.worker:
        model, img, bs, secs = args.worker
        worker(model, int(img), int(bs), float(secs))
        return 0
    q = args.quick
    img = args.img_size or (32 if q else 64)
    bs = args.batch_size or (4 if q else 32)
    secs = args.seconds or (2.0 if q else 20.0)
    rounds = args.rounds or (1 if q else 2)
    cores = args.cores or usable_cpu_count()
    model = canonical(args.model)
    configs = {f"1 job x {cores} threads": (1, cores),
               f"{cores} jobs x 1 thread": (cores, 1),
               f"{cores} jobs x {cores} threads (oversubscribed)": (cores, cores)}
    totals: dict[str, list[float]] = {k: [] for k in configs}
    names = list(configs)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            jobs, threads = configs[k]
            res = run_jobs(jobs, threads, model, img, bs, secs)
            totals[k].append(res["total"])
            print(f"  threads: {k}: {res['total']:.1f} img/s", file=sys.stderr, flush=True)
    base = statistics.median(totals[names[0]])
    rows = [{"configuration": k, "total img/s": statistics.median(v),
             "vs 1 job": f"{statistics.median(v) / base:.2f}x",
             "rounds": ", ".join(f"{x:.1f}" for x in v)} for k, v in totals.items()]
    best = max(rows, key=lambda r: r["total img/s"])["configuration"]
    head = (f"{SHORT.get(model, model)}, {img} px, batch {bs}, fp32, "
            f"training steps on a fixed batch; each configuration trains {secs:g} s after a "
            f"common start; total = images/s summed over concurrent jobs; median of {rounds} "
            f"alternating round(s).\n\n")
    advice = (f"\nHighest total throughput here: **{best}**. For `--jobs N` on C cores, give each "
              f"run `OMP_NUM_THREADS = max(1, C // N)` before torch starts; never leave every run "
              f"at torch's default of C threads.\n")
    print(section("Thread settings for concurrent CPU runs", head + markdown_table(rows) + advice),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
