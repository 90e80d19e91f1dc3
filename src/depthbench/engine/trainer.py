"""`train()`: one model, one dataset, one recipe, recorded in a run folder.

Built on Lightning Fabric rather than the Trainer: Fabric handles devices, precision and DDP while
the loop stays a plain `train_one_epoch` / `predict_logits` that we control exactly, which exact
resume (per-epoch RNG and sampler state), rank-0 records and the NaN/interrupt stops need.

Run folder (docs/internals.md): config.yaml, split.json, metrics.csv, best.safetensors,
last.ckpt, result.json. Only rank 0 writes; every file goes through `depthbench._io` (atomic).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from depthbench._io import atomic_write_text, remove_stale_temps
from depthbench.engine import checkpoint as ckpt
from depthbench.engine.cluster_env import cluster_environment
from depthbench.engine.config import TrainConfig, dump_config
from depthbench.engine.devices import device_type, make_fabric, resolve_precision
from depthbench.engine.loop import (
    EpochStats,
    NonFiniteLoss,
    StopFlag,
    StopRequested,
    dihedral,
    flips,
    predict_logits,
    train_one_epoch,
)
from depthbench.engine.metrics import summarize
from depthbench.engine.optim import build_optimizer, build_scheduler
from depthbench.errors import ConfigError, DepthbenchError, RunFailed
from depthbench.runrecord import read_result, write_metrics, write_result


class TrainingInterrupted(KeyboardInterrupt):
    """SIGTERM/Ctrl-C stopped the run; `last.ckpt` holds the last completed epoch."""

    def __init__(self, message: str, epochs_completed: int):
        super().__init__(message)
        self.epochs_completed = epochs_completed


# --- entry point ---------------------------------------------------------------------------------

def train(config: TrainConfig, out_dir: str | os.PathLike | None = None,
          split_path: str | os.PathLike | None = None, variant: str = "base",
          progress: Callable[[dict], Any] | bool | None = None, resume: bool = True) -> dict:
    """Train `config` into `out_dir` (default `config.out`) and return its result.json dict.

    `split_path`: a study's manifest to reuse (copied to the run folder). `progress`: `None`
    (a bar unless `config.quiet`), `False` (no output), or a callable given each metrics.csv row
    as a dict (single process only). `resume`: continue an unfinished run folder from its
    last.ckpt (the CLI passes `--resume`; with `False` an unfinished folder is an error). A
    finished run with the same settings is returned as is (a no-op).

    Raises `RunFailed` (exit code 3) on a NaN/inf loss after marking result.json failed, and
    `TrainingInterrupted` on SIGTERM/Ctrl-C after the last completed epoch was saved.
    """
    cfg = config.resolved()
    out = Path(out_dir or cfg.out or "")
    if not str(out) or out == Path("."):
        raise ConfigError("no run folder: pass --out DIR (or `out:` in the config file)")
    cfg.out = str(out)
    # the precision this hardware runs (`auto` resolved): what config.yaml and result.json record
    cfg.precision = resolve_precision(cfg.precision, device_type(cfg.accelerator))
    previous = _previous_run(out, cfg, resume)
    if previous is not None:
        _log(cfg, f"{out}: run already finished (best val acc {previous['best']['val']['accuracy']:.4f}"
                  f" at epoch {previous['best_epoch']}); nothing to do")
        return previous
    fabric = _make_fabric(cfg, out)
    result = fabric.launch(_run_guarded, cfg, out, split_path, variant,
                           progress if fabric.world_size == 1 or not callable(progress) else None,
                           resume)
    if isinstance(result, dict) and "_raise" in result:  # re-raise a child's error in the parent
        kind, msg, n = result["_raise"]
        if kind == "interrupted":
            raise TrainingInterrupted(msg, n)
        raise (RunFailed if kind == "failed" else DepthbenchError)(msg)
    return result


def _previous_run(out: Path, cfg: TrainConfig, resume: bool) -> dict | None:
    """The finished result of the same run, or None when there is something to train."""
    if not (out / "result.json").exists() and not (out / "last.ckpt").exists():
        return None
    prev = read_result(out, lenient=True) or {}
    done = prev.get("epochs_completed") or 0
    if prev.get("config"):
        old = TrainConfig(**prev["config"])
        diff = cfg.semantic_diff(old)
        if set(diff) == {"epochs"} and resume:
            _check_extension(out, old, cfg.epochs, done)
        elif diff:
            k, (new, was) = next(iter(diff.items()))
            hint = " (pass --resume to continue it)" if set(diff) == {"epochs"} else ""
            raise ConfigError(f"{out} holds a run with {k}={was!r} (now {new!r}){hint}; use the "
                              "same settings to resume it, or another --out for a new run")
    if prev.get("status") == "finished" and done >= cfg.epochs:
        return prev
    if not resume:
        raise ConfigError(f"{out} holds an unfinished run ({prev.get('status', 'no result.json')}); "
                          "pass --resume to continue it or choose another --out")
    return None


def _check_extension(out: Path, old: TrainConfig, epochs: int, done: int) -> None:
    """A run may continue to another total of epochs only when nothing it trained depends on the
    total: a constant lr after a warmup that ended before its first total. Else one line why."""
    if epochs < done:
        raise ConfigError(f"{out} has trained {done} epochs; --epochs {epochs} would shorten it: "
                          "use another --out for a shorter run")
    if old.scheduler != "constant" or old.warmup_epochs >= old.epochs:
        what = (f"its {old.scheduler} lr schedule" if old.scheduler != "constant"
                else "its warmup")
        raise ConfigError(
            f"{out}: cannot continue to {epochs} epochs: {what} was laid out over the "
            f"{old.epochs} epochs it started with, so more epochs would change the ones trained; "
            f"train a new run with --epochs {epochs} in another --out (only a run with "
            "--scheduler constant can be extended)")


def _make_fabric(cfg: TrainConfig, out: Path):
    strategy = "auto"
    environment = cluster_environment(cfg.devices)  # SLURM/torchrun told, not guessed (no hint)
    if cfg.devices > 1:
        # under torchrun or srun the processes exist already; otherwise spawn them (any caller)
        strategy = "ddp" if environment.creates_processes_externally else "ddp_spawn"
        if device_type(cfg.accelerator) == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.devices))
    loggers = []
    try:
        import tensorboard  # noqa: F401  (only when installed)
        from lightning.fabric.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(root_dir=str(out), name="tensorboard", version=""))
    except ImportError:
        pass
    return make_fabric(cfg.accelerator, cfg.precision, cfg.devices, strategy, loggers,
                       environment)


def _run_guarded(fabric, cfg, out, split_path, variant, progress, resume):
    try:
        return _run(fabric, cfg, out, split_path, variant, progress, resume)
    except TrainingInterrupted as e:
        if fabric.world_size == 1:
            raise
        return {"_raise": ("interrupted", str(e), e.epochs_completed)}
    except DepthbenchError as e:
        if fabric.world_size == 1:
            raise
        return {"_raise": ("failed" if isinstance(e, RunFailed) else "error", str(e), 0)}


# --- one run ----------------------------------------------------------------------------------------

def _run(fabric, cfg: TrainConfig, out: Path, split_path, variant: str, progress, resume: bool) -> dict:
    from depthbench.data import build_datasets, open_source
    from depthbench.models import create_model

    started = time.time()
    rank0 = fabric.is_global_zero
    source = open_source(cfg.data)
    manifest = _split(fabric, cfg, source, out, split_path)
    classes = list(manifest.classes)
    resume_state = ckpt.load_resume_state(out / "last.ckpt") if resume and (out / "last.ckpt").exists() else None
    if resume and rank0:  # also before the first last.ckpt landed: a kill during its write
        remove_stale_temps(out)  # half-written files of the killed process being resumed

    # model (same init on every rank; DDP broadcasts rank 0's anyway)
    torch.manual_seed(cfg.seed)
    net = create_model(cfg.model, num_classes=len(classes), **cfg.model_kwargs())
    if cfg.pretrained and resume_state is None:
        reinit = ckpt.load_pretrained(net, cfg.pretrained)
        if reinit and rank0:
            _log(cfg, f"pretrained {cfg.pretrained}: classifier {', '.join(reinit)} re-initialized "
                      f"for {len(classes)} classes")
    channels_last = cfg.channels_last
    if channels_last is None:
        channels_last = default_channels_last(net, fabric.device.type, cfg.img_size)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    meta = _meta(cfg, classes, variant, manifest)

    # data
    with fabric.rank_zero_first():  # rank 0 fills the decoded cache, the others then read it
        datasets = build_datasets(source, manifest, cfg.recipe, cfg.img_size,
                                  cache_dir=cfg.cache_dir, memory_budget_mb=cfg.memory_budget_mb,
                                  splits=("train", "val", "test"))
        datasets |= build_datasets(source, train_eval_manifest(manifest), cfg.recipe,
                                   cfg.img_size, cache_dir=cfg.cache_dir,
                                   memory_budget_mb=cfg.memory_budget_mb, splits=("train_eval",))
    workers = cfg.workers if cfg.workers is not None else (
        min(8, os.cpu_count() or 1) if fabric.device.type == "cuda" else 0)
    train_ds = datasets["train"]
    sampler = DistributedSampler(train_ds, num_replicas=fabric.world_size, rank=fabric.global_rank,
                                 shuffle=True, seed=cfg.seed, drop_last=False)
    # a last batch of one sample would break BatchNorm: drop it only in that case
    drop_last = len(sampler) % cfg.batch_size == 1
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                        pin_memory=fabric.device.type == "cuda", drop_last=drop_last)
    steps = len(loader) if cfg.limit_train_batches is None else min(len(loader), cfg.limit_train_batches)
    if steps == 0:
        raise ConfigError(f"--batch-size {cfg.batch_size}: no training batch from "
                          f"{len(train_ds)} training images")
    # not fabric.setup_dataloaders: its wrapper calls sampler.set_epoch(<iterations so far>),
    # which restarts at 0 on resume; the loop moves batches with fabric.to_device instead

    # optimisation
    model = fabric.setup_module(torch.compile(net) if cfg.compile else net)
    optimizer = fabric.setup_optimizers(build_optimizer(net, cfg))
    scheduler = build_scheduler(optimizer.optimizer, steps, cfg)
    criterion = nn.CrossEntropyLoss(weight=_class_weights(train_ds, len(classes), fabric.device)
                                    if cfg.class_balanced else None,
                                    label_smoothing=cfg.label_smoothing)
    history: list[dict] = []
    best: dict | None = None
    if resume_state is not None:
        net.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["lr_scheduler"])
        ckpt.set_rng_state(resume_state["rng"])
        history, best = list(resume_state["history"]), resume_state["best"]
    start_epoch = len(history) + 1

    record = _Record(out, cfg, meta, variant, started, fabric, net, manifest)
    if rank0:
        atomic_write_text(out / "config.yaml", dump_config(cfg))
        record.write("running", history, best)
        if resume_state is not None:
            _log(cfg, f"resuming {out} after epoch {start_epoch - 1} of {cfg.epochs}")

    bar = _Progress(cfg, steps, start_epoch, enabled=rank0 and progress is None)
    stop = StopFlag()
    try:
        with stop, bar:
            for epoch in range(start_epoch, cfg.epochs + 1):
                _seed_epoch(cfg.seed, epoch, fabric.global_rank)
                sampler.set_epoch(epoch)
                t0 = time.perf_counter()
                stats = train_one_epoch(
                    fabric, model, criterion, optimizer, scheduler, loader,
                    grad_clip=cfg.grad_clip, channels_last=channels_last,
                    limit_batches=cfg.limit_train_batches, stop=stop, on_step=bar.step,
                    batch_transform=dihedral if cfg.dihedral else flips if cfg.flips else None)
                if "val" in datasets:
                    logits, targets = predict_logits(fabric, net, datasets["val"], cfg.batch_size,
                                                     workers=workers, channels_last=channels_last)
                else:  # --val 0: no validation split
                    logits, targets = torch.zeros(0, len(classes)), torch.zeros(0, dtype=torch.long)
                val = summarize(logits, targets, classes, with_predictions=False)
                row = _row(epoch, stats, val, time.perf_counter() - t0)
                history.append(row | {"train_seconds": stats.seconds})
                # best by validation accuracy (first of ties, as the source); no val split: last
                improved = best is None or not val["total"] or val["accuracy"] > best["val_acc"]
                if improved:
                    best = {"epoch": epoch, "val_acc": val["accuracy"] or 0.0}
                if rank0:
                    if improved:
                        ckpt.save_weights(out / "best.safetensors", net, meta | {"epoch": epoch})
                    ckpt.save_resume_state(out / "last.ckpt", model=net, optimizer=optimizer,
                                           scheduler=scheduler, epoch=epoch, history=history,
                                           best=best, config=cfg.model_dump(), meta=meta)
                    write_metrics(out / "metrics.csv", history)
                    record.write("running", history, best)
                    bar.epoch_done(row, cfg.epochs)
                    if callable(progress):
                        progress(dict(row))
                fabric.log_dict({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
                fabric.barrier()
    except NonFiniteLoss as e:
        epoch = len(history) + 1
        reason = (f"non-finite training loss ({e.value}) at epoch {epoch}; last.ckpt keeps epoch "
                  f"{epoch - 1}: lower --lr or set --grad-clip")
        if rank0:
            record.write("failed", history, best, failure={"epoch": epoch, "reason": reason})
        raise RunFailed(f"{out}: {reason}") from None
    except StopRequested:
        done = len(history)
        if rank0:
            record.write("interrupted", history, best)
        raise TrainingInterrupted(
            f"stopped after epoch {done} of {cfg.epochs}; last.ckpt is intact. Continue with: "
            f"depthbench train --out {out} --resume", done) from None

    # final evaluation: last weights, then best weights, on val, test (when present) and the
    # fixed train_eval subset (the test split and train_eval are evaluated only here)
    evaluate = {s: datasets[s] for s in ("val", "test", "train_eval")
                if s in datasets and len(datasets[s])}
    t0 = time.perf_counter()
    last = _evaluate_all(fabric, net, evaluate, cfg, workers, channels_last, classes)
    infer_s = time.perf_counter() - t0
    n_infer = sum(len(d) for d in evaluate.values())
    if best["epoch"] == len(history):  # best.safetensors holds these very weights
        best_eval = last
    else:
        net.load_state_dict(_load_best(out / "best.safetensors"))
        best_eval = _evaluate_all(fabric, net, evaluate, cfg, workers, channels_last, classes)
    result = record.write("finished", history, best, final={
        "best": _final(history, best["epoch"], best_eval),
        "last": _final(history, len(history), last),
        "infer_images_per_s": n_infer / infer_s if infer_s > 0 else None,
    }) if rank0 else {}
    fabric.barrier()
    return result


def _split(fabric, cfg: TrainConfig, source, out: Path, split_path):
    """The run's manifest: its own split.json (resume), a study's (copied), or a new split."""
    from depthbench.data import Manifest, make_split

    own = out / "split.json"
    if own.exists():
        manifest = Manifest.load(own)
    elif split_path is not None:
        manifest = Manifest.load(split_path)
    else:
        manifest = make_split(source, val=cfg.val, test=cfg.test, seed=cfg.split_seed)
    manifest.verify(source)
    if fabric.is_global_zero and not own.exists():
        out.mkdir(parents=True, exist_ok=True)
        manifest.save(own)
    return manifest


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Each epoch's randomness (augmentation, dropout, loader workers) is a function of
    (seed, epoch, rank) only: an epoch replays identically after a resume."""
    s = int.from_bytes(hashlib.sha256(f"{seed}:{epoch}:{rank}".encode()).digest()[:4], "little")
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _row(epoch: int, s: EpochStats, val: dict, seconds: float) -> dict:
    return {"epoch": epoch, "train_loss": s.loss, "train_acc": s.acc, "val_loss": val["loss"],
            "val_acc": val["accuracy"], "val_correct": val["correct"], "val_total": val["total"],
            "lr": s.lr, "seconds": round(seconds, 3), "train_correct": s.correct,
            "train_total": s.total}


