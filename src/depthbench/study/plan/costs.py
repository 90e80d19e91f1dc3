"""What one run costs: training and evaluation FLOPs, seconds on this machine, on a GPU (an
estimate from a stated throughput), peak memory and disk; and how a study's runs add up to a
wall time with `jobs` at once.

A run trains `epochs` epochs of its training images (at most `limit_train_batches` batches),
validates every epoch, then evaluates its last and its best weights on validation, test and the
fixed train_eval subset (`engine.trainer`); the study then analyzes it (`analysis`) and builds
one report. The FLOPs of a training image are three forward passes' (forward, then backward at
twice the forward's cost), counted by `models.complexity` on the meta device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from depthbench.analysis.run import CAM_IMAGES
from depthbench.engine.cadence import AUTO_CAP_S, AUTO_RATIO
from depthbench.engine.config import TrainConfig
from depthbench.models.complexity import OPTIMIZER_STATES, training_memory
from depthbench.study.plan.design import Sizes
from depthbench.study.plan.timing import Timing

# A training image costs its forward pass three times: the forward, and a backward of twice it.
TRAIN_PASSES = 3
# Bytes per parameter of the two checkpoints: best.safetensors holds the fp32 weights;
# last.ckpt the weights and the optimizer's fp32 state (AdamW: two moments).
FP32 = 4
BEST_BYTES_PER_PARAM = FP32
# A run's records besides its checkpoints and its copy of split.json: config.yaml, metrics.csv,
# result.json's fixed part, analysis.json, train.log, the TensorBoard events (kept high).
RUN_RECORD_BYTES = 200 * 2**10
# result.json keeps a prediction and a target per validation and test image, for both
# checkpoints (a few bytes of JSON each).
RECORD_BYTES_PER_IMAGE = 16
# A study's report: report.md, report.html, results.csv, comparisons.csv and figures/ (kept high).
REPORT_BYTES = 4 * 2**20
# The images `analyze` looks inside per run (its default subset).
ANALYSIS_IMAGES = 256

# Seconds not measured by the timed steps (BENCHMARKS.md, "depthbench plan", compares the sum
# with studies' own clocks): per run, the worker's data (the decoded cache, the split's
# verification), its records and evaluation set-up; per analyzed run, its hooks, CKA and
# figures; per study, its checks and the report with its figures.
RUN_FIXED_S = 2.0
ANALYSIS_RUN_S = 3.5
REPORT_S = 10.0

# For a GPU, where no GPU's rate was measured: the stated throughput of the estimate (never a
# measurement), in training FLOP/s sustained in bf16; and the least a training step takes on
# any GPU (kernel launches, the optimizer step, the host loop: small models on small images do
# not fill a GPU).
GPU_FLOPS = 60e12
GPU_STEP_FLOOR_S = 0.015
GPU_ASSUMED = (f"an A100/H100-class GPU at an assumed {GPU_FLOPS / 1e12:.0f} TFLOP/s sustained "
               "(bf16)")


@dataclass(frozen=True)
class GpuBasis:
    """What a GPU estimate rests on: a training FLOP rate and where it comes from."""

    flops_per_s: float = GPU_FLOPS
    source: str = GPU_ASSUMED

    def describe(self) -> str:
        return f"{self.source}, at least {GPU_STEP_FLOOR_S * 1e3:.0f} ms a step"


@dataclass(frozen=True)
class RunCost:
    """One run of one (model, variant) at one design's sizes."""

    model: str
    variant: str
    params: int
    macs: int
    train_images: int  # over all epochs
    eval_images: int  # every epoch's validation, then both checkpoints' final evaluation
    train_flops: float
    eval_flops: float
    seconds: float  # on this machine, the run itself
    analysis_seconds: float  # `analyze` of the finished run, on this machine
    gpu_seconds: float  # estimate
    peak_bytes: int  # the training step's tensors (weights, gradients, optimizer, activations)
    checkpoint_bytes: int
    record_bytes: int

    @property
    def disk_bytes(self) -> int:
        return self.checkpoint_bytes + self.record_bytes


def epoch_images(train: int, batch_size: int, limit: int | None) -> tuple[int, int]:
    """(steps, images) of one training epoch: a last batch of a single image is dropped (it
    would break BatchNorm; `engine.batches.TrainFeed`), then at most `limit` batches."""
    usable = train - 1 if train % batch_size == 1 else train
    steps = math.ceil(usable / batch_size)
    if limit is not None and steps > limit:
        return limit, limit * batch_size
    return steps, usable


