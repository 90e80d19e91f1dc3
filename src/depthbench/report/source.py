"""The source study: its data's classes and counts (`FLOWERS_COUNTS`, what the report, the
benchmarks' flowers-shaped folder and the suite read), its published table and per-epoch records,
shipped as package data so a flowers-layout study can quote them beside its own numbers.

`seed_published.csv` is the table the source report prints (per-column best over 100 epochs);
`seed_records.csv` holds its per-epoch records (epoch rows only; train_loss there is the last
mini-batch's loss, not an epoch mean).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

# The source's data: TensorFlow's flower_photos, images per class
FLOWERS_COUNTS = {"daisy": 633, "dandelion": 898, "roses": 641, "sunflowers": 699, "tulips": 799}
# The source's validation set: int(n * 0.1) of each class
SOURCE_VAL_IMAGES = sum(int(n * 0.1) for n in FLOWERS_COUNTS.values())


@dataclass
class SourceModel:
    model: str
    published: dict  # train_loss, train_acc, val_acc as printed
    epochs: list[dict]  # epoch, train_loss, train_acc, val_acc

    @property
    def best_val_epoch(self) -> dict:
        """The epoch a validation-selected checkpoint would come from (first maximum)."""
        return max(self.epochs, key=lambda r: (r["val_acc"], -r["epoch"]))

    @property
    def last_epoch(self) -> dict:
        return self.epochs[-1]

    def not_whole_counts(self, total: int = SOURCE_VAL_IMAGES, tol: float = 0.01) -> int:
        """Epochs whose val accuracy is not k/total for a whole k (more than `tol` images off)."""
        return sum(abs(r["val_acc"] * total - round(r["val_acc"] * total)) > tol
                   for r in self.epochs)


def _read(name: str) -> list[dict]:
    text = resources.files("depthbench.report").joinpath("assets", name).read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def load_source() -> dict[str, SourceModel]:
    published = {r["model"]: {k: float(v) for k, v in r.items() if k != "model"}
                 for r in _read("seed_published.csv")}
    epochs: dict[str, list[dict]] = {}
    for r in _read("seed_records.csv"):
        epochs.setdefault(r["model"], []).append(
            {"epoch": int(r["epoch"]), "train_loss": float(r["train_loss"]),
             "train_acc": float(r["train_acc"]), "val_acc": float(r["val_acc"])})
    return {m: SourceModel(m, published[m], sorted(epochs.get(m, []), key=lambda r: r["epoch"]))
            for m in published}
