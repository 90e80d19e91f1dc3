"""Run a study: train every grid point into its run folder, analyze the finished runs, then
build the report; `run_study` is that pipeline, the one function `depthbench run` calls.

The runner holds a lock on the study folder, writes the resolved spec (`study.yaml`) and one
split manifest (`split.json`) that every run uses, skips finished runs, and hands the rest to an
executor: `study.local` (this machine, one worker process per run) or `study.slurm` (one SLURM
job per run). Started runs resume from their `last.ckpt`.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import yaml
from rich.console import Console

from depthbench._io import atomic_write_text, remove_stale_temps
from depthbench.analysis import analyze_path
from depthbench.data import Manifest, make_split, open_source
from depthbench.errors import ConfigError, DepthbenchError, StudyInterrupted
from depthbench.report import build_report
from depthbench.study.grid import RunPlan, plan_runs
from depthbench.study.local import LocalScheduler
from depthbench.study.lock import StudyLock
from depthbench.study.records import read_result, status_of
from depthbench.study.slurm import SlurmScheduler, active_jobs, require_client
from depthbench.study.spec import StudySpec
from depthbench.study.summary import Summary

# Keys that may change between invocations on one study folder: more seeds add runs; jobs and
# executor only change where and when runs train. Anything else would mix two studies in a report.
_RERUN_MAY_CHANGE = {"seeds", "jobs", "executor", "report"}


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
    with StudyLock(study_dir) as lock, _sigterm_as_interrupt():
        remove_stale_temps(study_dir)  # half-written files of a killed run (kill -9, power cut)
        if lock.took_over:
            console.print(f"[yellow]took over the lock of a stopped run "
                          f"(pid {lock.took_over.get('pid')}, started {lock.took_over.get('started')})")
        summary = _train(spec, study_dir, console, retry_failed=retry_failed, detach=detach,
                         cluster=cluster)
        if not summary.pending:
            if analyze:  # SE, attention, CKA, Grad-CAM; the report then shows them
                summary.analyzed = _analyze(study_dir, console)
            summary.report = build_report(study_dir)
    summary.seconds = time.monotonic() - t0
    return summary


def _train(spec: StudySpec, study_dir: Path, console, *, retry_failed: bool, detach: bool,
           cluster: str) -> Summary:
    """The runs not finished yet, by the study's executor; a Ctrl-C stops them resumably."""
    _write_or_check_spec(study_dir, spec)
    split_path = _ensure_split(study_dir, spec, console)
    summary, todo = _todo(study_dir, plan_runs(spec), retry_failed, console)
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
        _refuse_if_on_slurm(study_dir)
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


def _analyze(study_dir: Path, console) -> int:
    """`depthbench analyze` of every finished run (the report reads their analysis.json); the
    runs and their report stand without it. Returns the runs analyzed."""
    if not any(study_dir.glob("*/result.json")):
        return 0
    t0 = time.monotonic()
    try:
        out = analyze_path(study_dir, progress=lambda name: console.print(f"analyzing {name}"))
    except DepthbenchError as e:
        console.print(f"[yellow]analysis skipped: {e}; the report is built without it")
        return 0
    done = sum(isinstance(r, dict) for r in out.values())
    console.print(f"analysis: {done} runs in {time.monotonic() - t0:.0f} s")
    return done


# --------------------------------------------------------------------------------------------
# the study folder


def _write_or_check_spec(study_dir: Path, spec: StudySpec) -> None:
    path = study_dir / "study.yaml"
    new = spec.model_dump(mode="json")
    if path.is_file():
        try:
            old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            old = {}
        diff = sorted(k for k in set(old) | set(new)
                      if k not in _RERUN_MAY_CHANGE and old.get(k) != new.get(k))
        if diff:
            k = diff[0]
            raise ConfigError(
                f"{path}: this folder holds a study with a different `{k}` "
                f"({_brief(old.get(k))} there, {_brief(new.get(k))} now); pass --out to start a "
                "new study folder, or delete this one")
        if old.get("seeds"):  # keep the union of seeds, so a rerun with fewer still reports all
            new["seeds"] = sorted(set(old["seeds"]) | set(new["seeds"]))
    atomic_write_text(path, yaml.safe_dump(new, sort_keys=False))


def _ensure_split(study_dir: Path, spec: StudySpec, console) -> Path:
    """One split manifest for the whole study, written once; later invocations verify it."""
    path = study_dir / "split.json"
    source = open_source(spec.data)
    if path.is_file():
        Manifest.load(path).verify(source)
        return path
    s = spec.split
    manifest = make_split(source, val=s.val, test=s.test, seed=s.seed)
    manifest.save(path)
    counts = manifest.counts()
    console.print(f"{study_dir}: split {spec.data}: {counts['train']} train, {counts['val']} val, "
                  f"{counts['test']} test images ({len(manifest.classes)} classes)")
    return path


def _brief(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _refuse_if_on_slurm(study_dir: Path) -> None:
    """A local run must not train the runs that SLURM jobs are training."""
    jobs = active_jobs(study_dir)
    if jobs:
        raise ConfigError(f"{study_dir}: {len(jobs)} runs of this study are still SLURM jobs "
                          f"({', '.join(jobs[:4])}{', ...' if len(jobs) > 4 else ''}); collect "
                          "them with --executor slurm, or scancel them first")


class _sigterm_as_interrupt:
    """While a study runs, SIGTERM stops it the way Ctrl-C does (workers stopped, resumable)."""

    def __enter__(self):
        self._old = signal.signal(signal.SIGTERM, self._handler)

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._old)

    @staticmethod
    def _handler(signum, frame):
        raise KeyboardInterrupt
