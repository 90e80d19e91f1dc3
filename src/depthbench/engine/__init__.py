"""One training run (Lightning Fabric), its checkpoints, evaluation and prediction.

`TrainConfig`, `train(config, out_dir, split_path=None, variant="base", progress=None,
resume=True) -> dict` (result.json), `evaluate_checkpoint(path, data, split) -> dict`,
`predict(path, images, top_k) -> list`, `load_model_from_checkpoint(path) -> (model, meta)`.

Names are imported on first use, so the command line reads the option table (engine.config)
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "depthbench.engine.checkpoint": ["load_model_from_checkpoint", "load_pretrained"],
    "depthbench.engine.config": ["TrainConfig", "load_config_file", "make_config"],
    "depthbench.engine.evaluate": ["evaluate_checkpoint", "predict"],
    "depthbench.engine.trainer": ["TrainingInterrupted", "train"],
    "depthbench.runrecord": ["METRICS_COLUMNS"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'depthbench.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
