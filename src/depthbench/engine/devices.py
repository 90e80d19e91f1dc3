"""The one device and precision factory: `train`, `evaluate` and `predict` get their Fabric here.

- accelerator: `auto` (a CUDA GPU when one is visible, else the CPU), `cpu`, or `gpu` (refused with
  one line when no CUDA GPU is visible, never a silent fall-back to the CPU).
- precision: `auto` resolves to `bf16-mixed` where the hardware runs bf16 natively (a CUDA GPU of
  compute capability 8.0 or newer; a CPU with AMX or AVX512-BF16, `cpu_bf16_support`) and to
  `32-true` elsewhere; `32` is `32-true`; explicit values are kept. Under `bf16-mixed` autocast
  runs matrix products and convolutions in bf16 while weights, BatchNorm statistics, the loss and
  the optimizer state stay fp32 (tests/test_devices.py checks it).
- CUDA backend settings (`configure_backends`): TF32 for fp32 matrix products and convolutions,
  and `cudnn.benchmark` (a run's batch shapes are fixed); recorded in the run's provenance.
"""

from __future__ import annotations

import logging

import torch

from depthbench.engine.cluster_env import cluster_environment
from depthbench.errors import ConfigError

NO_GPU = "--accelerator gpu: no CUDA GPU is visible; use --accelerator cpu or auto"


def device_type(accelerator: str = "auto") -> str:
    """`cuda` or `cpu` for `accelerator` (`auto`, `cpu`, `gpu`); `gpu` without one: ConfigError."""
    if accelerator not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"--accelerator {accelerator}: expected auto, cpu or gpu")
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError(NO_GPU)
    if accelerator == "cpu":
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_bf16_support() -> str | None:
    """`amx` or `avx512_bf16` when this CPU has native bf16 arithmetic (as PyTorch detects it),
    else None (bf16 would be emulated: slower than fp32)."""
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "amx"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "avx512_bf16"
    return None


def native_bf16(device: str) -> bool:
    """Whether `device` (`cuda` or `cpu`) runs bf16 natively."""
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)
    return cpu_bf16_support() is not None


def resolve_precision(precision: str, device: str) -> str:
    """The Lightning precision string `precision` means on `device` (`auto` decided here)."""
    if precision == "auto":
        return "bf16-mixed" if native_bf16(device) else "32-true"
    return "32-true" if precision == "32" else precision


def make_fabric(accelerator: str = "auto", precision: str = "auto", devices: int = 1,
                strategy: str = "auto", loggers=None, environment=None):
    """A Lightning Fabric on `device_type(accelerator)` with `resolve_precision(precision, ...)`.

    `environment`: the cluster environment (default `cluster_environment(devices)`): Lightning is
    told whether SLURM or torchrun started the processes instead of guessing (and hinting)."""
    import lightning as L  # imported on use: only a Fabric needs it (seconds to import)

    device = device_type(accelerator)
    # Lightning announces the precision plugin on stderr ("Using bfloat16 Automatic Mixed
    # Precision"); the resolved precision is in the run's records, so keep stderr for errors
    quiet = [logging.getLogger(f"lightning.{p}.utilities.rank_zero") for p in ("fabric", "pytorch")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    try:  # the cluster environment is told, not detected: no hint to launch through srun
        return L.Fabric(accelerator=device, devices=devices, strategy=strategy,
                        precision=resolve_precision(precision, device), loggers=loggers or [],
                        plugins=[environment or cluster_environment(devices)])
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


# On the CPU channels_last makes a CNN's training step faster only from about this size up, and
# slower below it (`python -m benchmarks.bench_channels_last`; the figures are in BENCHMARKS.md).
CPU_CHANNELS_LAST_MIN_SIZE = 128


def default_channels_last(net, device_type: str, img_size: int) -> bool:
    """channels_last for CNNs on GPUs, and on the CPU from CPU_CHANNELS_LAST_MIN_SIZE px up."""
    if not getattr(net, "channels_last_friendly", False):
        return False
    return device_type == "cuda" or img_size >= CPU_CHANNELS_LAST_MIN_SIZE


def configure_backends(device_type: str) -> dict[str, bool]:
    """On CUDA: TF32 for fp32 matrix products and convolutions (the tensor cores' fp32 path:
    10-bit mantissa products, fp32 accumulation; under bf16-mixed it only touches what autocast
    keeps in fp32) and `cudnn.benchmark` (each convolution's fastest algorithm, timed once per
    shape: a run's batches have one shape, the last one of an epoch another). Returns what is set,
    for the provenance; on the CPU nothing is changed and both are False."""
    if device_type != "cuda":
        return {"tf32": False, "cudnn_benchmark": False}
    # the setter every torch version has; torch >= 2.9's per-backend `fp32_precision` alone
    # would make the global getter that Lightning's CUDA accelerator calls raise (a "mix of
    # the legacy and new APIs")
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    return {"tf32": True, "cudnn_benchmark": True}
