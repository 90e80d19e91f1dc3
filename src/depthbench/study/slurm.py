"""A study's runs as SLURM jobs, through submitit (the maintained layer over sbatch, sacct and
scancel that DeiT, DINO and MAE submit with): one job per run, all submitted as one job array.

- The study folder must be on a filesystem every node shares: a job trains into its run folder
  there and writes result.json, which is what this side reads back. submitit keeps each job's
  pickles and logs in `<study>/.slurm/<job id>/`; `<study>/.slurm/jobs.json` maps run names to
  job ids, so a later `depthbench run` (after `--detach`, a lost login session, Ctrl-C) collects
  what ended, waits for what is queued or running, and resubmits nothing that is.
- Job states come from `sacct` (one call per poll for the whole study), so the cluster needs
  accounting; every real cluster has it.
- Preemption and time limits: SLURM sends SIGUSR2 before a job's limit (submitit asks sbatch
  for `--signal=USR2@90`), to the job's task, which is the trainer's process: the training loop
  stops after its current step and flushes its checkpoints; then submitit's handler calls
  `checkpoint()` of the submitted callable (`TrainRun`), which returns itself, counted: the job is
  requeued and the run resumes from its last.ckpt (the engine's exact resume). The record's
  `requeues` says how often that happened.
- GPUs: a job gets the GPUs `executor.gpus_per_run` asks for, none without it (the study says so
  when it submits); a job that asked for GPUs and sees none fails its run with one line, rather
  than training on the node's CPUs.
- A job that ends without a final result.json (cancelled, killed, out of memory, node failure)
  gets the same failure record as a local worker that died, naming its submitit logs; the study
  goes on and `--retry-failed` submits it again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import submitit
import torch
from submitit.helpers import DelayedSubmission

from depthbench._io import atomic_write_json
from depthbench.cpus import usable_cpu_count
from depthbench.errors import ConfigError, DepthbenchError, RunFailed
from depthbench.models import model_module
from depthbench.runrecord import FINAL_STATUSES
from depthbench.study.grid import RunPlan
from depthbench.study.records import annotate_run, read_result, run_split, write_failure
from depthbench.study.worker import train_run

SUBMITIT_DIR = ".slurm"
JOBS_FILE = "jobs.json"
POLL_S = 5.0  # one sacct call per poll for the whole study
RESULT_GRACE_S = 15.0  # a shared filesystem may show a job's last write a little late

# sacct's job states (and submitit's local executor's), by what they mean for a run
_PENDING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "RESIZING",
            "SUSPENDED", "UNKNOWN", "READY"}
_RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"}


# --------------------------------------------------------------------------------------------
# inside the job


class TrainRun:
    """What submitit pickles for one run and calls inside its job."""

    def __init__(self, run_dir: str, config: dict, split: str, variant: str, requeues: int = 0,
                 gpus: int = 0, model_module: str | None = None):
        self.run_dir, self.config, self.split, self.variant = run_dir, config, split, variant
        self.requeues, self.gpus, self.model_module = requeues, gpus, model_module

    def __call__(self) -> int:
        run_dir = Path(self.run_dir)
        slurm = job_provenance()
        # SLURM counts every restart (its own preemption requeues too); submitit's our checkpoints
        requeues = max(self.requeues, int(os.environ.get("SLURM_RESTART_COUNT") or 0))
        rank0 = int(os.environ.get("SLURM_PROCID") or 0) == 0
        where = f"SLURM job {slurm['job_id']} on {slurm['node']}" if slurm else "job"
        if rank0:
            with open(run_dir / "train.log", "a", encoding="utf-8") as log:
                log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {where} starts (pid "
                          f"{os.getpid()}, requeues {requeues}); output: the job's submitit logs\n")
        gpus = getattr(self, "gpus", 0)  # a job pickled without the field: none asked
        if gpus and not torch.cuda.is_available():
            return self._no_gpu(where, gpus, rank0)
        with _Preemption() as preemption:
            try:
                code = train_run(run_dir, self.config, self.split, self.variant, _threads(),
                                 getattr(self, "model_module", None))
            except KeyboardInterrupt:  # the warning signal before the trainer started
                code = 130
        if preemption.signalled:  # checkpoints flushed: submitit requeues this job and exits
            preemption.requeue()
        if rank0:
            annotate_run(run_dir, **({"slurm": slurm} if slurm else {}), requeues=requeues)
        return code

    def _no_gpu(self, where: str, gpus: int, rank0: bool) -> int:
        reason = (f"{where} asked for executor.gpus_per_run: {gpus} but sees no CUDA GPU "
                  f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                  "check that the partition has GPUs (sinfo -o %G) or set gpus_per_run: 0 to "
                  "train on CPUs")
        print(f"depthbench: error: {reason}", file=sys.stderr, flush=True)
        if rank0:
            write_failure(Path(self.run_dir), self.config, self.variant, reason)
        return RunFailed.exit_code

    def checkpoint(self, *args, **kwargs):
        """submitit calls this on preemption or before the time limit, then requeues the job with
        what it returns. Nothing to save here: the trainer flushed its checkpoints when the
        signal stopped it (`_Preemption`)."""
        return DelayedSubmission(TrainRun(self.run_dir, self.config, self.split, self.variant,
                                          self.requeues + 1, getattr(self, "gpus", 0),
                                          getattr(self, "model_module", None)))


class _Preemption:
    """While a job trains: SIGUSR2 (SLURM's warning before a time limit or a preemption) stops
    the training loop like SIGTERM, after its current step and with its checkpoints flushed,
    and only then is submitit's handler (which requeues the job and exits) called.

    Raising submitit's handler in the middle of a step would skip the flush. The engine's stop
    flag may take SIGUSR2 itself while the loop runs; the signal is then seen through the
    wakeup fd, which the interpreter writes each arriving signal's number to, whoever handles
    it."""

    def __enter__(self) -> _Preemption:
        self.signalled = False
        self._armed = threading.current_thread() is threading.main_thread()
        if not self._armed:  # signal handlers belong to the main thread
            return self
        self._submitit = signal.getsignal(signal.SIGUSR2)
        self._term = signal.getsignal(signal.SIGTERM)
        self._read, write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(write, False)
        self._write = write
        self._old_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        signal.signal(signal.SIGUSR2, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signalled = True
        stop = signal.getsignal(signal.SIGTERM)
        if stop is self._term or not callable(stop):  # no training loop holds SIGTERM now
            raise KeyboardInterrupt
        stop(signum, frame)  # the loop's stop flag: it stops after the current step

    def __exit__(self, *exc) -> None:
        if not self._armed:
            return
        signal.set_wakeup_fd(self._old_fd)
        try:
            self.signalled |= signal.SIGUSR2 in os.read(self._read, 65536)
        except BlockingIOError:  # no signal arrived
            pass
        finally:
            os.close(self._read)
            os.close(self._write)
        signal.signal(signal.SIGUSR2, self._submitit)

    def requeue(self) -> None:
        """Hand the signal to submitit now (checkpoint, requeue, exit), as it would have been."""
        if self._armed and callable(self._submitit):
            self._submitit(signal.SIGUSR2, None)


def job_provenance() -> dict | None:
    """The SLURM job this process runs in (None outside SLURM)."""
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None
    array_job, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    return {"job_id": f"{array_job}_{task}" if array_job and task else env["SLURM_JOB_ID"],
            "array_index": int(task) if task else None,
            "node": env.get("SLURMD_NODENAME"),
            "partition": env.get("SLURM_JOB_PARTITION")}


def _threads() -> int:
    try:
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    except (KeyError, ValueError):
        return usable_cpu_count()


# --------------------------------------------------------------------------------------------
# on the submitting side


class SlurmScheduler:
    """Submit the runs not yet queued, then (unless detached) follow every run's job to its end."""

    def __init__(self, spec, study_dir: Path, split_path: Path | None, todo: list[RunPlan], summary,
                 console, *, retry_failed: bool = False, detach: bool = False,
                 cluster: str = "slurm"):
        self.spec, self.dir, self.split, self.todo = spec, study_dir, split_path, todo
        self.summary, self.console = summary, console
        self.retry_failed, self.detach, self.cluster = retry_failed, detach, cluster
        self.folder = study_dir / SUBMITIT_DIR
        self.jobs_path = self.folder / JOBS_FILE
        self.known = read_jobs(study_dir)  # run name -> job id
        self.active: dict[str, tuple[RunPlan, object]] = {}  # run name -> (plan, submitit job)
        self.phase: dict[str, str] = {}

    def run(self) -> list[str]:
        """Returns the runs still queued or running (only when detached)."""
        self.console.print(self._asks())
        ended_before = self._adopt_known()
        new = [p for p in self.todo if p.name not in self.active and p.name not in ended_before]
        if new:
            self._submit(new)
        if self.detach:
            ids = sorted({_array_id(j.job_id) for _, j in self.active.values()})
            self.console.print(f"{self.dir}: {len(self.active)} runs queued or running as SLURM "
                               f"job(s) {', '.join(ids)}; run the same command again to collect "
                               "them and build the report")
            return sorted(self.active)
        try:
            self._wait()
        except KeyboardInterrupt:
            self._cancel_all()
            raise
        return []

    def _asks(self) -> str:
        """What each job asks SLURM for: the study's first line (no GPU unless asked for)."""
        e = self.spec.executor
        what = [f"{e.cpus_per_run} CPUs" if e.cpus_per_run else "",
                f"{e.mem_gb:g} GB" if e.mem_gb else "", f"{e.time} min"]
        what = ", ".join(w for w in what if w)
        if e.gpus_per_run:
            return f"{self.dir}: each run's SLURM job asks for {e.gpus_per_run} GPU(s), {what}"
        hint = ("" if self.spec.overrides.get("accelerator") == "cpu" else
                "; to give each run a GPU, set `executor: {gpus_per_run: 1}` in the study file")
        return (f"{self.dir}: each run's SLURM job asks for no GPU (executor.gpus_per_run is 0) "
                f"and trains on its CPUs, {what}{hint}")

    # -- jobs of earlier invocations

    def _adopt_known(self) -> set[str]:
        """Follow the jobs an earlier invocation submitted; record those that ended. Returns the
        runs whose job ended now (not to be resubmitted in this invocation)."""
        plans = {p.name: p for p in self.todo if p.name in self.known}
        if not plans:
            return set()
        jobs = {name: self._job(self.known[name]) for name in plans}
        states = job_states(list(jobs.values()))
        ended = set()
        for name, job in jobs.items():
            state = states[job.job_id]
            if _phase(state) != "ended":
                self.active[name] = (plans[name], job)
                continue
            if self.retry_failed and (read_result(self.dir / name) or {}).get("status") != \
                    "finished":
                continue  # submitted again below
            self._collect(plans[name], job, state)
            ended.add(name)
        if self.active:
            self.console.print(f"{self.dir}: {len(self.active)} runs still queued or running on "
                               "SLURM from an earlier `depthbench run`; not resubmitted")
        return ended

    def _job(self, job_id: str):
        folder = self.folder / "%j"
        if self.cluster == "local":
            return submitit.LocalJob(folder=folder, job_id=job_id)
        return submitit.SlurmJob(folder=folder, job_id=job_id)

    # -- submission

    def _executor(self):
        e = self.spec.executor
        ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster,
                                   slurm_max_num_timeout=e.max_requeues)
        devices = max(1, int(self.spec.overrides.get("devices", 1) or 1))
        params = {"name": f"depthbench-{self.spec.name}", "timeout_min": e.time, "nodes": 1,
                  "tasks_per_node": devices, "cpus_per_task": e.cpus_per_run,
                  "gpus_per_node": e.gpus_per_run or None, "mem_gb": e.mem_gb,
                  "slurm_partition": e.partition, "slurm_account": e.account,
                  "slurm_qos": e.qos, "slurm_constraint": e.constraint,
                  "slurm_additional_parameters": dict(e.extra) or None,
                  "slurm_array_parallelism": e.max_parallel or len(self.todo)}
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return ex

    def _submit(self, plans: list[RunPlan]) -> None:
        ex = self._executor()
        calls = []
        for plan in plans:
            run_dir = self.dir / plan.name
            run_dir.mkdir(parents=True, exist_ok=True)
            config = plan.train_config()
            calls.append(TrainRun(str(run_dir), config.model_dump(mode="json"),
                                  str(run_split(run_dir, self.split)), plan.variant,
                                  gpus=self.spec.executor.gpus_per_run,
                                  model_module=model_module(config.model)))
        try:
            jobs = ex.submit_array(calls)
        except Exception as e:  # noqa: BLE001 - sbatch's refusal, in one line
            msg = " ".join(str(e).split())[:400]
            raise DepthbenchError(f"SLURM refused the study's job array: {msg}; check the "
                                  "executor options (partition, account, time, extra)") from None
        for plan, job in zip(plans, jobs):
            self.active[plan.name] = (plan, job)
            self.known[plan.name] = job.job_id
            with open(self.dir / plan.name / "train.log", "a", encoding="utf-8") as log:
                log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} submitted as job "
                          f"{job.job_id}; its output: {_logs(job)}\n")
        self._save_jobs()
        self.console.print(f"{self.dir}: submitted {len(plans)} runs as job array "
                           f"{_array_id(jobs[0].job_id)} ({self.cluster}); logs in {self.folder}")

    # -- waiting

    def _wait(self) -> None:
        while self.active:
            states = job_states([j for _, j in self.active.values()])
            for name, (plan, job) in list(self.active.items()):
                state = states[job.job_id]
                phase = _phase(state)
                if phase != "ended" and phase != self.phase.get(name):
                    if self.phase.get(name) == "running" and phase == "pending":
                        phase = "requeued"
                    where = _node(job) if phase == "running" else ""
                    self.console.print(f"  {name}: {phase} (job {job.job_id}"
                                       + (f" on {where}" if where else "") + ")")
                    self.phase[name] = "pending" if phase == "requeued" else phase
                elif phase == "ended":
                    del self.active[name]
                    self._collect(plan, job, state)
            if self.active:
                time.sleep(POLL_S)

    def _collect(self, plan: RunPlan, job, state: str) -> None:
        run_dir = self.dir / plan.name
        unfinished = (read_result(run_dir) or {}).get("status") not in FINAL_STATUSES
        if state != "COMPLETED" and unfinished:
            # a cancelled job keeps running until SLURM's KillWait ends it, and may still write
            # its record: wait that out (whether or not a poll saw it running), then for quiet
            time.sleep(_kill_wait() + 2.0)
            _settle(run_dir)
        result = _final_result(run_dir, grace=RESULT_GRACE_S if state == "COMPLETED" else 0)
        if result is None:
            lost = state == "COMPLETED" and not (run_dir / "result.json").is_file()
            why = (f"job {job.job_id} ended {state} and its result.json never appeared in "
                   f"{run_dir} (is the study folder on a filesystem the nodes share?)" if lost
                   else f"job {job.job_id} ended {state} before the run finished")
            config = plan.train_config().model_dump(mode="json")
            result = write_failure(run_dir, config, plan.variant, f"{why}; logs: {_logs(job)}")
            annotate_run(run_dir, slurm=self._provenance(job))
        requeued = f", requeued {result['requeues']}x" if result.get("requeues") else ""
        self.summary.run_ended(plan.name, result, self.console,
                               detail=f"job {job.job_id}{requeued}", reason=state)

    def _provenance(self, job) -> dict:
        index = job.job_id.split("_", 1)[1] if "_" in job.job_id else None
        return {"job_id": job.job_id, "array_index": int(index) if index and index.isdigit()
                else None, "node": _node(job) or None, "partition": self.spec.executor.partition}

    def _cancel_all(self) -> None:
        jobs = [j for _, j in self.active.values()]
        for job in jobs:
            job.cancel(check=False)
        for name in self.active:
            self.known.pop(name, None)  # cancelled on purpose: the next run submits them again
        self._save_jobs()
        if jobs:
            self.console.print(f"[yellow]cancelled {len(jobs)} SLURM jobs of this study: "
                               f"{', '.join(j.job_id for j in jobs)}")
        self.active.clear()

    def _save_jobs(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.jobs_path, dict(sorted(self.known.items())))


