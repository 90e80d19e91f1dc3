"""Run a study: train every grid point into its run folder, analyze the finished runs, then
build the report; `run_study` is that pipeline, the one function `depthbench run` calls.

First everything that can be checked is checked, before anything is written (`study.folder`:
the study the folder already holds, the device every run asks for, the data and its split). Then
the runner holds a lock on the study folder, records the study as it now stands (`study.yaml`,
the resolved spec) and one split manifest (`split.json`) that every run uses, skips finished
runs, and hands the rest to an executor: `study.local` (this machine, one worker process per
run) or `study.slurm` (one SLURM job per run). Started runs resume from their `last.ckpt`.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from rich.console import Console

from depthbench.analysis import analyze_path
from depthbench.errors import ConfigError, DepthbenchError, StudyInterrupted
from depthbench.report.build import build_report
from depthbench.study.folder import (
    Start,
    check_folder,
    preflight,
    record_cells,
    record_study,
    remove_study_temps,
)
from depthbench.study.grid import RunPlan, plan_runs
from depthbench.study.local import LocalScheduler
from depthbench.study.lock import StudyLock
from depthbench.study.plan import announce
from depthbench.study.records import read_result, status_of
from depthbench.study.slurm import SlurmScheduler, require_client
from depthbench.study.spec import StudySpec
from depthbench.study.summary import Summary


def default_study_dir(spec: StudySpec) -> Path:
    return Path("runs") / spec.name


def run_study(spec: StudySpec, out: str | Path | None = None, *, retry_failed: bool = False,
              console=None, analyze: bool = True, detach: bool = False,
              cluster: str = "slurm") -> Summary:
    """Train every grid point of `spec` that is not finished yet, analyze the finished runs
    (unless `analyze` is False), then build the report.

    With `spec.executor.kind == "slurm"` the runs are SLURM jobs (`depthbench.study.slurm`);
    `detach` returns once they are submitted (a later call collects them, analyzes and reports).
    `cluster` is submitit's executor for them (`local` in tests without SLURM)."""
    console = console or Console(stderr=True, soft_wrap=True)
    if detach and spec.executor.kind != "slurm":
        raise ConfigError("--detach: only with --executor slurm (or `executor: {kind: slurm}`)")
    study_dir = Path(out) if out is not None else default_study_dir(spec)
    if spec.executor.kind == "slurm" and cluster == "slurm":
        require_client()
    t0 = time.monotonic()
    start = preflight(spec, study_dir)  # nothing written before every check passed
    # runs, time and disk, said first once the folder is ours; a disk too small is refused now
    plan = announce(spec, study_dir, start.images, retry_failed=retry_failed)
    with StudyLock(study_dir) as lock, _sigterm_as_interrupt():
        for line in plan.lines:
            console.print(line)
        check_folder(study_dir, spec)  # again: another run may have ended in the meantime
        remove_study_temps(study_dir)  # half-written files of a killed run (kill -9, power cut)
        if lock.took_over:
            console.print(f"[yellow]took over the lock of a stopped run "
                          f"(pid {lock.took_over.get('pid')}, started {lock.took_over.get('started')})")
        for warning in start.warnings:
            console.print(f"[yellow]warning: {warning}")
        summary = _train(spec, study_dir, start, console, retry_failed=retry_failed,
                         detach=detach, cluster=cluster)
        if not summary.pending:
            if analyze:  # SE, attention, CKA, Grad-CAM; the report then shows them
                summary.analyzed = _analyze(study_dir, analyzed_runs(spec), console)
            summary.report = build_report(study_dir)
    summary.seconds = time.monotonic() - t0
    return summary


def _train(spec: StudySpec, study_dir: Path, start: Start, console, *, retry_failed: bool,
           detach: bool, cluster: str) -> Summary:
    """The runs not finished yet, by the study's executor; a Ctrl-C stops them resumably."""
    split_path = record_study(study_dir, spec, start, console)
    summary, todo = _todo(study_dir, plan_runs(spec), retry_failed, console)
    if start.partition is not None:  # each run finds its cell's split in its own folder
        record_cells(study_dir, start.partition, todo)
    if spec.executor.kind == "slurm":
        scheduler = SlurmScheduler(spec, study_dir, split_path, todo, summary, console,
                                   retry_failed=retry_failed, detach=detach, cluster=cluster)
        try:
            summary.pending = scheduler.run() if todo else []
        except KeyboardInterrupt:
            raise StudyInterrupted(
                f"interrupted with {len(summary.finished)} of {summary.total} runs finished; "
                "the study's SLURM jobs were cancelled; rerun the same command to submit them "
                "again (finished runs are kept, started ones resume from their last epoch)"
            ) from None
    elif todo:
        LocalScheduler(spec, study_dir, split_path, todo, summary, console).run()
    return summary


def _todo(study_dir: Path, plans: list[RunPlan], retry_failed: bool,
          console) -> tuple[Summary, list[RunPlan]]:
    """The summary so far (runs that ended before this invocation) and the runs to train."""
    summary = Summary(study_dir, total=len(plans))
    todo: list[RunPlan] = []
    for plan in plans:
        state = status_of(study_dir / plan.name)
        if state == "finished":
            summary.finished.append(plan.name)
            summary.skipped += 1
        elif state == "failed" and not retry_failed:
            result = read_result(study_dir / plan.name) or {}
            summary.failed[plan.name] = ((result.get("failure") or {}).get("reason") or "failed")
            summary.skipped += 1
        else:
            todo.append(plan)
    if summary.skipped:
        console.print(f"{study_dir}: {len(summary.finished)} runs already finished"
                      + (f", {len(summary.failed)} failed before (kept; --retry-failed runs "
                         "them again)" if summary.failed else ""))
    return summary, todo


def analyzed_runs(spec: StudySpec) -> list[str]:
    """The runs `analyze` measures: every run, or in a cross-validated study one cell's (repeat
    0, fold 0; the networks inside are much alike from fold to fold, and the measurements are
    the costly part of the analysis)."""
    return [p.name for p in plan_runs(spec) if not p.repeat and not p.fold]


def _analyze(study_dir: Path, runs: list[str], console) -> int:
    """`depthbench analyze` of every finished run of the study (the report reads their
    analysis.json); the runs and their report stand without it. Returns the runs analyzed."""
    if not any((study_dir / name / "result.json").is_file() for name in runs):
        return 0
    t0 = time.monotonic()
    try:
        out = analyze_path(study_dir, runs=runs,
                           progress=lambda name: console.print(f"analyzing {name}"))
    except DepthbenchError as e:
        console.print(f"[yellow]analysis skipped: {e}; the report is built without it")
        return 0
    done = sum(isinstance(r, dict) for r in out.values())
    console.print(f"analysis: {done} runs in {time.monotonic() - t0:.0f} s")
    return done


class _sigterm_as_interrupt:
    """While a study runs, SIGTERM stops it the way Ctrl-C does (workers stopped, resumable)."""

    def __enter__(self):
        self._old = signal.signal(signal.SIGTERM, self._handler)

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._old)

    @staticmethod
    def _handler(signum, frame):
        raise KeyboardInterrupt
