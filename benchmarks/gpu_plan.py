"""The GPU plan: every model's training throughput on one GPU, the loader at that rate, and the
projected wall time of the `paper` preset. Run it through `benchmarks/gpu.sh` (≤ 5 minutes).

    python -m benchmarks.gpu_plan [--compile-models resnet50,swin_t] [--budget-s 200]
    python -m benchmarks.gpu_plan --dry-run       # tiny sizes on the CPU: checks the script works

Per model (224 px, batch 128, bf16 autocast, channels_last for the CNNs, Adam, cudnn.benchmark):
training images/s (median step of a few after warm-up), inference images/s, and
`torch.cuda.max_memory_allocated`. For the models in `--compile-models`, the same with
`torch.compile(model)` and its compile time (skipped once the time budget is spent). The loader is
depthbench's own cached dataset (`build_datasets` on generated images, its DataLoader settings
for a GPU) read at batch 128 and copied to the device. The projection per run is
`epochs x (train images / min(train rate, loader rate) + val images / inference rate)` plus the
final evaluations, for the source protocol (3,306 train / 364 val) and for the grid and split of
`--preset paper` (read from the preset). Figures come from few steps: a plan, not a benchmark to quote to two digits.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time

import torch

from benchmarks._common import (
    MODELS,
    SHORT,
    SHORT_TO_TIMM,
    build_model,
    is_cnn,
    machine_info,
    make_train_step,
    markdown_table,
    model_source,
    sync,
)

# flower_photos per class (the source study's data); a split takes int(n * fraction) of each class
FLOWER_COUNTS = (633, 898, 641, 699, 799)
GOAL_MINUTES = 20.0  # issue 6: nine models, one seed, one H100


def step_times(fn, warmup: int, steps: int, device: str) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_eval_step(model, batch_size: int, img_size: int, channels_last: bool, device: str,
                   amp_dtype):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=fmt).eval()
    x = torch.randn(batch_size, 3, img_size, img_size, device=device).contiguous(memory_format=fmt)

    @torch.inference_mode()
    def step():
        with torch.autocast(torch.device(device).type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return model(x).argmax(1)

    return step


def measure_model(name: str, a: argparse.Namespace, compiled: bool) -> dict:
    """Training and inference images/s, peak memory, compile seconds (when `compiled`)."""
    dev, amp = a.device, a.amp_dtype
    cl = is_cnn(name)
    model = build_model(name, a.img_size)
    if dev == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    out: dict = {}
    if compiled:
        import torch._dynamo as dynamo

        dynamo.reset()
        net = torch.compile(copy.deepcopy(model))
        step = make_train_step(net, a.batch_size, a.img_size, channels_last=cl, device=dev,
                               amp_dtype=amp)
        t0 = time.perf_counter()
        step()
        sync(dev)
        out["compile_s"] = time.perf_counter() - t0
    else:
        step = make_train_step(model, a.batch_size, a.img_size, channels_last=cl, device=dev,
                               amp_dtype=amp)
    out["train_ips"] = a.batch_size / step_times(step, a.warmup, a.steps, dev)
    if dev == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if not compiled:
        ev = make_eval_step(model, a.batch_size, a.img_size, cl, dev, amp)
        out["infer_ips"] = a.batch_size / step_times(ev, a.warmup, a.steps, dev)
    del step
    return out


def measure_loader(a: argparse.Namespace) -> dict:
    """Images/s of depthbench's cached training dataset through a DataLoader, copied to `device`."""
    from torch.utils.data import DataLoader

    from depthbench.data import build_datasets, make_split, open_source

    with tempfile.TemporaryDirectory(prefix="depthbench-gpuplan-") as tmp:
        t0 = time.perf_counter()
        # generated at <= 64 px (cheap to render and decode); the recipe resizes them, so the
        # cached arrays and the per-item work are those of 224 px photos
        side = min(a.img_size, 64)
        source = open_source(f"synthetic:n={a.loader_images},size={side},classes=5,seed=0",
                             cache_dir=tmp)
        manifest = make_split(source, val=0.1)
        ds = build_datasets(source, manifest, "source", a.img_size, cache_dir=tmp)["train"]
        setup_s = time.perf_counter() - t0
        on_gpu = a.device == "cuda"
        loader = DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
                            pin_memory=on_gpu, drop_last=True, persistent_workers=a.workers > 0)
        n, t0 = 0, 0.0
        for epoch in range(a.loader_epochs + 1):  # epoch 0 warms the workers and the page cache
            if epoch == 1:
                sync(a.device)
                t0, n = time.perf_counter(), 0
            for x, _ in loader:
                x = x.to(a.device, non_blocking=True)
                n += x.shape[0]
        sync(a.device)
        return {"ips": n / (time.perf_counter() - t0), "setup_s": setup_s,
                "images": len(ds), "workers": a.workers}


