"""Run a study: every grid point as a run folder, then the report.

Each run trains in its own worker process (`depthbench.study.worker`), not in this one:
- a crash, a segfault or the out-of-memory killer fails that run only, and the study goes on;
- each run's peak memory (ru_maxrss) and thread count are its own, and nothing (allocator
  caches, cuDNN autotune state, leaked tensors) carries from one run into the next;
- GPUs are assigned with `CUDA_VISIBLE_DEVICES`, and stopping a run is a signal, not a hope.
Workers are forked from a `multiprocessing` fork server that imported torch and Lightning once:
a fresh `python` per run would spend 3-8 s on imports on a small CPU machine (measured 8 s under
load), a fork ~0.02 s. On GPU machines the server preloads nothing, so no CUDA state crosses a fork.

The runner holds a lock on the study folder, writes the resolved spec (`study.yaml`) and one
split manifest (`split.json`) that every run uses, skips finished runs, resumes started ones from
their `last.ckpt`, and shows one progress display (runs done / total, each active run's epoch,
an ETA weighted by each run's cost).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from depthbench.errors import ConfigError, DepthbenchError
from depthbench.study.grid import RunPlan, plan_runs
from depthbench.study.lock import StudyLock
from depthbench.study.records import (
    epochs_done,
    read_result,
    score_line,
    status_of,
    write_failure,
)
from depthbench.study.spec import StudySpec

# Keys that may change between invocations on one study folder: more seeds add runs; jobs and
# executor only change where and when runs train. Anything else would mix two studies in a report.
_RERUN_MAY_CHANGE = {"seeds", "jobs", "executor", "report"}
_POLL_S = 0.5
_STOP_GRACE_S = 15.0


class StudyInterrupted(DepthbenchError):
    exit_code = 130


@dataclass
class Summary:
    study_dir: Path
    total: int
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run name -> reason
    skipped: int = 0  # finished or failed before this invocation
    pending: list[str] = field(default_factory=list)  # queued or running on SLURM (--detach)
    seconds: float = 0.0
    report: object = None


@dataclass
class _Active:
    plan: RunPlan
    proc: object  # multiprocessing.Process
    started: float
    start_epochs: int
    task: int | None = None


def default_study_dir(spec: StudySpec) -> Path:
    return Path("runs") / spec.name


def run_study(spec: StudySpec, out: str | Path | None = None, *, retry_failed: bool = False,
              console=None, build_report: bool = True, detach: bool = False,
              cluster: str = "slurm") -> Summary:
    """Run every grid point of `spec` that is not finished yet, then build the report.

    With `spec.executor.kind == "slurm"` the runs are SLURM jobs (`depthbench.study.slurm`);
    `detach` returns once they are submitted (a later call collects them and builds the report).
    `cluster` is submitit's executor for them (`local` in tests without SLURM)."""
    from rich.console import Console

    console = console or Console(stderr=True, soft_wrap=True)
    study_dir = Path(out) if out is not None else default_study_dir(spec)
    if spec.executor.kind == "slurm" and cluster == "slurm":
        from depthbench.study.slurm import require_client

        require_client()
    t0 = time.monotonic()
    with StudyLock(study_dir) as lock, _sigterm_as_interrupt():
        from depthbench._io import remove_stale_temps

        remove_stale_temps(study_dir)  # half-written files of a killed run (kill -9, power cut)
        if lock.took_over:
            console.print(f"[yellow]took over the lock of a stopped run "
                          f"(pid {lock.took_over.get('pid')}, started {lock.took_over.get('started')})")
        _write_or_check_spec(study_dir, spec)
        split_path = _ensure_split(study_dir, spec, console)
        plans = plan_runs(spec)
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
        if spec.executor.kind == "slurm":
            from depthbench.study.slurm import SlurmScheduler

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
            _Scheduler(spec, study_dir, split_path, todo, summary, console).run()
        summary.seconds = time.monotonic() - t0
        if build_report and not summary.pending:
            from depthbench.report import build_report as _build_report

            summary.report = _build_report(study_dir)
    summary.seconds = time.monotonic() - t0
    return summary


# --------------------------------------------------------------------------------------------
# the study folder


