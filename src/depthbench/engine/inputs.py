"""The checks of a command's inputs that need no torch, one home each: the command line runs
them before it loads the engine, so a typo in a name, a number or a path answers at once
(`train`, `evaluate`, `predict`; a study's are `study.spec`'s), and the engine runs the same
ones where it reads those inputs.
"""

from __future__ import annotations

from pathlib import Path

from depthbench._io import NOT_WEIGHTS, weights_format
from depthbench.data.sources import check_data
from depthbench.engine.config import TrainConfig
from depthbench.errors import CheckpointError, ConfigError, DataError
from depthbench.names import model_options

# the two checkpoints of a run folder, as an error names them
KINDS = "best.safetensors (the best weights and their metadata) or last.ckpt (the resume state)"


def check_train(config: TrainConfig) -> None:
    """A training run's data, model options and pretrained weights, as far as they can be
    judged without torch (the values themselves TrainConfig checked)."""
    check_data(config.data)
    model_options(config.model, config.model_kwargs())
    if config.pretrained:
        check_weights(config.pretrained)


def check_weights(path: str | Path) -> str:
    """Pretrained weights: an existing safetensors or torch.save file. Returns which."""
    path = Path(path).expanduser()
    if not path.is_file():
        folder = " (a folder: give the weights file in it)" if path.is_dir() else ""
        raise CheckpointError(f"pretrained weights not found: {path}{folder}")
    kind = weights_format(path)
    if kind not in ("safetensors", "torch"):
        raise CheckpointError(f"pretrained weights {path}: not a weights file "
                              f"({NOT_WEIGHTS[kind]}); give timm or torchvision weights: a "
                              ".safetensors file or a weights-only torch.save file (.pth, .pt, "
                              ".bin)")
    return kind


def check_checkpoint(path: str | Path) -> str:
    """A depthbench checkpoint to evaluate or predict with: a file of either kind, by its first
    bytes (its metadata is read with torch). Returns `safetensors` or `torch`."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a checkpoint in it: {KINDS}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    kind = weights_format(path)
    if kind not in ("safetensors", "torch"):
        raise CheckpointError(f"{path} is not a checkpoint; depthbench's are {KINDS}")
    return kind


def check_evaluate(checkpoint: str | Path, data: str, batch_size: int) -> None:
    check_checkpoint(checkpoint)
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: give at least 1")
    check_data(data)


def check_predict(checkpoint: str | Path, top_k: int) -> None:
    if top_k < 1:
        raise DataError(f"--top-k {top_k}: must be at least 1")
    check_checkpoint(checkpoint)
