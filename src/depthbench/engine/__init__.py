"""One training run (Lightning Fabric), its checkpoints, evaluation and prediction.

`TrainConfig`, `train(config, out_dir, split_path=None, variant="base", progress=None,
resume=True) -> dict` (result.json), `evaluate_checkpoint(path, data, split) -> dict`,
`predict(path, images, top_k) -> list`, `load_model_from_checkpoint(path) -> (model, meta)`.
"""

from depthbench.engine.checkpoint import load_model_from_checkpoint, load_pretrained
from depthbench.engine.config import TrainConfig, load_config_file, make_config
from depthbench.engine.evaluate import evaluate_checkpoint, predict
from depthbench.engine.trainer import METRICS_COLUMNS, TrainingInterrupted, train

__all__ = [
    "METRICS_COLUMNS", "TrainConfig", "TrainingInterrupted", "evaluate_checkpoint",
    "load_config_file", "load_model_from_checkpoint", "load_pretrained", "make_config", "predict",
    "train",
]
