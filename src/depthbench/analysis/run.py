"""`analyze_run` and `analyze_path`: measure one trained model (or every run of a study) on a fixed,
seeded subset of its test images and write `analysis.json` into each run folder.

One eval-mode forward pass over the subset feeds three measurements at once (block-output CKA, SE
gates, Swin attention); Grad-CAM then takes 8 backward passes on the subset's first 8 images, the
same images for every run of a study (they share one split and the subset's seed).
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from depthbench.analysis.attention import head_statistics
from depthbench.analysis.cka import MinibatchCKA, minibatch_cka, redundant_tail
from depthbench.analysis.gradcam import grad_cam, target_block
from depthbench.analysis.probe import SATURATED, Probe
from depthbench.analysisrecord import write_analysis
from depthbench.data.datasets import build_datasets
from depthbench.data.sources import open_source
from depthbench.data.split import SPLIT_FILE, run_manifest
from depthbench.engine.checkpoint import load_model_from_checkpoint
from depthbench.engine.devices import device_type
from depthbench.engine.record import package_version
from depthbench.errors import ConfigError, DepthbenchError
from depthbench.runrecord import RUN_DIR_PATTERN

SUBSET_SEED = 0
CAM_IMAGES = 8
CKA_THRESHOLD = 0.9
MAX_STORED_SIDE = 32  # Grad-CAM maps and thumbnails are stored at most this many pixels a side


def _r(x, nd: int = 4):
    """Rounded floats (nested lists) for a compact JSON."""
    if isinstance(x, torch.Tensor):
        x = x.tolist()
    if isinstance(x, list):
        return [_r(v, nd) for v in x]
    return round(float(x), nd) if math.isfinite(float(x)) else None


def check_run_dir(run_dir: Path) -> dict:
    """result.json of a finished run with a best.safetensors, or a one-line DepthbenchError."""
    result_path = run_dir / "result.json"
    if not run_dir.is_dir() or not result_path.is_file():
        raise DepthbenchError(f"{run_dir} is not a run folder (no result.json); give a folder "
                              "written by `depthbench train` or `depthbench run`")
    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DepthbenchError(f"{result_path} cannot be read ({e}); rerun the training") from None
    if result.get("status") != "finished":
        raise DepthbenchError(f"{run_dir}: the run is {result.get('status', 'unknown')!r}, not "
                              "finished; finish it (rerun the same command) before analyzing it")
    if not (run_dir / "best.safetensors").is_file():
        raise DepthbenchError(f"{run_dir} has no best.safetensors; rerun the training")
    return result


class _Images:
    """The seeded subset of one run's test (or val) images, shared by the runs of one split."""

    def __init__(self, run_dir: Path, result: dict, meta: dict, images: int):
        data = result["config"]["data"]
        source = open_source(data)
        manifest = run_manifest(source, run_dir, val=meta["val"], test=meta["test"],
                                seed=meta["split_seed"])
        self.split = "test" if manifest.entries("test") else "val"
        self.note = (None if self.split == "test" else
                     "this run has no test split: the analysis uses validation images, which "
                     "also selected its checkpoint")
        entries = manifest.entries(self.split)
        rng = np.random.default_rng(SUBSET_SEED)
        n = min(images, len(entries))
        self.indices = sorted(int(i) for i in rng.choice(len(entries), size=n, replace=False))
        self.paths = [entries[i].path for i in self.indices]
        ds = build_datasets(source, manifest, meta["recipe"], meta["img_size"],
                            splits=(self.split,), eval_crop=meta.get("eval_crop"))[self.split]
        items = [ds[i] for i in self.indices]
        self.x = torch.stack([torch.as_tensor(x) for x, _ in items]).float()
        self.y = torch.tensor([int(y) for _, y in items])
        self.key = (manifest.hash, self.split, tuple(self.indices), meta["img_size"],
                    meta["recipe"], meta.get("eval_crop"))


