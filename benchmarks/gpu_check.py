"""The GPU check: depthbench itself on one GPU, its tables written as it goes. Run it through
`benchmarks/gpu.sh` (BENCHMARKS.md, "The GPU check": the command).

    python -m benchmarks.gpu_check [--phases a,b,c,d] [--merge FILE] [--deadline-s S] [--out DIR]
    python -m benchmarks.gpu_check --dry-run     # the CPU at tiny sizes: every code path, no figures

On a generated flowers-shaped folder (`benchmarks.flowers`: the source's classes and counts, JPEGs
of 320x240):
a. `depthbench train` end to end, one subprocess a run: 3 epochs at 224 px, batch 128, the paper's
   split (10% val, 10% test), recipes source and modern, every model. From the run's own records
   (result.json, rewritten after every epoch with its clock, read as it goes; metrics.csv) and a
   pure step loop on device-resident data in this process (the run's model, optimizer, precision
   and memory format): each epoch's wall time against its compute, the per-epoch overhead, the
   run's setup, final evaluation and process start, images/s and peak memory.
b. `depthbench run` of the paper preset at 2 epochs and one seed (a sub-grid by default: the
   time), `--jobs 1` against `--jobs auto`: wall time.
c. numerical checks on the device (`benchmarks.gpu_parity`): logits against timm, fused against
   explicit Swin attention, bf16 against fp32 over 20 steps, resume against uninterrupted,
   evaluate / predict / analyze on one run.
d. the paper and modern grids' projected wall time from a's rates and b's packing.

Tables: gpu_check.md and gpu_check.json in $OUT (else --out, else WORK/out), rewritten after every
row, so a run cut short (gpu.sh's time limit sends SIGINT) leaves what it measured; failing runs'
log tails go to gpu_check.log there. `--merge FILE` adds an earlier command's rows (the first of
two commands); phase a then skips the runs measured there. Phases run in the order given.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from benchmarks import gpu_parity
from benchmarks._common import MODELS, SHORT, machine_info, markdown_table, model_names, sync
from benchmarks.flowers import make_flowers_folder
from depthbench.configio import preset_path
from depthbench.engine.config import TrainConfig
from depthbench.engine.devices import default_channels_last, resolve_precision
from depthbench.engine.optim import build_optimizer
from depthbench.engine.record import package_version
from depthbench.models import create_model
from depthbench.models.complexity import macs_224
from depthbench.report.source import FLOWERS_COUNTS
from depthbench.study.grid import plan_runs
from depthbench.study.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
PHASES = {"a": "`depthbench train` end to end", "b": "`depthbench run --preset paper`: --jobs 1 "
          "against --jobs auto", "c": "numerical checks on the device",
          "d": "projected wall time of the preset grids"}


@functools.cache
def gmacs(model: str) -> float:
    """GMACs at 224 px (meta device): the order of a phase's runs and a guess of a run's cost
    before it ran."""
    return macs_224(model) / 1e9


@dataclass(frozen=True)
class Sizes:
    img_size: int
    batch_size: int
    epochs: int
    images: int  # the generated folder
    photo: tuple[int, int]
    models: tuple[str, ...]
    recipes: tuple[str, ...]
    pairs: bool  # a: each model with one recipe in turn (the dry run) instead of every pair
    val: float
    test: float
    study_models: tuple[str, ...]
    study_epochs: int
    warmup: int  # the pure step loop
    steps: int
    limit_batches: int | None = None  # --limit-train-batches (the dry run)


GPU = Sizes(224, 128, 3, sum(FLOWERS_COUNTS.values()), (320, 240), tuple(MODELS), ("source", "modern"), False, 0.1, 0.1,
            ("resnet18", "swin_tiny_patch4_window7_224"), 2, 3, 10)
DRY = Sizes(32, 8, 2, 60, (64, 48), ("resnet18", "swin_tiny_patch4_window7_224"),
            ("source", "modern"), True, 0.2, 0.2, ("resnet18",), 1, 1, 2, limit_batches=2)


def short(model: str) -> str:
    return SHORT.get(model, model)


# --- the tables ------------------------------------------------------------------------------

class Tables:
    """Rows by phase, rewritten to gpu_check.md and gpu_check.json in `out` after every change."""

    def __init__(self, out: Path, header: dict):
        self.out, self.header = out, header
        self.rows: dict[str, list[dict]] = {p: [] for p in PHASES}
        self.notes: dict[str, list[str]] = {p: [] for p in PHASES}
        self.merged: list[dict] = []
        self.status = "running"
        out.mkdir(parents=True, exist_ok=True)

    def merge(self, path: Path) -> None:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        self.merged.append({"file": str(path), **doc.get("header", {})})
        for p, rows in doc.get("rows", {}).items():
            for row in rows:
                self.add(p, {**row, "from": Path(path).name} if "from" not in row else row,
                         write=False)

    def add(self, phase: str, row: dict, write: bool = True) -> dict:
        """Add `row`, replacing a row of the same key (a: model and recipe; b: jobs; c: check)."""
        key = [k for k in ("model", "recipe", "jobs", "check", "preset") if k in row]
        rows = self.rows[phase]
        rows[:] = [r for r in rows if [r.get(k) for k in key] != [row[k] for k in key]] + [row]
        if write:
            self.write()
        return row

    def note(self, phase: str, text: str) -> None:
        print(f"gpu_check: {phase}: {text}", flush=True)
        self.notes[phase].append(text)
        self.write()

    def ok_rows(self, phase: str) -> list[dict]:
        return [r for r in self.rows[phase] if r.get("status") == "ok"]

    def write(self) -> None:
        doc = {"header": self.header, "status": self.status, "merged": self.merged,
               "rows": self.rows, "notes": self.notes}
        _atomic(self.out / "gpu_check.json", json.dumps(doc, indent=1, default=str) + "\n")
        _atomic(self.out / "gpu_check.md", self.markdown())

    def markdown(self) -> str:
        h = self.header
        lines = [f"# GPU check{' (DRY RUN on the CPU: the numbers mean nothing)' if h['dry_run'] else ''}",
                 "", f"_{h['device']}; torch {h['torch']}, CUDA {h['cuda']}; {h['cpus']} CPUs; "
                 f"git {h['git']}; started {h['started']}; status: **{self.status}**._", "",
                 "_" + ", ".join(f"{k} {v}" for k, v in h.get("versions", {}).items()) + "._",
                 "",
                 f"Command: `{h['command']}`", ""]
        lines += [f"_Rows from `{m['file']}` (started {m.get('started')}, {m.get('device')})._\n"
                  for m in self.merged]
        for p, title in PHASES.items():
            if not self.rows[p] and not self.notes[p]:
                continue
            lines += [f"## {p}. {title}", "", HELP[p], ""]
            if self.rows[p]:
                lines.append(markdown_table(self.rows[p], _columns(self.rows[p])))
            lines += [f"- {n}" for n in self.notes[p]] + [""]
        return "\n".join(lines)


def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols and not k.startswith("_")]
    return cols


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


HELP = {
    "a": "One `depthbench train` subprocess a row. _epoch s_: an epoch's training and "
         "validation, metrics.csv's `seconds` (the median of the epochs after the first); "
         "_compute s_: the same epoch's steps and validation batches timed back to back in a "
         "pure loop on one device-resident batch (the run's model options, optimizer, loss, "
         "precision, memory format; TF32 and cudnn.benchmark on); _epoch/compute_: the goal is "
         "<= 1.1; _overhead s_: epoch minus compute; _writes s_: the rest of the training, "
         "checkpoint flushes and records (_training s_, from the run's record at 0 epochs to its "
         "record at the end of training by the clock result.json carries, minus the epochs' "
         "seconds; a 3-epoch run flushes at least after its first epoch and at its end); "
         "_setup s_: start of `train` to its first record (data, model; the first run of a "
         "recipe also decodes the images into the cache); _final s_: the final evaluations; "
         "_outside s_: process start, imports and exit; _peak MiB_: the run's "
         "`costs.peak_memory_mb` (torch.cuda.max_memory_allocated in the trainer; max RSS on a "
         "CPU); _train img/s_: the run's `costs.train_images_per_s`; _batches_, _tf32_, "
         "_cudnn_benchmark_: the run's provenance, where the trainer records them.",
    "b": "The paper preset at the epochs and models shown (one seed, `--no-analyze`), trained "
         "twice into fresh folders: `--jobs 1`, then `--jobs auto`. _wall s_: the whole "
         "`depthbench run` command.",
    "c": "In this process, on the device. Tolerances: logits and attention in fp32 with TF32 "
         "off; bf16 against fp32 as the largest relative loss difference over the steps.",
    "d": "Each run of the preset, one after another: _outside_ + _setup_ + _final_ + epochs x "
         "_epoch s_ of its model and recipe in a (variants at their base model's rate; epochs "
         "scaled by the preset's training images over a's); _no writes_: nothing else (a "
         "checkpoint cadence's ideal); _writes as measured_: plus a's _writes s_ per epoch for "
         "every epoch (as if every epoch flushed as often as a's 3); _at compute_: epochs x "
         "_compute s_; _packed_: _no writes_ divided by b's speed-up of --jobs auto.",
}


# --- children: `depthbench` subprocesses ------------------------------------------------------

@dataclass
class Ctx:
    args: argparse.Namespace
    s: Sizes
    device: str
    work: Path
    data: Path
    env: dict
    tables: Tables
    deadline: float
    logfile: Path
    python: str = sys.executable
    children: list = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, phase: str, what: str, estimate: float | None) -> bool:
        """Whether `estimate` seconds are left (no estimate: yes); if not, a note says so."""
        if estimate is None or estimate < self.left():
            return True
        self.tables.note(phase, f"{what}: skipped, about {estimate:.0f} s needed and "
                                f"{max(0.0, self.left()):.0f} s left before the deadline")
        return False

    def log_failure(self, what: str, log: Path | None = None, text: str = "") -> str:
        """Append `log`'s tail (or `text`) to gpu_check.log; its last line."""
        body = text or (log.read_text(encoding="utf-8", errors="replace") if log and log.exists()
                        else "")
        tail = body.strip().splitlines()[-40:]
        with open(self.logfile, "a", encoding="utf-8") as f:
            f.write(f"=== {what}\n" + "\n".join(tail) + "\n")
        return tail[-1][:200] if tail else "no output"


