"""TensorBoard event files while a run trains (the `tensorboard` extra, part of `dev`): the engine
adds Lightning Fabric's TensorBoardLogger when tensorboard is importable, and each epoch's
metrics.csv row reaches `<run>/tensorboard/` before the next epoch starts, so
`tensorboard --logdir runs/STUDY` shows every run's curves live."""

from __future__ import annotations

import pytest

from depthbench.engine.config import TrainConfig
from depthbench.engine.trainer import train

pytest.importorskip("tensorboard", reason="the tensorboard extra: pip install -e '.[tensorboard]'")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

DATA = "synthetic:n=48,size=32,classes=3,seed=0"


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    if not log_dir.is_dir():
        return {}
    ea = EventAccumulator(str(log_dir))
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def test_a_run_writes_its_curves_to_tensorboard_as_it_trains(tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig.for_recipe("source", model="resnet18", data=DATA, img_size=32, epochs=2,
                                 batch_size=12, val=0.25, test=0.25, limit_train_batches=1,
                                 accelerator="cpu", quiet=True)
    seen = {}

    def after_epoch(row):  # called once an epoch is recorded, before the next one trains
        seen[row["epoch"]] = len(_scalars(out / "tensorboard").get("val_acc", []))

    train(cfg, out, progress=after_epoch, resume=False)
    assert seen == {1: 0, 2: 1}  # live: the epochs before this one are on disk already
    curves = _scalars(out / "tensorboard")
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(curves)
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("val_acc")
    assert [s for s, _ in curves["val_acc"]] == [1, 2]
    assert [v for _, v in curves["val_acc"]] == pytest.approx([float(r[col]) for r in rows[1:]])
