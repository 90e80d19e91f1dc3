"""The `modern` recipe against `source` on small real folders, over batch sizes and epoch budgets:
real training runs, one at a time, each appended as a JSON line to DIR/results.jsonl when it
finishes (a restart skips the runs there; its run folder is deleted, checkpoints included).

    python -m benchmarks.recipe_grid --out DIR [--folders elpv digits flowers]
        [--batches 32 64 128] [--epochs 5 15 30] [--models resnet18] [--recipes modern source]
    python -m benchmarks.recipe_grid --out DIR --table

Folders: the bundled ELPV at 64 px; sklearn's digits (1,797 8x8 grey images, 10 classes) written
as PNGs, a folder per class, at 32 px; a generated flowers-shaped folder (`benchmarks.flowers`:
flower_photos' 5 classes and counts) at 32 px. Every run splits 15% of each class for validation
and 15% for test; the table gives test accuracy at the best validation epoch, and the best
validation accuracy, with each folder's majority-class rate (what always answering the largest
class scores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.flowers import make_flowers_folder
from depthbench.data.sources import open_source
from depthbench.engine.config import RECIPES, TrainConfig, augmentation
from depthbench.engine.trainer import train

SPLIT = {"val": 0.15, "test": 0.15, "split_seed": 0}
IMG_SIZE = {"elpv": 64, "digits": 32, "flowers": 32}
DIGITS_SIDE = 32  # the PNGs' side: the 8x8 digits upscaled (nearest) before the run resizes them
FLOWERS_SIZE = (64, 48)  # the generated flowers' photo size: small, so decoding stays cheap


def write_digits(root: Path) -> Path:
    """sklearn's digits as an image folder (one sub-folder per class), made once."""
    from sklearn.datasets import load_digits

    marker = root / "digits.json"
    if marker.is_file():
        return root
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        grey = (image * (255 / 16)).clip(0, 255).astype(np.uint8)
        Image.fromarray(grey).resize((DIGITS_SIDE, DIGITS_SIDE), Image.NEAREST).save(
            folder / f"{i:04d}.png")
    marker.write_text(json.dumps({"images": len(digits.target), "side": DIGITS_SIDE}))
    return root


def folder_data(name: str, work: Path) -> str:
    if name == "elpv":
        return "elpv"
    if name == "digits":
        return str(write_digits(work / "digits"))
    return str(make_flowers_folder(work / "flowers", size=FLOWERS_SIZE))


def majority_rate(data: str) -> float:
    counts = Counter(f.label for f in open_source(data).candidates)
    return max(counts.values()) / sum(counts.values())


def run_key(row: dict) -> tuple:
    return row["folder"], row["model"], row["recipe"], row["batch"], row["epochs"]


def read_rows(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def recipe_options(label: str, batch: int) -> tuple[str, dict]:
    """A recipe label: a recipe's name; `modern@BASE`, the modern recipe with its lr rule's base
    set to BASE (the same batch scaling), to compare base lrs; or `NAME:key=value,...`, a recipe
    with options set (`source:optimizer=adamw,...`: the modern optimisation without the modern
    augmentation)."""
    recipe, _, options = label.partition(":")
    recipe, _, base = recipe.partition("@")
    extra = {k: _value(v) for k, v in (o.split("=") for o in options.split(",") if o)}
    if base:
        extra["lr"] = replace(RECIPES[recipe]["lr"], base=float(base))({"batch_size": batch})
    return recipe, extra


def one_run(folder: str, data: str, model: str, label: str, batch: int, epochs: int,
            out: Path) -> dict:
    recipe, extra = recipe_options(label, batch)
    cfg = TrainConfig.for_recipe(recipe, model=model, data=data, img_size=IMG_SIZE[folder],
                                 epochs=epochs, batch_size=batch, accelerator="cpu", quiet=True,
                                 cache_dir=str(out / "cache"), **SPLIT, **extra)
    run_dir = out / "runs" / f"{folder}-{model}-{label}-b{batch}-e{epochs}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a run cut short restarts from scratch
    result = train(cfg, run_dir, progress=False, resume=False)
    shutil.rmtree(run_dir, ignore_errors=True)
    best = result["best"]
    return {"folder": folder, "model": model, "recipe": label, "batch": batch, "epochs": epochs,
            "lr": cfg.lr, "warmup_epochs": cfg.warmup_epochs, **augmentation(cfg),
            "eval_crop": cfg.eval_crop,
            "test_acc": best["test"]["accuracy"], "best_val": best["val"]["accuracy"],
            "best_epoch": best["epoch"], "majority": majority_rate(data),
            "seconds": round(result["provenance"]["seconds"], 1)}


def run_grid(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = {run_key(r) for r in read_rows(out)}
    for folder in args.folders:
        data = folder_data(folder, out / "data")
        for model in args.models:
            for epochs in args.epochs:
                for batch in args.batches:
                    for recipe in args.recipes:
                        key = (folder, model, recipe, batch, epochs)
                        if key in done:
                            continue
                        row = one_run(folder, data, model, recipe, batch, epochs, out)
                        with open(out / "results.jsonl", "a", encoding="utf-8") as f:
                            f.write(json.dumps(row) + "\n")
                        print(json.dumps(row), flush=True)


def table(rows: list[dict]) -> str:
    """One line per folder x model x batch x budget: test (best val) accuracy of each recipe; a
    label with options set is a column `NAME:n`, spelt out under the table."""
    recipes = sorted({r["recipe"] for r in rows}, key=lambda r: (r not in RECIPES, r))
    heads = {r: r if ":" not in r else f"{r.partition(':')[0]}:{i}" for i, r in enumerate(recipes)}
    by = {run_key(r): r for r in rows}
    lines = ["| folder (majority) | model | batch | epochs | "
             + " | ".join(f"{heads[r]} test (val)" for r in recipes) + " |",
             "|" + "---|" * (4 + len(recipes))]
    settings = sorted({(r["folder"], r["model"], r["batch"], r["epochs"]) for r in rows})
    for folder, model, batch, epochs in settings:
        cells = []
        for recipe in recipes:
            r = by.get((folder, model, recipe, batch, epochs))
            cells.append(f"{r['test_acc']:.1%} ({r['best_val']:.1%})" if r else "-")
        majority = next(r["majority"] for r in rows if r["folder"] == folder)
        lines.append(f"| {folder} ({majority:.0%}) | {model} | {batch} | {epochs} | "
                     + " | ".join(cells) + " |")
    notes = [f"{heads[r]}: {r}" for r in recipes if heads[r] != r]
    return "\n".join(lines + ([""] + notes if notes else []))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recipe_grid", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="results folder (results.jsonl, data, cache)")
    p.add_argument("--folders", nargs="+", default=list(IMG_SIZE), choices=list(IMG_SIZE))
    p.add_argument("--models", nargs="+", default=["resnet18"])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES),
                   help="recipe names, modern@BASE (its lr rule with another base) or "
                        "NAME:key=value,... (options set)")
    p.add_argument("--batches", nargs="+", type=int, default=[32, 64, 128])
    p.add_argument("--epochs", nargs="+", type=int, default=[5, 15, 30])
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's); 1 keeps a run steady on a busy machine")
    p.add_argument("--table", action="store_true", help="print the markdown table of DIR and stop")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.table:
        print(table(read_rows(Path(args.out))))
        return 0
    run_grid(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
