"""Phase c of the GPU check (`benchmarks.gpu_check`): numerical checks on the device, in-process.

- logits against timm with the same (randomized) weights, every model of the check, fp32 with TF32
  off (CNNs also in channels_last);
- Swin's fused attention (`F.scaled_dot_product_attention`) against the explicit path: logits and
  every parameter's gradient, in fp32 and under bf16 autocast, and the time of a forward and
  backward pass of each;
- bf16 autocast against fp32 over 20 training steps of one batch (ResNet-18, Swin-T);
- a run stopped by SIGTERM after its first epoch and resumed against the same run uninterrupted
  (`depthbench.engine.trainer.train`, the modern recipe: its schedule and augmentation);
- `depthbench evaluate`, `predict` and `analyze` (the CLI's `main`) on that run.

On the CPU (`--dry-run`) every check runs at the dry run's sizes; the CUDA kernels themselves
(cuDNN, the fused SDPA kernels, TF32) are then not exercised, and a note says so.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import shutil
import signal
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file

from benchmarks._common import build_model, compare, is_cnn, make_train_step
from depthbench.cli.main import main as cli
from depthbench.engine.config import TrainConfig
from depthbench.engine.trainer import TrainingInterrupted, train
from depthbench.report.source import FLOWERS_COUNTS
from depthbench.testing.models import randomized

SWIN_T = "swin_tiny_patch4_window7_224"
LOGITS_TOL = 1e-3  # fp32 without TF32, relative to the largest logit (other kernels, other order)
ATTN_TOL = {"fp32": 1e-4, "bf16": 5e-2}
LOSS_TOL = 0.05  # bf16 against fp32: largest loss difference over the steps / the first loss
STEPS = 20


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """fp32 matrix products and convolutions without TF32 (the reference)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _row(check: str, model: str, ok: bool, value: str, t0: float, tol: str = "") -> dict:
    return {"check": check, "model": model, "status": "ok" if ok else "FAIL", "value": value,
            "tolerance": tol, "seconds": time.perf_counter() - t0}


def parity_rows(ctx) -> Iterator[dict]:
    """Our logits against timm's, same weights, every model of the check."""
    s, dev = ctx.s, ctx.device
    x = torch.randn(2, 3, s.img_size, s.img_size, generator=torch.Generator().manual_seed(1))
    for name in s.models:
        t0 = time.perf_counter()
        ref = build_model(name, s.img_size, num_classes=len(FLOWERS_COUNTS), source="timm")
        ours = build_model(name, s.img_size, num_classes=len(FLOWERS_COUNTS))
        weights = randomized(ref.state_dict())
        ref.load_state_dict(weights)
        ours.load_state_dict(weights)  # strict: the same keys and shapes
        ref, ours, xd = ref.to(dev).eval(), ours.to(dev).eval(), x.to(dev)
        with torch.no_grad(), strict_fp32():
            a, b = ours(xd), ref(xd)
            diffs = [(a - b).abs().max().item()]
            if is_cnn(name):  # the layout training uses on a GPU
                cl = ours.to(memory_format=torch.channels_last)
                diffs.append((cl(xd.to(memory_format=torch.channels_last)) - b).abs().max().item())
        scale = max(1.0, b.abs().max().item())
        value = f"largest difference {diffs[0]:.1e}" + (
            f" (channels_last {diffs[1]:.1e})" if len(diffs) > 1 else "")
        yield _row("logits vs timm", name, max(diffs) <= LOGITS_TOL * scale,
                   f"{value}; largest logit {b.abs().max().item():.2f}", t0,
                   f"{LOGITS_TOL:g} x max(1, largest logit)")
        del ref, ours


