"""Cross-validation folds: repeated, stratified, group-aware k-fold partitions of a study's images.

scikit-learn makes the partitions (`StratifiedKFold`, or `StratifiedGroupKFold` when some images
must stay together: the same content, or a user's group such as a patient or a module). Repeat r
shuffles with a `random_state` derived from the study's split seed and r alone, so a partition is
reproducible from the seed and does not depend on the library's global random state.

A study's partition (`Partition`, the study folder's `folds.json`) lists every image with its
content hash, its group and its test fold in every repeat; each (repeat, fold) cell's manifest
(`Partition.cell`, the run's split.json) is derived from it: the fold is the test split, `val` of
each class of the other images selects the checkpoint, the rest train.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depthbench._io import atomic_write_json
from depthbench.configio import DEFAULT_VAL
from depthbench.data.groups import image_units
from depthbench.data.sources import check_relative
from depthbench.data.split import (
    Entry,
    Manifest,
    check_hash,
    fill_units,
    read_record,
    split_key,
)
from depthbench.errors import DataError

if TYPE_CHECKING:
    from depthbench.data.sources import ImageSource

FORMAT = "depthbench-folds/1"


def repeat_state(seed: int, repeat: int) -> int:
    """The `random_state` of repeat `repeat`'s partition."""
    return int(np.random.SeedSequence([int(seed), int(repeat)]).generate_state(1)[0] >> 1)


def make_folds(labels: Sequence[int], groups: Sequence[Hashable] | None, folds: int,
               repeats: int, seed: int) -> np.ndarray:
    """The test fold of every image in every repeat: an int array (repeats, n). Each repeat is a
    partition (every image in exactly one fold), stratified by label; images sharing a group
    share a fold. `groups` None (or all distinct) uses StratifiedKFold, which keeps each class's
    count per fold within one image."""
    # on use: scikit-learn takes seconds to import, and a study's typo answers before it
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(labels)
    x = np.zeros((y.size, 1))
    grouped = groups is not None and len(set(groups)) < y.size
    out = np.empty((repeats, y.size), dtype=np.int64)
    for r in range(repeats):
        if grouped:
            cv = StratifiedGroupKFold(folds, shuffle=True, random_state=repeat_state(seed, r))
            splits = cv.split(x, y, np.asarray(list(groups), dtype=object))
        else:
            cv = StratifiedKFold(folds, shuffle=True, random_state=repeat_state(seed, r))
            splits = cv.split(x, y)
        for k, (_, test) in enumerate(splits):
            out[r, test] = k
    return out