def _thumbnail(x: torch.Tensor, mean, std) -> str:
    """A normalized CHW image as the model saw it, as a base64 PNG (at most 32 px a side)."""
    img = (x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)).clamp(0, 1)
    side = max(img.shape[1:])
    if side > MAX_STORED_SIDE:
        img = torch.nn.functional.interpolate(img[None], scale_factor=MAX_STORED_SIDE / side,
                                              mode="area")[0]
    arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _small(cam: torch.Tensor) -> torch.Tensor:
    side = max(cam.shape)
    if side <= MAX_STORED_SIDE:
        return cam
    size = [max(1, round(s * MAX_STORED_SIDE / side)) for s in cam.shape]
    return torch.nn.functional.adaptive_avg_pool2d(cam[None, None], size)[0, 0]


def _se_record(probe: Probe, classes: list[str]) -> dict | None:
    if not probe.se:
        return None
    blocks = []
    for st in probe.se:
        seen = st.counts > 0
        per_class = st.sums[seen] / st.counts[seen, None]  # classes seen, C
        overall = st.sums.sum(0) / st.counts.sum()
        spread = per_class.std(0, unbiased=False) if per_class.shape[0] > 1 else \
            torch.zeros_like(overall)
        blocks.append({
            "name": st.name, "stage": st.stage, "channels": int(overall.numel()),
            "mean_gate": _r(overall.mean()), "class_specificity": _r(spread.mean()),
            "fraction_saturated": _r(float(st.saturated) / max(st.total, 1)),
            "mean_per_channel": _r(overall, 3),
            "per_class_mean": {classes[i]: _r(st.sums[i] / st.counts[i], 3)
                               for i in range(len(classes)) if st.counts[i] > 0},
        })
    return {"saturation_threshold": SATURATED,
            "class_specificity": "mean over channels of the standard deviation, over classes, of "
                                 "the class-mean gate", "blocks": blocks}


def _attention_record(probe: Probe) -> dict | None:
    if not probe.attn:
        return None
    blocks = []
    for st in probe.attn:
        dist = st.dist / st.queries
        ent = st.ent / st.queries
        # the reference: uniform attention over the keys each query may see (in a shifted
        # block the mask leaves fewer keys, so both references are lower there)
        n = st.window * st.window
        nw = 1 if st.mask is None else st.mask.shape[0]
        mask = None if st.mask is None else st.mask.cpu()
        u_d, u_e, u_q = head_statistics(torch.full((1, nw, 1, n, n), 1.0 / n), st.window,
                                        st.pitch, mask)
        blocks.append({
            "name": st.name, "stage": st.stage, "window": st.window, "pitch_px": st.pitch,
            "shifted": st.shifted, "distance_px": _r(dist, 3), "entropy": _r(ent, 4),
            "mean_distance_px": _r(dist.mean(), 3), "mean_entropy": _r(ent.mean(), 4),
            "uniform_distance_px": _r(u_d[0] / u_q, 3), "max_entropy": _r(u_e[0] / u_q, 4),
        })
    return {"units": "distance in input pixels; entropy in nats",
            "reference": "uniform attention over the keys the shift mask allows", "blocks": blocks}