# On this project's reference CPU (AVX2, oneDNN) channels_last made a ResNet training step
# 1.02-1.19x faster at 96-224 px but 0.89-0.98x as fast at 32-64 px (BENCHMARKS.md,
# `python -m benchmarks.bench_channels_last`).
CPU_CHANNELS_LAST_MIN_SIZE = 128


def default_channels_last(net, device_type: str, img_size: int) -> bool:
    """channels_last for CNNs on GPUs, and on the CPU from CPU_CHANNELS_LAST_MIN_SIZE px up."""
    if not getattr(net, "channels_last_friendly", False):
        return False
    return device_type == "cuda" or img_size >= CPU_CHANNELS_LAST_MIN_SIZE


def _evaluate_all(fabric, net, datasets, cfg, workers, channels_last, classes) -> dict:
    out = {}
    for split, ds in datasets.items():
        logits, targets = predict_logits(fabric, net, ds, cfg.batch_size, workers=workers,
                                         channels_last=channels_last)
        out[split] = summarize(logits, targets, classes)
    return out


def _final(history: list[dict], epoch: int, evals: dict) -> dict:
    row = history[epoch - 1]
    te = evals.get("train_eval")
    return {"epoch": epoch, "train_loss": row["train_loss"], "train_acc": row["train_acc"],
            "val": evals.get("val"), "test": evals.get("test"),
            "train_eval": te and {k: te[k] for k in ("accuracy", "correct", "total")}}


