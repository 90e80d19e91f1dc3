"""Per-class splits and their manifest, `split.json`.

`make_split` sends `int(n * val)` images of each class to validation and `int(n * test)` to test
(the source study's rule: flowers gives 3,306 train / 364 val); the rest train. Which images go
where is decided by sorting each class by `sha256(seed, content hash)`, a key that depends on
nothing but the seed and the file itself: no library RNG whose stream could change between
versions, and exact duplicates within a class sort next to each other, so they nearly always share
a split (only a group cut by a split boundary can straddle it; `data check` reports those). Given
groups (`data.groups`: a user's groups file, joined with the exact duplicates), the split is
group-aware instead: whole units go to validation or test while each class stays within its
`int(n * fraction)`, so no unit straddles two splits.

The manifest lists every image (relative path, class, split, sha256 of the content) and a hash of
the whole list; a study writes it once and every run reuses it. `verify` re-hashes the files and
refuses a manifest whose files changed, naming them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from depthbench._io import atomic_write_text
from depthbench.configio import DEFAULT_TEST, DEFAULT_VAL, fractions_problem
from depthbench.cpus import usable_cpu_count
from depthbench.data.groups import image_units
from depthbench.data.sources import check_relative
from depthbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from depthbench.data.sources import ImageSource

FORMAT = "depthbench-split/1"
SPLITS = ("train", "val", "test")
SPLIT_FILE = "split.json"  # a run folder's manifest, and a single-split study's for all its runs
# What a cross-validation cell's manifest adds to split.json (`Manifest.cv`): its place in the
# study's partition (`data.folds.Partition`) and that partition's hash.
CV_KEYS = ("folds", "repeats", "repeat", "fold", "partition")


@dataclass(frozen=True)
class Entry:
    path: str
    label: int
    cls: str
    split: str
    sha256: str


def check_fractions(val: float, test: float) -> None:
    problem = fractions_problem(val, test)
    if problem:
        raise ConfigError(f"--val {val:g} --test {test:g}: {problem[1]}")


class Manifest:
    """The images of a study and their split (`entries(split)` in a stable order)."""

    def __init__(self, classes: list[str], entries: list[Entry], data: str = "",
                 val: float = DEFAULT_VAL, test: float | None = DEFAULT_TEST, seed: int = 0,
                 cv: dict | None = None):
        self.classes = list(classes)
        order = {s: i for i, s in enumerate(SPLITS)}
        self._entries = sorted(entries, key=lambda e: (order[e.split], e.label, e.path))
        self.data, self.val, self.test, self.seed = data, val, test, seed
        # a cross-validation cell: {folds, repeats, repeat, fold, partition}; its test split is
        # the fold (`test` is None: no fraction made it)
        self.cv = dict(cv) if cv else None
        self.hash = self._compute_hash()

    def _compute_hash(self) -> str:
        body = {"classes": self.classes,
                "entries": [[e.path, e.cls, e.split, e.sha256] for e in self._entries]}
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def entries(self, split: str = "all") -> list[Entry]:
        """Entries of `split` (`train`, `val`, `test` or `all`), ordered by class then path: the
        order of per-sample predictions."""
        if split == "all":
            return list(self._entries)
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose from train, val, test, all")
        return [e for e in self._entries if e.split == split]

    def counts(self) -> dict[str, int]:
        c = Counter(e.split for e in self._entries)
        return {s: c.get(s, 0) for s in SPLITS}

    def class_counts(self) -> dict[str, dict[str, int]]:
        out = {cls: dict.fromkeys(SPLITS, 0) for cls in self.classes}
        for e in self._entries:
            out[e.cls][e.split] += 1
        return out

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Manifest({self.data!r}, {self.counts()}, hash={self.hash[:12]})"

    # -- files
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "data": self.data,
            "seed": self.seed, "val": self.val, "test": self.test,
            **(self.cv or {}),
            "classes": self.classes,
            "counts": self.counts(),
            "hash": self.hash,
            "entries": [{"path": e.path, "class": e.cls, "split": e.split, "sha256": e.sha256}
                        for e in self._entries],
        }

    def to_json(self) -> str:
        """split.json's text: the same manifest always gives the same bytes."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        """Read and validate `split.json`: known format, safe relative paths, known classes and
        splits, and a stored hash that matches the entries (an edited or damaged file is refused)."""
        path = Path(path)
        d = read_record(path, "split manifest", "delete it to make a new split")
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r} is not {FORMAT!r}")
            classes = [str(c) for c in d["classes"]]
            index = {c: i for i, c in enumerate(classes)}
            entries, seen = [], set()
            for e in d["entries"]:
                p = check_relative(str(e["path"]), str(path))
                if e["class"] not in index or e["split"] not in SPLITS:
                    raise ValueError(f"entry {p!r} has class {e['class']!r} / split "
                                     f"{e['split']!r}")
                if p in seen:
                    raise ValueError(f"entry {p!r} is listed twice")
                seen.add(p)
                entries.append(Entry(p, index[e["class"]], e["class"], e["split"],
                                     str(e["sha256"])))
            test = d.get("test", DEFAULT_TEST)
            cv = {k: d[k] if k == "partition" else int(d[k]) for k in CV_KEYS if k in d}
            if cv and set(cv) != set(CV_KEYS):
                raise ValueError(f"a cross-validation cell needs {', '.join(CV_KEYS)}")
            m = cls(classes, entries, str(d.get("data", "")), float(d.get("val", DEFAULT_VAL)),
                    None if test is None else float(test), int(d.get("seed", 0)), cv or None)
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"split manifest {path} is malformed ({e}); delete it to make a new "
                            "split") from None
        check_hash(path, "split manifest", m.hash, d, "restore it or delete it to make a new "
                   "split")
        return m

    def verify(self, source: ImageSource, workers: int | None = None) -> None:
        """Re-hash every listed file in `source`; DataError naming the files that changed or went
        missing, since runs that read different images cannot be compared."""
        workers = workers or min(8, usable_cpu_count() + 2)

        def current(e: Entry) -> str | None:
            try:
                return source.sha256(e.path)
            except OSError:
                return None

        with ThreadPoolExecutor(workers) as pool:
            now = list(pool.map(current, self._entries))
        missing = [e.path for e, h in zip(self._entries, now) if h is None]
        changed = [e.path for e, h in zip(self._entries, now) if h is not None and h != e.sha256]
        if missing or changed:
            parts = []
            if changed:
                parts.append(f"{len(changed)} changed ({_some(changed)})")
            if missing:
                parts.append(f"{len(missing)} missing ({_some(missing)})")
            raise DataError(f"the data in {source.root} no longer matches split manifest "
                            f"{self.hash[:12]}: {'; '.join(parts)}; restore those files, or start "
                            "a new study (a new split.json) on the current data")


def read_record(path: Path, what: str, fix: str) -> dict:
    """The JSON of a split record (`what`: "split manifest"), or a DataError naming it and saying
    what to do (`fix`)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{what} {path} cannot be read ({e}); {fix}") from None