def checkpoint_bytes(params: int, optimizer: str) -> int:
    """best.safetensors (the weights) and last.ckpt (the weights and the optimizer's state)."""
    return params * (BEST_BYTES_PER_PARAM + FP32 * (1 + OPTIMIZER_STATES.get(optimizer, 2)))


def run_cost(config: TrainConfig, variant: str, sizes: Sizes, *, params: int, macs: int,
             timing: Timing | None, rate: float, manifest_bytes: int, write_rate: float,
             gpu: GpuBasis = GpuBasis(), peak: bool = True) -> RunCost:
    """The cost of one run of `config` on `sizes`. `timing`: the model's measured seconds (None:
    its FLOPs at `rate`); `manifest_bytes`: its split.json's; `write_rate`: the disk's bytes/s;
    `gpu`: the rate of the GPU estimate; `peak`: estimate the training step's memory (a second
    of counting on the meta device)."""
    steps, per_epoch = epoch_images(sizes.train, config.batch_size, config.limit_train_batches)
    epochs = config.epochs
    train_images = epochs * per_epoch
    # each epoch's validation, then the final evaluation of the last weights and, when another
    # epoch was best, of the best weights (counted: with several epochs it usually is)
    final = sizes.val + sizes.test + sizes.train_eval
    eval_images = epochs * sizes.val + final * (2 if epochs > 1 else 1)
    train_flops = TRAIN_PASSES * 2.0 * macs * train_images
    eval_flops = 2.0 * macs * eval_images
    if timing is not None:
        compute = (train_images * timing.train_s_per_image + eval_images * timing.eval_s_per_image
                   + timing.cold_s + timing.setup_s)
        eval_per_image = timing.eval_s_per_image
    else:
        compute = (train_flops + eval_flops) / rate
        eval_per_image = 2.0 * macs / rate
    ckpt = checkpoint_bytes(params, config.optimizer or "adamw")
    write_s = ckpt / write_rate
    flushes = _flushes(epochs, compute, write_s, config.checkpoint_every)
    seconds = RUN_FIXED_S + compute + flushes * write_s
    analyzed = min(ANALYSIS_IMAGES, sizes.test or sizes.val)
    # the analysis: a forward pass of its images with hooks, then Grad-CAM's backward passes
    analysis = (ANALYSIS_RUN_S + analyzed * eval_per_image
                + CAM_IMAGES * TRAIN_PASSES * eval_per_image)
    gpu_s = (RUN_FIXED_S + max(train_flops / gpu.flops_per_s, epochs * steps * GPU_STEP_FLOOR_S)
             + eval_flops / gpu.flops_per_s)
    peak_bytes = step_memory(config) if peak else 0
    records = (RUN_RECORD_BYTES + manifest_bytes
               + RECORD_BYTES_PER_IMAGE * 2 * (sizes.val + sizes.test))
    return RunCost(config.model, variant, params, macs, train_images, eval_images, train_flops,
                   eval_flops, seconds, analysis, gpu_s, peak_bytes, ckpt, records)


def step_memory(config: TrainConfig) -> int:
    """Bytes of one training step's tensors (`models.complexity.training_memory`), 0 when the
    meta device cannot count the model."""
    options = {k: v for k, v in config.model_kwargs().items() if k != "img_size"}
    try:
        return training_memory(config.model, config.img_size, config.batch_size,
                               config.optimizer or "adamw", **options).total
    except Exception:  # noqa: BLE001 - an op without a meta kernel: no estimate
        return 0


def _flushes(epochs: int, compute_s: float, write_s: float, every_min: float | None) -> int:
    """How often a run writes its checkpoints (`engine.cadence`): after its first epoch, at
    its end, and between when the interval has passed."""
    if every_min is not None:
        interval = 60.0 * every_min
    else:
        interval = min(AUTO_CAP_S, AUTO_RATIO * write_s)
    between = int(compute_s / interval) if interval > 0 else epochs
    return min(epochs, 2 + between) if epochs > 1 else 1


def wall_seconds(run_seconds: list[float], slots: int) -> float:
    """The runs' wall time with `slots` at once, longest first, each starting when a slot frees
    (as the local executor orders them within a seed)."""
    ends = [0.0] * max(1, slots)
    for s in sorted(run_seconds, reverse=True):
        i = min(range(len(ends)), key=ends.__getitem__)
        ends[i] += s
    return max(ends)
