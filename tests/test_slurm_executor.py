"""The SLURM executor layer without SLURM: the `executor:` spec, job states and records, and whole
studies through submitit's local executor (same submission, pickles, checkpoint and requeue
path as on a cluster; a real SLURM is `make test-cluster`'s, tests/cluster/)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from depthbench.cli.main import main
from depthbench.errors import ConfigError
from depthbench.study.records import annotate_run
from depthbench.study.runner import run_study
from depthbench.study.slurm import _phase, job_provenance
from depthbench.study.spec import load_spec, validate_spec

TINY = {"data": "synthetic:n=60,size=32,classes=3,seed=0", "split": {"val": 0.2, "test": 0.3},
        "recipe": "modern", "img_size": 32, "models": ["resnet18"],
        "overrides": {"epochs": 2, "batch_size": 8, "lr": 0.001, "warmup_epochs": 0,
                      "limit_train_batches": 2}}


def spec_file(tmp_path: Path, **changes) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump({"name": "t", **TINY, **changes}))
    return p


# ------------------------------------------------------------------------------- the spec

def test_executor_options_and_time_formats(tmp_path):
    spec = load_spec(spec_file(tmp_path, executor={
        "kind": "slurm", "partition": "gpu", "gpus_per_run": 1, "cpus_per_run": 8, "mem_gb": 32,
        "time": "1-02:30:00", "account": "lab", "qos": "normal", "constraint": "a100",
        "extra": {"mail-type": "END"}, "max_parallel": 4}))
    e = spec.executor
    assert (e.kind, e.partition, e.gpus_per_run, e.time, e.max_parallel) == (
        "slurm", "gpu", 1, 26 * 60 + 30, 4)
    assert load_spec(spec_file(tmp_path)).executor.kind == "local"  # the default
    assert load_spec(spec_file(tmp_path), executor="slurm").executor.kind == "slurm"
    kept = load_spec(spec_file(tmp_path, executor={"kind": "slurm", "partition": "p"}),
                     executor="local").executor
    assert (kept.kind, kept.partition) == ("local", "p")  # --executor changes the kind only
    with pytest.raises(ConfigError, match=r"study.yaml: executor\.gpus_per_run: 2 GPUs per run "
                                          r"need overrides\.devices: 2"):
        load_spec(spec_file(tmp_path, executor={"kind": "slurm", "gpus_per_run": 2}))


@pytest.mark.parametrize("executor, message", [
    ({"kind": "cloud"}, r"executor\.kind: .*'local' or 'slurm'"),
    ({"time": "soon"}, r"executor\.time: 'soon': give minutes \(90\), \"HH:MM:SS\""),
    ({"gpus": 1}, r"executor\.gpus: unknown key; valid keys here: kind, partition, gpus_per_run"),
    ({"extra": {"--mail-type": "END"}}, r"executor\.extra: '--mail-type': give sbatch's long"),
    ({"max_parallel": 0}, r"executor\.max_parallel: "),
])
def test_executor_errors_name_the_key(executor, message):
    with pytest.raises(ConfigError, match=message) as e:
        validate_spec({"name": "t", **TINY, "executor": executor}, "study.yaml")
    assert "\n" not in str(e.value)


def test_detach_needs_slurm(tmp_path, capsys):
    assert main(["run", "--config", str(spec_file(tmp_path)), "--detach",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--detach: only with --executor slurm" in err and err.count("\n") == 1


def test_slurm_without_sbatch_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no sacct
    assert main(["run", "--config", str(spec_file(tmp_path)), "--executor", "slurm",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--executor slurm: SLURM's `sbatch`/`sacct` are not on PATH" in err, err
    assert err.count("\n") == 1


# ------------------------------------------------------------------------- states, records

def test_job_states_and_provenance(tmp_path, monkeypatch):
    assert [_phase(s) for s in ("PENDING", "REQUEUED", "UNKNOWN", "RUNNING", "COMPLETED",
                                "CANCELLED by 0", "TIMEOUT", "OUT_OF_MEMORY", "FINISHED",
                                "NODE_FAIL", "")] == [
        "pending", "pending", "pending", "running", "ended", "ended", "ended", "ended", "ended",
        "ended", "pending"]
    for k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(k, raising=False)
    assert job_provenance() is None
    monkeypatch.setenv("SLURM_JOB_ID", "108")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "100")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "8")
    monkeypatch.setenv("SLURMD_NODENAME", "gpu17")
    monkeypatch.setenv("SLURM_JOB_PARTITION", "a100")
    slurm = job_provenance()
    assert slurm == {"job_id": "100_8", "array_index": 8, "node": "gpu17", "partition": "a100"}
    run = tmp_path / "run"
    run.mkdir()
    assert annotate_run(run, slurm=slurm, requeues=2) is None  # no record: nothing to annotate
    (run / "result.json").write_text(json.dumps({"status": "finished", "provenance": {"x": 1}}))
    annotate_run(run, slurm=slurm, requeues=2)
    r = json.loads((run / "result.json").read_text())
    assert r["requeues"] == 2 and r["provenance"] == {"x": 1, "slurm": slurm}


# ----------------------------------------------- whole studies through submitit's local executor

@pytest.mark.slow
def test_study_through_submitit_records_finished_and_failed_runs(tmp_path):
    """Two runs as one submitit job array: one trains, one fails (its folder holds a run with
    other settings): a failure record like a local one, the study goes on, the report is built."""
    spec = load_spec(spec_file(tmp_path, seeds=2, executor={"kind": "slurm", "time": 10}))
    out = tmp_path / "study"
    bad = out / "resnet18__base__s1"
    bad.mkdir(parents=True)
    (bad / "result.json").write_text(json.dumps({"status": "running", "config": {
        **spec.overrides, "model": "resnet18", "data": "synthetic", "recipe": "modern",
        "img_size": 64}}))
    log = io.StringIO()
    summary = run_study(spec, out, console=Console(file=log, width=200), cluster="local")
    text = log.getvalue()
    assert summary.finished == ["resnet18__base__s0"] and not summary.pending, text
    assert "resnet18__base__s1 holds a run with" in summary.failed["resnet18__base__s1"]
    assert "submitted 2 runs as job array" in text and "running (job" in text, text
    assert re.search(r"\[\d/2\] resnet18__base__s0: finished \(job \d+\)", text), text
    jobs = json.loads((out / ".slurm" / "jobs.json").read_text())
    assert sorted(jobs) == ["resnet18__base__s0", "resnet18__base__s1"]
    good = json.loads((out / "resnet18__base__s0" / "result.json").read_text())
    assert good["status"] == "finished" and good["requeues"] == 0
    assert "slurm" not in good["provenance"]  # outside SLURM: no job to name
    assert (out / "report.md").is_file() and "resnet18__base__s1" in (out / "report.md").read_text()


def _job_pid(run: Path) -> int | None:
    try:
        found = re.findall(r"starts \(pid (\d+)", (run / "train.log").read_text())
    except OSError:
        return None
    return int(found[-1]) if found else None


def _epochs(run: Path) -> int:
    try:
        return len((run / "metrics.csv").read_text().splitlines()) - 1
    except OSError:
        return 0


@pytest.mark.slow
def test_preempted_job_checkpoints_requeues_and_resumes(tmp_path):
    """The preemption signal (SIGUSR2, what SLURM sends before a time limit or preemption) makes
    submitit call TrainRun.checkpoint and requeue the job; the run resumes from last.ckpt."""
    import submitit

    from depthbench.study.grid import plan_runs
    from depthbench.study.slurm import TrainRun

    spec = load_spec(spec_file(tmp_path, overrides={**TINY["overrides"], "epochs": 4}))
    plan = plan_runs(spec)[0]
    run = tmp_path / plan.name
    run.mkdir()
    from depthbench.data.sources import open_source
    from depthbench.data.split import make_split

    make_split(open_source(spec.data), val=0.2, test=0.3).save(tmp_path / "split.json")
    ex = submitit.AutoExecutor(folder=tmp_path / "jobs" / "%j", cluster="local")
    ex.update_parameters(timeout_min=10)
    job = ex.submit(TrainRun(str(run), plan.train_config().model_dump(mode="json"),
                             str(tmp_path / "split.json"), plan.variant))
    end = time.monotonic() + 600
    while _epochs(run) < 1 and time.monotonic() < end:
        assert job.state == "RUNNING", (job.stderr() or "")[-2000:]
        time.sleep(0.2)
    first = _job_pid(run)
    os.kill(first, signal.SIGUSR2)
    job.result()
    r = json.loads((run / "result.json").read_text())
    assert r["status"] == "finished" and r["epochs_completed"] == 4 and r["requeues"] == 1
    assert _job_pid(run) != first and "requeues 1" in (run / "train.log").read_text()
    assert "Caught signal SIGUSR2" in job.stderr() and "preempted" in job.stderr()


# ------------------------------------------------------- what a job asks for, and gets

def _scheduler_line(tmp_path, **executor) -> str:
    from depthbench.study.slurm import SlurmScheduler
    from depthbench.study.summary import Summary

    spec = load_spec(spec_file(tmp_path, executor={"kind": "slurm", **executor}))
    log = io.StringIO()
    SlurmScheduler(spec, tmp_path / "s", tmp_path / "split.json", [], Summary(tmp_path, 0),
                   Console(file=log, width=300), detach=True, cluster="local").run()
    return log.getvalue().splitlines()[0]


def test_the_first_line_says_what_each_job_asks_for(tmp_path):
    assert _scheduler_line(tmp_path).endswith(
        "each run's SLURM job asks for no GPU (executor.gpus_per_run is 0) and trains on its "
        "CPUs, 60 min; to give each run a GPU, set `executor: {gpus_per_run: 1}` in the study "
        "file")
    assert _scheduler_line(tmp_path, gpus_per_run=1, cpus_per_run=8, mem_gb=32).endswith(
        "each run's SLURM job asks for 1 GPU(s), 8 CPUs, 32 GB, 60 min")
    with pytest.raises(ConfigError, match=r"executor\.gpus_per_run: 1 with overrides\.accelerator:"
                                          r" cpu: the runs would not use the GPUs they ask for"):
        load_spec(spec_file(tmp_path, executor={"kind": "slurm", "gpus_per_run": 1},
                            overrides={**TINY["overrides"], "accelerator": "cpu"}))


def _train_run(tmp_path, gpus: int = 0):
    from depthbench.study.grid import plan_runs
    from depthbench.study.slurm import TrainRun

    plan = plan_runs(load_spec(spec_file(tmp_path)))[0]
    run = tmp_path / plan.name
    run.mkdir(exist_ok=True)
    return TrainRun(str(run), plan.train_config().model_dump(mode="json"),
                    str(tmp_path / "split.json"), plan.variant, gpus=gpus), run


def test_a_job_that_asked_for_a_gpu_and_sees_none_fails_in_one_line(tmp_path, monkeypatch,
                                                                     capsys):
    import torch

    from depthbench.study import slurm

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SLURM_JOB_ID", "108")
    monkeypatch.setenv("SLURMD_NODENAME", "gpu17")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(slurm, "train_run", lambda *a: pytest.fail("trained on the CPUs"))
    job, run = _train_run(tmp_path, gpus=1)
    assert job() == 3
    err = capsys.readouterr().err
    assert err == ("depthbench: error: SLURM job 108 on gpu17 asked for executor.gpus_per_run: 1 "
                   "but sees no CUDA GPU (CUDA_VISIBLE_DEVICES=unset); check that the partition "
                   "has GPUs (sinfo -o %G) or set gpus_per_run: 0 to train on CPUs\n")
    r = json.loads((run / "result.json").read_text())
    assert r["status"] == "failed" and "sees no CUDA GPU" in r["failure"]["reason"]
    # the job checkpointed before this field existed asked for nothing
    del job.gpus
    monkeypatch.setattr(slurm, "train_run", lambda *a: 0)
    assert job() == 0


@pytest.fixture
def submitit_handlers():
    """What submitit installs in a job: SIGUSR2 checkpoints, requeues and exits; SIGTERM is
    logged only. Records the calls; the test's own handlers are restored after."""
    calls = []

    def requeue(signum, frame):
        calls.append("requeue")
        raise SystemExit(-1)

    old = {s: signal.getsignal(s) for s in (signal.SIGUSR2, signal.SIGTERM)}
    signal.signal(signal.SIGUSR2, requeue)
    signal.signal(signal.SIGTERM, lambda s, f: calls.append("bypass"))
    yield calls
    for s, h in old.items():
        signal.signal(s, h)


