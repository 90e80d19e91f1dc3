"""How long the report of a large cross-validated study takes to build, from its records alone.

    python -m benchmarks.bench_report_scale [--quick] [--images 2624] [--models 10] [--folds 5]
                                            [--repeats 2] [--seeds 5]

Writes the records of a finished cross-validated study of models x seeds x repeats x folds runs
(defaults: ELPV's 2,624 images, the quick preset's ten models and variants, 5-fold x 2 repeats,
5 seeds: 500 runs) as the engine and the study write them (each run's result.json with its
per-image test predictions, metrics.csv, the split.json of its cell derived from one partition),
then times `depthbench report` on that folder: the whole build (records, comparisons, figures,
Markdown and HTML) and its first step, reading the records, with the process's peak memory. The
accuracies are drawn at random around 70%: the figures time the report, not a model.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks._common import markdown_table, section
from depthbench.data.folds import Partition, make_folds
from depthbench.names import family_of
from depthbench.report import build_report, load_study
from depthbench.runrecord import run_dir_name, write_metrics, write_result

QUICK_GRID = [("resnet18", "base"), ("resnet34", "base"), ("resnet50", "base"),
              ("seresnet18", "base"), ("seresnet18", "sedrop0.1"), ("seresnet34", "base"),
              ("seresnet50", "base"), ("swin_tiny_patch4_window7_224", "base"),
              ("swin_tiny_patch4_window7_224", "keydrop0.1"), ("swin_small_patch4_window7_224",
                                                               "base")]
CLASSES = ["0", "1/3", "2/3", "1"]


def write_study(root: Path, images: int, models: int, folds: int, repeats: int,
                seeds: int) -> int:
    """The records of a finished cross-validated study under `root`; returns the runs written."""
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=images, p=[0.58, 0.11, 0.04, 0.27]).tolist()
    paths = [f"c{y}/{i:05d}.png" for i, y in enumerate(labels)]
    shas = [f"{i:064x}" for i in range(images)]
    partition = Partition(CLASSES, paths, labels, shas, None,
                          make_folds(labels, None, folds, repeats, 0), data="bench", val=0.1)
    grid = QUICK_GRID[:models]
    (root / "study.yaml").write_text(yaml.safe_dump({
        "name": "scale", "data": "bench", "models": sorted({m for m, _ in grid}),
        "variants": {"se_drop": [0.1], "key_drop": [0.1]}, "seeds": list(range(seeds)),
        "split": {"val": 0.1, "test": None, "seed": 0, "folds": folds, "repeats": repeats}}))
    skill = {g: 0.62 + 0.16 * rng.random() for g in grid}
    written = 0
    for r in range(repeats):
        for k in range(folds):
            cell = partition.cell(r, k)
            test = [e.label for e in cell.entries("test")]
            val = [e.label for e in cell.entries("val")]
            for seed in range(seeds):
                for model, variant in grid:
                    run = root / run_dir_name(model, variant, seed, r, k)
                    run.mkdir()
                    cell.save(run / "split.json")
                    write_run(run, model, variant, seed, skill[model, variant], test, val, rng)
                    written += 1
    return written


def write_run(run: Path, model: str, variant: str, seed: int, acc: float, test: list[int],
              val: list[int], rng) -> None:
    def evaluation(targets: list[int]) -> dict:
        t = np.asarray(targets)
        pred = np.where(rng.random(t.size) < acc, t, (t + 1) % 4)
        conf = np.zeros((4, 4), dtype=int)
        np.add.at(conf, (t, pred), 1)
        right = int((pred == t).sum())
        return {"accuracy": right / t.size, "correct": right, "total": int(t.size), "loss": 0.8,
                "per_class": {}, "confusion": conf.tolist(), "predictions": pred.tolist(),
                "targets": t.tolist()}

    rows = [{"epoch": e, "train_loss": 1.2 / e, "train_acc": 0.5 + 0.05 * e, "val_loss": 0.9,
             "val_acc": acc, "val_correct": round(acc * len(val)), "val_total": len(val),
             "lr": 5e-4, "seconds": 30.0, "train_correct": 900, "train_total": 1600}
            for e in (1, 2, 3)]
    write_metrics(run / "metrics.csv", rows)
    best = {"epoch": 3, "train_loss": 0.4, "train_acc": 0.65, "val": evaluation(val),
            "test": evaluation(test)}
    write_result(run, {
        "status": "finished", "model": model, "family": family_of(model), "variant": variant,
        "seed": seed, "config": {"model": model, "data": "bench", "recipe": "source",
                                 "epochs": 3, "img_size": 64, "val": 0.1, "test": 0.0},
        "classes": CLASSES, "img_size": 64, "params": 11_000_000, "macs": 150_000_000,
        "macs_224": 1_800_000_000, "epochs_completed": 3, "best_epoch": 3, "best": best,
        "last": best, "costs": {"train_seconds": 90.0, "train_images_per_s": 60.0,
                                "infer_images_per_s": 400.0, "peak_memory_mb": 900.0},
        "provenance": {"versions": {}, "device": "cpu", "seconds": 95.0}})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_report_scale",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small study (2 models, 40 runs)")
    p.add_argument("--images", type=int, default=2624)
    p.add_argument("--models", type=int, default=10, help=f"at most {len(QUICK_GRID)}")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.models, args.seeds = 300, 2, 2
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        runs = write_study(root, args.images, args.models, args.folds, args.repeats, args.seeds)
        t1 = time.perf_counter()
        study = load_study(root)
        assert all(r.finished and r.cell_split for r in study.runs)
        t2 = time.perf_counter()
        build_report(root)
        t3 = time.perf_counter()
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    rows = [{"runs": runs, "images": args.images,
             "design": f"{args.folds}-fold x {args.repeats} repeats x {args.seeds} seeds",
             "records (MB)": f"{size / 2**20:.0f}", "write records (s)": f"{t1 - t0:.1f}",
             "read records (s)": f"{t2 - t1:.1f}", "report build (s)": f"{t3 - t2:.1f}",
             "peak memory (MB)": f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"}]
    print(section("The report of a large cross-validated study", markdown_table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
