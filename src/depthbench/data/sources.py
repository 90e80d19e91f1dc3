"""Image sources: an image folder, the bundled `elpv` dataset, or the generated `synthetic` one.

`open_source(data)` lists the candidate files (cheap); the first use of `files` or `problems` scans
them: every file is read once, hashed (sha256) and decoded, so unreadable, truncated, empty and
oversized files become problems and are left out of `files` (and so out of every split). The scan
is what `data check` reports and what `make_split` splits; the training path never rescans (it
trusts a verified manifest).

Folder rules: one sub-folder per class (class names = folder names, sorted); images are found in a
class folder and its real sub-folders; extensions match case-insensitively; hidden files and
folders (`.name`) and non-image files are ignored (listed in `ignored`); symbolic links to files
are followed, links to folders inside a class are not (no walk can loop), and a class folder that
links back to the dataset or above it is refused as a loop.
"""

from __future__ import annotations

import csv
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from depthbench.configio import BUNDLED_DATA
from depthbench.cpus import usable_cpu_count
from depthbench.data.images import Probe, is_image_name, open_rgb, probe, sha256_file
from depthbench.data.synthetic import SyntheticSpec, materialize
from depthbench.errors import DataError

# elpv defect probabilities (0, 1/3, 2/3, 1) -> class names, in label order.
ELPV_CLASSES = ["functional", "possibly_defective", "likely_defective", "defective"]