def check_hash(path: Path, what: str, computed: str, record: dict, fix: str) -> None:
    """Refuse a record whose stored hash is not the hash of what it lists (edited, damaged)."""
    if computed != record.get("hash"):
        raise DataError(f"{what} {path} was edited or damaged: its hash does not match its "
                        f"entries; {fix}")


def _some(paths: list[str], k: int = 5) -> str:
    return ", ".join(paths[:k]) + (f", ... {len(paths) - k} more" if len(paths) > k else "")


def split_key(seed: int | str, sha: str, path: str) -> tuple[str, str]:
    return hashlib.sha256(f"{seed}:{sha}".encode()).hexdigest(), path


def make_split(source: ImageSource, val: float = DEFAULT_VAL, test: float = DEFAULT_TEST,
               seed: int = 0, groups: dict[str, str] | None = None) -> Manifest:
    """Split each class of `source`'s usable images: `int(n*val)` to val, `int(n*test)` to test.
    With `groups` ({path: group}, `data.groups.read_groups`) no group and no set of exact
    duplicates straddles two splits (`fill_units`); without, the split is the per-class one."""
    check_fractions(val, test)
    if groups is not None:
        return _group_split(source, val, test, seed, groups)
    by_class: dict[int, list] = {}
    for f in source.files:
        by_class.setdefault(f.label, []).append(f)
    entries = []
    for label, files in sorted(by_class.items()):
        shas = {f.path: source.sha256(f.path) for f in files}
        files = sorted(files, key=lambda f: split_key(seed, shas[f.path], f.path))
        n_val, n_test = int(len(files) * val), int(len(files) * test)
        for i, f in enumerate(files):
            split = "val" if i < n_val else "test" if i < n_val + n_test else "train"
            entries.append(Entry(f.path, label, source.classes[label], split, shas[f.path]))
    return Manifest(source.classes, entries, source.name, val, test, seed)


