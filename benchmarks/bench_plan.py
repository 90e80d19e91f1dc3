"""`depthbench plan`'s time against what happened: plan a study, run it, compare.

    python -m benchmarks.bench_plan --preset smoke --out /tmp/plan_smoke
    python -m benchmarks.bench_plan --preset quick --out /tmp/plan_quick        # the quick study
    python -m benchmarks.bench_plan --compare-only --preset quick --out runs/quick

The first two plan the study (`depthbench plan --json`, timed: it should answer within a
minute), then run it (`depthbench run`, timed) into a new folder, then print one Markdown
section: each run's predicted seconds against its measured ones (the runner's "finished (in N s)"
line), the study's predicted wall time against the runner's own clock and the command's, and
whether the total is within the goal (+-25%). `--compare-only` compares a finished study
instead, reading its runs' seconds from their folders (train.log's start line to result.json)
and the study's total from its folder (.lock's creation to report.html); pass the study options
it was run with, and `--plan-json FILE` to compare with a plan made before it ran.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import machine_line, markdown_table

GOAL = 0.25  # |predicted / measured - 1| within this counts as met


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_plan",
                                description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--seeds", default=None)
    p.add_argument("--jobs", default=None)
    p.add_argument("--out", required=False, help="the study folder (new, unless --compare-only)")
    p.add_argument("--remeasure", action="store_true", help="plan times every model again")
    p.add_argument("--compare-only", action="store_true",
                   help="compare a finished study in --out with a plan; train nothing")
    p.add_argument("--plan-json", help="a plan made before (its --json output) to compare with")
    p.add_argument("--quick", action="store_true",
                   help="the harness's smoke check: the smoke preset (as without it)")
    return p


def study_args(args) -> list[str]:
    out = []
    for name in ("preset", "config", "data", "seeds", "jobs"):
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name}", str(value)]
    return out or ["--preset", "smoke"]


def depthbench(*argv: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "depthbench", *argv], capture_output=True,
                       text=True, env=os.environ.copy())
    return p, time.perf_counter() - t0


def measured_from_log(stderr: str) -> tuple[dict[str, float], float | None, float | None]:
    """Each run's seconds ("[i/n] NAME: finished (in N s)"), the analysis's ("analysis: N runs
    in S s") and the runner's total ("(x min)")."""
    runs = {m.group(1): float(m.group(2))
            for m in re.finditer(r"\] (\S+): (?:finished|FAILED) \(in (\d+) s\)", stderr)}
    analysis = re.search(r"^analysis: \d+ runs in (\d+) s", stderr, re.M)
    total = re.search(r"runs finished.*\(([\d.]+) min\)", stderr)
    return (runs, float(analysis.group(1)) if analysis else None,
            float(total.group(1)) * 60 if total else None)


def measured_from_folder(study: Path) -> tuple[dict[str, float], float | None]:
    """Each run's seconds from its folder (its last train.log start line to result.json's
    writing) and the study's (its .lock's creation to report.html's writing)."""
    runs = {}
    for run in sorted(p for p in study.iterdir() if (p / "result.json").is_file()):
        starts = [ln for ln in (run / "train.log").read_text().splitlines()
                  if ln.startswith("=== ")]
        if not starts:
            continue
        began = datetime.datetime.strptime(" ".join(starts[-1].split()[1:3]),
                                           "%Y-%m-%d %H:%M:%S").timestamp()
        runs[run.name] = (run / "result.json").stat().st_mtime - began
    report, lock = study / "report.html", study / ".lock"
    total = (report.stat().st_mtime - lock.stat().st_mtime
             if report.is_file() and lock.is_file() else None)
    return runs, total


def predicted_runs(plan: dict) -> dict[tuple[str, str], float]:
    return {(r["model"], r["variant"]): r["seconds"] for r in plan["costs"]["runs"]}


def compare(plan: dict, runs: dict[str, float], analysis: float | None, total: float | None,
            command_s: float | None) -> str:
    per_run = predicted_runs(plan)
    rows = []
    for name, seconds in sorted(runs.items()):
        model, variant, _ = name.split("__")
        p = per_run.get((model, variant))
        rows.append({"run": name, "predicted s": _r(p), "measured s": _r(seconds),
                     "predicted / measured": _ratio(p, seconds)})
    predicted = plan["costs"]["total"]["seconds_this_machine"]
    runs_p = sum(per_run[tuple(n.split("__")[:2])] for n in runs if tuple(n.split("__")[:2])
                 in per_run)
    rows.append({"run": "all runs (sum)", "predicted s": _r(runs_p),
                 "measured s": _r(sum(runs.values())),
                 "predicted / measured": _ratio(runs_p, sum(runs.values()))})
    analysis_p = sum(r["analysis_seconds"] * r["runs"] for r in plan["costs"]["runs"])
    rows.append({"run": "analysis", "predicted s": _r(analysis_p), "measured s": _r(analysis),
                 "predicted / measured": _ratio(analysis_p, analysis)})
    rows.append({"run": "study (runner's clock)", "predicted s": _r(predicted),
                 "measured s": _r(total), "predicted / measured": _ratio(predicted, total)})
    if command_s is not None:
        rows.append({"run": "`depthbench run` (wall, with its start)", "predicted s": _r(predicted),
                     "measured s": _r(command_s),
                     "predicted / measured": _ratio(predicted, command_s)})
    met = total is not None and abs(predicted / total - 1) <= GOAL
    m = plan["machine"]
    return (f"Study {plan['study']}: {plan['design']['runs']} runs, {m['name']}, "
            f"{m['precision']}, {m['runs_at_once']} at a time x {m['threads_per_run']} threads; "
            f"load average {os.getloadavg()[0]:.1f} at the end.\n\n"
            + markdown_table(rows)
            + f"\n\nTotal within +-{GOAL:.0%}: **{'met' if met else 'not met'}**.\n")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    study = study_args(args)
    out = Path(args.out or f"/tmp/bench_plan_{os.getpid()}")
    if not args.compare_only and out.exists():
        print(f"error: --out {out} exists; give a new folder (or --compare-only)",
              file=sys.stderr)
        return 2
    print(f"## `depthbench plan` against the study it planned\n\n{machine_line()}")
    print(f"load average at the start: {os.getloadavg()[0]:.1f}\n")
    if args.plan_json:
        plan, plan_s = json.loads(Path(args.plan_json).read_text()), None
    else:
        p, plan_s = depthbench("plan", *study, "--out", str(out), "--json",
                               *(["--remeasure"] if args.remeasure else []))
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            return 1
        plan = json.loads(p.stdout)
        print(f"`depthbench plan {' '.join(study)} --json`: answered in {plan_s:.0f} s "
              f"({', '.join(sorted({r['timing'] for r in plan['costs']['models']}))}).\n")
    if args.compare_only:
        runs, total = measured_from_folder(out)
        print(compare(plan, runs, None, total, None))
        return 0
    p, run_s = depthbench("run", *study, "--out", str(out))
    print("`depthbench run` first lines:\n\n```\n" + "\n".join(p.stderr.splitlines()[:3])
          + "\n```\n")
    if p.returncode not in (0, 3):
        print(p.stderr, file=sys.stderr)
        return 1
    (out / "run.stderr").write_text(p.stderr)
    runs, analysis, total = measured_from_log(p.stderr)
    print(compare(plan, runs, analysis, total, run_s))
    return 0


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _ratio(p: float | None, m: float | None) -> str:
    return "-" if not p or not m else f"{p / m:.2f}"


if __name__ == "__main__":
    sys.exit(main())