def _class_weights(train_ds, num_classes: int, device) -> torch.Tensor:
    """Cross-entropy weights n / (k * n_c) per class c (k classes, n training images; "balanced"
    as scikit-learn's `compute_class_weight`): each class weighs the same in the loss."""
    counts = torch.bincount(torch.as_tensor(train_ds.targets), minlength=num_classes).double()
    weights = counts.sum() / (num_classes * counts.clamp(min=1))
    return weights.float().to(device)


# The seed of the train_eval subset: fixed, so every run sharing a split sees the same images.
TRAIN_EVAL_SEED = 0


def train_eval_manifest(manifest):
    """A manifest of the training images a run evaluates in eval mode (`train_eval` in
    result.json's `best` and `last`): per class as many as the test split (else the validation
    split) holds, drawn from the train entries with `TRAIN_EVAL_SEED`, so the same images for every epoch and
    every run of a study; no decoding of the whole training split under eval transforms."""
    from depthbench.data import Manifest

    train = manifest.entries("train")
    held_out = manifest.entries("test") or manifest.entries("val")
    # per class as many as the held-out split has: train_eval - test then compares like with like
    # (an unstratified draw shifts the class mix, and with it the accuracy of any model)
    want = Counter(e.label for e in held_out) if held_out else Counter(e.label for e in train)
    rng = random.Random(TRAIN_EVAL_SEED)
    chosen = []
    for label in sorted(want):
        pool = [e for e in train if e.label == label]
        chosen += rng.sample(pool, min(len(pool), want[label]))
    return Manifest(manifest.classes, chosen, data=manifest.data, val=manifest.val,
                    test=manifest.test, seed=manifest.seed)