def cell_seed(seed: int, repeat: int, fold: int) -> int:
    """The training seed of one (seed, repeat, fold) cell: every model of the cell trains with it
    (the same batch order, paired), and the cells of one seed start from different draws, so each
    cell is a run of its own rather than one initialisation seen through overlapping data."""
    digest = hashlib.sha256(f"{int(seed)}:{int(repeat)}:{int(fold)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


class Partition:
    """A study's repeated k-fold partition: every usable image (path, label, content hash, group)
    and its test fold in each repeat (`fold[r, i]`), made once and saved as `folds.json`."""

    def __init__(self, classes: list[str], paths: list[str], labels: list[int],
                 shas: list[str], groups: list[str] | None, fold: np.ndarray, *, data: str = "",
                 seed: int = 0, val: float = DEFAULT_VAL, groups_sha: str | None = None):
        self.classes, self.paths, self.labels, self.shas = list(classes), paths, labels, shas
        self.groups, self.fold = groups, np.asarray(fold, dtype=np.int64)
        self.data, self.seed, self.val, self.groups_sha = data, seed, val, groups_sha
        self.repeats, self.folds = int(self.fold.shape[0]), int(self.fold.max()) + 1
        self.hash = self._compute_hash()

    def _compute_hash(self) -> str:
        body = {"classes": self.classes, "entries": [
            [p, self.classes[y], sha, g] for p, y, sha, g in
            zip(self.paths, self.labels, self.shas, self.groups or [None] * len(self.paths))],
            "fold": self.fold.tolist()}
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def __len__(self) -> int:
        return len(self.paths)

    def cell(self, repeat: int, fold: int) -> Manifest:
        """The manifest of cell (repeat, fold): the fold is the test split; of the other images,
        `int(n * val)` of each class validate, chosen as `make_split` chooses them (whole units
        of duplicates and groups, in the order of a key from the seed and the content hash, here
        with the cell mixed in so that validation is not the same images in every fold); the rest
        train."""
        test = self.fold[repeat] == fold
        rest = [i for i in range(len(self)) if not test[i]]
        units = image_units(self.shas, self.groups)
        per_class = Counter(self.labels[i] for i in rest)
        keys = [split_key(f"{self.seed}:{repeat}:{fold}", self.shas[i], self.paths[i])
                for i in rest]
        chosen = fill_units([units[i] for i in rest], [self.labels[i] for i in rest], keys,
                            {"val": {c: int(n * self.val) for c, n in per_class.items()}})
        split = dict(zip(rest, chosen))
        entries = [Entry(p, y, self.classes[y], "test" if test[i] else split[i], sha)
                   for i, (p, y, sha) in enumerate(zip(self.paths, self.labels, self.shas))]
        return Manifest(self.classes, entries, self.data, self.val, None, self.seed,
                        cv={"folds": self.folds, "repeats": self.repeats, "repeat": int(repeat),
                            "fold": int(fold), "partition": self.hash})

    def fold_counts(self) -> list[list[dict[str, int]]]:
        """Test images per class of every fold: [repeat][fold] -> {class: n}."""
        return [[{c: int(sum(1 for i in np.flatnonzero(self.fold[r] == k)
                                if self.labels[i] == y)) for y, c in enumerate(self.classes)}
                 for k in range(self.folds)] for r in range(self.repeats)]

    def verify(self, source: ImageSource) -> None:
        """Re-hash every listed file (`Manifest.verify`): DataError naming what changed."""
        Manifest(self.classes, [Entry(p, y, self.classes[y], "train", sha) for p, y, sha in
                                zip(self.paths, self.labels, self.shas)],
                 self.data).verify(source)

    # -- files
    def to_dict(self) -> dict:
        return {"format": FORMAT, "data": self.data, "seed": self.seed, "val": self.val,
                "folds": self.folds, "repeats": self.repeats, "groups_sha256": self.groups_sha,
                "classes": self.classes, "hash": self.hash,
                "entries": [{"path": p, "class": self.classes[y], "sha256": sha,
                             **({"group": self.groups[i]} if self.groups is not None else {})}
                            for i, (p, y, sha) in enumerate(zip(self.paths, self.labels,
                                                                self.shas))],
                "fold": self.fold.tolist()}

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Partition:
        """Read and validate `folds.json` (format, safe paths, known classes, a fold per image
        and repeat, and a hash that matches): an edited or damaged file is refused."""
        path = Path(path)
        d = read_record(path, "partition", "restore it or start a new study folder")
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r} is not {FORMAT!r}")
            classes = [str(c) for c in d["classes"]]
            index = {c: i for i, c in enumerate(classes)}
            entries = d["entries"]
            paths = [check_relative(str(e["path"]), str(path)) for e in entries]
            labels = [index[e["class"]] for e in entries]
            shas = [str(e["sha256"]) for e in entries]
            groups = [str(e["group"]) for e in entries] if entries and "group" in entries[0] \
                else None
            fold = np.asarray(d["fold"], dtype=np.int64)
            if fold.ndim != 2 or fold.shape[1] != len(paths) or fold.min() < 0 \
                    or fold.max() + 1 != int(d["folds"]) or fold.shape[0] != int(d["repeats"]):
                raise ValueError("the fold table does not match the images, folds and repeats")
            p = cls(classes, paths, labels, shas, groups, fold, data=str(d.get("data", "")),
                    seed=int(d["seed"]), val=float(d["val"]), groups_sha=d.get("groups_sha256"))
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"partition {path} is malformed ({e}); restore it or start a new "
                            "study folder") from None
        check_hash(path, "partition", p.hash, d, "restore it or start a new study folder")
        return p


def make_partition(source: ImageSource, folds: int, repeats: int, seed: int,
                   val: float = DEFAULT_VAL, groups: dict[str, str] | None = None,
                   groups_sha: str | None = None) -> Partition:
    """The partition of `source`'s usable images: `make_folds` with groups that join exact
    duplicates and, given `groups` ({path: group}), the user's groups."""
    files = source.files
    paths, labels = [f.path for f in files], [f.label for f in files]
    shas = [source.sha256(p) for p in paths]
    names = [groups[p] for p in paths] if groups is not None else None
    units = image_units(shas, names)
    n_units = len(set(units.tolist()))
    if folds > n_units:
        what = "groups (duplicates joined)" if names is not None else "distinct images"
        raise DataError(f"{source.name}: {folds} folds need at least {folds} {what}; the data "
                        f"has {n_units}: use fewer folds")
    with warnings.catch_warnings():
        # a class smaller than the fold count: scikit-learn warns; `fold_problems` says it once
        warnings.simplefilter("ignore", UserWarning)
        try:
            fold = make_folds(labels, units.tolist(), folds, repeats, seed)
        except ValueError as e:  # more folds than images in every class
            raise DataError(f"{source.name}: {folds} folds: {e}; use fewer folds") from None
    return Partition(source.classes, paths, labels, shas, names, fold, data=source.name,
                     seed=seed, val=val, groups_sha=groups_sha)
