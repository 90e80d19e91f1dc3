"""One grid point in its own process: the target the runner starts for every run.

The local executor starts workers from a `multiprocessing` fork server that has already imported
torch, Lightning and depthbench (see `study/local.py` for why a process and not a function call,
and why a fork server).

A worker trains through `depthbench.engine.trainer.train` and makes sure its run folder ends with a
result.json: if training raises, it records the run as failed with the reason, so the study can
go on and the report can show the failure.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

from depthbench.engine.config import make_config
from depthbench.engine.trainer import train
from depthbench.errors import DepthbenchError, interrupted
from depthbench.study.records import write_failure

# Imported once by the fork server, so each worker starts in milliseconds (CPU only: a GPU
# machine starts each worker bare, so no CUDA state can leak across the fork). This module
# itself too: it imports the engine, and a worker unpickles its target from it.
PRELOAD = ["torch", "lightning.fabric", "depthbench.engine", "depthbench.data", "depthbench.models",
           "depthbench.study.worker"]

# How long a stopped worker may take to end its current step before it is killed.
STOP_GRACE_S = 15.0

# The exit code of a worker whose run was interrupted (as a shell gives Ctrl-C): its records say
# `interrupted` (or `running`), and the next `depthbench run` resumes it.
INTERRUPTED = 130


def run_worker(run_dir: str, config: dict, split: str, variant: str, threads: int,
               gpu: str | None, log_path: str, cpus: list[int] | None = None,
               model_module: str | None = None) -> None:
    """Process target: train one run; the exit code says how it ended (0 finished, 3 failed,
    130 (`INTERRUPTED`) stopped by a signal, else crashed). `cpus`: the cores this run may use
    (its share of the machine's, when runs share a GPU); the engine sizes its loader workers by
    them. `model_module`: the module that registered the run's model (`train_run`)."""
    os.setsid()  # own process group: Ctrl-C reaches the runner only, which then stops workers
    _stop_with_runner()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # to find (or stop) this run's process
    print(f"worker pid {os.getpid()}" + (f", cores {','.join(map(str, cpus))}" if cpus else ""),
          flush=True)
    # cores, threads and GPU must be set before torch computes anything (it only imported so
    # far): the threads it starts later inherit this affinity
    if cpus:
        os.sched_setaffinity(0, cpus)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    # SIGTERM outside the training loop (whose own handler stops after the current step) ends the
    # worker like Ctrl-C; the last finished epoch's last.ckpt stays for the next run to resume.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    code = train_run(Path(run_dir), config, split, variant, threads, model_module)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"worker exit {code}: cpu {ru.ru_utime + ru.ru_stime:.1f} s, "
          f"peak rss {ru.ru_maxrss / 1024:.0f} MB", flush=True)
    sys.exit(code)


def train_run(out: Path, values: dict, split: str, variant: str, threads: int,
              model_module: str | None = None) -> int:
    """Train one run in this process, resuming what its folder holds; every way it can end
    leaves a result.json. The code: 0 finished, 3 failed, 130 interrupted, else an error's.
    `model_module` (`models.model_module`) is imported first: this process knows depthbench's
    own models, and a model registered elsewhere (a test's) only once its module has run."""
    try:
        torch.set_num_threads(threads)
        if model_module:
            importlib.import_module(model_module)
        config = make_config(values, source=f"{out.name}/config")
        # resume=True: an unfinished folder continues from its last.ckpt, a new one starts; a
        # folder that another live process trains is waited for (then resumed or found finished)
        result = train(config, out, split_path=split, variant=variant, progress=_print_epoch,
                       resume=True, lock_wait=math.inf)
    except BaseException as e:
        if interrupted(e):  # named by its first cause: stopped, never failed; a rerun resumes it
            if not isinstance(e, KeyboardInterrupt):  # what the interrupt set off, for the log
                traceback.print_exc()
            return INTERRUPTED
        if isinstance(e, DepthbenchError):
            print(f"depthbench: error: {e}", flush=True)
            write_failure(out, values, variant, str(e))
            return e.exit_code
        if not isinstance(e, Exception):  # SystemExit and the like: not ours to record
            raise
        traceback.print_exc()  # a crash fails this run, not the study
        write_failure(out, values, variant, f"{type(e).__name__}: {e}")
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0 if result.get("status") == "finished" else 3


def _print_epoch(row: dict) -> None:
    """One line per epoch in the run's train.log (the runner's display reads metrics.csv)."""
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
          flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop_with_runner() -> None:
    """Stop this worker when the runner that started it dies (kill -9, a crash), as the runner
    itself stops its workers: SIGTERM (the training loop ends after its current step, last.ckpt
    keeps the last finished epoch), then SIGKILL after STOP_GRACE_S.

    The runner is watched through the sentinel multiprocessing keeps for it (a pipe whose write
    end only the runner holds: it reads as closed once the runner is gone). A parent-death signal
    cannot do this: the worker's parent is the fork server, and the fork server outlives the
    runner for as long as any of its children lives, since every child inherits the write end of
    the server's "alive" pipe, which the server waits on to exit.
    """
    parent = multiprocessing.parent_process()
    if parent is None:  # not started by multiprocessing (a SLURM job): nothing to watch
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="runner-watch", daemon=True).start()
