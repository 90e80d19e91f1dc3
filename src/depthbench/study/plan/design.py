"""A study's design before it trains: how many runs, how many images each run trains, selects
and tests on, and the alternatives a user weighs it against.

A design is the split protocol and the seeds: the single split the study's `split` makes (its
counts come from the manifest `run` would use, never recounted here), or K-fold cross-validation
repeated R times (every image a test image once per repeat). `protocol` is the one place that
says which of the two a study uses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from depthbench.data.folds import make_folds
from depthbench.data.split import Manifest, train_eval_manifest
from depthbench.errors import ConfigError


@dataclass(frozen=True)
class Design:
    """Seeds x (the single split, or `folds`-fold cross-validation repeated `repeats` times)."""

    seeds: int
    folds: int | None = None  # None: the single split
    repeats: int = 1

    @property
    def cells(self) -> int:
        """Trainings of one model and variant per seed: one per (repeat, fold)."""
        return self.folds * self.repeats if self.folds else 1

    @property
    def label(self) -> str:
        seeds = f"{self.seeds} seed{'s' if self.seeds != 1 else ''}"
        if not self.folds:
            return f"single split, {seeds}"
        return f"{self.folds}-fold x {self.repeats}, {seeds}"

    def runs(self, grid_points: int) -> int:
        """Runs of a study whose grid has `grid_points` (model, variant) pairs."""
        return grid_points * self.seeds * self.cells


@dataclass(frozen=True)
class Sizes:
    """Images of one run (one fold cell under cross-validation): what it trains on each epoch
    (before the batch limit), what selects its checkpoint, what tests it, and the fixed subset
    of training images it is evaluated on at the end."""

    train: int
    val: int
    test: int
    train_eval: int


def protocol(spec, folds: int | None = None, repeats: int | None = None) -> Design:
    """The study's design: its seeds and its split protocol (`split.folds`/`split.repeats`,
    cross-validation; the single split otherwise); `--folds K --repeats R` override them."""
    if folds is not None and folds < 2:
        raise ConfigError(f"--folds {folds}: give at least 2 (or leave it out for the single "
                          "split)")
    if repeats is not None and repeats < 1:
        raise ConfigError(f"--repeats {repeats}: give at least 1")
    folds = folds if folds is not None else spec.split.folds
    if repeats is not None and folds is None:
        raise ConfigError("--repeats: only with --folds K (cross-validation)")
    repeats = repeats if repeats is not None else (spec.split.repeats if spec.split.folds else 1)
    return Design(seeds=len(spec.seeds), folds=folds, repeats=repeats)


def sizes(manifest: Manifest, design: Design, val: float, seed: int = 0) -> Sizes:
    """The images of one run of `design` on the images of `manifest` (the split `run` makes:
    the study folder's split.json, else a new one). The single split is the manifest's own
    counts; under cross-validation each fold is the mean over the first repeat's folds (sizes
    differ by at most one image per class between folds), partitioned by the same scikit-learn
    folds the protocol uses, with `val` of each class of the rest selecting the checkpoint."""
    if not design.folds:
        counts = manifest.counts()
        return Sizes(counts["train"], counts["val"], counts["test"],
                     len(train_eval_manifest(manifest)))
    entries = manifest.entries("all")
    labels = [e.label for e in entries]
    if design.folds > min(Counter(labels).values()):
        smallest = min(Counter(labels).items(), key=lambda kv: kv[1])
        raise ConfigError(f"--folds {design.folds}: class {manifest.classes[smallest[0]]!r} "
                          f"has only {smallest[1]} images, fewer than the folds; use fewer folds")
    fold_of = make_folds(labels, None, design.folds, 1, seed)[0]
    total = Counter()
    for k in range(design.folds):
        test = Counter(lab for lab, f in zip(labels, fold_of) if f == k)
        rest = Counter(lab for lab, f in zip(labels, fold_of) if f != k)
        val_n = {c: int(n * val) for c, n in rest.items()}
        train = {c: n - val_n[c] for c, n in rest.items()}
        # as many training images of each class as the test fold holds (train_eval's rule)
        total += Counter(train=sum(train.values()), val=sum(val_n.values()),
                         test=sum(test.values()),
                         train_eval=sum(min(train[c], test[c]) for c in test))
    return Sizes(*(round(total[s] / design.folds) for s in ("train", "val", "test",
                                                            "train_eval")))


def alternatives(study: Design) -> list[Design]:
    """The designs shown beside the study's own: the single split with 1, 3 and 5 seeds, 5-fold
    once and twice, 10-fold once (one seed each), and the study's design when it is none of
    these."""
    out = [Design(1), Design(3), Design(5), Design(1, 5, 1), Design(1, 5, 2), Design(1, 10, 1)]
    return out if study in out else [study, *out]
