"""Cross-validation partitions (`depthbench.data.folds`)."""

from __future__ import annotations

import numpy as np

from depthbench.data.folds import cell_seed, make_folds


def test_each_repeat_is_a_stratified_partition_made_again_from_its_seed():
    y = np.repeat([0, 1, 2], [50, 31, 7])
    f = make_folds(y, None, folds=5, repeats=2, seed=4)
    assert f.shape == (2, y.size) and set(np.unique(f)) == set(range(5))
    for r in range(2):
        per_fold = np.stack([np.bincount(y[f[r] == k], minlength=3) for k in range(5)])
        assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= 1).all()
    assert not (f[0] == f[1]).all()  # the repeats shuffle differently
    assert (make_folds(y, None, 5, 2, 4) == f).all() and not (make_folds(y, None, 5, 2, 5) == f).all()


def test_a_group_never_straddles_folds_and_cells_seed_apart():
    y = np.repeat([0, 1], [40, 20])
    groups = [i // 3 for i in range(y.size)]
    f = make_folds(y, groups, folds=4, repeats=3, seed=0)
    for g in set(groups):
        members = [i for i, x in enumerate(groups) if x == g]
        assert all(len(set(f[r, members])) == 1 for r in range(3))
    seeds = {cell_seed(s, r, k) for s in range(2) for r in range(3) for k in range(5)}
    assert len(seeds) == 30 and cell_seed(1, 2, 3) == cell_seed(1, 2, 3)
