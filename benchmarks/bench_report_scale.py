"""How long the report of a large cross-validated study takes to build, from its records alone.

    python -m benchmarks.bench_report_scale [--quick] [--images 2624] [--models 8] [--folds 5]
                                            [--repeats 2] [--seeds 5]

Writes the records of a finished cross-validated study of models x seeds x repeats x folds runs
(defaults: ELPV's 2,624 images, the quick preset's first eight models with its two variants, 5-fold
x 2 repeats, 5 seeds: 500 runs) as the engine and the study write them (each run's split.json by
the study's own `record_cells`, timed, and checked again as a resumed study checks them; each
run's result.json with its per-image test predictions and metrics.csv), then times `depthbench
report` on that folder: the whole build (records, comparisons, figures, Markdown and HTML) and its
first step, reading the records, with the process's peak memory. The accuracies are drawn at
random around 70%: the figures time the report, not a model.
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
from depthbench.data.split import Manifest
from depthbench.names import family_of
from depthbench.report.build import build_report
from depthbench.report.records import load_study
from depthbench.runrecord import write_metrics, write_result
from depthbench.study.folder import record_cells
from depthbench.study.grid import plan_runs
from depthbench.study.spec import load_spec, validate_spec

CLASSES = ["0", "1/3", "2/3", "1"]


def write_study(root: Path, images: int, models: int, folds: int, repeats: int,
                seeds: int) -> tuple[int, float, float]:
    """The records of a finished cross-validated study of the quick preset's first `models`
    models (with its variants) under `root`: (runs, seconds to write every run's split.json as a
    study does, seconds to check them all again as a resumed study does)."""
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=images, p=[0.58, 0.11, 0.04, 0.27]).tolist()
    paths = [f"c{y}/{i:05d}.png" for i, y in enumerate(labels)]
    shas = [f"{i:064x}" for i in range(images)]
    partition = Partition(CLASSES, paths, labels, shas, None,
                          make_folds(labels, None, folds, repeats, 0), data="bench", val=0.1)
    quick = load_spec(preset="quick").model_dump(mode="json")
    study = {**quick, "name": "scale", "data": "bench", "models": quick["models"][:models],
             "seeds": list(range(seeds)), "split": {"folds": folds, "repeats": repeats}}
    study["variants"]["models"] = [m for m in study["variants"]["models"]
                                   if m in study["models"]]
    (root / "study.yaml").write_text(yaml.safe_dump(study))
    plans = plan_runs(validate_spec(study))
    t0 = time.perf_counter()
    record_cells(root, partition, plans)
    t1 = time.perf_counter()
    record_cells(root, partition, plans)
    t2 = time.perf_counter()
    skill = {(p.model, p.variant): 0.62 + 0.16 * rng.random() for p in plans}
    cells = {}
    for plan in plans:
        if (plan.repeat, plan.fold) not in cells:
            cell = Manifest.load(root / plan.name / "split.json")
            cells[plan.repeat, plan.fold] = ([e.label for e in cell.entries("test")],
                                             [e.label for e in cell.entries("val")])
        write_run(root / plan.name, plan.model, plan.variant, plan.seed,
                  skill[plan.model, plan.variant], *cells[plan.repeat, plan.fold], rng)
    return len(plans), t1 - t0, t2 - t1


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
    p.add_argument("--quick", action="store_true", help="a small study (2 models, 20 runs)")
    p.add_argument("--images", type=int, default=2624)
    p.add_argument("--models", type=int, default=8,
                   help="the quick preset's first N models, with its variants (8: ten groups)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.models, args.seeds = 300, 2, 1
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        runs, splits, again = write_study(root, args.images, args.models, args.folds,
                                          args.repeats, args.seeds)
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
             "of which split.json (s)": f"{splits:.1f}", "split.json checked (s)": f"{again:.1f}",
             "read records (s)": f"{t2 - t1:.1f}", "report build (s)": f"{t3 - t2:.1f}",
             "peak memory (MB)": f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"}]
    print(section("The report of a large cross-validated study", markdown_table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
