"""`train()`: one model, one dataset, one recipe, recorded in a run folder.

Built on Lightning Fabric rather than the Trainer: Fabric handles devices, precision and DDP while
the loop stays a plain `train_one_epoch` / `predict_logits` that we control exactly, which exact
resume (per-epoch RNG and sampler state), rank-0 records and the NaN/interrupt stops need.

Run folder (docs/internals.md): config.yaml, split.json, metrics.csv, best.safetensors,
last.ckpt, result.json. Only rank 0 writes; every file goes through `depthbench._io` (atomic).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from depthbench._io import atomic_write_text, remove_stale_temps
from depthbench.cpus import usable_cpu_count
from depthbench.data.datasets import build_datasets
from depthbench.data.sources import open_source
from depthbench.data.split import SPLIT_FILE, SPLITS, run_manifest, train_eval_manifest
from depthbench.data.transforms import batch_random_stage, normalization
from depthbench.engine import checkpoint as ckpt
from depthbench.engine.batches import Budget, EvalFeed, TrainFeed, seed_all
from depthbench.engine.cadence import Cadence, Checkpoints
from depthbench.engine.cluster_env import cluster_environment
from depthbench.engine.config import (
    TrainConfig,
    augmentation,
    dump_config,
    saved_config,
    undertrain_warning,
)
from depthbench.engine.devices import (
    configure_backends,
    default_channels_last,
    device_type,
    make_fabric,
    resolve_precision,
)
from depthbench.engine.loop import (
    NonFiniteLoss,
    StopFlag,
    StopRequested,
    dihedral,
    flips,
    predict_batches,
    train_one_epoch,
)
from depthbench.engine.metrics import summarize
from depthbench.engine.optim import build_optimizer, build_scheduler
from depthbench.engine.progress import RunProgress, log
from depthbench.engine.record import Recorder, final_entry, metrics_row
from depthbench.engine.runlock import RunLock
from depthbench.errors import ConfigError, DepthbenchError, RunFailed, interrupted
from depthbench.folderlock import describe
from depthbench.models import create_model, family
from depthbench.runrecord import read_result


class TrainingInterrupted(KeyboardInterrupt):
    """SIGTERM/Ctrl-C stopped the run; `last.ckpt` holds the last completed epoch."""

    def __init__(self, message: str, epochs_completed: int):
        super().__init__(message)
        self.epochs_completed = epochs_completed


# --- entry point ---------------------------------------------------------------------------------

def train(config: TrainConfig, out_dir: str | os.PathLike | None = None,
          split_path: str | os.PathLike | None = None, variant: str = "base",
          progress: Callable[[dict], Any] | bool | None = None, resume: bool = True,
          lock_wait: float = 0) -> dict:
    """Train `config` into `out_dir` (default `config.out`) and return its result.json dict.

    `split_path`: a study's manifest to reuse (copied to the run folder). `progress`: `None`
    (a bar unless `config.quiet`), `False` (no output), or a callable given each metrics.csv row
    as a dict (single process only). `resume`: continue an unfinished run folder from its
    last.ckpt (the CLI passes `--resume`; with `False` an unfinished folder is an error). A
    finished run with the same settings is returned as is (a no-op). The run folder is held
    (`engine.runlock`) from the first read of its records to the last write: a folder another
    live process trains is `RunLocked`, or waited for up to `lock_wait` seconds (a study's runs
    wait: `math.inf`).

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
    fabric = _make_fabric(cfg, out)
    # rank 0 holds the folder (the launching process under ddp_spawn; rank 0 under torchrun/srun)
    with RunLock(out, wait=lock_wait, on_wait=_waiting) if fabric.global_rank == 0 \
            else contextlib.nullcontext():
        previous = _previous_run(out, cfg, resume)
        if previous is not None:
            val = (previous.get("best") or {}).get("val")  # none without a validation split
            score = (f"best val acc {val['accuracy']:.4f} at epoch {previous['best_epoch']}"
                     if val else f"{previous['epochs_completed']} epochs")
            log(f"{out}: run already finished ({score}); nothing to do")
            return previous
        result = fabric.launch(_run_guarded, cfg, out, split_path, variant,
                               progress if fabric.world_size == 1 or not callable(progress)
                               else None, resume)
    if isinstance(result, dict) and "_raise" in result:  # re-raise a child's error in the parent
        kind, msg, n = result["_raise"]
        if kind == "interrupted":
            raise TrainingInterrupted(msg, n)
        raise (RunFailed if kind == "failed" else DepthbenchError)(msg)
    return result