@pytest.mark.parametrize("loop_takes", ["SIGUSR2", "SIGTERM", None])
def test_preemption_flushes_in_the_trainer_before_submitit_requeues(
        tmp_path, monkeypatch, submitit_handlers, loop_takes):
    """SIGUSR2 reaches the training loop (whether its stop flag takes SIGUSR2 itself or only
    SIGTERM), which stops after its step and flushes; then submitit's handler requeues."""
    from depthbench.study import slurm

    def train(*args):  # a training loop with its own stop flag, stopped by the signal
        got = []
        if loop_takes is None:  # the signal comes before the loop: it never starts
            os.kill(os.getpid(), signal.SIGUSR2)
        sig = getattr(signal, loop_takes or "SIGINT")
        old = signal.signal(sig, lambda s, f: got.append(s))
        os.kill(os.getpid(), signal.SIGUSR2)
        signal.signal(sig, old)
        submitit_handlers.append(("flushed", got))
        return 130

    monkeypatch.setattr(slurm, "train_run", train)
    job, _ = _train_run(tmp_path)
    with pytest.raises(SystemExit):
        job()
    if loop_takes is None:
        assert submitit_handlers == ["requeue"]
    else:
        assert submitit_handlers == [("flushed", [signal.SIGUSR2]), "requeue"]
    monkeypatch.setattr(slurm, "train_run", lambda *a: 0)  # no signal: no requeue
    submitit_handlers.clear()
    assert job() == 0 and submitit_handlers == []
    assert signal.getsignal(signal.SIGUSR2).__name__ == "requeue"  # submitit's handler is back