def attention_rows(ctx) -> Iterator[dict]:
    """Swin-T's fused attention against the explicit path: forward and backward."""
    s, dev = ctx.s, ctx.device
    batch = 16 if dev == "cuda" else 2
    torch.manual_seed(0)
    model = build_model(SWIN_T, s.img_size, num_classes=len(FLOWERS_COUNTS),
                        drop_path_rate=0.0).to(dev).train()  # no randomness between the paths
    x = torch.randn(batch, 3, s.img_size, s.img_size, device=dev)

    def pass_(fused: bool, dtype):
        model.set_fused_attn(fused)
        model.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(dev).type, dtype=dtype, enabled=dtype is not None):
            out = model(x)
        out.float().square().mean().backward()
        return out.float().detach(), torch.cat([p.grad.flatten() for p in model.parameters()
                                                 if p.grad is not None])

    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        t0 = time.perf_counter()
        with strict_fp32():
            (fo, fg), (eo, eg) = pass_(True, dtype), pass_(False, dtype)
        dl = ((fo - eo).abs().max() / eo.abs().max()).item()
        dg = ((fg - eg).abs().max() / eg.abs().max()).item()
        yield _row(f"fused vs explicit attention, {label}", SWIN_T,
                   max(dl, dg) <= ATTN_TOL[label],
                   f"logits {dl:.1e}, gradients {dg:.1e} (relative to the largest)", t0,
                   f"{ATTN_TOL[label]:g} relative")
    t0 = time.perf_counter()
    amp = torch.bfloat16 if dev == "cuda" else None
    n = 3 if dev == "cuda" else 1
    times = compare({"fused": lambda: pass_(True, amp), "explicit": lambda: pass_(False, amp)},
                    rounds=n, steps=n, warmup=1, device=dev)
    yield _row("fused vs explicit attention, time", SWIN_T, True,
               f"forward+backward, batch {batch}, {'bf16' if amp else 'fp32'}: fused "
               f"{1e3 * times['fused']:.1f} ms, explicit {1e3 * times['explicit']:.1f} ms "
               f"({times['explicit'] / times['fused']:.2f}x)", t0)
    model.set_fused_attn(True)


def precision_rows(ctx) -> Iterator[dict]:
    """bf16 autocast against fp32 (TF32 off): the loss of 20 steps on one batch (3 on a CPU)."""
    s, dev = ctx.s, ctx.device
    batch, steps = (32, STEPS) if dev == "cuda" else (4, 3)
    for name in ("resnet18", SWIN_T):
        t0 = time.perf_counter()
        torch.manual_seed(0)
        model = build_model(name, s.img_size, num_classes=len(FLOWERS_COUNTS), drop_path_rate=0.0)
        losses = {}
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            step = make_train_step(copy.deepcopy(model), batch, s.img_size, len(FLOWERS_COUNTS),
                                   channels_last=is_cnn(name) and dev == "cuda", device=dev,
                                   amp_dtype=dtype)
            with strict_fp32():
                losses[label] = [float(step()) for _ in range(steps)]
        a, b = losses["fp32"], losses["bf16"]
        worst = max(abs(x - y) for x, y in zip(a, b)) / a[0]
        yield _row(f"bf16 vs fp32 loss, {steps} steps", name, worst <= LOSS_TOL,
                   f"largest difference {worst:.1e} of the first loss; fp32 {a[0]:.3f} -> "
                   f"{a[-1]:.3f}, bf16 {b[0]:.3f} -> {b[-1]:.3f}", t0,
                   f"{LOSS_TOL:g} of the first loss")


