"""Cross-validation folds: repeated, stratified, group-aware k-fold partitions of a study's images.

scikit-learn makes the partitions (`StratifiedKFold`, or `StratifiedGroupKFold` when some images
must stay together: the same content, or a user's group such as a patient or a module). Repeat r
shuffles with a `random_state` derived from the study's split seed and r alone, so a partition is
reproducible from the seed and does not depend on the library's global random state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold


def repeat_state(seed: int, repeat: int) -> int:
    """The `random_state` of repeat `repeat`'s partition."""
    return int(np.random.SeedSequence([int(seed), int(repeat)]).generate_state(1)[0] >> 1)


def make_folds(labels: Sequence[int], groups: Sequence[Hashable] | None, folds: int,
               repeats: int, seed: int) -> np.ndarray:
    """The test fold of every image in every repeat: an int array (repeats, n). Each repeat is a
    partition (every image in exactly one fold), stratified by label; images sharing a group
    share a fold. `groups` None (or all distinct) uses StratifiedKFold, which keeps each class's
    count per fold within one image."""
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