def default_cache_dir() -> Path:
    """`$DEPTHBENCH_CACHE`, else `~/.cache/depthbench`."""
    env = os.environ.get("DEPTHBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "depthbench"


@dataclass(frozen=True)
class SourceFile:
    path: str  # POSIX path relative to the source root
    label: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


def check_relative(path: str | os.PathLike, where: str = "") -> str:
    """`path` as a plain relative POSIX path that stays inside its root, else DataError."""
    path = Path(path).as_posix() if isinstance(path, os.PathLike) else str(path)
    p = PurePosixPath(path)
    if (not path or "\\" in path or "\0" in path or p.is_absolute() or ".." in p.parts
            or (len(path) > 1 and path[1] == ":")):
        raise DataError(f"{where or 'manifest'}: path {path!r} leaves the data folder (absolute "
                        "or with '..'); manifest paths must be relative to the data root")
    return str(p)


class ImageSource:
    """A set of class-labelled image files under one root folder (see the module docstring)."""

    def __init__(self, name: str, root: Path, classes: list[str], candidates: list[SourceFile],
                 problems: list[dict] | None = None, ignored: list[str] | None = None,
                 class_dirs: dict[str, Path] | None = None):
        self.name = name
        self.root = Path(root)
        self.classes = list(classes)
        self.candidates = sorted(candidates, key=lambda f: (f.label, f.path))
        self.ignored = sorted(ignored or [])
        self._listing_problems = list(problems or [])
        self._class_dirs = class_dirs or {}
        self._probes: dict[str, Probe] | None = None
        self._files: list[SourceFile] | None = None
        self._problems: list[dict] | None = None

    def __repr__(self) -> str:
        return f"ImageSource({self.name!r}, root={str(self.root)!r}, classes={len(self.classes)})"

    # -- files
    def abspath(self, path: str | os.PathLike) -> Path:
        return self.root / check_relative(path, str(self.root))

    def load_rgb(self, path: str | os.PathLike) -> Image.Image:
        """The image at `path` (relative to root) as RGB, EXIF-transposed (`images.to_rgb`)."""
        return open_rgb(self.abspath(path))

    def sha256(self, path: str | os.PathLike) -> str:
        """Content hash of `path`, from the scan when it has run, else read now."""
        path = check_relative(path, str(self.root))
        if self._probes is not None and path in self._probes:
            return self._probes[path].sha256
        return sha256_file(self.abspath(path))

    # -- the scan
    @property
    def files(self) -> list[SourceFile]:
        """Usable images (readable, non-empty, within Pillow's pixel limit), sorted by label, path."""
        self.scan()
        return self._files

    @property
    def problems(self) -> list[dict]:
        """`{path, problem, kind, severity}` for every file left out (`error`) or suspicious
        (`warning`: content not matching the extension, a folder link not followed)."""
        self.scan()
        return self._problems

    def scan(self, workers: int | None = None) -> None:
        """Read, hash and decode every candidate once (threads: hashing and decoding release the
        GIL). Raises DataError naming the class folder when a class has no usable image."""
        if self._files is not None:
            return
        workers = workers or min(8, usable_cpu_count() + 2)

        def one(f: SourceFile) -> Probe:
            try:
                return probe(self.abspath(f.path))
            except OSError as e:
                return Probe("", "unreadable", f"cannot be read ({e.strerror or e})")

        with ThreadPoolExecutor(workers) as pool:
            probes = dict(zip((f.path for f in self.candidates), pool.map(one, self.candidates)))
        files, problems = [], list(self._listing_problems)
        for f in self.candidates:
            p = probes[f.path]
            if p.ok:
                files.append(f)
                if p.mismatch:
                    problems.append(_problem(f.path, "extension", "warning",
                                             f"content is {p.mismatch}, not what the extension "
                                             f"{PurePosixPath(f.path).suffix!r} says (still used)"))
            else:
                problems.append(_problem(f.path, p.kind, "error", p.detail))
        problems.sort(key=lambda p: p["path"])
        usable = {f.label for f in files}
        for label, cls in enumerate(self.classes):
            if label not in usable:
                n = sum(f.label == label for f in self.candidates)
                where = self._class_dirs.get(cls, f"{self.root} (class {cls!r})")
                raise DataError(f"class folder {where} has no usable image ({n} image files, "
                                f"{n} unreadable); add images or remove the folder")
        self._probes, self._files, self._problems = probes, files, problems


def _problem(path: str, kind: str, severity: str, problem: str) -> dict:
    return {"path": path, "problem": problem, "kind": kind, "severity": severity}


# ------------------------------------------------------------------------------- image folder

def open_folder(root: str | os.PathLike) -> ImageSource:
    """An image folder: one sub-folder per class (module docstring for the rules)."""
    root = Path(root).expanduser()
    classes, class_dirs, problems, ignored = _class_folders(root)
    candidates: list[SourceFile] = []
    for label, cls in enumerate(classes):
        _walk_class(root, cls, label, candidates, problems, ignored)
    return ImageSource(root.name or str(root), root, classes, candidates, problems, ignored,
                       class_dirs)


def _class_folders(root: Path) -> tuple[list[str], dict[str, Path], list[dict], list[str]]:
    """The class folders of an image folder (classes, their paths, problems, files ignored),
    from its top-level listing alone; a DataError when it is no image folder."""
    if not root.exists():
        raise DataError(f"data folder not found: {root}; give an image folder (one sub-folder "
                        "per class) or a bundled name: elpv, synthetic")
    if not root.is_dir():
        raise DataError(f"data path {root} is a file; give an image folder (one sub-folder per "
                        "class) or a bundled name: elpv, synthetic")
    real_root = root.resolve()
    classes, class_dirs, problems, ignored = [], {}, [], []
    loose_images = 0
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        raise DataError(f"cannot list data folder {root}: {e.strerror or e}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()  # follows a symlinked class folder
        except OSError:
            is_dir = False
        if not is_dir:
            ignored.append(entry.name)
            loose_images += is_image_name(entry.name)
            continue
        real = Path(entry.path).resolve()
        if real == real_root or real in real_root.parents:
            problems.append(_problem(entry.name, "symlink_loop", "warning",
                                     "folder link back to the dataset or above it: not followed"))
            continue
        classes.append(entry.name)
        class_dirs[entry.name] = root / entry.name
    if not classes:
        hint = (f" (it holds {loose_images} images directly: put each class in its own "
                "sub-folder)") if loose_images else ""
        raise DataError(f"data folder {root} has no class sub-folders{hint}; expected one "
                        "sub-folder of images per class, like flower_photos/")
    if len(classes) == 1:
        raise DataError(f"data folder {root} has only one class ({classes[0]!r}); a classifier "
                        "needs at least two class sub-folders")
    return classes, class_dirs, problems, ignored


def _walk_class(root: Path, cls: str, label: int, candidates: list, problems: list,
                ignored: list) -> None:
    stack = [PurePosixPath(cls)]
    while stack:
        rel = stack.pop()
        try:
            entries = sorted(os.scandir(root / rel), key=lambda e: e.name)
        except OSError as e:
            problems.append(_problem(str(rel), "unreadable", "error",
                                     f"folder cannot be listed ({e.strerror or e})"))
            continue
        for entry in entries:
            path = str(rel / entry.name)
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(rel / entry.name)
                continue
            if entry.is_symlink():
                try:
                    st = os.stat(entry.path)
                except OSError as e:
                    if is_image_name(entry.name):
                        problems.append(_problem(path, "broken_link", "error",
                                                 f"symbolic link cannot be followed "
                                                 f"({e.strerror or e})"))
                    else:
                        ignored.append(path)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    problems.append(_problem(path, "folder_link", "warning",
                                             "link to a folder inside a class: not followed"))
                    continue
            if not is_image_name(entry.name):
                ignored.append(path)
                continue
            try:
                st = os.stat(entry.path)
            except OSError as e:
                problems.append(_problem(path, "unreadable", "error",
                                         f"cannot be read ({e.strerror or e})"))
                continue
            if not stat.S_ISREG(st.st_mode):
                problems.append(_problem(path, "not_a_file", "error",
                                         "not a regular file (device, pipe or socket)"))
                continue
            if st.st_size == 0:
                problems.append(_problem(path, "empty", "error", "empty file (0 bytes)"))
                continue
            candidates.append(SourceFile(path, label))


# ---------------------------------------------------------------------------------- elpv

def open_elpv() -> ImageSource:
    """The ELPV solar-cell images shipped by the `elpv-dataset` package (2,624 grayscale 300x300
    PNGs). Label = defect probability 0, 1/3, 2/3, 1 -> `ELPV_CLASSES`; the cell type (mono/poly)
    is kept as `meta["cell_type"]`."""
    try:  # imported on use: only `elpv` needs the package
        import elpv_dataset
    except ImportError:
        raise DataError("the bundled dataset elpv needs the package elpv-dataset; "
                        "install it with `pip install elpv-dataset`") from None
    root = Path(elpv_dataset.__file__).parent / "data"
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DataError(f"elpv: labels file {labels} is missing; reinstall elpv-dataset")
    candidates = []
    with open(labels, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter=" ", skipinitialspace=True), 1):
            if not row:
                continue
            try:
                path, prob, cell_type = row[0], float(row[1]), row[2]
                label = round(prob * 3)
                if not 0 <= label <= 3 or abs(prob * 3 - label) > 1e-6:
                    raise ValueError(prob)
            except (IndexError, ValueError):
                raise DataError(f"elpv: {labels} line {lineno} is not 'path probability type' "
                                f"({' '.join(row)!r}); reinstall elpv-dataset") from None
            candidates.append(SourceFile(check_relative(path, str(labels)), label,
                                         {"cell_type": cell_type, "defect_probability": prob}))
    return ImageSource("elpv", root, ELPV_CLASSES, candidates)


# ---------------------------------------------------------------------------------- entry

def open_source(data: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                **opts: Any) -> ImageSource:
    """A folder path, `elpv`, or `synthetic[:n=300,size=32,classes=4,seed=0]` (or `synthetic`
    with those options as keyword arguments). A path that exists wins over a bundled name."""
    text = os.fspath(data)
    name, _, spec = text.partition(":")
    if _bundled(text, opts):
        if name == "elpv":
            return open_elpv()
        s = SyntheticSpec.parse(spec, **opts)
        folder = materialize(s, Path(cache_dir) if cache_dir else default_cache_dir())
        source = open_folder(folder)
        source.name = f"synthetic:n={s.n},size={s.size},classes={s.classes},seed={s.seed}"
        source.ignored = [p for p in source.ignored if p != "synthetic.json"]
        return source
    if opts:
        raise DataError(f"options {sorted(opts)} apply to the synthetic dataset only, "
                        f"not to {text}")
    return open_folder(text)


def check_data(data: str | os.PathLike) -> None:
    """What `open_source(data)` would refuse before it lists a single image: a bundled name with
    bad options, or a path that is no image folder (missing, a file, without class folders).
    Cheap and torch-free: the command line checks a data argument with it before torch loads."""
    text = os.fspath(data)
    name, _, spec = text.partition(":")
    if not _bundled(text, {}):
        _class_folders(Path(text).expanduser())
    elif name == "synthetic":
        SyntheticSpec.parse(spec)


def _bundled(text: str, opts: dict) -> bool:
    """Whether the data argument `text` names a bundled dataset (a path that exists wins); its
    options checked where they need no data."""
    name, _, spec = text.partition(":")
    if name not in BUNDLED_DATA or Path(text).exists():
        return False
    if name == "elpv" and (spec or opts):
        raise DataError(f"elpv takes no options (got {spec or opts!r})")
    return True
