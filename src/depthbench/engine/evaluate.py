"""Evaluate or apply a checkpoint, rebuilding model and preprocessing from its metadata alone."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from depthbench.data.datasets import build_datasets
from depthbench.data.images import image_files, read_image
from depthbench.data.sources import open_source
from depthbench.data.split import make_split, run_manifest
from depthbench.data.transforms import preprocess_image
from depthbench.engine.checkpoint import load_model_from_checkpoint
from depthbench.engine.devices import make_fabric
from depthbench.engine.inputs import check_evaluate, check_predict
from depthbench.engine.loop import predict_logits
from depthbench.engine.metrics import summarize
from depthbench.errors import CheckpointError, DataError


def _fabric(accelerator: str = "auto"):
    """The trainer's device and precision choice (`engine.devices`), one process."""
    fabric = make_fabric(accelerator, "auto")
    fabric.launch()
    return fabric


def evaluate_checkpoint(path: str | Path, data: str, split: str = "val", *,
                        batch_size: int = 128, accelerator: str = "auto",
                        cache_dir: str | None = None) -> dict:
    """Accuracy (with counts), loss, per-class metrics and confusion matrix of a checkpoint on
    `split` (`val`, `test` or `all`) of `data`. The split is the run's split.json when it sits
    next to the checkpoint (verified against the files), else rebuilt from the split settings in
    the checkpoint's metadata."""
    path = Path(path)
    check_evaluate(path, data, batch_size)
    fabric = _fabric(accelerator)  # an unavailable accelerator is refused before any work
    model, meta = load_model_from_checkpoint(path)
    source = open_source(data, cache_dir=cache_dir)
    if list(source.classes) != list(meta["classes"]):
        raise CheckpointError(
            f"{path} was trained on {len(meta['classes'])} classes {meta['classes']}, but {data} has "
            f"{len(source.classes)} classes {list(source.classes)}: evaluate on the same dataset")
    if split == "all":
        manifest, key = make_split(source, val=0.0, test=0.0), "train_eval"
    else:
        manifest = run_manifest(source, path.parent, val=meta["val"], test=meta["test"],
                                seed=meta["split_seed"])
        key = split
        if not manifest.entries(split):
            raise DataError(f"{data} has no {split!r} images in this split (val={meta['val']}, "
                            f"test={meta['test']}); use --split val or --split all")
    ds = build_datasets(source, manifest, meta["recipe"], meta["img_size"], cache_dir=cache_dir,
                        splits=(key,), eval_crop=meta.get("eval_crop"))[key]
    model = fabric.to_device(model)
    t0 = time.perf_counter()
    logits, targets = predict_logits(fabric, model, ds, batch_size)
    seconds = time.perf_counter() - t0
    result = summarize(logits, targets, meta["classes"])
    return {**result, "checkpoint": str(path), "data": str(data), "split": split,
            "model": meta["model"], "images_per_s": len(ds) / seconds if seconds > 0 else None}


@torch.no_grad()
def predict(path: str | Path, images: list[str], top_k: int = 5, accelerator: str = "auto",
            batch_size: int = 64) -> list:
    """`[{image, top: [{class, prob}]}]` for each image file, best class first, in the order
    given; a folder stands for the image files in it (`data.image_files`, as timm's inference
    script reads a folder). A file that cannot be read gets `{image, error}` instead, and the
    others are still predicted."""
    check_predict(path, top_k)
    files = image_files(images)
    fabric = _fabric(accelerator)
    model, meta = load_model_from_checkpoint(path)
    model = fabric.to_device(model)
    out = []
    for start in range(0, len(files), batch_size):
        entries, batch = [], []
        for f in files[start:start + batch_size]:
            try:
                batch.append(preprocess_image(read_image(f), meta["recipe"], meta["img_size"],
                                              meta.get("eval_crop")))
                entries.append({"image": str(f)})
            except DataError as e:
                entries.append({"image": str(f), "error": str(e)})
        if batch:
            with fabric.autocast():
                probs = model(fabric.to_device(torch.stack(batch))).float().softmax(1).cpu()
            top = probs.topk(min(top_k, probs.shape[1]), dim=1)
            readable = [e for e in entries if "error" not in e]
            for n, entry in enumerate(readable):
                entry["top"] = [{"class": meta["classes"][int(i)], "prob": float(p)}
                                for p, i in zip(top.values[n], top.indices[n])]
        out += entries
    return out
