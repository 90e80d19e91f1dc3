"""How many runs train at once on this machine, and where: `jobs: auto` and `--jobs N`.

On a GPU machine `auto` packs runs by memory: each run's peak is estimated before it starts
(`run_peak`: weights, gradients, optimizer state and saved activations counted on the meta
device by `models.complexity.training_memory`, plus its images held on the device, its CUDA
context and a margin), and a run starts on a GPU when that estimate fits what the GPU has free
beside the runs already on it (`place`). The cores this process may use (`sched_getaffinity`,
which a SLURM job's cgroup or `taskset` narrows) cap how many run at once and are divided among
them, each run's worker pinned to its share (`slots`). Without a GPU, `auto` is one run at a
time with every core.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import torch

from depthbench.models.complexity import training_memory

GiB = 2**30
# A GPU run's process beside its kernels: the trainer's Python thread and the batches it
# prepares (fewer cores than this and a run waits on its own host code).
CORES_PER_GPU_RUN = 2
# Per process on the GPU beyond its tensors: the CUDA context with cuBLAS/cuDNN handles and
# workspaces (about 0.5 GB on recent cards), kept high.
CUDA_CONTEXT = 1 * GiB
# The caching allocator's rounding and fragmentation, and temporaries beside the live tensors.
MARGIN = 1.25
# Of what a GPU has free when the study starts, what its runs may take.
GPU_SHARE = 0.95


@dataclass(frozen=True)
class Gpu:
    id: str  # as CUDA_VISIBLE_DEVICES names it
    total: int  # bytes
    free: int  # bytes not used by other processes when the study starts

    @property
    def budget(self) -> int:
        return int(self.free * GPU_SHARE)


def run_peak(config, images: int) -> int:
    """Bytes of GPU memory one run's worker may reach: its training step's live tensors
    (`training_memory`, at fp32) with `MARGIN`, its `images` as uint8 on the device, and its
    CUDA context."""
    options = {k: v for k, v in config.model_kwargs().items() if k != "img_size"}
    mem = training_memory(config.model, config.img_size, config.batch_size,
                          config.optimizer or "adamw", **options)
    return int(CUDA_CONTEXT + MARGIN * mem.total + images * 3 * config.img_size ** 2)


def slots(peaks: list[int], budgets: list[int], cpus: int) -> int:
    """The most runs at once: as many as the GPUs' memory holds (smallest peaks first, each GPU
    filled in turn) and as get `CORES_PER_GPU_RUN` cores each; at least one."""
    by_cores = max(1, cpus // CORES_PER_GPU_RUN)
    used = [0] * len(budgets)
    fits = 0
    for peak in sorted(peaks):
        gpu = place(peak, budgets, used)
        if gpu is None or fits >= by_cores:
            break
        used[gpu] += peak
        fits += 1
    return max(1, min(fits, by_cores))


def place(peak: int, budgets: list[int], used: list[int]) -> int | None:
    """The GPU a run of `peak` bytes starts on now: the first whose budget holds it beside what
    its runs use, or else an idle one (a run above a whole GPU trains there alone); None: wait."""
    for i, (budget, u) in enumerate(zip(budgets, used)):
        if u + peak <= budget:
            return i
    return next((i for i, u in enumerate(used) if u == 0), None)


def core_shares(cpus: list[int], n: int) -> list[list[int]]:
    """`cpus` divided into `n` disjoint shares of equal size (the remainder unused)."""
    each = max(1, len(cpus) // n)
    return [cpus[i * each:(i + 1) * each] or cpus[-each:] for i in range(n)]


def visible_gpus() -> list[Gpu]:
    """The CUDA GPUs this process sees, with their memory. Totals from torch (no CUDA context is
    created); what other processes use from `nvidia-smi`, matched by UUID (0 without it)."""
    if not torch.cuda.is_available():
        return []
    n = torch.cuda.device_count()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in env.split(",") if s.strip()] if env else [str(i) for i in range(n)]
    used = _used_by_uuid()
    gpus = []
    for i, gpu_id in enumerate(ids[:n]):
        props = torch.cuda.get_device_properties(i)
        uuid = str(getattr(props, "uuid", ""))
        taken = used.get(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}", 0)
        gpus.append(Gpu(gpu_id, props.total_memory, max(0, props.total_memory - taken)))
    return gpus


def _used_by_uuid() -> dict[str, int]:
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=uuid,memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    used = {}
    for line in out.splitlines():
        uuid, _, mib = line.partition(",")
        if mib.strip().isdigit():
            used[uuid.strip()] = int(mib) * 2**20
    return used
