"""Lightning and SLURM: the run's processes are decided from SLURM's step, not guessed, and a host
with SLURM's client installed gets no `srun` hint under our one-line errors. No SLURM needed:
the hint test puts a fake `srun` on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from PIL import Image

from depthbench.engine.cluster_env import cluster_environment, launched_by_slurm

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS",
              "SLURM_NTASKS_PER_NODE", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID",
              "SLURM_JOB_NAME", "SLURM_NODELIST", "LOCAL_RANK", "TORCHELASTIC_RUN_ID")


@pytest.fixture
def slurm_env(monkeypatch):
    for k in SLURM_VARS:
        monkeypatch.delenv(k, raising=False)

    def set_job(ntasks: int, step: bool = True):
        monkeypatch.setenv("SLURM_JOB_ID", "42")
        monkeypatch.setenv("SLURM_NTASKS", str(ntasks))
        monkeypatch.setenv("SLURM_NTASKS_PER_NODE", str(ntasks))
        monkeypatch.setenv("SLURM_JOB_NAME", "study")
        monkeypatch.setenv("SLURM_NODELIST", "node1")
        monkeypatch.setenv("SLURM_PROCID", "0")
        monkeypatch.setenv("SLURM_LOCALID", "0")
        monkeypatch.setenv("SLURM_NODEID", "0")
        if step:
            monkeypatch.setenv("SLURM_STEP_ID", "0")
            monkeypatch.setenv("SLURM_STEP_NUM_TASKS", str(ntasks))
    return set_job


def test_one_process_in_a_job_of_many_tasks_stays_one_process(slurm_env):
    slurm_env(4)
    env = cluster_environment(1)
    assert type(env) is LightningEnvironment and not launched_by_slurm(1)
    assert env.world_size() == 1 and env.global_rank() == 0


def test_devices_inside_a_job_use_the_jobs_tasks(slurm_env):
    slurm_env(2)
    env = cluster_environment(2)
    assert isinstance(env, SLURMEnvironment) and env.creates_processes_externally
    assert env.world_size() == 2 and not env.auto_requeue  # requeueing is submitit's
    slurm_env(2, step=False)  # an allocation's shell (salloc, an sbatch script): no tasks yet
    os.environ.pop("SLURM_STEP_ID")
    assert type(cluster_environment(2)) is LightningEnvironment  # Lightning spawns them


def test_outside_slurm_the_plain_environment(slurm_env):
    env = cluster_environment(2)
    assert type(env) is LightningEnvironment and not env.creates_processes_externally


def test_srun_on_path_adds_no_hint_to_one_line_errors(tmp_path):
    """With SLURM's client installed, Lightning hints at `srun` on every Fabric it builds: under a
    user error raised after the Fabric, the error would become two lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "srun"
    fake.write_text("#!/bin/sh\necho 'fake srun: not to be called' >&2\nexit 1\n")
    fake.chmod(0o755)
    data = tmp_path / "data" / "onlycls"  # one class: refused once the data is read
    data.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(data / f"{i}.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    p = subprocess.run([sys.executable, "-m", "depthbench", "train", "--model", "resnet18",
                        "--data", str(data.parent), "--img-size", "32", "--epochs", "1",
                        "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("depthbench: error: data folder") and "has only one class" in p.stderr
    assert p.stderr.count("\n") == 1 and "`srun`" not in p.stderr, p.stderr
    assert Path(env["PATH"].split(os.pathsep)[0], "srun").is_file()