def _waiting(owner: dict) -> None:
    log(f"waiting for {describe(owner)}, which is training this run folder; it continues from "
        "where that process stops")


def _previous_run(out: Path, cfg: TrainConfig, resume: bool) -> dict | None:
    """The finished result of the same run, or None when there is something to train."""
    if not (out / "result.json").exists() and not (out / "last.ckpt").exists():
        return None
    prev = read_result(out, lenient=True) or {}
    done = prev.get("epochs_completed") or 0
    if prev.get("config"):
        # a default left null compares as its value; a key the run predates, as it ran then
        old = TrainConfig(**saved_config(prev["config"])).resolved()
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
            torch.set_num_threads(max(1, usable_cpu_count() // cfg.devices))
    loggers = []
    try:  # imported on use: TensorBoard is optional (logged to when installed)
        import tensorboard  # noqa: F401
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


# --- one run: setup, the epochs, the final evaluation ---------------------------------------

@dataclass
class _Run:
    """What `_setup` builds for the epochs and the final evaluation."""

    fabric: Any
    cfg: TrainConfig
    out: Path
    classes: list[str]
    datasets: dict[str, Any]
    net: nn.Module  # the plain module: checkpoints and evaluation
    model: Any  # `net` as Fabric wraps it (DDP, compile): training steps
    optimizer: Any
    scheduler: Any
    criterion: nn.Module
    feed: TrainFeed  # the training batches: device memory or a DataLoader
    budget: Budget  # device memory the evaluation splits may still take
    workers: int  # a DataLoader's workers (evaluation splits that are not on the device)
    random_stage: Any  # the recipe's batched random stage (uint8 batch -> uint8 batch) or None
    channels_last: bool
    meta: dict
    record: Recorder
    checkpoints: Checkpoints
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    eval_feeds: dict[str, EvalFeed] = field(default_factory=dict)  # built on first use

    @property
    def rank0(self) -> bool:
        return self.fabric.is_global_zero

    def eval_feed(self, split: str) -> EvalFeed:
        if split not in self.eval_feeds:
            self.eval_feeds[split] = EvalFeed(self.fabric, self.datasets[split],
                                              self.cfg.batch_size, self.budget, self.workers)
        return self.eval_feeds[split]


def _run(fabric, cfg: TrainConfig, out: Path, split_path, variant: str, progress, resume: bool) -> dict:
    run = _setup(fabric, cfg, out, split_path, variant, resume)
    try:
        _train_epochs(run, progress)
        return _final_evaluation(run)
    except BaseException as e:
        # an interrupt outside the loop's stop flag (a second Ctrl-C, a worker whose runner
        # died), or whatever it set off on its way out: the run stopped, it did not fail
        if run.rank0 and interrupted(e) and not isinstance(e, TrainingInterrupted):
            with contextlib.suppress(Exception):  # unwritten, it says `running`: resumed too
                run.checkpoints.close("interrupted")
        raise


def _setup(fabric, cfg: TrainConfig, out: Path, split_path, variant: str, resume: bool) -> _Run:
    """Split, model, data and optimisation of the run, and its state from last.ckpt on resume."""
    started = time.time()
    rank0 = fabric.is_global_zero
    source = open_source(cfg.data)
    manifest = run_manifest(source, out, val=cfg.val, test=cfg.test, seed=cfg.split_seed,
                            given=split_path)
    if rank0 and not (out / SPLIT_FILE).exists():
        out.mkdir(parents=True, exist_ok=True)
        manifest.save(out / SPLIT_FILE)
    classes = list(manifest.classes)
    resume_state = ckpt.load_resume_state(out / "last.ckpt") if resume and (out / "last.ckpt").exists() else None
    if resume and rank0:  # also before the first last.ckpt landed: a kill during its write
        remove_stale_temps(out)  # half-written files of the killed process being resumed

    backends = configure_backends(fabric.device.type)
    net, channels_last = _model(fabric, cfg, len(classes), pretrained=resume_state is None)
    meta = _meta(cfg, classes, variant, manifest)
    # a batched random stage runs on each batch on the device, not per image in the dataset
    random_stage = batch_random_stage(cfg.recipe, cfg.img_size, fabric.device.type,
                                      **augmentation(cfg))
    datasets = _datasets(fabric, cfg, source, manifest, batch_augment=random_stage is not None)
    model = fabric.setup_module(torch.compile(net) if cfg.compile else net)
    budget = Budget(cfg.device_memory_mb, fabric.device)  # once the model is on the device
    workers = _workers(fabric, cfg)
    feed = TrainFeed(fabric, datasets["train"], cfg.batch_size, cfg.seed, budget, workers,
                     cfg.limit_train_batches)
    optimizer = fabric.setup_optimizers(build_optimizer(net, cfg))
    scheduler = build_scheduler(optimizer.optimizer, feed.steps, cfg)
    criterion = nn.CrossEntropyLoss(weight=_class_weights(datasets["train"], len(classes), fabric.device)
                                    if cfg.class_balanced else None,
                                    label_smoothing=cfg.label_smoothing)
    history, best = [], None
    if resume_state is not None:
        net.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["lr_scheduler"])
        ckpt.set_rng_state(resume_state["rng"])
        history, best = list(resume_state["history"]), resume_state["best"]
    record = Recorder(out, cfg, meta, variant, started, fabric, net, manifest,
                      backends | {"batches": feed.describe()})
    checkpoints = Checkpoints(out, Cadence.from_minutes(cfg.checkpoint_every), meta, record,
                              pin=fabric.device.type == "cuda", history=history, best=best)
    run = _Run(fabric, cfg, out, classes, datasets, net, model, optimizer, scheduler, criterion,
               feed, budget, workers, random_stage, channels_last, meta, record, checkpoints,
               history, best)
    if rank0:
        atomic_write_text(out / "config.yaml", dump_config(cfg))
        run.record.write("running", run.history, run.best)
        if resume_state is not None:
            log(f"resuming {out} after epoch {len(run.history)} of {cfg.epochs}")
        if warning := undertrain_warning(cfg):  # said once the run starts: after every check
            log(f"warning: {warning}")
    return run


def _model(fabric, cfg: TrainConfig, num_classes: int, pretrained: bool) -> tuple[nn.Module, bool]:
    """The network (the same init on every rank; DDP broadcasts rank 0's anyway), with the
    pretrained weights of a new run, in the memory format it trains in."""
    torch.manual_seed(cfg.seed)
    net = create_model(cfg.model, num_classes=num_classes, **cfg.model_kwargs())
    if cfg.pretrained and pretrained:
        reinit = ckpt.load_pretrained(net, cfg.pretrained)
        if reinit and fabric.is_global_zero:
            log(f"pretrained {cfg.pretrained}: classifier {', '.join(reinit)} re-initialized "
                f"for {num_classes} classes")
    channels_last = cfg.channels_last
    if channels_last is None:
        channels_last = default_channels_last(net, fabric.device.type, cfg.img_size)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, channels_last


def _datasets(fabric, cfg: TrainConfig, source, manifest, batch_augment: bool) -> dict[str, Any]:
    """The splits (uint8 items, normalized on the device) and the fixed train_eval subset; rank 0
    fills the decoded cache, the others then read it."""
    with fabric.rank_zero_first():
        datasets = build_datasets(source, manifest, cfg.recipe, cfg.img_size,
                                  cache_dir=cfg.cache_dir, memory_budget_mb=cfg.memory_budget_mb,
                                  splits=SPLITS, uint8=True, batch_augment=batch_augment,
                                  eval_crop=cfg.eval_crop, **augmentation(cfg))
        datasets |= build_datasets(source, train_eval_manifest(manifest), cfg.recipe,
                                   cfg.img_size, cache_dir=cfg.cache_dir,
                                   memory_budget_mb=cfg.memory_budget_mb, splits=("train_eval",),
                                   uint8=True, eval_crop=cfg.eval_crop)
    return datasets


def _workers(fabric, cfg: TrainConfig) -> int:
    """DataLoader workers (for splits not in device memory): `workers`, else 0 on the CPU (the
    training process uses every core) and on a GPU the CPUs this process may use, less one for
    itself."""
    if cfg.workers is not None:
        return cfg.workers
    return max(1, usable_cpu_count() - 1) if fabric.device.type == "cuda" else 0


def _train_epochs(run: _Run, progress) -> None:
    """The epochs not trained yet. A non-finite loss fails the run (`RunFailed`), a stop signal
    interrupts it (`TrainingInterrupted`); either way the last completed epoch's checkpoints are
    written and result.json says so first."""
    cfg, fabric = run.cfg, run.fabric
    start_epoch = len(run.history) + 1
    bar = RunProgress(cfg, run.feed.steps, start_epoch, enabled=run.rank0 and progress is None)
    stop = StopFlag()
    try:
        with stop, bar:
            for epoch in range(start_epoch, cfg.epochs + 1):
                row, improved = _epoch(run, epoch, stop, bar.step)
                if run.rank0:
                    run.checkpoints.epoch_done(_resume_state(run, epoch), improved)
                    bar.epoch_done(row, cfg.epochs)
                    if callable(progress):
                        progress(dict(row))
                # a logger takes numbers only: no val_* without a validation split (--val 0)
                fabric.log_dict({k: v for k, v in row.items() if k != "epoch" and v is not None},
                                step=epoch)
                fabric.barrier()
        if run.rank0:
            run.checkpoints.flush()
        fabric.barrier()  # the other ranks read best.safetensors next
    except NonFiniteLoss as e:
        epoch = len(run.history) + 1
        reason = (f"non-finite training loss ({e.value}) at epoch {epoch}; last.ckpt keeps epoch "
                  f"{epoch - 1}: lower --lr or set --grad-clip")
        if run.rank0:
            run.checkpoints.close("failed", failure={"epoch": epoch, "reason": reason})
        raise RunFailed(f"{run.out}: {reason}") from None
    except StopRequested:
        done = len(run.history)
        if run.rank0:
            run.checkpoints.close("interrupted")
        stop.forward()  # SIGUSR2 inside a SLURM job: submitit requeues it now
        raise TrainingInterrupted(
            f"stopped after epoch {done} of {cfg.epochs}; last.ckpt is intact. Continue with: "
            f"depthbench train --out {run.out} --resume", done) from None
    except BaseException:  # anything else (a second Ctrl-C, a crash): keep what was completed
        if run.rank0:
            with contextlib.suppress(Exception):
                run.checkpoints.flush()
        raise


def _epoch(run: _Run, epoch: int, stop: StopFlag, on_step) -> tuple[dict, bool]:
    """Train one epoch and validate: (its metrics.csv row, whether it is the best so far)."""
    cfg = run.cfg
    _seed_epoch(cfg.seed, epoch, run.fabric.global_rank)
    run.feed.start_epoch(epoch)
    t0 = time.perf_counter()
    stats = train_one_epoch(
        run.fabric, run.model, run.criterion, run.optimizer, run.scheduler, run.feed.loader,
        grad_clip=cfg.grad_clip, channels_last=run.channels_last,
        limit_batches=cfg.limit_train_batches, stop=stop, on_step=on_step,
        batch_transform=dihedral if cfg.dihedral else flips if cfg.flips else None,
        random_stage=run.random_stage, normalize=run.datasets["train"].normalize)
    val = _validate(run)
    row = metrics_row(epoch, stats, val, time.perf_counter() - t0)
    run.history.append(row | {"train_seconds": stats.seconds})
    # best by validation accuracy (first of ties, as the source); no val split: last
    improved = run.best is None or not val["total"] or val["accuracy"] > run.best["val_acc"]
    if improved:
        run.best = {"epoch": epoch, "val_acc": val["accuracy"] or 0.0}
    return row, improved


def _predict(run: _Run, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    feed = run.eval_feed(split)
    return predict_batches(run.fabric, run.net, feed, feed.n, normalize=feed.normalize,
                           channels_last=run.channels_last)


def _validate(run: _Run) -> dict:
    """This epoch's loss and accuracy on the validation split (none with --val 0)."""
    if "val" in run.datasets:
        logits, targets = _predict(run, "val")
    else:  # --val 0: no validation split
        logits, targets = torch.zeros(0, len(run.classes)), torch.zeros(0, dtype=torch.long)
    return summarize(logits, targets, run.classes, with_predictions=False)


def _resume_state(run: _Run, epoch: int) -> dict:
    """last.ckpt's content after `epoch`, of the live run (`engine.cadence` writes or holds it)."""
    return ckpt.resume_state(model=run.net, optimizer=run.optimizer, scheduler=run.scheduler,
                             epoch=epoch, history=run.history, best=run.best,
                             config=run.cfg.model_dump(), meta=run.meta)


def _final_evaluation(run: _Run) -> dict:
    """The last weights, then the best weights, on val, test (when present) and the fixed
    train_eval subset (the test split and train_eval are evaluated only here); result.json
    `finished`."""
    splits = [s for s in ("val", "test", "train_eval")
              if s in run.datasets and len(run.datasets[s])]
    t0 = time.perf_counter()
    last = _evaluate(run, splits)
    infer_s = time.perf_counter() - t0
    n_infer = sum(len(run.datasets[s]) for s in splits)
    if run.best["epoch"] == len(run.history):  # best.safetensors holds these very weights
        best_eval = last
    else:
        run.net.load_state_dict(load_file(str(run.out / "best.safetensors")))
        best_eval = _evaluate(run, splits)
    result = run.record.write("finished", run.history, run.best, final={
        "best": final_entry(run.history, run.best["epoch"], best_eval),
        "last": final_entry(run.history, len(run.history), last),
        "infer_images_per_s": n_infer / infer_s if infer_s > 0 else None,
    }) if run.rank0 else {}
    run.fabric.barrier()
    return result


def _evaluate(run: _Run, splits: list[str]) -> dict:
    out = {}
    for split in splits:
        logits, targets = _predict(run, split)
        out[split] = summarize(logits, targets, run.classes)
    return out


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Each epoch's randomness (augmentation, dropout, loader workers) is a function of
    (seed, epoch, rank) only: an epoch replays identically after a resume."""
    seed_all(f"{seed}:{epoch}:{rank}")


def _class_weights(train_ds, num_classes: int, device) -> torch.Tensor:
    """Cross-entropy weights n / (k * n_c) per class c (k classes, n training images; "balanced"
    as scikit-learn's `compute_class_weight`): each class weighs the same in the loss."""
    counts = torch.bincount(torch.as_tensor(train_ds.targets), minlength=num_classes).double()
    weights = counts.sum() / (num_classes * counts.clamp(min=1))
    return weights.float().to(device)


def _meta(cfg: TrainConfig, classes: list[str], variant: str, manifest) -> dict:
    """best.safetensors' metadata: what rebuilds the model and its preprocessing."""
    mean, std = normalization(cfg.recipe)
    return {"model": cfg.model, "family": family(cfg.model), "model_kwargs": cfg.model_kwargs(),
            "classes": classes, "img_size": cfg.img_size, "mean": list(mean), "std": list(std),
            "recipe": cfg.recipe, "eval_crop": cfg.eval_crop, "variant": variant, "seed": cfg.seed,
            "val": cfg.val, "test": cfg.test, "split_seed": cfg.split_seed,
            "manifest_hash": manifest.hash}
