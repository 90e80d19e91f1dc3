"""`depthbench run --executor slurm` against a real single-node SLURM (`make test-cluster` starts
it with tests/cluster/slurm.sh; `SLURM_CONF` points at it). Not part of `make test`.

One tiny study (ResNet-18, 32 px synthetic images, three epochs of two batches, one seed) is
trained once on this machine as the reference; every SLURM run is compared with it, column by
column: the same seeds give the same numbers, whether or not a job was requeued on the way.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

EPOCHS = 3
LONG = 48  # fewest epochs of the long runs (more on a fast machine: see `long_reference`)
LONG_SECONDS = 35  # how long a long run must train: past SLURM's first time-limit check (30 s)
THREADS = len(os.sched_getaffinity(0))  # local --jobs 1 uses every core: so does each job


def _slurm_up() -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


if not os.environ.get("SLURM_CONF") or not _slurm_up():
    pytest.skip("no SLURM: run `make test-cluster` (starts one with tests/cluster/slurm.sh)",
                allow_module_level=True)


def study(tmp: Path, name: str, seeds=(0,), epochs=EPOCHS, kind="slurm", **executor) -> Path:
    spec = {"name": name, "data": "synthetic:n=60,size=32,classes=3,seed=0",
            "split": {"val": 0.2, "test": 0.3}, "recipe": "modern", "img_size": 32,
            "overrides": {"epochs": epochs, "batch_size": 8, "lr": 0.001, "warmup_epochs": 0,
                          "limit_train_batches": 2},
            "models": ["resnet18"], "seeds": list(seeds),
            "executor": {"kind": kind, "cpus_per_run": THREADS, "time": 10, **executor}}
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def depthbench(*args, timeout=1800) -> subprocess.CompletedProcess:
    return subprocess.run(["nice", "-n", "10", sys.executable, "-m", "depthbench", "run", *args],
                          capture_output=True, text=True, timeout=timeout)


def _default_sigint() -> None:
    # A suite started in the background (`cmd &` in a script, nohup) hands its children SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler: the runner must see Ctrl-C
    # as a terminal user's process does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "depthbench", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def rows(study_dir: Path) -> dict[str, dict]:
    """results.csv without the columns that measure time or name the folder."""
    with open(study_dir / "results.csv", newline="") as f:
        return {r["run_dir"]: {k: v for k, v in r.items() if k not in ("seconds", "run_dir")}
                for r in csv.DictReader(f)}


def metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def jobs(study_dir: Path) -> dict:
    return json.loads((study_dir / ".slurm" / "jobs.json").read_text())


def sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id],
                         capture_output=True, text=True).stdout.split()
    return out[0] if out else ""


def sacct_states(job_id: str) -> list[str]:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id],
                         capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if ln.strip()] or ["none"]


def wait_for(pred, timeout=600, proc=None, what=""):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"runner exited early waiting for {what}: {proc.communicate()}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The study trained here, by the local executor."""
    tmp = tmp_path_factory.mktemp("local")
    p = depthbench("--config", str(study(tmp, "c")), "--executor", "local", "--jobs", "1",
                   "--out", str(tmp / "c"))
    assert p.returncode == 0, p.stderr
    return tmp / "c"


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory) -> tuple[Path, int]:
    """(study folder, epochs): a long study trained here, by the local executor, for the runs that
    must still be training when SLURM stops them (a cancelled job goes on for KillWait; a
    time-limited one is signalled at SLURM's first time-limit check, up to 30 s after it starts).
    LONG epochs, or as many more as train (epochs, validation and checkpoints) for LONG_SECONDS
    on this machine (a fixed count ends too soon on a fast one, before SLURM looks)."""
    tmp = tmp_path_factory.mktemp("local_long")
    epochs = LONG
    for attempt in range(2):
        out = tmp / f"reference{attempt}"
        p = depthbench("--config", str(study(tmp, "long", epochs=epochs, kind="local")),
                       "--jobs", "1", "--out", str(out))
        assert p.returncode == 0, p.stderr
        run = out / "resnet18__base__s0"  # config.yaml is written as training starts
        seconds = (run / "metrics.csv").stat().st_mtime - (run / "config.yaml").stat().st_mtime
        if seconds >= LONG_SECONDS:
            return out, epochs
        epochs = math.ceil(1.1 * LONG_SECONDS * epochs / seconds)
    raise AssertionError(f"{epochs} epochs still trained under {LONG_SECONDS} s")


