"""Images that must stay together: exact duplicates, and the groups a user names.

A split that sends one copy of an image to training and another to test measures memory, not
generalisation; so does one that trains on some images of a patient, a solar module or a session
and tests on others. A user names those groups in a CSV file (`path,group`, one row per image,
paths relative to the data folder); `image_units` joins them with the exact duplicates (the same
content hash) into units that a split or a fold never cuts.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depthbench.errors import DataError

if TYPE_CHECKING:
    from depthbench.data.sources import ImageSource

GROUPS_HEADER = ["path", "group"]


def read_groups(source: ImageSource, path: str | os.PathLike) -> dict[str, str]:
    """{image path: group} for every usable image of `source`, from the CSV file `path`.

    Errors (one line, naming the file and the line): a missing or unreadable file, a header other
    than `path,group`, a row without a path or a group, a path listed twice, a path that is not an
    image of the data folder, and images of the data that the file does not list. A listed image
    the data check leaves out (unreadable, empty) is allowed and ignored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"groups file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"groups file {path} cannot be read ({e})") from None
    rows = list(csv.reader(text.splitlines()))
    header = [c.strip() for c in rows[0]] if rows else []
    if header != GROUPS_HEADER:
        raise DataError(f"{path}: line 1: expected the header `path,group`, got "
                        f"`{','.join(header)}`; write one row per image: its path relative to "
                        f"{source.root}, then its group")
    usable = {f.path for f in source.files}
    left_out = {p["path"] for p in source.problems if p.get("severity") == "error"}
    out: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{path}: line {line}: expected `path,group` (two values), got "
                            f"{','.join(row)!r}")
        image, group = Path(row[0].strip()).as_posix(), row[1].strip()
        if image in out:
            raise DataError(f"{path}: line {line}: {image!r} is listed twice; give each image "
                            "one group")
        if image not in usable and image not in left_out:
            raise DataError(f"{path}: line {line}: {image!r} is not an image of {source.root} "
                            "(paths are relative to the data folder, e.g. "
                            f"{next(iter(sorted(usable)), 'class/image.png')!r})")
        if image in usable:
            out[image] = group
    missing = sorted(usable - set(out))
    if missing:
        shown = ", ".join(missing[:3]) + (f", ... {len(missing) - 3} more" if len(missing) > 3
                                          else "")
        raise DataError(f"{path}: {len(missing)} image(s) of {source.root} have no group "
                        f"({shown}); list every image, one `path,group` row each")
    return out


def groups_hash(path: str | os.PathLike) -> str:
    """The content hash of a groups file: a study refuses to go on with a changed one."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def image_units(shas: list[str], groups: list[str] | None) -> np.ndarray:
    """The unit of each image (an int per image, in the given order): images sharing a content
    hash or a group share a unit, transitively (a duplicate of one group's image in another group
    joins the two groups). Connected components of the graph image - hash - group."""
    # on use, as scikit-learn in folds.py: a study's typo answers before scipy loads
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(shas)
    keys: dict[tuple[str, str], int] = {}
    rows, cols = [], []
    for i, sha in enumerate(shas):
        for key in [("sha", sha)] + ([("group", groups[i])] if groups is not None else []):
            rows.append(i)
            cols.append(n + keys.setdefault(key, len(keys)))
    size = n + len(keys)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return labels[:n].astype(np.int64)