def resume_rows(ctx, runs: dict) -> Iterator[dict]:
    """A run stopped by SIGTERM after epoch 1 and resumed, against the same run uninterrupted;
    `runs["full"]` is then the uninterrupted run's folder (for `cli_rows`)."""
    t0 = time.perf_counter()
    cuda = ctx.device == "cuda"
    cfg = TrainConfig.for_recipe(
        "modern", model="resnet18", data=str(ctx.data), img_size=64 if cuda else ctx.s.img_size,
        epochs=2, warmup_epochs=1, batch_size=32 if cuda else ctx.s.batch_size, lr=1e-3,
        val=ctx.s.val,
        test=0.0, limit_train_batches=4 if cuda else 2, quiet=True,
        accelerator="gpu" if cuda else "cpu")
    full, part = ctx.work / "c" / "full", ctx.work / "c" / "part"
    for d in (full, part):
        shutil.rmtree(d, ignore_errors=True)
    train(cfg, full, progress=False, resume=False)
    runs["full"] = full

    def stop_after_first_epoch(row):
        if row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the real signal path

    stopped = False
    try:
        train(cfg, part, progress=stop_after_first_epoch, resume=False)
    except TrainingInterrupted:
        stopped = True
    train(cfg, part, progress=False, resume=True)

    def rows(run: Path) -> list[dict]:
        with open(run / "metrics.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]

    a, b = load_file(str(full / "best.safetensors")), load_file(str(part / "best.safetensors"))
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    same = rows(full) == rows(part)
    yield _row("resume equals uninterrupted", "resnet18", stopped and same and diff == 0,
               f"stopped by SIGTERM after epoch 1: {stopped}; metrics.csv rows equal: {same}; "
               f"best weights differ by at most {diff:.1e}", t0, "equal (bitwise weights)")


def cli_rows(ctx, run: Path) -> Iterator[dict]:
    """`depthbench evaluate`, `predict` and `analyze` on `run`, through the CLI's main."""
    def call(*args) -> tuple[int, str]:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = cli([str(a) for a in args])
        return rc, buf.getvalue()

    best = run / "best.safetensors"
    want = json.loads((run / "result.json").read_text(encoding="utf-8"))["best"]["val"]
    t0 = time.perf_counter()
    rc, out = call("evaluate", best, "--data", ctx.data, "--split", "val", "--json")
    doc = json.loads(out) if rc == 0 else {}
    yield _row("evaluate", "resnet18", rc == 0 and (doc.get("correct"), doc.get("total"))
               == (want["correct"], want["total"]),
               f"exit {rc}; {doc.get('correct')}/{doc.get('total')} against the run's "
               f"{want['correct']}/{want['total']}", t0, "the run's best val count")
    t0 = time.perf_counter()
    split = json.loads((run / "split.json").read_text(encoding="utf-8"))
    images = [ctx.data / e["path"] for e in split["entries"] if e["split"] == "val"][:4]
    rc, out = call("predict", best, *images, "--top-k", "2", "--json")
    preds = json.loads(out) if rc == 0 else []
    ok = rc == 0 and len(preds) == len(images) and all(
        p["top"][0]["class"] in FLOWERS_COUNTS and p["top"][0]["prob"] >= p["top"][1]["prob"]
        for p in preds)
    yield _row("predict", "resnet18", ok, f"exit {rc}; {len(preds)} of {len(images)} images "
               "with a top-2 of the run's classes", t0)
    t0 = time.perf_counter()
    rc, _ = call("analyze", run, "--images", 16, "--json")
    yield _row("analyze", "resnet18", rc == 0 and (run / "analysis.json").is_file(),
               f"exit {rc}; analysis.json written: {(run / 'analysis.json').is_file()}", t0)


def phase_c(ctx) -> None:
    runs: dict = {}
    checks = [("logits vs timm", lambda: parity_rows(ctx)),
              ("fused vs explicit attention", lambda: attention_rows(ctx)),
              ("bf16 vs fp32", lambda: precision_rows(ctx)),
              ("resume", lambda: resume_rows(ctx, runs)),
              ("evaluate, predict, analyze",
               lambda: cli_rows(ctx, runs["full"]) if "full" in runs else iter(()))]
    for name, rows in checks:
        if ctx.left() < 15:
            ctx.tables.note("c", f"{name}: skipped, {max(0.0, ctx.left()):.0f} s left")
            continue
        try:
            for row in rows():
                ctx.tables.add("c", row)
        except Exception as e:  # a failed check is a row; the next check still runs
            ctx.tables.add("c", {"check": name, "model": "", "status": "ERROR",
                                 "value": f"{type(e).__name__}: {str(e)[:200]}"})
            ctx.log_failure(f"c {name}", text=traceback.format_exc())
    if ctx.device != "cuda":
        ctx.tables.note("c", "on the CPU: every check ran at the dry run's sizes; the CUDA "
                             "kernels (cuDNN, fused SDPA, TF32) were not exercised")
