"""Data: image sources (folders, bundled `elpv`, generated `synthetic`), per-class split manifests,
dataset checks, transforms and the decoded cache. See docs/internals.md for the contract.

Names are imported on first use, so `depthbench data check` never pays for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "check": ["check_dataset", "format_check", "small_classes", "small_for_folds"],
    "folds": ["Partition", "cell_seed", "make_folds", "make_partition"],
    "groups": ["groups_hash", "read_groups"],
    "datasets": ["CachedImages", "StreamingImages", "build_datasets", "cache_bytes"],
    "images": ["IMAGE_EXTENSIONS", "image_files", "open_rgb", "probe", "read_image", "to_rgb"],
    "sources": ["ELPV_CLASSES", "ImageSource", "SourceFile", "default_cache_dir", "open_source"],
    "split": ["Entry", "Manifest", "make_split", "run_manifest", "train_eval_manifest"],
    "synthetic": ["SyntheticSpec"],
    "transforms": ["batch_random_stage", "build_transform", "normalization", "post_transform",
                   "pre_transform", "preprocess_image"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"depthbench.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'depthbench.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