def _write_or_check_spec(study_dir: Path, spec: StudySpec) -> None:
    from depthbench._io import atomic_write_text

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
    from depthbench.data import Manifest, make_split, open_source

    path = study_dir / "split.json"
    source = open_source(spec.data)
    if path.is_file():
        Manifest.load(path).verify(source)
        return path
    s = spec.split
    manifest = make_split(source, val=s.val, test=s.test, seed=s.seed)
    manifest.save(path)
    counts = {k: len(manifest.entries(k)) for k in ("train", "val", "test")}
    console.print(f"{study_dir}: split {spec.data}: {counts['train']} train, {counts['val']} val, "
                  f"{counts['test']} test images ({len(manifest.classes)} classes)")
    return path


def _brief(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _refuse_if_on_slurm(study_dir: Path) -> None:
    """A local run must not train the runs that SLURM jobs are training."""
    from depthbench.study.slurm import active_jobs

    jobs = active_jobs(study_dir)
    if jobs:
        raise ConfigError(f"{study_dir}: {len(jobs)} runs of this study are still SLURM jobs "
                          f"({', '.join(jobs[:4])}{', ...' if len(jobs) > 4 else ''}); collect "
                          "them with --executor slurm, or scancel them first")


# --------------------------------------------------------------------------------------------
# scheduling


class _Scheduler:
    def __init__(self, spec: StudySpec, study_dir: Path, split_path: Path, todo: list[RunPlan],
                 summary: Summary, console):
        self.spec, self.dir, self.split = spec, study_dir, split_path
        self.todo, self.summary, self.console = deque(todo), summary, console
        self.gpus = _gpu_count()
        self.jobs = min(spec.jobs or max(1, self.gpus), len(todo))
        self.threads = max(1, _cpu_count() // self.jobs)
        self.configs = {p.name: p.train_config() for p in todo}
        self.cost = _costs(todo, self.configs)
        self.active: dict[int, _Active] = {}
        self.ctx = _worker_context(preload=not self.gpus)
        self.done_units = 0.0  # work finished in this invocation (cost units)
        left = {p.name: self.cost[p.name] * max(0, self.configs[p.name].epochs
                                                - epochs_done(study_dir / p.name)) for p in todo}
        self.total_units = sum(left.values())
        if self.jobs > 1:  # longest first within a seed, so no long run ends alone on one slot
            self.todo = deque(sorted(todo, key=lambda p: (p.seed, -left[p.name])))

    def run(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                                 console=self.console, transient=False)
        self.overall = self.progress.add_task("runs", total=self.summary.total, eta="",
                                              completed=self.summary.skipped)
        where = f"{self.gpus} GPU(s)" if self.gpus else f"{self.threads} CPU thread(s) each"
        self.console.print(f"{self.dir}: {len(self.todo)} of {self.summary.total} runs to go, "
                           f"{self.jobs} at a time, {where}")
        self.t0 = time.monotonic()
        try:
            with self.progress:
                while self.todo or self.active:
                    while self.todo and len(self.active) < self.jobs:
                        self._start(self.todo.popleft(), self._free_slot())
                    time.sleep(_POLL_S)
                    for slot, act in list(self.active.items()):
                        if act.proc.exitcode is not None:
                            del self.active[slot]
                            self._finish(act)
                    self._refresh()
        except KeyboardInterrupt:
            self._stop_all()
            done = len(self.summary.finished)
            raise StudyInterrupted(
                f"interrupted with {done} of {self.summary.total} runs finished; rerun the same "
                "command to resume (finished runs are kept, started ones resume from their last "
                "epoch)") from None

    def _free_slot(self) -> int:
        return next(i for i in range(self.jobs) if i not in self.active)

    def _start(self, plan: RunPlan, slot: int) -> None:
        from depthbench.study.worker import run_worker

        run_dir = self.dir / plan.name
        run_dir.mkdir(parents=True, exist_ok=True)
        config = self.configs[plan.name]
        resume = (run_dir / "last.ckpt").is_file()  # the worker always resumes what it finds
        log_path = run_dir / "train.log"
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if resume else 'start'}"
                      f" (slot {slot}, {self.threads} threads)\n")
        gpu = str(_visible_gpus()[slot % self.gpus]) if self.gpus else None
        proc = self.ctx.Process(
            target=run_worker, name=plan.name, daemon=False,
            args=(str(run_dir), config.model_dump(mode="json"), str(self.split), plan.variant,
                  self.threads, gpu, str(log_path)))
        proc.start()
        act = _Active(plan, proc, time.monotonic(), epochs_done(run_dir))
        act.task = self.progress.add_task(f"  {plan.name}", total=config.epochs,
                                          completed=act.start_epochs, eta="")
        self.active[slot] = act

    def _finish(self, act: _Active) -> None:
        act.proc.join()
        self.progress.remove_task(act.task)
        plan, run_dir = act.plan, self.dir / act.plan.name
        config = self.configs[plan.name]
        result = read_result(run_dir)
        rc = act.proc.exitcode
        if not (result and result.get("status") in ("finished", "failed")):
            result = write_failure(run_dir, config.model_dump(mode="json"), plan.variant,
                                   _death_reason(rc, run_dir / "train.log"))
        seconds = time.monotonic() - act.started
        self.done_units += self.cost[plan.name] * max(0, epochs_done(run_dir) - act.start_epochs)
        n = len(self.summary.finished) + len(self.summary.failed) + 1
        tag = f"[{n}/{self.summary.total}] {plan.name}"
        if result.get("status") == "finished":
            self.summary.finished.append(plan.name)
            self.console.print(f"{tag}: finished in {seconds:.0f} s, {score_line(result)}")
        else:
            reason = (result.get("failure") or {}).get("reason") or f"exit code {rc}"
            self.summary.failed[plan.name] = reason
            self.console.print(f"[red]{tag}: FAILED ({reason}); the study goes on, the report "
                               f"shows it; log: {run_dir / 'train.log'}")
        self.progress.update(self.overall, advance=1)

    def _refresh(self) -> None:
        live = 0.0
        for act in self.active.values():
            done = epochs_done(self.dir / act.plan.name)
            self.progress.update(act.task, completed=done)
            live += self.cost[act.plan.name] * max(0, done - act.start_epochs)
        elapsed = time.monotonic() - self.t0
        work = self.done_units + live
        eta = ""
        if work > 0 and elapsed > 5:
            left = max(0.0, self.total_units - work) * elapsed / work
            eta = f"ETA {int(left // 60)}:{int(left % 60):02d}"
        self.progress.update(self.overall, eta=eta)

    def _stop_all(self) -> None:
        """SIGTERM every worker (its last finished epoch stays in last.ckpt), then SIGKILL."""
        for act in self.active.values():
            _signal_group(act.proc, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for act in self.active.values():
            act.proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if act.proc.exitcode is None:
                _signal_group(act.proc, signal.SIGKILL)
                act.proc.join()
        self.active.clear()


def _death_reason(rc: int | None, log_path: Path) -> str:
    if rc is not None and rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        hint = " (out of memory?)" if -rc == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    tail = _last_line(log_path)
    return f"worker exited with code {rc}" + (f": {tail}" if tail else "")


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln and not ln.startswith("===")]
    return lines[-1][:300] if lines else ""


