"""Checkpoints: `best.safetensors` (weights + the metadata to rebuild the model and its
preprocessing), `last.ckpt` (full resume state, plain tensors and containers only, so
`torch.load(weights_only=True)` reads it), pretrained timm/torchvision weights.

Every file is written through `depthbench._io` (temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as st_save
from torch import nn

from depthbench._io import atomic_torch_save, atomic_write_bytes, safe_torch_load
from depthbench.engine.inputs import KINDS, check_checkpoint, check_weights
from depthbench.errors import CheckpointError
from depthbench.models import create_model

FORMAT = "depthbench/1"


# --- best.safetensors --------------------------------------------------------------------------

def save_weights(path: str | Path, model: nn.Module | dict[str, torch.Tensor],
                 meta: dict[str, Any]) -> None:
    """Weights (of a module, or a state dict) as safetensors; `meta` (model, model_kwargs,
    classes, img_size, mean, std, recipe, ...) goes JSON-encoded into the header, one string per
    key."""
    state = model if isinstance(model, dict) else model.state_dict()
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    header = {"format": FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    atomic_write_bytes(path, st_save(tensors, metadata=header))


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a depthbench checkpoint (either kind), without building the model."""
    path = Path(path)
    if check_checkpoint(path) == "safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"cannot read {path}: not a safetensors file or damaged ({e})") from None
        if header.get("format") != FORMAT:
            raise CheckpointError(f"{path} has no depthbench metadata (a bare weights file?); "
                                  "use it with `train --pretrained` instead")
        return {k: json.loads(v) for k, v in header.items() if k != "format"}
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT or "meta" not in state:
        raise CheckpointError(f"{path} is not a depthbench checkpoint ({KINDS}); use plain "
                              "weights with `train --pretrained`")
    return state["meta"]


def load_model_from_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from a checkpoint's metadata alone and load its weights (eval mode)."""
    path = Path(path)
    meta = read_meta(path)
    weights = (load_file(str(path)) if check_checkpoint(path) == "safetensors"
               else safe_torch_load(path)["model"])
    model = create_model(meta["model"], num_classes=len(meta["classes"]), **meta["model_kwargs"])
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {meta['model']} "
                              f"({str(e).splitlines()[0]})") from None
    return model.eval(), meta


# --- last.ckpt -----------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """Every RNG a run touches, as tensors and ints (weights_only-loadable)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [py[0], torch.tensor(py[1], dtype=torch.int64), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal.tolist()), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_state(*, model: nn.Module, optimizer, scheduler, epoch: int, history: list[dict],
                 best: dict | None, config: dict, meta: dict[str, Any]) -> dict[str, Any]:
    """What last.ckpt holds, torchvision-references style: model, optimizer, lr_scheduler,
    epoch, ... (the live objects' state: tensors shared with them, not copies)."""
    return {
        "format": FORMAT,
        "model": {k: v.detach() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "rng": rng_state(),
        "history": history,
        "best": best,
        "config": config,
        "meta": meta,
    }


def write_resume_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a `resume_state` (its model tensors moved to the CPU) as last.ckpt."""
    atomic_torch_save(state | {"model": {k: v.cpu() for k, v in state["model"].items()}}, path)


def save_resume_state(path: str | Path, **parts: Any) -> None:
    """`write_resume_state(path, resume_state(**parts))`: the live state, now."""
    write_resume_state(path, resume_state(**parts))


def load_resume_state(path: str | Path) -> dict[str, Any]:
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a depthbench last.ckpt; delete it or choose another --out")
    return state


# --- pretrained weights -------------------------------------------------------------------------

def load_pretrained(model: nn.Module, path: str | Path) -> list[str]:
    """Load a timm/torchvision state dict (`.safetensors` or a weights-only torch file) into
    `model`. Classifier tensors whose shape differs (another class count) keep their fresh
    initialization; their names are returned so the caller can say so. Anything else that does not
    fit is a `CheckpointError` naming the key."""
    path = Path(path).expanduser()
    if check_weights(path) == "safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"cannot read {path}: {e}") from None
    else:
        state = safe_torch_load(path)
        for key in ("state_dict", "model", "model_state_dict"):  # common wrappers
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors")
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{path} does not fit this model's layout ({what}); it needs the "
                              "timm/torchvision weights of the same architecture")
    head = _classifier_prefix(model)
    reinit = []
    for k, v in state.items():
        if v.shape != own[k].shape:
            if head and k.startswith(head):
                reinit.append(k)
                continue
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, the model needs "
                                  f"{tuple(own[k].shape)} (check --img-size / --window-size)")
    model.load_state_dict({k: v for k, v in state.items() if k not in reinit}, strict=False)
    return reinit


def _classifier_prefix(model: nn.Module) -> str | None:
    """State-dict prefix of the final classifier: `fc.` (ResNet), `head.fc.` (timm Swin), ..."""
    get = getattr(model, "get_classifier", None)
    if callable(get):
        clf = get()
        for name, mod in model.named_modules():
            if mod is clf and name:
                return name + "."
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] + "." if linears else None
