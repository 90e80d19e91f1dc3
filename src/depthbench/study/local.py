"""The local executor: a study's runs on this machine, each in its own worker process.

Each run trains in a worker (`depthbench.study.worker`), not in the runner's process:
- a crash, a segfault or the out-of-memory killer fails that run only, and the study goes on;
- each run's peak memory (ru_maxrss) and thread count are its own, and nothing (allocator
  caches, cuDNN autotune state, leaked tensors) carries from one run into the next;
- GPUs are assigned with `CUDA_VISIBLE_DEVICES`, and stopping a run is a signal, not a hope.
Workers are forked from a `multiprocessing` fork server that imported torch, Lightning and the
engine once (`worker.PRELOAD`): a fork starts in a fraction of what a fresh `python` spends on
those imports (`python -m benchmarks.bench_worker_start`, BENCHMARKS.md). On GPU machines the
server preloads nothing, so no CUDA state crosses a fork.

One progress display: runs done / total, each active run's epoch, an ETA weighted by each run's
cost. `study.slurm` is the other executor; both report a run's end through `Summary.run_ended`.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import depthbench.cpus
from depthbench.data.split import Manifest
from depthbench.errors import StudyInterrupted
from depthbench.folderlock import describe, holder
from depthbench.models import model_module
from depthbench.models.complexity import model_macs
from depthbench.runrecord import FINAL_STATUSES
from depthbench.study import packing
from depthbench.study.grid import RunPlan
from depthbench.study.records import epochs_done, read_result, run_split, write_failure
from depthbench.study.schema import StudySpec
from depthbench.study.summary import Summary
from depthbench.study.worker import INTERRUPTED, PRELOAD, STOP_GRACE_S, run_worker

_POLL_S = 0.5


@dataclass
class _Active:
    plan: RunPlan
    proc: object  # multiprocessing.Process
    started: float
    start_epochs: int
    task: int | None = None
    gpu: int | None = None  # index of LocalScheduler.gpus


class LocalScheduler:
    """Train `todo` on this machine, `jobs` runs at a time, each in a worker process."""

    def __init__(self, spec: StudySpec, study_dir: Path, split_path: Path | None,
                 todo: list[RunPlan], summary: Summary, console):
        self.spec, self.dir, self.split = spec, study_dir, split_path
        self.todo, self.summary, self.console = deque(todo), summary, console
        self.configs = {p.name: p.train_config() for p in todo}
        self.cost = _costs(todo, self.configs)
        self._plan_places(todo)
        self.active: dict[int, _Active] = {}
        self.ctx = _worker_context(preload=not self.gpus)
        self.done_units = 0.0  # work finished in this invocation (cost units)
        left = {p.name: self.cost[p.name] * max(0, self.configs[p.name].epochs
                                                - epochs_done(study_dir / p.name)) for p in todo}
        self.total_units = sum(left.values())
        if self.jobs > 1:  # longest first within a seed (a repeat's seed when cross-validated),
            # so no long run ends alone on one slot
            self.todo = deque(sorted(todo, key=lambda p: (p.block, -left[p.name])))

    def _plan_places(self, todo: list[RunPlan]) -> None:
        """How many runs at a time (`jobs`), on which GPU and cores: without a GPU one run (or
        `--jobs N`) with the threads divided, as always; on GPUs `auto` packs runs by their
        estimated peak memory (`study.packing`) and pins each worker to its share of the cores."""
        cpus = depthbench.cpus.usable_cpus()
        first = self.configs[todo[0].name]
        self.gpus = packing.visible_gpus() if first.accelerator != "cpu" else []
        self.peaks: dict[str, int] = {}  # estimated GPU peak of each run, when packing by memory
        self.all_gpus = first.devices > 1  # one run over all GPUs (DDP): nothing to pack
        if not self.gpus:
            self.jobs = min(1 if self.spec.jobs == "auto" else self.spec.jobs, len(todo))
            self.shares = [None] * self.jobs
            self.threads = max(1, len(cpus) // self.jobs)
            self.where = f"{self.threads} CPU thread(s) each"
            return
        ids = ",".join(g.id for g in self.gpus)
        budgets = [g.budget for g in self.gpus]
        memory = ""
        if self.all_gpus:
            self.jobs = 1
        elif self.spec.jobs != "auto":
            self.jobs = min(self.spec.jobs, len(todo))
        else:
            self.peaks = _peaks(todo, self.configs, run_split(self.dir / todo[0].name, self.split),
                                max(budgets), self.console)
            self.jobs = min(len(todo), packing.slots(list(self.peaks.values()), budgets, len(cpus)))
            lo, hi = (f(self.peaks.values()) / packing.GiB for f in (min, max))
            memory = (f" ({sum(g.free for g in self.gpus) / packing.GiB:.0f} GiB free; est. "
                      f"peak {lo:.1f}-{hi:.1f} GiB a run)")
        self.shares = packing.core_shares(cpus, self.jobs)
        self.threads = len(self.shares[0])
        self.where = (f"on GPU {ids}{memory}, {self.threads} cores each"
                      if self.jobs > 1 or self.peaks else f"{len(self.gpus)} GPU(s)")
        self.used = [0] * len(self.gpus)

    def run(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                                 console=self.console, transient=False)
        self.overall = self.progress.add_task("runs", total=self.summary.total, eta="",
                                              completed=self.summary.skipped)
        at_a_time = f"up to {self.jobs}" if self.peaks else f"{self.jobs}"
        self.console.print(f"{self.dir}: {len(self.todo)} of {self.summary.total} runs to go, "
                           f"{at_a_time} at a time, {self.where}")
        self.t0 = time.monotonic()
        try:
            with self.progress:
                while self.todo or self.active:
                    while (nxt := self._next()) is not None:
                        self._start(*nxt)
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

    def _next(self) -> tuple[RunPlan, int, int | None] | None:
        """The run to start now, its slot and its GPU (an index of `self.gpus`), or None."""
        slot = next((i for i in range(self.jobs) if i not in self.active), None)
        if slot is None or not self.todo:
            return None
        if not self.peaks:  # no GPU, or a fixed number of runs: in order, GPUs in turn
            gpu = slot % len(self.gpus) if self.gpus and not self.all_gpus else None
            return self.todo.popleft(), slot, gpu
        budgets = [g.budget for g in self.gpus]
        for plan in self.todo:  # the first run whose peak fits a GPU beside the runs on it
            gpu = packing.place(self.peaks[plan.name], budgets, self.used)
            if gpu is not None:
                self.todo.remove(plan)
                self.used[gpu] += self.peaks[plan.name]
                return plan, slot, gpu
        return None

    def _start(self, plan: RunPlan, slot: int, gpu_index: int | None) -> None:
        run_dir = self.dir / plan.name
        run_dir.mkdir(parents=True, exist_ok=True)
        config = self.configs[plan.name]
        resume = (run_dir / "last.ckpt").is_file()  # the worker always resumes what it finds
        log_path = run_dir / "train.log"
        cores = self.shares[slot]
        threads = len(cores) if cores else self.threads
        gpu = self.gpus[gpu_index].id if gpu_index is not None else None
        where = (f", GPU {gpu}" if gpu is not None else "") + (
            f", est. peak {self.peaks[plan.name] / packing.GiB:.1f} GiB" if self.peaks else "")
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume' if resume else 'start'}"
                      f" (slot {slot}, {threads} threads{where})\n")
        owner = holder(run_dir)
        if owner is not None:  # its worker waits for the folder: one trainer at a time
            self.console.print(f"[yellow]{plan.name}: {describe(owner)} is still training it; "
                               "this run waits for it, then continues from where it stopped")
        proc = self.ctx.Process(
            target=run_worker, name=plan.name, daemon=False,
            args=(str(run_dir), config.model_dump(mode="json"), str(run_split(run_dir, self.split)),
                  plan.variant, threads, gpu, str(log_path), cores, model_module(config.model)))
        proc.start()
        act = _Active(plan, proc, time.monotonic(), epochs_done(run_dir), gpu=gpu_index)
        act.task = self.progress.add_task(f"  {plan.name}", total=config.epochs,
                                          completed=act.start_epochs, eta="")
        self.active[slot] = act

    def _finish(self, act: _Active) -> None:
        act.proc.join()
        if self.peaks:
            self.used[act.gpu] -= self.peaks[act.plan.name]
        self.progress.remove_task(act.task)
        plan, run_dir = act.plan, self.dir / act.plan.name
        config = self.configs[plan.name]
        result = read_result(run_dir)
        rc = act.proc.exitcode
        if not (result and result.get("status") in FINAL_STATUSES):
            if rc == INTERRUPTED:  # a stop signal of its own: the records stay, to resume
                result = (result or {}) | {"status": "interrupted"}
            else:
                result = write_failure(run_dir, config.model_dump(mode="json"), plan.variant,
                                       _death_reason(rc, run_dir / "train.log"))
        seconds = time.monotonic() - act.started
        self.done_units += self.cost[plan.name] * max(0, epochs_done(run_dir) - act.start_epochs)
        self.summary.run_ended(plan.name, result, self.console, detail=f"in {seconds:.0f} s",
                               reason=f"exit code {rc}", log=run_dir / "train.log")
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
        deadline = time.monotonic() + STOP_GRACE_S
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
    cache: dict[tuple, float] = {}
    out = {}
    for p in plans:
        c = configs[p.name]
        key = (c.model, c.img_size, json.dumps(c.model_kwargs(), sort_keys=True))
        if key not in cache:
            try:
                options = {k: v for k, v in c.model_kwargs().items() if k != "img_size"}
                cache[key] = max(1.0, model_macs(c.model, c.img_size, **options) / 1e6)
            except Exception:  # noqa: BLE001 - the ETA then weighs this run by epochs only
                cache[key] = 1.0
        out[p.name] = cache[key]
    return out


def _peaks(plans: list[RunPlan], configs: dict, split: Path, alone: int,
           console) -> dict[str, int]:
    """Each run's estimated peak GPU memory (`packing.run_peak`), once per model, size, batch
    and options; a model the estimate cannot count trains alone (`alone`: a whole GPU)."""
    images = len(Manifest.load(split))
    cache: dict[tuple, int] = {}
    out = {}
    for p in plans:
        c = configs[p.name]
        key = (c.model, c.img_size, c.batch_size, c.optimizer,
               json.dumps(c.model_kwargs(), sort_keys=True))
        if key not in cache:
            try:
                cache[key] = packing.run_peak(c, images)
            except Exception as e:  # noqa: BLE001 - an op without a meta kernel, say
                console.print(f"[yellow]{c.model}: no memory estimate ({type(e).__name__}: "
                              f"{e}); its runs train alone on a GPU")
                cache[key] = alone
        out[p.name] = cache[key]
    return out


def _worker_context(preload: bool):
    """A fork server that imports torch & co. once; every worker is a fork of it (clean: the
    server is a fresh single-threaded process, not this one with its display thread).

    The server (and multiprocessing's resource tracker) start here with SIGINT ignored, which
    they keep: a Ctrl-C reaches the whole foreground process group, and one that caught the
    server importing torch printed the import's traceback; the runner stops the workers itself."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD if preload else [])
    if threading.current_thread() is not threading.main_thread():
        return ctx  # signal handlers belong to the main thread: started on first use instead
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, old)
    return ctx