def analyze_run(run_dir: str | Path, images: int = 256, *, batch_size: int = 64,
                accelerator: str = "auto", data_cache: dict | None = None,
                keep_grams: dict | None = None) -> dict:
    """Measure one finished run and write `<run_dir>/analysis.json`; returns the record.

    `accelerator`: `auto`, `cpu` or `gpu`, as for training (`gpu` without one: the trainer's
    one-line `ConfigError`). `data_cache` (a dict) shares the decoded subset between runs of one
    study; `keep_grams` (a dict) receives this run's per-minibatch Gram matrices for the study's
    cross-model CKA."""
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    dev = torch.device(device_type(accelerator))
    result = check_run_dir(run_dir)
    model, meta = load_model_from_checkpoint(run_dir / "best.safetensors")
    data = _subset(run_dir, result, meta, images, data_cache)
    classes = list(meta["classes"])
    model.to(dev)
    probe, preds = _forward(model, data, batch_size, dev, len(classes))
    n_used = len(preds)
    tgt = target_block(probe.blocks)
    cams = _cam_images(model, tgt, data, preds, dev, meta)
    model.cpu()
    if keep_grams is not None:
        keep_grams[run_dir.name] = probe.grams
    return write_analysis(run_dir, {
        "run": run_dir.name, "model": meta["model"], "family": meta["family"],
        "variant": result.get("variant", meta.get("variant", "base")),
        "seed": result.get("seed", meta.get("seed")), "img_size": meta["img_size"],
        "classes": classes, "split": data.split, "note": data.note,
        "subset": {"seed": SUBSET_SEED, "images": n_used, "indices": data.indices[:n_used],
                   "correct": int((preds == data.y[:n_used]).sum())},
        "cka": _cka_record(probe, batch_size),
        "se": _se_record(probe, classes),
        "attention": _attention_record(probe),
        "gradcam": {"method": f"Grad-CAM (grad-cam {package_version('grad-cam') or '?'})",
                    "layer": tgt.name, "grid": list(tgt.grid), "target": "predicted class",
                    "images": cams},
        "cross_cka": {},
        "device": str(dev),
        "seconds": round(time.perf_counter() - t0, 2),
    })


def _subset(run_dir: Path, result: dict, meta: dict, images: int, data_cache: dict | None) -> _Images:
    """The run's image subset, from `data_cache` when another run of the study decoded it."""
    cache_key = (str(result["config"]["data"]), str((run_dir / SPLIT_FILE).resolve()))
    data = None if data_cache is None else data_cache.get(cache_key)
    if data is None:
        data = _Images(run_dir, result, meta, images)
        if data_cache is not None:
            data_cache[cache_key] = data
    if len(data.indices) < 4:
        raise DepthbenchError(f"{run_dir}: only {len(data.indices)} {data.split} images; the "
                              "analysis needs at least 4")
    return data


def _forward(model, data: _Images, batch_size: int, dev: torch.device,
             num_classes: int) -> tuple[Probe, torch.Tensor]:
    """One eval-mode pass over the subset with the probe attached: (the probe, predictions)."""
    probe = Probe(model, num_classes)
    preds = []
    try:
        for s in range(0, len(data.indices), batch_size):
            xb, yb = data.x[s:s + batch_size], data.y[s:s + batch_size]
            if len(xb) < 4 and s:  # unbiased HSIC needs 4: fold a tiny tail into no batch
                break
            preds.append(probe.step(xb.to(dev), yb).argmax(1).cpu())
    finally:
        probe.detach()
    return probe, torch.cat(preds)


def _cka_record(probe: Probe, batch_size: int) -> dict:
    matrix = _r(minibatch_cka(probe.grams), 4)
    return {"method": "linear CKA, minibatch unbiased HSIC", "minibatch": batch_size,
            "batches": len(probe.grams),
            "blocks": [{"name": b.name, "stage": b.stage, "grid": list(b.grid)}
                       for b in probe.blocks],
            "matrix": matrix, "threshold": CKA_THRESHOLD,
            "near_identical_tail": redundant_tail(matrix, CKA_THRESHOLD)}


def _cam_images(model, tgt, data: _Images, preds: torch.Tensor, dev: torch.device,
                meta: dict) -> list[dict]:
    """Grad-CAM of the predicted class on the subset's first CAM_IMAGES images."""
    k = min(CAM_IMAGES, len(preds))
    cams = grad_cam(model, tgt, data.x[:k].to(dev), preds[:k].tolist()).cpu()
    return [{
        "index": data.indices[i], "path": data.paths[i], "label": int(data.y[i]),
        "pred": int(preds[i]), "correct": bool(preds[i] == data.y[i]),
        "cam": _r(_small(cams[i]), 2), "thumbnail_png": _thumbnail(data.x[i], meta["mean"],
                                                                   meta["std"]),
    } for i in range(k)]