def test_detach_then_collect_gives_the_local_results(reference, tmp_path):
    spec, out = study(tmp_path, "c"), tmp_path / "c"
    p = depthbench("--config", str(spec), "--out", str(out), "--detach", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "submitted 1 runs as job array" in p.stderr and "queued or running" in p.stderr
    assert not (out / "report.md").exists()
    submitted = jobs(out)
    assert sorted(submitted) == ["resnet18__base__s0"]

    p = depthbench("--config", str(spec), "--out", str(out))  # collects, resubmits nothing
    assert p.returncode == 0, p.stderr
    assert "submitted 1 runs" not in p.stderr, p.stderr
    assert "1 runs still queued or running on SLURM" in p.stderr or "already finished" in p.stderr
    assert jobs(out) == submitted
    assert "1 of 1 runs finished" in p.stderr and (out / "report.md").is_file()
    assert rows(out) == rows(reference)
    for name, job_id in submitted.items():
        r = result(out / name)
        assert r["requeues"] == 0
        slurm = r["provenance"]["slurm"]
        index = int(job_id.split("_")[1]) if "_" in job_id else None  # one run: no array
        assert slurm["job_id"] == job_id and slurm["array_index"] == index
        assert slurm["node"] and slurm["partition"] == "debug"
        assert "slurm" not in result(reference / name)["provenance"]


def test_scancel_fails_the_run_and_retry_failed_reruns_it(long_reference, tmp_path):
    reference, epochs = long_reference
    spec, out = study(tmp_path, "long", epochs=epochs), tmp_path / "c"
    run = out / "resnet18__base__s0"
    runner = start("--config", str(spec), "--out", str(out))
    try:
        wait_for(lambda: (out / ".slurm" / "jobs.json").is_file(), proc=runner, what="submission")
        job_id = jobs(out)["resnet18__base__s0"]
        wait_for(lambda: sacct_state(job_id) == "RUNNING", proc=runner, what="the job to run")
        subprocess.run(["scancel", job_id], check=True)
        _, err = runner.communicate(timeout=300)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 3, err  # a failed run: the study's exit status says so
    r = result(run)
    assert r["status"] == "failed", r
    reason = r["failure"]["reason"]
    assert f"job {job_id} ended CANCELLED" in reason and "_log.out" in reason, reason
    assert r["provenance"]["slurm"]["job_id"] == job_id
    assert "FAILED" in err and "0 of 1 runs finished, 1 failed" in err

    p = depthbench("--config", str(spec), "--out", str(out))
    assert p.returncode == 3 and "1 failed before (kept; --retry-failed" in p.stderr, p.stderr
    p = depthbench("--config", str(spec), "--out", str(out), "--retry-failed")
    assert p.returncode == 0, p.stderr
    assert result(run)["status"] == "finished" and jobs(out)["resnet18__base__s0"] != job_id
    assert rows(out)["resnet18__base__s0"] == rows(reference)["resnet18__base__s0"]


def test_time_limited_job_is_requeued_and_resumes_exactly(long_reference, tmp_path):
    """A one-minute limit: SLURM signals the job at its first time-limit check (within 30 s;
    the limit is under submitit's 90 s warning), submitit calls TrainRun.checkpoint and requeues
    it, the run resumes from last.ckpt. Once it was requeued, the limit is lifted so that the run
    can end. Long enough (`long_reference`) to outlast that first check on an idle machine."""
    reference, epochs = long_reference
    spec = study(tmp_path, "long", epochs=epochs, time=1, max_requeues=20)
    out = tmp_path / "c"
    run = out / "resnet18__base__s0"
    runner = start("--config", str(spec), "--out", str(out))
    try:
        wait_for(lambda: (out / ".slurm" / "jobs.json").is_file(), proc=runner, what="submission")
        job_id = jobs(out)["resnet18__base__s0"]

        def restarts() -> int:
            show = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True,
                                  text=True).stdout
            return int(show.split("Restarts=")[1].split()[0]) if "Restarts=" in show else 0

        wait_for(lambda: restarts() >= 1, proc=runner, what="a requeue")
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=30"], check=True)
        _, err = runner.communicate(timeout=600)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, err
    r = result(run)
    assert r["status"] == "finished" and r["requeues"] >= 1, r
    log = (out / ".slurm").rglob("*_log.err")
    assert any("timed-out" in f.read_text() for f in log), "no submitit timeout in the logs"
    assert metrics(run) == metrics(reference / run.name)  # the resumed run is the same run
    assert r["best"]["test"]["predictions"] == result(reference / run.name)["best"]["test"][
        "predictions"]
    assert rows(out)[run.name] == rows(reference)[run.name]


def test_ctrl_c_cancels_the_studys_jobs(tmp_path):
    spec, out = study(tmp_path, "c", seeds=(0, 1)), tmp_path / "c"
    runner = start("--config", str(spec), "--out", str(out))
    try:
        wait_for(lambda: (out / ".slurm" / "jobs.json").is_file(), proc=runner, what="submission")
        ids = sorted(jobs(out).values())
        time.sleep(1.0)
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, err
    assert f"cancelled 2 SLURM jobs of this study: {', '.join(ids)}" in err, err
    assert "rerun the same command" in err
    array = ids[0].split("_")[0]  # a task that never started is listed as a range: 16_[1%2]
    wait_for(lambda: all(s.startswith("CANCELLED") for s in sacct_states(array)), timeout=60,
             what="sacct to show the jobs cancelled")
    assert jobs(out) == {}  # the next run submits them again