def split_sizes(val: float, test: float) -> dict[str, int]:
    """Train/val/test image counts of flower_photos under the per-class `int(n * f)` rule."""
    v = sum(int(n * val) for n in FLOWER_COUNTS)
    t = sum(int(n * test) for n in FLOWER_COUNTS)
    return {"train": sum(FLOWER_COUNTS) - v - t, "val": v, "test": t}


def paper_grid() -> tuple[list[dict], str]:
    """[{model, variant, seed, epochs, train, val, test}] of `--preset paper`, or the issue's
    assumption (9 models + one variant per SE-ResNet and Swin, one seed) if not loadable."""
    try:
        from depthbench.study.grid import plan_runs
        from depthbench.study.spec import load_spec

        spec = load_spec(preset="paper", data="synthetic")
        sizes = split_sizes(spec.split.val, spec.split.test)
        runs = [{"model": p.model, "variant": p.variant, "seed": p.seed,
                 "epochs": p.train_config().epochs, **sizes} for p in plan_runs(spec)]
        return runs, (f"read from `--preset paper`: {len(runs)} runs, {len(spec.seeds)} seeds, "
                      f"{sizes['train']}/{sizes['val']}/{sizes['test']} train/val/test images")
    except Exception as e:  # preset not written yet, or invalid: say so and assume
        sizes = split_sizes(0.1, 0.0)
        runs = [{"model": m, "variant": "base", "seed": 0, "epochs": 100, **sizes} for m in MODELS]
        runs += [{"model": m, "variant": "keydrop" if "swin" in m else "sedrop", "seed": 0,
                  "epochs": 100, **sizes} for m in MODELS if "swin" in m or m.startswith("se")]
        return runs, (f"`--preset paper` not loadable ({type(e).__name__}: {str(e)[:80]}); "
                      f"assumed 9 base runs + one key-drop variant per Swin and one SE-drop "
                      f"variant per SE-ResNet, 100 epochs, one seed")


SOURCE_RUN = {"epochs": 100, **split_sizes(0.1, 0.0)}  # the source: 3,306 train / 364 val


