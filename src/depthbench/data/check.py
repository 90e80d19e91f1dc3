"""`depthbench data check`: counts per class and split, and everything wrong with a dataset.

Problems (each `{path, problem, kind, severity}`; `error` = left out of every split, `warning` =
still used):
- errors: `empty`, `unreadable` (not an image, corrupt), `truncated`, `too_large` (over Pillow's
  `MAX_IMAGE_PIXELS`: a possible decompression bomb), `broken_link` (incl. a link loop),
  `not_a_file`;
- warnings: `extension` (content is another format than the extension says), exact duplicates
  (`duplicate_in_class`, `duplicate_across_classes` — the same picture with two labels —, and
  `duplicate_across_splits` — a validation image the model also trains on), `class_too_small`
  (`int(n * fraction)` is 0: the split gets no image of that class), `unbalanced` (the largest class
  has at least `UNBALANCED_RATIO` times the images of the smallest), `symlink_loop`, `folder_link`.
"""

from __future__ import annotations

from collections import defaultdict

from depthbench.configio import DEFAULT_TEST, DEFAULT_VAL
from depthbench.data.folds import make_partition
from depthbench.data.groups import read_groups
from depthbench.data.sources import open_source
from depthbench.data.split import SPLITS, make_split

UNBALANCED_RATIO = 10.0


def check_dataset(data: str, val: float = DEFAULT_VAL, test: float = DEFAULT_TEST,
                  split_seed: int = 0, cache_dir=None, *, folds: int | None = None,
                  repeats: int = 1, groups: str | None = None) -> dict:
    """The `data check` document: `{data, root, images, classes, counts, split: {train, val, test},
    split_counts, problems: [{path, problem, kind, severity}], errors, warnings, ignored, ...}`;
    with `folds`, also `folds: {folds, repeats, seed, val, partition, counts}` (`counts[r][k]`:
    the test images of each class in fold k of repeat r). `groups`: a `path,group` CSV file that
    both the split and the folds respect."""
    source = open_source(data, cache_dir=cache_dir)
    named = read_groups(source, groups) if groups is not None else None
    manifest = make_split(source, val=val, test=test, seed=split_seed, groups=named)
    problems = list(source.problems)
    problems += _duplicates(source, manifest)

    counts = {cls: 0 for cls in source.classes}
    for f in source.files:
        counts[source.classes[f.label]] += 1
    problems += small_classes(counts, val, test)
    cv = None
    if folds is not None:
        partition = make_partition(source, folds, repeats, split_seed, val, named)
        problems += small_for_folds(counts, folds)
        cv = {"folds": folds, "repeats": repeats, "seed": split_seed, "val": val,
              "partition": partition.hash, "counts": partition.fold_counts()}
    big, small = max(counts, key=counts.get), min(counts, key=counts.get)
    if counts[big] >= UNBALANCED_RATIO * counts[small]:
        problems.append({"path": ".", "kind": "unbalanced", "severity": "warning",
                         "problem": f"very unbalanced classes: {big!r} has {counts[big]} images, "
                                    f"{counts[big] / counts[small]:.1f}x the {counts[small]} of "
                                    f"{small!r} (accuracy alone will flatter a model; read "
                                    "per-class recall)"})
    problems.sort(key=lambda p: (p["severity"] != "error", p["path"], p["kind"]))
    return {
        "data": source.name,
        "root": str(source.root),
        "images": len(source.files),
        "classes": source.classes,
        "counts": counts,
        "split": manifest.counts(),
        "split_counts": manifest.class_counts(),
        "val": val, "test": test, "split_seed": split_seed,
        "manifest_hash": manifest.hash,
        "problems": [{"path": p["path"], "problem": p["problem"], "kind": p["kind"],
                      "severity": p["severity"]} for p in problems],
        "errors": sum(p["severity"] == "error" for p in problems),
        "warnings": sum(p["severity"] == "warning" for p in problems),
        "ignored": len(source.ignored),
        **({"groups": str(groups)} if groups is not None else {}),
        **({"folds": cv} if cv else {}),
    }


def small_classes(counts: dict[str, int], val: float, test: float) -> list[dict]:
    """A `class_too_small` warning per class and split whose `int(n * fraction)` is 0: that split
    gets no image of the class (its recall there is undefined). The words `data check` and a
    study starting on the data both print."""
    out = []
    for cls, n in counts.items():
        for name, frac in (("val", val), ("test", test)):
            if frac > 0 and int(n * frac) == 0:
                out.append({"path": cls, "kind": "class_too_small", "severity": "warning",
                            "problem": f"class {cls!r} has {n} image{'s' if n != 1 else ''}: "
                                       f"int({n} * {frac:g}) = 0, so {name} gets none of it"})
    return out


