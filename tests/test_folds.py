"""Cross-validation partitions (`depthbench.data.folds`), the groups that no split or fold cuts
(`depthbench.data.groups`) and the manifests of a partition's cells."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from conftest import make_grouped_folder
from depthbench.data.folds import Partition, cell_seed, make_folds, make_partition
from depthbench.data.groups import read_groups
from depthbench.data.sources import open_source
from depthbench.data.split import Manifest, make_split
from depthbench.errors import DataError


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


# ------------------------------------------------------------------ a folder with duplicates

def grouped_folder(tmp_path):
    """Three classes, exact duplicates within and across classes, a groups file with a group
    across classes: (root, groups file)."""
    root = tmp_path / "grouped"
    return root, make_grouped_folder(root, {"a": 14, "b": 12, "c": 10})


def units_of(source, groups: dict[str, str] | None) -> list[set[str]]:
    """The images that must stay together: same content, or (given) same group."""
    keys: dict[str, set[str]] = {}
    for f in source.files:
        for key in [f"sha:{source.sha256(f.path)}"] + ([f"g:{groups[f.path]}"] if groups else []):
            keys.setdefault(key, set()).add(f.path)
    return [v for v in keys.values() if len(v) > 1]


def test_partition_tests_every_image_once_per_repeat_and_keeps_units_whole(tmp_path):
    root, csv_path = grouped_folder(tmp_path)
    source = open_source(str(root))
    groups = read_groups(source, csv_path)
    p = make_partition(source, folds=3, repeats=2, seed=7, val=0.2, groups=groups)
    units = units_of(source, groups)
    assert any(len({u.split("/")[0] for u in unit}) > 1 for unit in units)  # one across classes
    for r in range(2):
        tested = []
        for k in range(3):
            m = p.cell(r, k)
            assert m.cv == {"folds": 3, "repeats": 2, "repeat": r, "fold": k,
                            "partition": p.hash} and m.test is None
            split = {e.path: e.split for e in m.entries()}
            assert set(split) == set(p.paths)  # every image listed, once
            tested += [e.path for e in m.entries("test")]
            assert {e.path for e in m.entries("test")} == {
                path for path, f in zip(p.paths, p.fold[r]) if f == k}
            for unit in units:  # no group, no duplicate straddles train, val and test
                assert len({split[x] for x in unit}) == 1, (unit, r, k)
            assert m.counts()["val"] > 0 and m.counts()["train"] > m.counts()["val"]
        assert sorted(tested) == sorted(p.paths)  # each image tested exactly once per repeat
    # made again from the seed alone; another seed partitions otherwise
    again = make_partition(open_source(str(root)), 3, 2, 7, 0.2, groups)
    assert again.hash == p.hash and make_partition(source, 3, 2, 8, 0.2, groups).hash != p.hash


def test_without_groups_folds_are_stratified_and_validation_is_per_class(image_folder):
    root = image_folder({"a": 30, "b": 21, "c": 9})
    p = make_partition(open_source(str(root)), folds=3, repeats=1, seed=0, val=0.1)
    for k in range(3):
        m = p.cell(0, k)
        counts = m.class_counts()
        rest = {c: n["train"] + n["val"] for c, n in counts.items()}
        assert {c: n["val"] for c, n in counts.items()} == {c: int(n * 0.1) for c, n in
                                                               rest.items()}
    per_fold = [Counter(p.labels[i] for i in np.flatnonzero(p.fold[0] == k)) for k in range(3)]
    assert all(max(f[c] for f in per_fold) - min(f[c] for f in per_fold) <= 1 for c in range(3))
    # the validation images differ from fold to fold: none is held out of training everywhere
    cells = [p.cell(0, k) for k in range(3)]
    trained = {e.path for m in cells for e in m.entries("train")}
    assert trained == set(p.paths)


def test_partition_and_cell_files_round_trip_and_refuse_an_edit(tmp_path):
    root, csv_path = grouped_folder(tmp_path)
    source = open_source(str(root))
    p = make_partition(source, 3, 2, 0, groups=read_groups(source, csv_path),
                       groups_sha="abc")
    p.save(tmp_path / "folds.json")
    q = Partition.load(tmp_path / "folds.json")
    assert (q.hash, q.groups, q.groups_sha, q.folds, q.repeats) == (
        p.hash, p.groups, "abc", 3, 2)
    q.verify(source)
    p.cell(1, 2).save(tmp_path / "split.json")
    doc = json.loads((tmp_path / "split.json").read_text())
    assert {k: doc[k] for k in ("folds", "repeats", "repeat", "fold", "partition", "test")} == {
        "folds": 3, "repeats": 2, "repeat": 1, "fold": 2, "partition": p.hash, "test": None}
    assert Manifest.load(tmp_path / "split.json").cv == p.cell(1, 2).cv
    doc = json.loads((tmp_path / "folds.json").read_text())
    doc["fold"][0][0] = (doc["fold"][0][0] + 1) % 3
    (tmp_path / "folds.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="folds.json was edited or damaged"):
        Partition.load(tmp_path / "folds.json")


def test_single_split_with_groups_keeps_them_whole_and_without_is_unchanged(tmp_path, image_folder):
    root, csv_path = grouped_folder(tmp_path)
    source = open_source(str(root))
    groups = read_groups(source, csv_path)
    m = make_split(source, val=0.2, test=0.3, seed=3, groups=groups)
    split = {e.path: e.split for e in m.entries()}
    assert all(len({split[x] for x in unit}) == 1 for unit in units_of(source, groups))
    assert m.counts()["test"] > 0 and m.counts()["val"] > 0
    # one group per image and no duplicates: the group-aware split is the per-class one
    plain = image_folder({"a": 17, "b": 9}, name="plain")
    src = open_source(str(plain))
    alone = {f.path: f.path for f in src.files}
    assert make_split(src, 0.2, 0.3, 5, groups=alone).hash == make_split(src, 0.2, 0.3, 5).hash


@pytest.mark.parametrize("body, message", [
    ("file,team\n", r"line 1: expected the header `path,group`, got `file,team`"),
    ("path,group\na/0000.png\n", r"line 2: expected `path,group` \(two values\)"),
    ("path,group\na/9999.png,x\n", r"line 2: 'a/9999.png' is not an image of"),
    ("path,group\na/0000.png,x\na/0000.png,y\n", r"line 3: 'a/0000.png' is listed twice"),
    ("path,group\na/0000.png,x\n", r"groups.csv: 3 image\(s\) of .* have no group "
                                   r"\(a/0001.png, b/0000.png, b/0001.png\)"),
])
def test_groups_file_errors_name_the_file_and_line(image_folder, body, message):
    root = image_folder({"a": 2, "b": 2})
    (root.parent / "groups.csv").write_text(body)
    with pytest.raises(DataError, match=message):
        read_groups(open_source(str(root)), root.parent / "groups.csv")
    with pytest.raises(DataError, match="groups file not found"):
        read_groups(open_source(str(root)), root.parent / "nope.csv")


def test_more_folds_than_images_is_a_data_error(image_folder):
    root = image_folder({"a": 2, "b": 2})
    with pytest.raises(DataError, match="5 folds need at least 5 distinct images; the data has 4"):
        make_partition(open_source(str(root)), folds=5, repeats=1, seed=0)
