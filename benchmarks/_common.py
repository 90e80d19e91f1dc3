"""Timing helpers shared by every benchmark module.

The machine is shared and noisy, so figures worth quoting are ratios measured side by side in one
process: `compare` interleaves the candidates round by round (A B C, B C A, ...) and reports the
median per-step time of each, so a burst of load hits every candidate alike.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from depthbench.engine.optim import make_optimizer
from depthbench.models import create_model, default_window_size, list_models
from depthbench.names import ALIASES, canonical, family_of


def sync(device: str | torch.device | None = None) -> None:
    """Wait for queued device work, so a timer measures the work and not the launch."""
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# "cpu" (this process's CPU time) shrugs off other processes' load, but only means compute time
# with one torch thread: with more it sums the threads, spin-waits included.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def time_steps(fn: Callable[[], Any], warmup: int = 2, steps: int = 5,
               device: str | torch.device | None = None, clock: str = "wall") -> float:
    """Seconds per call of `fn`: the median of `steps` timed calls after `warmup` untimed ones."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(max(1, steps)):
        t0 = now()
        fn()
        sync(device)
        times.append(now() - t0)
    return statistics.median(times)


def compare(fns: dict[str, Callable[[], Any]], rounds: int = 3, steps: int = 3, warmup: int = 1,
            device: str | torch.device | None = None, clock: str = "wall") -> dict[str, float]:
    """Median seconds per call of each function, timed interleaved (A/B/A/B) over `rounds`.

    Each round times `steps` consecutive calls of every candidate, rotating the order from round to
    round; the result for a candidate is the median over all its rounds of the per-call time.
    """
    now = CLOCKS[clock]
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    sync(device)
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for r in range(max(1, rounds)):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t0 = now()
            for _ in range(max(1, steps)):
                fns[name]()
            sync(device)
            per_round[name].append((now() - t0) / max(1, steps))
    return {n: statistics.median(v) for n, v in per_round.items()}


def ab_args_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The options of a side-by-side (A/B) benchmark: rounds, steps, threads, clock, --quick."""
    p = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    p.add_argument("--steps", type=int, default=2, help="steps per candidate per round")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="cpu")
    p.add_argument("--quick", action="store_true", help="one tiny case: checks it runs")
    return p


def compare_step_variants(name: str, img_size: int, batch_size: int, variants: dict[str, dict],
                          rounds: int, steps: int,
                          clock: str) -> tuple[nn.Module, dict[str, float]]:
    """One model (seed 0, 4 classes), a training step per variant (`make_train_step` keywords) on
    its own copy, timed interleaved: (the model as built, median seconds per step of each)."""
    torch.manual_seed(0)
    model = build_model(name, img_size, num_classes=4)
    fns = {k: make_train_step(copy.deepcopy(model), batch_size, img_size, 4, **kw)
           for k, kw in variants.items()}
    return model, compare(fns, rounds=rounds, steps=steps, clock=clock)


def ab_report(title: str, module: str, argv: list[str] | None, what: str, rounds: int,
              steps: int, threads: int, clock: str, speedup: str, rows: list[dict]) -> str:
    """The Markdown section of an A/B benchmark: what was timed, how, the command, the table."""
    cmd = f"python -m benchmarks.{module} " + " ".join(sys.argv[1:] if argv is None else argv)
    body = (f"{what} on the CPU, {threads} torch thread(s), median of {rounds} interleaved rounds "
            f"x {steps} steps ({clock} clock). Speed-up = {speedup}.\n\n"
            f"Command: `{cmd.strip()}`\n\n" + markdown_table(rows))
    return section(title, body)


def make_train_step(model: nn.Module, batch_size: int, img_size: int, num_classes: int = 5,
                    channels_last: bool = False, device: str | torch.device = "cpu",
                    amp_dtype: torch.dtype | None = None, lr: float = 2e-4,
                    fused: bool | None = None, seed: int = 0,
                    optimizer: str = "adam") -> Callable[[], torch.Tensor]:
    """A closure doing one training step (forward, cross-entropy, backward, optimizer) on one fixed
    synthetic batch: the recipe's step without the loader, for timing the model alone.

    Returns the loss tensor without `.item()`, so timing does not add a host sync per step.
    `optimizer`: built by the engine's `make_optimizer`: "adam" (the source recipe), "adamw" (weight
    decay 0.05, as the modern recipe) or "sgd". `fused`: the optimizer's fused kernel on or off;
    None: as `depthbench train` chooses (`engine.optim.use_fused`, on for CPU and CUDA).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, img_size, img_size, generator=g)
    y = torch.randint(0, num_classes, (batch_size,), generator=g)
    device = torch.device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format).train()
    x = x.to(device=device, memory_format=memory_format)
    y = y.to(device)
    opt = make_optimizer(model, optimizer, lr, weight_decay=0.05 if optimizer == "adamw" else 0.0,
                         fused=fused)

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def markdown_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """A GitHub Markdown table of `rows` (dicts); columns default to the first row's keys."""
    if not rows:
        return "_(no rows)_\n"
    cols = list(columns) if columns is not None else list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0 or 0.01 <= abs(v) < 1e5:
            return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        return f"{v:.3g}"
    return str(v)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What a reader needs to judge a figure: CPU, cores, threads, load, versions, GPU."""
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    try:
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_line() -> str:
    """`machine_info()` as one Markdown line, printed under every section heading."""
    return "_Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()) + "_\n"


def section(title: str, body: str) -> str:
    return f"## {title}\n\n{machine_line()}\n{body.rstrip()}\n"


# --- models -------------------------------------------------------------------------------------

MODELS = list_models()
SHORT = {canonical: alias for alias, canonical in ALIASES.items()}  # the names tables print


def model_names(text: str) -> list[str]:
    """The canonical names of a comma-separated list of model names or aliases (`--models`)."""
    return [canonical(n.strip()) for n in text.split(",") if n.strip()]


def model_kwargs(name: str, img_size: int) -> dict[str, Any]:
    """Size keywords for `name` at `img_size`: Swin away from 224 takes depthbench's
    `default_window_size` (the last stage's grid, img_size // 32, for small images), so every stage
    tiles into whole windows; timm's Swin gets the same window."""
    if family_of(name) != "swin" or img_size == 224:
        return {}
    return {"img_size": img_size, "window_size": default_window_size(img_size)}


def build_model(name: str, img_size: int = 224, num_classes: int = 5, source: str = "depthbench",
                **kwargs: Any) -> nn.Module:
    """`name` (or an alias) from depthbench's registry, or from timm's (`source="timm"`: the same
    canonical names), sized for `img_size`."""
    kw = {**model_kwargs(name, img_size), **kwargs}
    if source == "timm":
        import timm  # on use: only the parity checks compare with timm, a heavy import

        return timm.create_model(canonical(name), num_classes=num_classes, **kw)
    return create_model(name, num_classes=num_classes, **kw)


def is_cnn(name: str) -> bool:
    return family_of(name) in ("resnet", "seresnet")


def train_flops_per_image(model: nn.Module, img_size: int, channels_last: bool = False) -> int:
    """FLOPs of one training step per image, forward + backward, counted by
    `torch.utils.flop_counter.FlopCounterMode` on a batch of 2 (matmul/conv FLOPs: the ones a
    GEMM peak bounds; the optimizer and elementwise ops are not counted)."""
    was_training = model.training
    model.train()
    x = torch.randn(2, 3, img_size, img_size)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() // 2