def small_for_folds(counts: dict[str, int], folds: int) -> list[dict]:
    """A `class_too_small` warning per class with fewer images than folds: some folds test none
    of it (their recall of the class is undefined)."""
    return [{"path": cls, "kind": "class_too_small", "severity": "warning",
             "problem": f"class {cls!r} has {n} image{'s' if n != 1 else ''}, fewer than the "
                        f"{folds} folds: {folds - n} fold(s) test none of it"}
            for cls, n in counts.items() if n < folds]


def _duplicates(source, manifest) -> list[dict]:
    """One problem per extra copy of a content hash, plus one per copy in another split."""
    split_of = {e.path: e.split for e in manifest.entries()}
    groups: dict[str, list] = defaultdict(list)
    for f in source.files:
        groups[source.sha256(f.path)].append(f)
    out = []
    for files in groups.values():
        if len(files) < 2:
            continue
        first, *rest = sorted(files, key=lambda f: f.path)
        for f in rest:
            same = f.label == first.label
            where = "same class" if same else (f"class {source.classes[first.label]!r}, this one "
                                               f"is {source.classes[f.label]!r}")
            out.append({"path": f.path,
                        "kind": "duplicate_in_class" if same else "duplicate_across_classes",
                        "severity": "warning",
                        "problem": f"exact duplicate of {first.path} ({where})"})
        for f in files:
            others = sorted({split_of[g.path] for g in files if g is not f} - {split_of[f.path]})
            if others and split_of[f.path] != "train":
                copies = [g.path for g in files if split_of[g.path] != split_of[f.path]]
                out.append({"path": f.path, "kind": "duplicate_across_splits",
                            "severity": "warning",
                            "problem": f"in {split_of[f.path]}, but an exact copy is in "
                                       f"{'/'.join(others)} ({', '.join(copies[:3])})"})
    return out


def format_check(result: dict) -> str:
    """The human table of a `check_dataset` result."""
    rows = [("class", "images", *SPLITS)]
    for cls in result["classes"]:
        sc = result["split_counts"][cls]
        rows.append((cls, str(result["counts"][cls]), *(str(sc[s]) for s in SPLITS)))
    rows.append(("total", str(result["images"]), *(str(result["split"][s]) for s in SPLITS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{result['data']} ({result['root']}): {result['images']} images, "
             f"{len(result['classes'])} classes, split val={result['val']} test={result['test']} "
             f"split_seed={result['split_seed']}"]
    for k, r in enumerate(rows):
        lines.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in
                                                          zip(r[1:], widths[1:])]))
        if k == 0 or k == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    if result.get("folds"):
        lines += _fold_lines(result)
    if result["ignored"]:
        lines.append(f"{result['ignored']} non-image or hidden files ignored")
    probs = result["problems"]
    if not probs:
        lines.append("no problems found")
    else:
        lines.append(f"problems: {result['errors']} errors (left out), {result['warnings']} "
                     "warnings (still used)")
        width = min(48, max(len(p["path"]) for p in probs))
        for p in probs:
            lines.append(f"  {p['severity']:<7}  {p['path']:<{width}}  {p['kind']}: {p['problem']}")
    return "\n".join(lines)


def _fold_lines(result: dict) -> list[str]:
    """One table per repeat: the test images of each class in each fold."""
    cv = result["folds"]
    k, r = cv["folds"], cv["repeats"]
    lines = [f"{k}-fold x {r} repeat{'s' if r != 1 else ''} (split_seed={cv['seed']}; each fold "
             f"is a run's test split, val={cv['val']:g} of the rest validates): test images per "
             "class and fold"]
    for rep, per_fold in enumerate(cv["counts"]):
        rows = [(f"repeat {rep}", *(f"fold {i}" for i in range(k)))]
        for cls in result["classes"]:
            rows.append((cls, *(str(f[cls]) for f in per_fold)))
        rows.append(("total", *(str(sum(f.values())) for f in per_fold)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for j, row in enumerate(rows):
            lines.append("  ".join([row[0].ljust(widths[0])]
                                   + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
            if j == 0 or j == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
    return lines
