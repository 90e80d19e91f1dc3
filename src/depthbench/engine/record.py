"""A run's record while it trains: result.json with its provenance, and the rows of metrics.csv.

`Recorder` rewrites result.json (`depthbench.runrecord.RunResult`) at the start, after every
epoch and at the end; the schema, the writer and the reader are `depthbench.runrecord`'s. The
provenance (package versions, git revision, device, peak memory) is gathered here, once per record.
"""

from __future__ import annotations

import datetime as dt
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from depthbench.engine.config import TrainConfig
from depthbench.engine.loop import EpochStats
from depthbench.models.complexity import count_macs, count_params, macs_224
from depthbench.runrecord import EpochRow, write_result

# The packages whose versions a run records (with Python's).
RECORDED_PACKAGES = ("depthbench", "torch", "torchvision", "lightning", "torchmetrics", "timm",
                     "numpy")


class Recorder:
    """result.json of one run: what does not change is measured once, in `__init__`."""

    def __init__(self, out: Path, cfg: TrainConfig, meta: dict, variant: str, started: float,
                 fabric, net, manifest, execution: dict | None = None):
        self.out = out
        # how it runs: `devices.configure_backends`'s tf32 and cudnn_benchmark, where batches
        # come from (`batches`)
        self.execution = dict(execution or {})
        self.cfg, self.meta, self.variant, self.started = cfg, meta, variant, started
        self.device = device_name(fabric)
        self.world = fabric.world_size
        self.manifest_hash = manifest.hash
        self.params = count_params(net)
        self.macs = count_macs(net, cfg.img_size) if fabric.is_global_zero else None
        self.macs_224 = (macs_224(cfg.model, len(meta["classes"]), **cfg.model_kwargs())
                         if fabric.is_global_zero else None)

    def write(self, status: str, history: list[dict], best: dict | None,
              failure: dict | None = None, final: dict | None = None) -> dict:
        final = final or {}
        train_s = sum(r.get("train_seconds", 0.0) for r in history)
        train_n = sum(r["train_total"] for r in history)
        result = {
            "status": status,
            "failure": failure,
            "model": self.cfg.model, "family": self.meta["family"], "variant": self.variant,
            "seed": self.cfg.seed,
            "config": self.cfg.model_dump(),
            "classes": self.meta["classes"], "img_size": self.cfg.img_size,
            "params": self.params, "macs": self.macs, "macs_224": self.macs_224,
            "epochs_completed": len(history),
            "best_epoch": best["epoch"] if best else None,
            "best": final.get("best"),
            "last": final.get("last"),
            "costs": {
                "train_seconds": train_s,
                "train_images_per_s": train_n / train_s if train_s > 0 else None,
                "infer_images_per_s": final.get("infer_images_per_s"),
                "peak_memory_mb": peak_memory_mb(),
            },
            "provenance": {
                "versions": package_versions(), "git_revision": git_revision(),
                "manifest_hash": self.manifest_hash, "device": self.device,
                "precision": self.cfg.precision, **self.execution,
                "world_size": self.world,
                "started": dt.datetime.fromtimestamp(self.started, dt.UTC).isoformat(timespec="seconds"),
                "seconds": round(time.time() - self.started, 3),
            },
        }
        return write_result(self.out, result)


def metrics_row(epoch: int, s: EpochStats, val: dict, seconds: float) -> dict:
    """One epoch's row of metrics.csv (`runrecord.EpochRow`), as a dict."""
    return asdict(EpochRow(
        epoch=epoch, train_loss=s.loss, train_acc=s.acc, val_loss=val["loss"],
        val_acc=val["accuracy"], val_correct=val["correct"], val_total=val["total"], lr=s.lr,
        seconds=round(seconds, 3), train_correct=s.correct, train_total=s.total))


def final_entry(history: list[dict], epoch: int, evals: dict) -> dict:
    """result.json's `best` or `last`: that epoch's training figures and its final evaluation."""
    row = history[epoch - 1]
    te = evals.get("train_eval")
    return {"epoch": epoch, "train_loss": row["train_loss"], "train_acc": row["train_acc"],
            "val": evals.get("val"), "test": evals.get("test"),
            "train_eval": te and {k: te[k] for k in ("accuracy", "correct", "total")}}


# --- provenance ----------------------------------------------------------------------------------

def peak_memory_mb() -> float:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def device_name(fabric) -> str:
    if fabric.device.type == "cuda":
        return f"{torch.cuda.get_device_name(fabric.device)} x{fabric.world_size}"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads) x{fabric.world_size}"


def package_version(dist: str) -> str | None:
    """The installed version of distribution `dist`, or None when it is not installed."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def package_versions(packages: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str]:
    """Python's version and those of the installed `packages`."""
    out = {"python": sys.version.split()[0]}
    for pkg in packages:
        v = package_version(pkg)
        if v is not None:
            out[pkg] = v
    return out


_GIT: list = []


def git_revision() -> str | None:
    """`git rev-parse HEAD` of the working directory (`+dirty` with local changes), or None."""
    if not _GIT:
        try:
            rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                 timeout=5, check=True).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            _GIT.append(rev + ("+dirty" if dirty else ""))
        except (OSError, subprocess.SubprocessError):
            _GIT.append(None)
    return _GIT[0]