def _group_split(source: ImageSource, val: float, test: float, seed: int,
                 groups: dict[str, str]) -> Manifest:
    files = source.files
    paths, labels = [f.path for f in files], [f.label for f in files]
    shas = [source.sha256(p) for p in paths]
    units = image_units(shas, [groups[p] for p in paths])
    keys = [split_key(seed, sha, p) for sha, p in zip(shas, paths)]
    totals = Counter(labels)
    targets = {"val": {c: int(n * val) for c, n in totals.items()},
               "test": {c: int(n * test) for c, n in totals.items()}}
    split = fill_units(units, labels, keys, targets)
    entries = [Entry(p, y, source.classes[y], split[i], sha)
               for i, (p, y, sha) in enumerate(zip(paths, labels, shas))]
    return Manifest(source.classes, entries, source.name, val, test, seed)


def fill_units(units, labels, keys, targets: dict[str, dict[int, int]]) -> list[str]:
    """The split of each image when whole units fill the splits of `targets` ({split: {label:
    images}}, in order) as far as each class allows: units in the order of their smallest key go
    to the first split they fit in entirely, else to train. For units of one image this is the
    per-class rule: the first `int(n * val)` of a class by key to val, the next to test."""
    members: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        members.setdefault(int(u), []).append(i)
    order = sorted(members.values(), key=lambda idx: min(keys[i] for i in idx))
    filled = {s: Counter() for s in targets}
    out = ["train"] * len(labels)
    for idx in order:
        need = Counter(labels[i] for i in idx)
        for s, cap in targets.items():
            if all(filled[s][c] + k <= cap.get(c, 0) for c, k in need.items()):
                filled[s].update(need)
                for i in idx:
                    out[i] = s
                break
    return out


def run_manifest(source: ImageSource, run_dir: str | os.PathLike, *, val: float, test: float,
                 seed: int, given: str | os.PathLike | None = None,
                 groups: dict[str, str] | None = None) -> Manifest:
    """The split a run (or a study: `run_dir` its folder) uses, verified against `source`'s
    files: the folder's own split.json (a run resumed, evaluated or analyzed; a study rerun),
    else `given` (a study's manifest, which a new run copies), else a new split with these
    fractions, seed and `groups` (`make_split`). The one rule for train, evaluate, analyze and a
    study."""
    own = Path(run_dir) / SPLIT_FILE
    if own.is_file():
        manifest = Manifest.load(own)
    elif given is not None:
        manifest = Manifest.load(given)
    else:
        manifest = make_split(source, val=val, test=test, seed=seed, groups=groups)
    manifest.verify(source)
    return manifest


# The seed of the train_eval subset: fixed, so every run sharing a split sees the same images.
TRAIN_EVAL_SEED = 0


def train_eval_manifest(manifest: Manifest) -> Manifest:
    """A manifest of the training images a run evaluates in eval mode (`train_eval` in
    result.json's `best` and `last`): per class as many as the test split (else the validation
    split) holds, drawn from the train entries with `TRAIN_EVAL_SEED`, so the same images for every
    epoch and every run of a study; no decoding of the whole training split under eval transforms."""
    train = manifest.entries("train")
    held_out = manifest.entries("test") or manifest.entries("val")
    # per class as many as the held-out split has: train_eval - test then compares like with like
    # (an unstratified draw shifts the class mix, and with it the accuracy of any model)
    want = Counter(e.label for e in held_out) if held_out else Counter(e.label for e in train)
    rng = random.Random(TRAIN_EVAL_SEED)
    chosen = []
    for label in sorted(want):
        pool = [e for e in train if e.label == label]
        chosen += rng.sample(pool, min(len(pool), want[label]))
    return Manifest(manifest.classes, chosen, data=manifest.data, val=manifest.val,
                    test=manifest.test, seed=manifest.seed)
