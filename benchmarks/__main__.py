"""One entry point for every benchmark: `python -m benchmarks [--only NAME,...] [--quick]`.

Runs each benchmark module's `main(argv)` in turn (the known ones first, in `ORDER`, then any
other `benchmarks/bench_*.py`), forwarding `--quick` and any arguments after `--`, and
prints their Markdown sections on stdout. A module that fails is reported and the others still
run; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from benchmarks._common import machine_line

# Models vs timm, engine vs bare loop, roofline, loader, memory; then the measurements behind
# the --compile and --jobs advice.
ORDER = ["bench_models", "bench_engine", "roofline", "bench_loader", "memory",
         "bench_channels_last", "bench_pointwise", "bench_optimizer", "bench_precision",
         "bench_compile", "bench_threads"]
# Run only on request: gpu_check (benchmarks/gpu.sh; `--only gpu_check --quick` is its dry run)
# needs a CUDA device; precision_parity trains 18 runs (about half an hour on 2 cores),
# bench_cv_gain 40 (BENCHMARKS.md gives its time); bench_plan trains the study it plans.
ON_REQUEST = ["bench_plan", "gpu_check", "precision_parity", "bench_cv_gain"]


def available() -> list[str]:
    here = Path(__file__).parent
    found = {p.stem for p in here.glob("bench_*.py")} | {
        n for n in ("roofline", "memory", *ON_REQUEST) if (here / f"{n}.py").exists()}
    known = [n for n in ORDER if n in found]
    return known + sorted(found - set(known) - set(ON_REQUEST)) + [
        n for n in ON_REQUEST if n in found]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--only", default="",
                   help="comma-separated module names (e.g. roofline,memory); default: all")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and few steps: checks that everything runs, figures not "
                        "worth quoting")
    p.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    p.add_argument("rest", nargs=argparse.REMAINDER,
                   help="arguments after `--` are passed to every selected module")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        wanted = [n.strip().removesuffix(".py") for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            print(f"error: --only {','.join(unknown)}: no such benchmark module; "
                  f"choose from {', '.join(names)}", file=sys.stderr)
            return 2
        names = wanted
    else:
        names = [n for n in names if n not in ON_REQUEST]
    extra = [a for a in args.rest if a != "--"]
    sub_argv = (["--quick"] if args.quick else []) + extra

    print(f"# depthbench benchmarks\n\n{machine_line()}\n"
          f"Command: `python -m benchmarks {' '.join(argv if argv is not None else sys.argv[1:])}`\n",
          flush=True)
    failed = []
    for name in names:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            rc = module.main(list(sub_argv))
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            rc = 1
        print(f"_{name}: {'ok' if not rc else f'FAILED (exit {rc})'} "
              f"in {time.perf_counter() - t0:.1f} s_\n", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