def _load_best(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _meta(cfg: TrainConfig, classes: list[str], variant: str, manifest) -> dict:
    from depthbench.data import normalization
    from depthbench.models import family

    mean, std = normalization(cfg.recipe)
    return {"model": cfg.model, "family": family(cfg.model), "model_kwargs": cfg.model_kwargs(),
            "classes": classes, "img_size": cfg.img_size, "mean": list(mean), "std": list(std),
            "recipe": cfg.recipe, "variant": variant, "seed": cfg.seed, "val": cfg.val,
            "test": cfg.test, "split_seed": cfg.split_seed, "manifest_hash": manifest.hash}


# --- records -------------------------------------------------------------------------------------

class _Record:
    """result.json (`depthbench.runrecord.RunResult`), rewritten at the start, after every epoch
    and at the end."""

    def __init__(self, out, cfg, meta, variant, started, fabric, net, manifest):
        from depthbench.models.complexity import count_macs, count_params, macs_224

        self.out = out
        self.cfg, self.meta, self.variant, self.started = cfg, meta, variant, started
        self.device = _device_name(fabric)
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
                "peak_memory_mb": _peak_memory_mb(),
            },
            "provenance": {
                "versions": _versions(), "git_revision": _git_revision(),
                "manifest_hash": self.manifest_hash, "device": self.device,
                "precision": self.cfg.precision,
                "world_size": self.world,
                "started": dt.datetime.fromtimestamp(self.started, dt.UTC).isoformat(timespec="seconds"),
                "seconds": round(time.time() - self.started, 3),
            },
        }
        return write_result(self.out, result)