def study_runs(study_dir: Path) -> list[Path]:
    """Run folders (holding result.json) directly under a study folder, sorted by name; of a
    cross-validated study, one cell's (repeat 0, fold 0), as `depthbench run` analyzes it."""
    return sorted(p.parent for p in study_dir.glob("*/result.json") if _first_cell(p.parent.name))


def _first_cell(name: str) -> bool:
    named = RUN_DIR_PATTERN.match(name)
    return not named or named["fold"] is None or int(named["repeat"]) == int(named["fold"]) == 0


def cross_cka(records: dict[str, dict], grams: dict[str, list[torch.Tensor]]) -> None:
    """For runs of one family, variant and seed on the same images, the CKA between every block of
    one and every block of the other (same minibatches), into each record's `cross_cka`; plus the
    CKA between the outputs of the same stage (its last block) of the two."""
    names = sorted(grams)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = records[a], records[b]
            same = all(ra[k] == rb[k] for k in ("family", "variant", "seed"))
            if not same or ra["model"] == rb["model"]:
                continue
            if ra["subset"]["indices"] != rb["subset"]["indices"]:
                continue
            acc = MinibatchCKA()
            for ga, gb in zip(grams[a], grams[b]):
                acc.update(ga, gb)
            m = acc.result()
            for src, dst, mat in ((ra, rb, m), (rb, ra, m.T)):
                last = _stage_last(src), _stage_last(dst)
                stages = sorted(set(last[0]) & set(last[1]))
                src["cross_cka"][dst["run"]] = {
                    "model": dst["model"], "matrix": _r(mat, 4),
                    "stage_output": {str(s): _r(mat[last[0][s], last[1][s]], 4) for s in stages},
                }


def _stage_last(record: dict) -> dict[int, int]:
    out: dict[int, int] = {}
    for j, blk in enumerate(record["cka"]["blocks"]):
        out[blk["stage"]] = j
    return out


def analyze_path(path: str | Path, images: int = 256, *, batch_size: int = 64,
                 accelerator: str = "auto", runs: Collection[str] | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, dict | str]:
    """A run folder or a study folder: {run name: record, or the reason it was skipped}.
    A single run folder that cannot be analyzed is an error; in a study, failed or unfinished
    runs are skipped with their reason. `runs`: the names of the study's run folders to analyze
    (default: every one), so folders the study no longer lists stay out of the cross-model CKA."""
    if images < 4:
        raise ConfigError(f"--images {images}: the analysis needs at least 4 images")
    if batch_size < 4:
        raise ConfigError(f"--batch-size {batch_size}: the CKA estimate needs at least 4")
    device_type(accelerator)  # an accelerator that is not there: refused before any work
    path = Path(path)
    if (path / "result.json").is_file() or not path.is_dir():
        rec = analyze_run(path, images, batch_size=batch_size, accelerator=accelerator)
        return {path.name: rec}
    found = study_runs(path)
    runs = [r for r in found if r.name in runs] if runs is not None else found
    if not runs:
        raise DepthbenchError(f"{path} holds no run folders (no */result.json); give a run or "
                              "study folder written by `depthbench train` or `depthbench run`")
    out: dict[str, dict | str] = {}
    records: dict[str, dict] = {}
    grams: dict[str, list[torch.Tensor]] = {}
    data_cache: dict = {}
    for run in runs:
        try:
            check_run_dir(run)
        except DepthbenchError as e:
            out[run.name] = str(e)
            continue
        if progress:
            progress(run.name)
        records[run.name] = analyze_run(run, images, batch_size=batch_size,
                                        accelerator=accelerator, data_cache=data_cache,
                                        keep_grams=grams)
        out[run.name] = records[run.name]
    cross_cka(records, grams)
    for name, rec in records.items():
        if rec["cross_cka"]:
            write_analysis(path / name, rec)
    return out
