"""`depthbench plan` against what happened: plan a study, run it, compare its time and its
detectable differences.

    python -m benchmarks.bench_plan --preset smoke --out /tmp/plan_smoke
    python -m benchmarks.bench_plan --preset quick --out /tmp/plan_quick        # the quick study
    python -m benchmarks.bench_plan --compare-only --preset quick --out runs/quick --pilot DIR
    python -m benchmarks.bench_plan --defaults-from runs/quick    # the plan's stated defaults

The first two plan the study (`depthbench plan --json`, timed: it should answer within a
minute), then run it (`depthbench run`, timed) into a new folder, then print one Markdown
section: each run's predicted seconds against its measured ones (the runner's "finished (in N s)"
line), the study's predicted wall time against the runner's own clock and the command's, and
whether the total is within the goal (+-25%). `--compare-only` compares a finished study
instead, reading its runs' seconds from their folders (train.log's start line to result.json)
and the study's total from its folder (.lock's creation to report.html); pass the study options
it was run with, and `--plan-json FILE` to compare with a plan made before it ran.

Then, where the study wrote comparisons.csv, each comparison's detectable difference as the plan
predicted it (from the stated defaults: the plan made before the run, without `--from`; and with
`--pilot DIR`, from `depthbench plan --from DIR`, a pilot study of the same grid) against the one
its report achieved (`mde_pts`), and whether each is within +-30%. `--defaults-from STUDY`
prints what `study/plan/decide.py`'s defaults measure on a finished single-split study: the
median discordance of its comparisons, its runs' mean accuracy and, with several seeds, the
image share of the disagreement and the run-to-run term.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import machine_line, markdown_table
from depthbench.report.analysis import Analysis, components_of, plan_comparisons
from depthbench.report.records import load_study

GOAL = 0.25  # |predicted / measured - 1| within this counts as met
DETECT_GOAL = 0.30  # ... for a detectable difference predicted with --from


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
    p.add_argument("--pilot", help="a pilot study of the same grid: also predict the detectable "
                   "differences with `plan --from PILOT`")
    p.add_argument("--defaults-from", metavar="STUDY",
                   help="print the plan's defaults as this finished study measures them; "
                        "nothing else")
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


def achieved(study: Path) -> dict[tuple[str, ...], dict]:
    """comparisons.csv's rows by (a_model, a_variant, b_model, b_variant)."""
    with open(study / "comparisons.csv", newline="") as f:
        return {(r["a_model"], r["a_variant"], r["b_model"], r["b_variant"]): r
                for r in csv.DictReader(f)}


def compare_detectable(rows: dict, plans: dict[str, dict]) -> str:
    """Each comparison's achieved detectable difference against each plan's prediction."""
    table, ratios = [], {name: [] for name in plans}
    for key, r in rows.items():
        row = {"comparison": f"{key[0]} {key[1]} vs {key[2]} {key[3]}", "section": r["section"],
               "achieved (points)": r["mde_pts"] and f"{float(r['mde_pts']):.2f}"}
        for name, plan in plans.items():
            c = {(*x["a"], *x["b"]): x for x in plan["comparisons"]}.get(key) or next(
                (x for x in plan["comparisons"] if x["section"] == r["section"] == "best"), None)
            p = c["detectable"] if c else None
            row[f"{name} (points)"] = _r2(p)
            row[f"{name} / achieved"] = _ratio2(p, r["mde_pts"])
            if p and r["mde_pts"]:
                ratios[name].append(p / float(r["mde_pts"]))
        table.append(row)
    lines = [markdown_table(table), ""]
    for name, rs in ratios.items():
        plan = plans[name]
        within = sum(abs(x - 1) <= DETECT_GOAL for x in rs)
        lines.append(f"{name}: {within} of {len(rs)} within +-{DETECT_GOAL:.0%}, median ratio "
                     f"{statistics.median(rs):.2f} (range {min(rs):.2f}-{max(rs):.2f}); "
                     f"{len(plan['comparisons'])} comparisons planned, {len(rows)} made; "
                     f"variance: {plan['variance']['text']}." if rs else f"{name}: no pair.")
    return "\n".join(lines) + "\n"


def measured_defaults(study: Path) -> str:
    """What the plan's defaults (`study/plan/decide.py`) are, measured on a finished single-split
    study by its report's own comparisons: the discordance of each (A and B disagreeing, per
    test image and seed), its runs' test accuracy, and with several seeds each comparison's
    image share of the disagreement and run-to-run term (`report.analysis.components_of`)."""
    an = Analysis(load_study(study))
    plan_comparisons(an)
    tested = [c for c in an.comparisons if c.test is not None and c.counts is None]
    rates = [(c.a_only + c.b_only) / (c.n * len(c.seeds)) for c in tested]
    accs = [r.accuracy("best", an.split) for r in an.study.runs if r.finished]
    out = [f"{study}: {len(rates)} comparisons on {an.split}, discordance median "
           f"{statistics.median(rates):.4f} (range {min(rates):.4f}-{max(rates):.4f}); "
           f"{len(accs)} finished runs, mean accuracy {statistics.mean(accs):.4f}"]
    several = [components_of(c)[0] for c in tested if c.diffs is not None]
    if several:
        shares = [x.img / (x.img + x.res) for x in several if x.img + x.res]
        out.append(f"several seeds: image share median {statistics.median(shares):.4f}, "
                   f"run term median {statistics.median(x.seed for x in several):.3g}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.defaults_from:
        print(measured_defaults(Path(args.defaults_from)))
        return 0
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
        return detectable_section(args, study, out, plan)
    p, run_s = depthbench("run", *study, "--out", str(out))
    print("`depthbench run` first lines:\n\n```\n" + "\n".join(p.stderr.splitlines()[:3])
          + "\n```\n")
    if p.returncode not in (0, 3):
        print(p.stderr, file=sys.stderr)
        return 1
    (out / "run.stderr").write_text(p.stderr)
    runs, analysis, total = measured_from_log(p.stderr)
    print(compare(plan, runs, analysis, total, run_s))
    return detectable_section(args, study, out, plan)


def detectable_section(args, study: list[str], out: Path, plan: dict) -> int:
    """The detectable differences predicted (defaults; `--from` the pilot) against achieved."""
    if not (out / "comparisons.csv").is_file():
        return 0
    plans = {"defaults": plan}
    if args.pilot:
        p, pilot_s = depthbench("plan", *study, "--out", str(out), "--from", args.pilot, "--json")
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            return 1
        plans["from the pilot"] = json.loads(p.stdout)
        print(f"`depthbench plan {' '.join(study)} --from {args.pilot} --json`: answered in "
              f"{pilot_s:.0f} s.\n")
    print("### Detectable differences: planned against achieved\n")
    print(compare_detectable(achieved(out), plans))
    return 0


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _r2(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ratio2(p: float | None, m: str) -> str:
    return "-" if not p or not m else f"{p / float(m):.2f}"


def _ratio(p: float | None, m: float | None) -> str:
    return "-" if not p or not m else f"{p / m:.2f}"


if __name__ == "__main__":
    sys.exit(main())