def depthbench(ctx: Ctx, *args: str) -> list[str]:
    return [ctx.python, "-m", "depthbench", *map(str, args)]


def run_child(ctx: Ctx, cmd: list[str], log: Path, record: Path | None = None,
              stdout: Path | None = None) -> tuple[int, float, dict]:
    """Run `cmd` in its own session (stderr, and stdout unless `stdout`, to `log`): (exit status,
    wall seconds, {epochs completed or "final": the record's `provenance.seconds`}), the stamps
    read from `record` (a result.json) as the child rewrites it."""
    stamps: dict = {}
    t0 = time.perf_counter()
    with open(log, "w") as err, open(stdout or os.devnull, "w") as out:
        p = subprocess.Popen(cmd, stdout=out if stdout else err, stderr=err, env=ctx.env,
                             cwd=ROOT, start_new_session=True)
        ctx.children.append(p)
        try:
            while p.poll() is None:
                _stamp(record, stamps)
                time.sleep(0.1)
        finally:
            stop_children(ctx)
    _stamp(record, stamps)
    return p.returncode, time.perf_counter() - t0, stamps


def _stamp(record: Path | None, stamps: dict) -> None:
    if record is None:
        return
    try:
        doc = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    key = "final" if doc.get("status") == "finished" else doc.get("epochs_completed")
    stamps.setdefault(key, (doc.get("provenance") or {}).get("seconds"))