def _signal_group(proc, sig: int) -> None:
    """Signal the worker's process group (it calls setsid first thing), or the worker alone if
    it has not got that far."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass


def _costs(plans: list[RunPlan], configs: dict) -> dict[str, float]:
    """Relative cost of one epoch of each run, for the ETA and the schedule: MACs of one forward
    pass, counted on the meta device (no memory, no compute); every run sees the same images."""
    from depthbench.models.complexity import model_macs

    cache: dict[tuple, float] = {}
    out = {}
    for p in plans:
        c = configs[p.name]
        key = (c.model, c.img_size, json.dumps(c.model_kwargs(), sort_keys=True))
        if key not in cache:
            try:
                cache[key] = max(1.0, model_macs(c.model, c.img_size, **c.model_kwargs()) / 1e6)
            except Exception:  # noqa: BLE001 - the ETA then weighs this run by epochs only
                cache[key] = 1.0
        out[p.name] = cache[key]
    return out


def _worker_context(preload: bool):
    """A fork server that imports torch & co. once; every worker is a fork of it (clean: the
    server is a fresh single-threaded process, not this one with its display thread)."""
    import multiprocessing

    from depthbench.study.worker import PRELOAD

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD if preload else [])
    return ctx


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _gpu_count() -> int:
    return len(_visible_gpus())


def _visible_gpus() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    n = torch.cuda.device_count()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s for s in env.split(",") if s.strip()] if env else [str(i) for i in range(n)]
    return ids[:n]


class _sigterm_as_interrupt:
    """While a study runs, SIGTERM stops it the way Ctrl-C does (workers stopped, resumable)."""

    def __enter__(self):
        self._old = signal.signal(signal.SIGTERM, self._handler)

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._old)

    @staticmethod
    def _handler(signum, frame):
        raise KeyboardInterrupt