def require_client() -> None:
    """Refuse, in one line, to submit from a machine without SLURM's commands."""
    if not (shutil.which("sbatch") and shutil.which("sacct")):
        raise ConfigError("--executor slurm: SLURM's `sbatch`/`sacct` are not on PATH; run "
                          "from a login node of the cluster, or use --executor local")


def read_jobs(study_dir: Path) -> dict[str, str]:
    try:
        jobs = json.loads((study_dir / SUBMITIT_DIR / JOBS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in jobs.items()} if isinstance(jobs, dict) else {}


def active_jobs(study_dir: Path) -> list[str]:
    """Job ids of this study still queued or running on SLURM (none without SLURM's client)."""
    known = read_jobs(study_dir)
    if not known or shutil.which("sacct") is None:
        return []
    jobs = [submitit.SlurmJob(folder=study_dir / SUBMITIT_DIR / "%j", job_id=j)
            for j in known.values()]
    states = job_states(jobs)
    return [j.job_id for j in jobs if _phase(states[j.job_id]) != "ended"]


def job_states(jobs: list) -> dict[str, str]:
    """job id -> state as sacct says it, with one `sacct` call for all SLURM jobs."""
    slurm = [j for j in jobs if isinstance(j, submitit.SlurmJob)]
    if slurm:
        slurm[0].watcher.update()
    return {j.job_id: j.watcher.get_state(j.job_id, mode="cache") if j in slurm else j.state
            for j in jobs}


def _phase(state: str) -> str:
    word = state.split()[0].upper() if state else "UNKNOWN"  # "CANCELLED by 0"
    return "pending" if word in _PENDING else "running" if word in _RUNNING else "ended"


def _final_result(run_dir: Path, grace: float) -> dict | None:
    end = time.monotonic() + grace
    while True:
        result = read_result(run_dir)
        if result and result.get("status") in FINAL_STATUSES:
            return result
        if time.monotonic() >= end:
            return None
        time.sleep(1.0)


def _kill_wait() -> float:
    """SLURM's KillWait in seconds (`scontrol show config`; SLURM's default 30 when unreadable):
    how long a cancelled job's processes may go on after SIGTERM."""
    global _KILL_WAIT
    if _KILL_WAIT is None:
        _KILL_WAIT = 30.0
        try:
            out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                                 timeout=30).stdout
            m = re.search(r"^KillWait\s*=\s*(\d+)", out, re.M)
            if m:
                _KILL_WAIT = float(m.group(1))
        except (OSError, subprocess.SubprocessError):
            pass
    return _KILL_WAIT


_KILL_WAIT: float | None = None


def _settle(run_dir: Path, quiet: float = 5.0, limit: float = 30.0) -> None:
    """Wait until result.json has not changed for `quiet` seconds (at most `limit`): a job that
    SLURM stops gets SIGTERM first, and its last write must not land on our failure record."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            age = time.time() - (run_dir / "result.json").stat().st_mtime
        except OSError:
            age = quiet
        if age >= quiet:
            return
        time.sleep(1.0)


def _node(job) -> str:
    try:
        return job.watcher.get_info(job.job_id, mode="cache").get("NodeList", "")
    except Exception:  # noqa: BLE001 - a local job has no node list
        return ""


def _logs(job) -> str:
    return f"{job.paths.stdout}, {job.paths.stderr}"


def _array_id(job_id: str) -> str:
    return job_id.split("_", 1)[0]