def run_seconds(rates: dict, run: dict, loader_ips: float, use_compiled: bool) -> float:
    """Projected seconds of one run: every epoch trains on the train split (at the slower of the
    model and the loader) and evaluates val; at the end best and last weights are evaluated on
    train (eval transforms), val and test."""
    comp = use_compiled and bool(rates.get("compiled_ips"))
    train = rates["compiled_ips"] if comp else rates["train_ips"]
    per_epoch = run["train"] / min(train, loader_ips) + run["val"] / rates["infer_ips"]
    final = 2 * (run["train"] + run["val"] + run["test"]) / rates["infer_ips"]
    return run["epochs"] * per_epoch + final + (rates.get("compile_s", 0.0) if comp else 0.0)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_plan", description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true",
                   help="run on the CPU at tiny sizes (32 px, batch 4, resnet18 + swin_t) to check "
                        "the script; its numbers mean nothing")
    p.add_argument("--models", default="", help="default: all nine")
    p.add_argument("--compile-models", default=None,
                   help="models also timed under torch.compile (default resnet50,swin_t; "
                        "dry run: none; '' for none, 'all' for every model)")
    p.add_argument("--img-size", type=int, default=None, help="default 224")
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (the recipe's)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per model (default 8)")
    p.add_argument("--warmup", type=int, default=None, help="default 3")
    p.add_argument("--workers", type=int, default=None, help="loader workers (default 8)")
    p.add_argument("--loader-images", type=int, default=None, help="default 1024")
    p.add_argument("--loader-epochs", type=int, default=None, help="default 3")
    p.add_argument("--budget-s", type=float, default=200,
                   help="skip the remaining compiled runs once this many seconds have passed")
    p.add_argument("--quick", action="store_true", help="same as --dry-run")
    return p


def main(argv: list[str] | None = None) -> int:
    a = get_args_parser().parse_args(argv)
    dry = a.dry_run or a.quick
    start = time.perf_counter()
    if not dry and not torch.cuda.is_available():
        print("error: gpu_plan needs a CUDA GPU and torch sees none "
              f"(torch {torch.__version__}); use --dry-run to check the script on the CPU",
              file=sys.stderr)
        return 1
    a.device = "cpu" if dry else "cuda"
    a.amp_dtype = torch.bfloat16
    a.img_size = a.img_size or (32 if dry else 224)
    a.batch_size = a.batch_size or (4 if dry else 128)
    a.steps = a.steps or (1 if dry else 8)
    a.warmup = a.warmup if a.warmup is not None else (1 if dry else 3)
    a.workers = a.workers if a.workers is not None else (0 if dry else 8)
    a.loader_images = a.loader_images or (40 if dry else 1024)
    a.loader_epochs = a.loader_epochs or (1 if dry else 3)
    names = [SHORT_TO_TIMM.get(n.strip(), n.strip()) for n in a.models.split(",") if n.strip()]
    names = names or (["resnet18", "swin_tiny_patch4_window7_224"] if dry else MODELS)
    if a.compile_models is None:
        a.compile_models = "" if dry else "resnet50,swin_t"
    to_compile = names if a.compile_models == "all" else [
        SHORT_TO_TIMM.get(n.strip(), n.strip()) for n in a.compile_models.split(",") if n.strip()]
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    info = machine_info()
    print(f"## GPU plan{' (DRY RUN on the CPU: numbers mean nothing)' if dry else ''}\n\n"
          f"_Device: {info.get('gpu', 'cpu: ' + info['cpu'])}; torch {info['torch']}; models from "
          f"`{model_source()}`; {a.img_size} px, batch {a.batch_size}, bf16 autocast, CNNs "
          f"channels_last, Adam; median of {a.steps} steps after {a.warmup} warm-up._\n", flush=True)

    rates: dict[str, dict] = {}
    for name in names:
        rates[name] = measure_model(name, a, compiled=False)
        print(f"  gpu_plan: {name} {rates[name]['train_ips']:.0f} img/s train", file=sys.stderr,
              flush=True)
    for name in to_compile:
        if name not in rates:
            continue
        if time.perf_counter() - start > a.budget_s:
            rates[name]["compile_note"] = "skipped (time budget)"
            continue
        r = measure_model(name, a, compiled=True)
        rates[name].update(compiled_ips=r["train_ips"], compile_s=r["compile_s"])
        print(f"  gpu_plan: {name} compiled {r['train_ips']:.0f} img/s", file=sys.stderr, flush=True)

    loader = measure_loader(a)
    fastest = max(r["train_ips"] for r in rates.values())
    grid, grid_note = paper_grid()

    rows = []
    for name, r in rates.items():
        rows.append({
            "model": SHORT.get(name, name), "train img/s": r["train_ips"],
            "infer img/s": r["infer_ips"],
            "compiled train img/s": (f"{r['compiled_ips']:.0f} ({r['compiled_ips'] / r['train_ips']:.2f}x)"
                                     if "compiled_ips" in r else r.get("compile_note", "")),
            "compile (s)": f"{r['compile_s']:.0f}" if "compile_s" in r else "",
            "peak MiB": f"{r['peak_mib']:.0f}" if "peak_mib" in r else "",
            "source run, 100 ep (min)": run_seconds(r, SOURCE_RUN, loader["ips"], False) / 60,
        })
    print(markdown_table(rows))
    print(f"Loader (depthbench cached dataset, {loader['images']} generated images, "
          f"{loader['workers']} workers, pin_memory, copied to {a.device}): "
          f"**{loader['ips']:.0f} img/s** = {loader['ips'] / fastest:.1f}x the fastest model's "
          f"training rate ({fastest:.0f} img/s); cache build {loader['setup_s']:.0f} s.\n")

    source = [{"model": m, **SOURCE_RUN} for m in MODELS]
    known = [g for g in grid if g["model"] in rates]
    missing = sorted({g["model"] for g in grid + source} - set(rates))
    first_seed = [g for g in known if g["seed"] == min(x["seed"] for x in grid)]

    def total(runs, compiled):
        return sum(run_seconds(rates[g["model"]], g, loader["ips"], compiled)
                   for g in runs if g["model"] in rates) / 60

    base_eager, base_comp = total(source, False), total(source, True)
    verdict = "meets" if base_eager <= GOAL_MINUTES else "misses"
    print(f"### Projection on this device ({grid_note})\n")
    print(markdown_table([
        {"runs": "the source protocol: 9 models, one seed, 100 epochs, 3,306 train / 364 val",
         "eager (min)": base_eager, "with compile where measured (min)": base_comp},
        {"runs": f"`--preset paper`, one seed ({len(first_seed)} runs)",
         "eager (min)": total(first_seed, False),
         "with compile where measured (min)": total(first_seed, True)},
        {"runs": f"`--preset paper`, all {len(known)} runs", "eager (min)": total(known, False),
         "with compile where measured (min)": total(known, True)},
    ]))
    print(f"Goal: the source protocol in <= {GOAL_MINUTES:.0f} min on one H100: eager projection "
          f"**{base_eager:.1f} min ({verdict} it)**. Variants are projected at their base model's "
          f"rate; runs run one after another on one GPU."
          + (f" Not measured here, left out: {', '.join(missing)}." if missing else ""))
    print(f"\n_gpu_plan finished in {time.perf_counter() - start:.0f} s._")
    return 0


if __name__ == "__main__":
    sys.exit(main())