def stop_children(ctx: Ctx) -> None:
    """SIGTERM (a trainer's clean stop), then SIGKILL, to every child still running."""
    for p in list(ctx.children):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        ctx.children.remove(p)


# --- a. `depthbench train` end to end -----------------------------------------------------------

COMPILED = "+compile"  # a recipe's runs with `--compile` (torch.compile), `--compile-models`


def phase_a_runs(s: Sizes, compiled: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(model, recipe) in the order phase a trains them: source then modern, cheaper models
    first; then the `--compile` runs (source recipe)."""
    if s.pairs:
        runs = list(zip(s.models, itertools.cycle(s.recipes)))
    else:
        runs = [(m, r) for r in s.recipes for m in sorted(s.models, key=gmacs)]
    return runs + [(m, "source" + COMPILED) for m in compiled]


def phase_a(ctx: Ctx) -> None:
    done = {(r["model"], r["recipe"]) for r in ctx.tables.ok_rows("a")}
    took: dict[str, float] = {}  # model: seconds of its row (this command's or a merged one's)
    for r in ctx.tables.ok_rows("a"):
        took[r["model"]] = max(took.get(r["model"], 0.0), r["process s"] * 1.2)
    last = None
    for model, recipe in phase_a_runs(ctx.s, ctx.args.compile_models):
        if (short(model), recipe) in done:
            continue
        est = took.get(short(model)) if COMPILED not in recipe else None
        if est is None and last is not None:  # a larger model takes at least as long
            est = last[1] * max(1.0, gmacs(model) / gmacs(last[0]))
        if not ctx.fits("a", f"{short(model)} {recipe}", est):
            continue
        t0 = time.perf_counter()
        try:
            row = ctx.tables.add("a", train_row(ctx, model, recipe))
        except KeyboardInterrupt:  # the time limit: say which run it stopped
            ctx.tables.add("a", {"model": short(model), "recipe": recipe,
                                 "status": f"cut short after {time.perf_counter() - t0:.0f} s"})
            raise
        last = (model, time.perf_counter() - t0)
        took[short(model)] = max(took.get(short(model), 0.0), last[1])
        ratio = row.get("epoch/compute")
        print(f"gpu_check: a: {short(model)} {recipe}: {row.get('status')}"
              + (f", epoch/compute {ratio:.2f}" if ratio else "") + f" ({last[1]:.0f} s)",
              flush=True)


def train_row(ctx: Ctx, model: str, recipe: str) -> dict:
    s = ctx.s
    base = recipe.removesuffix(COMPILED)
    run = ctx.work / "a" / f"{short(model)}__{recipe.replace('+', '-')}"
    shutil.rmtree(run, ignore_errors=True)
    log = ctx.work / "logs" / f"a-{run.name}.log"
    cmd = depthbench(ctx, "train", "--model", model, "--data", ctx.data, "--out", run,
                     "--recipe", base, "--epochs", s.epochs, "--batch-size", s.batch_size,
                     "--img-size", s.img_size, "--val", s.val, "--test", s.test, "--seed", 0,
                     "--quiet", "--accelerator", "gpu" if ctx.device == "cuda" else "cpu",
                     *(("--limit-train-batches", s.limit_batches) if s.limit_batches else ()),
                     *(("--compile",) if recipe != base else ()))
    rc, wall, stamps = run_child(ctx, cmd, log, record=run / "result.json")
    row = {"model": short(model), "recipe": recipe}
    if rc != 0:
        return {**row, "status": f"exit {rc}", "note": ctx.log_failure(f"a {model} {recipe}", log)}
    result = json.loads((run / "result.json").read_text(encoding="utf-8"))
    with open(run / "metrics.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    prov = result.get("provenance") or {}
    rates = compute_rates(model, base, s, ctx.device)  # eager, also for a --compile run
    if ctx.device == "cuda":
        torch.cuda.empty_cache()  # the next run's memory is its own
    return {**row, "status": "ok", **epoch_figures(s, stamps, epochs, rates, wall),
            "train img/s": result["costs"]["train_images_per_s"],
            "step img/s": s.batch_size / rates["step_s"],
            "eval img/s": s.batch_size / rates["eval_s"],
            "peak MiB": result["costs"]["peak_memory_mb"],
            "best val acc": ((result.get("best") or {}).get("val") or {}).get("accuracy"),
            "precision": result["config"].get("precision"),
            **{k: prov[k] for k in ("batches", "tf32", "cudnn_benchmark") if k in prov}}


def epoch_figures(s: Sizes, stamps: dict, epochs: list[dict], rates: dict, wall: float) -> dict:
    """An epoch (metrics.csv's `seconds`: training and validation; after the first, the median)
    against its compute, and the rest of the run's time from the stamps `run_child` read. The
    trainer rewrites result.json at the start, at each checkpoint flush and at the end of
    training, so the stamps at 0 and n epochs bound the training; what it spent outside the
    epochs there (flushes, records) is the difference."""
    n = len(epochs)
    start, end, final = stamps.get(0), stamps.get(n), stamps.get("final")
    metric = [float(r["seconds"]) for r in epochs]
    train_n, val_n = int(epochs[0]["train_total"]), int(epochs[0]["val_total"])
    compute = (train_n * rates["step_s"] + val_n * rates["eval_s"]) / s.batch_size
    epoch = statistics.median(metric[1:] or metric)
    training = end - start if start is not None and end is not None else None
    return {"epochs": n, "epoch s": epoch, "compute s": compute, "epoch/compute": epoch / compute,
            "overhead s": epoch - compute, "first epoch s": metric[0],
            "writes s": training - sum(metric) if training is not None else None,
            "training s": training, "setup s": start,
            "final s": final - end if final is not None and end is not None else None,
            "outside s": wall - final if final is not None else None, "process s": wall,
            "train n": train_n, "val n": val_n}


def compute_rates(model: str, recipe: str, s: Sizes, device: str) -> dict:
    """Seconds per training step and per validation batch of `model` under `recipe`'s optimizer,
    loss, precision and memory format, on one device-resident batch: steps back to back, one
    sync at the end (what an epoch would take if nothing but the model ran)."""
    if device == "cuda":  # the fastest the device offers: compute is the lower bound
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    cfg = TrainConfig.for_recipe(recipe, model=model, data="synthetic", img_size=s.img_size,
                                 batch_size=s.batch_size, epochs=s.epochs).resolved()
    precision = resolve_precision(cfg.precision, device)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    torch.manual_seed(0)
    net = create_model(cfg.model, num_classes=len(FLOWERS_COUNTS), **cfg.model_kwargs())
    cl = cfg.channels_last if cfg.channels_last is not None else default_channels_last(
        net, device, s.img_size)
    fmt = torch.channels_last if cl else torch.contiguous_format
    net = net.to(device=device, memory_format=fmt).train()
    opt = build_optimizer(net, cfg)
    x = torch.randn(s.batch_size, 3, s.img_size, s.img_size, device=device).to(memory_format=fmt)
    y = torch.randint(0, len(FLOWERS_COUNTS), (s.batch_size,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            logits = net(x)
        F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing).backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()

    @torch.inference_mode()
    def infer():
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            net(x).argmax(1)

    out = {"step_s": _per_call(step, s, device)}
    net.eval()
    out["eval_s"] = _per_call(infer, s, device)
    return out  # the model and its batch go with this frame; the caller empties the cache


def _per_call(fn, s: Sizes, device: str) -> float:
    for _ in range(s.warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(s.steps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / s.steps


# --- b. `depthbench run`: --jobs 1 against --jobs auto --------------------------------------

def phase_b(ctx: Ctx) -> None:
    auto = ctx.args.auto_jobs
    if auto == "auto" and subprocess.run(depthbench(ctx, "run", "--jobs", "auto", "--help"),
                                         capture_output=True, env=ctx.env, cwd=ROOT).returncode:
        ctx.tables.note("b", "skipped: this depthbench's `run` has no `--jobs auto` yet (the "
                             "`--jobs` flag takes numbers only); phase b compares it with "
                             "--jobs 1")
        return
    study = write_study(ctx)
    for jobs in ("1", auto):
        if not ctx.fits("b", f"--jobs {jobs}", study_estimate(ctx, jobs)):
            continue
        t0 = time.perf_counter()
        try:
            ctx.tables.add("b", study_row(ctx, study, jobs))
        except KeyboardInterrupt:  # the time limit: say which command it stopped
            ctx.tables.add("b", {"jobs": jobs, "status": "cut short after "
                                                         f"{time.perf_counter() - t0:.0f} s"})
            raise
    rows = {r["jobs"]: r for r in ctx.tables.ok_rows("b")}
    if "1" in rows and auto in rows:
        ctx.tables.note("b", f"--jobs {auto} took {rows[auto]['wall s'] / rows['1']['wall s']:.2f}"
                             f"x the wall time of --jobs 1 (speed-up "
                             f"{rows['1']['wall s'] / rows[auto]['wall s']:.2f}x)")


def write_study(ctx: Ctx) -> Path:
    """The paper preset at the check's epochs and models, one seed: a study file in WORK."""
    spec = yaml.safe_load(preset_path("paper").read_text(encoding="utf-8"))
    s = ctx.s
    spec.update(name="paper-gpu-check", data=str(ctx.data), seeds=1,
                models=list(ctx.args.study_models or s.study_models))
    spec["overrides"]["epochs"] = s.study_epochs
    if ctx.args.dry_run:  # tiny: the dry run's size and split, no ablation variants
        spec.update(img_size=s.img_size, split={"val": s.val, "test": s.test, "seed": 0},
                    variants={})
        spec["overrides"].update(batch_size=s.batch_size, limit_train_batches=s.limit_batches)
    path = ctx.work / "paper-gpu-check.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def study_estimate(ctx: Ctx, jobs: str) -> float | None:
    """Seconds of the study one run after another, from phase a's rows (None: not measured)."""
    rows = {r["model"]: r for r in ctx.tables.ok_rows("a") if r["recipe"] == "source"}
    models = ctx.args.study_models or ctx.s.study_models
    if not all(short(m) in rows for m in models):
        return None
    total = 0.0
    for m in models:
        r = rows[short(m)]
        runs = 2 if (m.startswith("se") or "swin" in m) and not ctx.args.dry_run else 1  # + variant
        total += runs * (r["process s"] - (r["epochs"] - ctx.s.study_epochs) * r["epoch s"])
    return total if jobs == "1" else total / 2


def study_row(ctx: Ctx, study: Path, jobs: str) -> dict:
    folder = ctx.work / "b" / f"jobs-{jobs}"
    shutil.rmtree(folder, ignore_errors=True)
    log, out = ctx.work / "logs" / f"b-jobs-{jobs}.log", ctx.work / "logs" / f"b-jobs-{jobs}.json"
    rc, wall, _ = run_child(ctx, depthbench(ctx, "run", "--config", study, "--out", folder,
                                            "--jobs", jobs, "--no-analyze", "--json"),
                            log, stdout=out)
    row = {"jobs": jobs, "models": ",".join(short(m) for m in
                                            ctx.args.study_models or ctx.s.study_models),
           "epochs": ctx.s.study_epochs}
    try:
        doc = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = None
    if rc != 0 or doc is None:
        return {**row, "status": f"exit {rc}", "note": ctx.log_failure(f"b --jobs {jobs}", log)}
    return {**row, "status": "ok", "runs": doc["runs"], "finished": len(doc["finished"]),
            "wall s": wall, "s per run": wall / max(1, doc["runs"])}


# --- d. projection -------------------------------------------------------------------------------

def split_train(val: float, test: float) -> int:
    """Training images of flower_photos under the per-class `int(n * f)` rule."""
    return sum(n - int(n * val) - int(n * test) for n in FLOWERS_COUNTS.values())


def phase_d(ctx: Ctx) -> None:
    rates = {(r["model"], r["recipe"]): r for r in ctx.tables.ok_rows("a")}
    b = {r["jobs"]: r for r in ctx.tables.ok_rows("b")}
    auto = ctx.args.auto_jobs
    speedup = b["1"]["wall s"] / b[auto]["wall s"] if "1" in b and auto in b else None
    for preset in ("paper", "modern"):
        spec = load_spec(preset=preset, data=str(ctx.data))
        runs = plan_runs(spec)
        serial = compute = writes = 0.0
        missing = set()
        for run in runs:
            cfg = run.train_config()
            r = rates.get((short(cfg.model), cfg.recipe))
            if r is None:
                missing.add(short(cfg.model))
                continue
            scale = split_train(spec.split.val, spec.split.test) / r["train n"]
            fixed = sum(r[k] or 0.0 for k in ("outside s", "setup s", "final s"))
            serial += fixed + cfg.epochs * r["epoch s"] * scale
            writes += cfg.epochs * (r["writes s"] or 0.0) / r["epochs"]
            compute += cfg.epochs * r["compute s"] * scale
        measured = len(runs) - sum(1 for run in runs if short(run.train_config().model) in missing)
        ctx.tables.add("d", {
            "preset": preset, "runs": len(runs), "projected runs": measured,
            "epochs": runs[0].train_config().epochs if runs else None,
            "no writes h": serial / 3600, "writes as measured h": (serial + writes) / 3600,
            "at compute h": compute / 3600,
            "packed h": serial / speedup / 3600 if speedup else "no b figures",
            "not measured": ", ".join(sorted(missing)) or "-"})


# --- driver ----------------------------------------------------------------------------------

def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true",
                   help="the CPU at tiny sizes (32 px, 100 images, 2 epochs, 2 models): checks "
                        "every code path; the numbers mean nothing")
    p.add_argument("--quick", action="store_true", help="same as --dry-run (`python -m benchmarks`)")
    p.add_argument("--phases", default="a,b,c,d", help="in this order (default a,b,c,d)")
    p.add_argument("--merge", type=Path, action="append", default=[],
                   help="gpu_check.json of an earlier command: its rows join these tables")
    p.add_argument("--deadline-s", type=float, default=None,
                   help="start nothing that would end after this many seconds (gpu.sh sets it "
                        "from its time limit); default none")
    p.add_argument("--out", type=Path, default=None, help="tables folder (default $OUT, else "
                                                          "WORK/out)")
    p.add_argument("--work", type=Path, default=None,
                   help="images, runs and logs (default /tmp/depthbench-gpu-check; dry run: a "
                        "temporary folder)")
    p.add_argument("--models", default="", help="phase a and c's models (default: every model)")
    p.add_argument("--recipes", default="", help="phase a's recipes (default source,modern)")
    p.add_argument("--epochs", type=int, default=None, help="phase a's epochs (default 3)")
    p.add_argument("--compile-models", default="",
                   help="phase a also trains these with --compile (source recipe; after the "
                        "others; default none: compiling takes minutes of a 15-minute loan)")
    p.add_argument("--study-models", default="",
                   help="phase b's models (default resnet18,swin_t: with Swin-T's key-dropout "
                        "variant, 3 runs); 'all' for every model of the preset")
    p.add_argument("--auto-jobs", default="auto",
                   help="what phase b compares with --jobs 1 (default auto)")
    return p


def _names(text: str) -> tuple[str, ...]:
    return tuple(model_names(text))


def sizes_from(a: argparse.Namespace) -> Sizes:
    s = DRY if a.dry_run else GPU
    if a.models:
        s = replace(s, models=_names(a.models))
    if a.recipes:
        s = replace(s, recipes=tuple(r.strip() for r in a.recipes.split(",") if r.strip()))
    if a.epochs:
        s = replace(s, epochs=a.epochs)
    a.study_models = tuple(MODELS) if a.study_models == "all" else _names(a.study_models)
    a.compile_models = _names(a.compile_models)
    return s


def header(a: argparse.Namespace, argv: list[str], device: str) -> dict:
    info = machine_info()
    try:  # the GPU machine's copy of the tree may come without git or .git
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=ROOT).stdout.strip() or "?"
    except OSError:
        git = "?"
    dev = (f"{torch.cuda.get_device_name(0)} (capability "
           f"{'.'.join(map(str, torch.cuda.get_device_capability(0)))})"
           if device == "cuda" else f"CPU: {info['cpu']}")
    versions = {d: package_version(d) for d in ("torchvision", "lightning", "timm", "numpy",
                                                "pydantic")}
    return {"device": dev, "torch": torch.__version__, "cuda": torch.version.cuda, "git": git,
            "versions": versions,
            "cpus": len(os.sched_getaffinity(0)), "dry_run": a.dry_run,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python -m benchmarks.gpu_check " + " ".join(argv)}


def make_ctx(a: argparse.Namespace, argv: list[str], s: Sizes, device: str) -> Ctx:
    work = a.work or (Path(tempfile.mkdtemp(prefix="depthbench-gpu-check-")) if a.dry_run
                      else Path("/tmp/depthbench-gpu-check"))
    out = a.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else work / "out")
    (work / "logs").mkdir(parents=True, exist_ok=True)
    tables = Tables(out, header(a, argv, device))
    for path in a.merge:
        tables.merge(path)
    env = {**os.environ, "DEPTHBENCH_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
    if a.dry_run:  # one thread: OpenMP threads of several processes on a few cores wait on each other
        env["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)]
                                        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.environ["DEPTHBENCH_CACHE"] = env["DEPTHBENCH_CACHE"]  # this process's runs (phase c)
    deadline = time.monotonic() + (a.deadline_s if a.deadline_s else 10**9)
    t0 = time.perf_counter()
    data = make_flowers_folder(work / "flowers", s.images, s.photo)
    print(f"gpu_check: {data}: {s.images} images of {s.photo[0]}x{s.photo[1]} ready in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return Ctx(a, s, device, work, data, env, tables, deadline, out / "gpu_check.log")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    a = get_args_parser().parse_args(argv)
    a.dry_run = a.dry_run or a.quick
    if not a.dry_run and not torch.cuda.is_available():
        print(f"error: the GPU check needs a CUDA GPU and torch {torch.__version__} sees none; "
              "pass --dry-run to check it on the CPU", file=sys.stderr)
        return 1
    device = "cpu" if a.dry_run else "cuda"
    phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    if bad := [p for p in phases if p not in PHASES]:
        print(f"error: --phases {','.join(bad)}: choose from {','.join(PHASES)}", file=sys.stderr)
        return 2
    ctx = make_ctx(a, argv, sizes_from(a), device)
    run = {"a": phase_a, "b": phase_b, "c": gpu_parity.phase_c, "d": phase_d}
    failed, phase = [], None
    try:
        for phase in phases:
            t0 = time.perf_counter()
            try:
                run[phase](ctx)
            except Exception as e:  # one broken phase must not hide the others' figures
                failed.append(phase)
                ctx.tables.note(phase, f"FAILED: {type(e).__name__}: {str(e)[:300]} "
                                       "(traceback in gpu_check.log)")
                ctx.log_failure(f"phase {phase}", text=traceback.format_exc())
            ctx.tables.note(phase, f"phase {phase} took {time.perf_counter() - t0:.0f} s")
        ctx.tables.status = "finished" + (f", phases {','.join(failed)} failed" if failed else "")
        rc = 1 if failed else 0
    except KeyboardInterrupt:  # gpu.sh's time limit: stop the child, keep every row so far
        stop_children(ctx)
        ctx.tables.status = f"cut short by the time limit during phase {phase}"
        rc = 3
    ctx.tables.write()
    print(f"gpu_check: {ctx.tables.status}; tables in {ctx.tables.out}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
