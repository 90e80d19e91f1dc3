"""Which processes make up one run, told to Lightning explicitly instead of guessed from SLURM.

Left to itself, Lightning's Fabric looks for SLURM's variables and for the `srun` command:
- inside a SLURM job (or an `salloc` shell) it reads `SLURM_NTASKS` as the world size, so a
  one-process run in a job of several tasks waits forever for peers that never start;
- outside a job, on any host with SLURM's client installed, it prints a hint about `srun` on every
  run (a second line under each of our one-line errors).
`cluster_environment(devices)` decides instead, and the Fabric gets it as a plugin (Lightning
then neither detects nor hints):
- one device: Lightning's plain environment, whatever SLURM's variables say;
- several devices inside a job whose tasks are exactly those processes (`srun` started one task per
  device): Lightning's SLURM environment, ranks from SLURM (requeueing stays submitit's job);
- several devices otherwise: the plain environment, Lightning starts the processes itself;
- under `torchrun`: torchrun's environment, as Lightning would pick.
"""

from __future__ import annotations

import os


def slurm_tasks() -> int | None:
    """The tasks of the SLURM step this process belongs to, or None outside one (an `sbatch`
    script's own shell and `salloc` shells have no step of tasks: Lightning needs `srun`)."""
    if "SLURM_JOB_ID" not in os.environ or "SLURM_STEP_ID" not in os.environ:
        return None
    try:
        return int(os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ["SLURM_NTASKS"])
    except (KeyError, ValueError):
        return None


def launched_by_slurm(devices: int) -> bool:
    """True when SLURM started this run's `devices` processes (one task per device)."""
    return devices > 1 and slurm_tasks() == devices


def cluster_environment(devices: int):
    """The Lightning cluster environment to pass to `L.Fabric(plugins=[...])`."""
    # imported on use: only a Fabric needs Lightning (seconds to import)
    from lightning.fabric.plugins.environments import (
        LightningEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    if TorchElasticEnvironment.detect():
        return TorchElasticEnvironment()
    if launched_by_slurm(devices):
        return SLURMEnvironment(auto_requeue=False)
    return LightningEnvironment()
