"""How long a study's worker process takes to start, before it trains (`study.local`).

    python -m benchmarks.bench_worker_start [--quick] [--rounds 3]

A fresh `python` that imports what a worker needs (`study.worker.PRELOAD`) against a fork of the
`multiprocessing` fork server that preloaded them, which is how `study.local` starts each run on
a CPU machine. The forked child unpickles its target from `depthbench.study.worker` and starts
watching the runner (`_stop_with_runner`), as a real worker does first. Rounds alternate the two; the server's own start (once per study) is left out.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import time

from benchmarks._common import markdown_table, section
from depthbench.study.worker import PRELOAD, _stop_with_runner


def fresh_python() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import " + ", ".join(PRELOAD)], check=True)
    return time.perf_counter() - t0


def forked(ctx) -> float:
    t0 = time.perf_counter()
    # the first thing a run's worker does, from the worker module: its target is unpickled there
    p = ctx.Process(target=_stop_with_runner)
    p.start()
    p.join()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_worker_start",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    forked(ctx)  # starts the server
    times: dict[str, list[float]] = {"fresh": [], "fork": []}
    for _ in range(1 if args.quick else args.rounds):
        times["fresh"].append(fresh_python())
        times["fork"].append(forked(ctx))
    fresh, fork = statistics.median(times["fresh"]), statistics.median(times["fork"])
    rows = [{"start": "fresh python + imports", "s (median)": fresh},
            {"start": "fork of the preloaded server", "s (median)": fork},
            {"start": "ratio", "s (median)": fresh / fork}]
    print(section("Worker start (study.local)", markdown_table(rows)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