def _peak_memory_mb() -> float:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _device_name(fabric) -> str:
    if fabric.device.type == "cuda":
        return f"{torch.cuda.get_device_name(fabric.device)} x{fabric.world_size}"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads) x{fabric.world_size}"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("depthbench", "torch", "torchvision", "lightning", "torchmetrics", "timm", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


_GIT: list = []


def _git_revision() -> str | None:
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


# --- output ------------------------------------------------------------------------------------

def _log(cfg: TrainConfig, msg: str) -> None:
    print(f"depthbench: {msg}", file=sys.stderr, flush=True)


class _Progress:
    """A rich progress bar over the run's steps with ETA; with --quiet (or no terminal) one log
    line per epoch instead."""

    def __init__(self, cfg: TrainConfig, steps: int, start_epoch: int, enabled: bool):
        self.cfg, self.enabled = cfg, enabled
        self.bar = None
        if enabled and not cfg.quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                                TimeRemainingColumn(), console=Console(stderr=True))
            total = steps * cfg.epochs
            self.task = self.bar.add_task(cfg.model, total=total, completed=steps * (start_epoch - 1))

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def step(self, i: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def epoch_done(self, row: dict, epochs: int) -> None:
        if not self.enabled:
            return
        va = "n/a" if row["val_acc"] is None else f"{row['val_acc']:.4f} ({row['val_correct']}/{row['val_total']})"
        line = (f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.4f}  val acc {va}  lr {row['lr']:.3g}  {row['seconds']:.1f}s")
        if self.bar is not None:
            self.bar.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)
