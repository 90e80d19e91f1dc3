"""The study folder: what it holds, checked before a study starts, and recorded once it does.

`preflight` checks everything that would fail every run before a file is written: the study the
folder already holds (`check_folder`: refused naming every setting that differs, with both
values), the device the runs ask for, their pretrained weights, the data and its split. A failed
start therefore leaves the folder as it was, and the corrected command is not refused. Once the
study starts, `record_study` writes `study.yaml` (the study as it now stands: a rerun with fewer
seeds records them, and the report leaves the other seeds' folders out, naming them) and the
split manifest, once; a cross-validated study writes its partition (`folds.json`) instead, and
`record_cells` gives each run folder the split.json of its (repeat, fold) cell, derived from it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from depthbench._io import atomic_write_bytes, atomic_write_text, remove_stale_temps
from depthbench.data.check import small_classes, small_for_folds
from depthbench.data.folds import Partition, make_partition
from depthbench.data.groups import groups_hash, read_groups
from depthbench.data.sources import open_source
from depthbench.data.split import SPLIT_FILE, Manifest, run_manifest
from depthbench.engine.config import OPERATIONAL_KEYS, undertrain_warning
from depthbench.engine.devices import device_type
from depthbench.errors import ConfigError, DataError
from depthbench.folderlock import FolderLock, FolderLocked
from depthbench.runrecord import RUN_DIR_PATTERN
from depthbench.study.grid import RunPlan, plan_runs
from depthbench.study.schema import StudySpec
from depthbench.study.slurm import active_jobs

# Keys that may change between invocations on one study folder: seeds add or leave out runs (the
# report covers the seeds study.yaml lists now); jobs and executor only change where and when runs
# train, as the operational `overrides` (engine.config.OPERATIONAL_KEYS) change how. Anything
# else would mix two studies in a report.
_RERUN_MAY_CHANGE = {"seeds", "jobs", "executor", "report"}


FOLDS_FILE = "folds.json"  # a cross-validated study's partition, each run's split derived from it


@dataclass
class Start:
    """What the checks found, for the study to start with: the split (the folder's, or a new one
    not saved yet; a partition when cross-validated) and the warnings to print once it starts."""

    manifest: Manifest | None
    new_split: bool
    warnings: list[str]
    partition: Partition | None = None

    @property
    def images(self) -> Manifest:
        """A manifest of every image the study uses: the split, or a cross-validated study's
        first cell (what planning counts)."""
        return self.manifest if self.manifest is not None else self.partition.cell(0, 0)


def preflight(spec: StudySpec, study_dir: Path) -> Start:
    """Everything that fails a study for all its runs, checked before a file is written: the
    study the folder holds, the device the runs ask for, their pretrained weights, the data and
    its split (`DataError`)."""
    check_folder(study_dir, spec)
    if spec.executor.kind == "local":  # SLURM jobs run on nodes with their own devices
        accelerator = spec.overrides.get("accelerator", "auto")
        try:
            device_type(accelerator)
        except ConfigError:
            raise ConfigError(f"study {spec.name}: overrides.accelerator: {accelerator}: no CUDA "
                              "GPU is visible on this machine; set it to cpu or auto (or train "
                              "on GPU nodes: --executor slurm)") from None
    pretrained = spec.overrides.get("pretrained")
    if pretrained and not Path(pretrained).expanduser().is_file():
        raise ConfigError(f"study {spec.name}: overrides.pretrained: {pretrained} not found")
    source = open_source(spec.data)
    s = spec.split
    groups = read_groups(source, s.groups) if s.groups is not None else None
    undertrain = undertrain_warning(plan_runs(spec)[0].train_config())
    undertrain = [undertrain] if undertrain else []
    if s.folds is not None:
        partition, new = _partition(spec, study_dir, source, groups)
        counts = {c: sum(y == label for y in partition.labels)
                  for label, c in enumerate(partition.classes)}
        warnings = small_classes(counts, s.val, 0.0) + small_for_folds(counts, s.folds)
        return Start(None, new, [p["problem"] for p in warnings] + undertrain, partition)
    new = not (study_dir / SPLIT_FILE).is_file()
    manifest = run_manifest(source, study_dir, val=s.val, test=s.test, seed=s.seed, groups=groups)
    counts = {cls: sum(n.values()) for cls, n in manifest.class_counts().items()}
    warnings = [p["problem"] for p in small_classes(counts, s.val, s.test)]
    return Start(manifest, new, warnings + undertrain)


def _partition(spec: StudySpec, study_dir: Path, source, groups) -> tuple[Partition, bool]:
    """The study folder's partition, checked against the data and the groups file (a changed
    file would cut a group, or test an image a run trained on), else a new one not saved yet."""
    s = spec.split
    sha = groups_hash(s.groups) if s.groups is not None else None
    path = study_dir / FOLDS_FILE
    if not path.is_file():
        return make_partition(source, s.folds, s.repeats, s.seed, s.val, groups, sha), True
    partition = Partition.load(path)
    partition.verify(source)
    made = (partition.folds, partition.repeats, partition.seed, partition.val)
    if made != (s.folds, s.repeats, s.seed, s.val):
        raise DataError(f"{path} was made for folds {made[0]}, repeats {made[1]}, seed {made[2]}, "
                        f"val {made[3]:g}, not this study's; restore it, or start a new study "
                        "folder (--out)")
    if partition.groups_sha != sha:
        raise DataError(f"{path}: the groups file {s.groups or '(none)'} is not the one the "
                        "study's folds were made with; restore it, or start a new study folder "
                        "(--out) to make new folds")
    return partition, False


def check_folder(study_dir: Path, spec: StudySpec) -> None:
    """Refuse, before writing, a folder that holds another study (naming every key that differs,
    with both values) or whose runs SLURM is still training while this run is local."""
    path = study_dir / "study.yaml"
    if path.is_file():
        try:
            old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not readable ({str(e).splitlines()[0]}); delete the "
                              "study folder, or pass --out to start a new one") from None
        diff = _spec_differences(old, spec.model_dump(mode="json"))
        if diff:
            raise ConfigError(f"{path}: this folder holds another study: {'; '.join(diff)}; "
                              "pass --out to start a new study folder, or delete this one")
    if spec.executor.kind == "local":
        _refuse_if_on_slurm(study_dir)


def _spec_differences(old: dict, new: dict) -> list[str]:
    """`key` is <old> there, <new> now: one phrase per setting that differs between the folder's
    study and this one (dotted keys inside mappings), except those a rerun may change."""
    out = []
    for key in sorted(set(old) | set(new), key=lambda k: list(new).index(k) if k in new else 99):
        if key in _RERUN_MAY_CHANGE:
            continue
        a, b = old.get(key, _UNSET), new.get(key, _UNSET)
        if key == "overrides":  # how runs execute may change, as on a resumed `train`
            a, b = ({k: v for k, v in d.items() if k not in OPERATIONAL_KEYS}
                    if isinstance(d, dict) else d for d in (a, b))
        out += _differences(key, a, b)
    return out


def _differences(path: str, a, b) -> list[str]:
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differences(f"{path}.{k}", a.get(k, _UNSET), b.get(k, _UNSET))]
    return [f"`{path}` is {_shown(a)} there, {_shown(b)} now"]


def _shown(v) -> str:
    return "not set" if v is _UNSET else json.dumps(v, ensure_ascii=False)


_UNSET = object()


def remove_study_temps(study_dir: Path) -> None:
    """The temporary files a killed process left: the study folder's own, and those of each run
    folder no live trainer holds (a trainer removes its own when it resumes), taken for the
    moment it takes: a dead trainer's owner record goes as the folder is let go."""
    for p in study_dir.iterdir():
        if p.is_dir() and RUN_DIR_PATTERN.match(p.name):
            with contextlib.suppress(FolderLocked), FolderLock(p):  # a live trainer's: its own
                remove_stale_temps(p)
        elif p.is_dir():
            remove_stale_temps(p)
        elif p.name.startswith(".") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# the study folder, once the study starts


def record_study(study_dir: Path, spec: StudySpec, start: Start, console) -> Path | None:
    """study.yaml, the study as it now stands (a rerun with fewer seeds says so: the report then
    leaves the other seeds' folders out and names them), and the split manifest, written once;
    returns its path. A cross-validated study writes its partition instead and returns None:
    each run's split is its own split.json (`record_cells`)."""
    atomic_write_text(study_dir / "study.yaml", yaml.safe_dump(spec.model_dump(mode="json"),
                                                               sort_keys=False))
    if start.partition is not None:
        if start.new_split:
            p = start.partition
            p.save(study_dir / FOLDS_FILE)
            console.print(f"{study_dir}: {design_text(p.folds, p.repeats)} of {spec.data}: "
                          f"{len(p)} images ({len(p.classes)} classes), about {len(p) // p.folds} "
                          "test images a fold")
        return None
    path = study_dir / SPLIT_FILE
    if start.new_split:
        start.manifest.save(path)
        counts = start.manifest.counts()
        console.print(f"{study_dir}: split {spec.data}: {counts['train']} train, {counts['val']} "
                      f"val, {counts['test']} test images ({len(start.manifest.classes)} classes)")
    return path


def design_text(folds: int, repeats: int) -> str:
    """`5-fold x 2 repeats`."""
    return f"{folds}-fold x {repeats} repeat{'s' if repeats != 1 else ''}"


def record_cells(study_dir: Path, partition: Partition, plans: list[RunPlan]) -> None:
    """Each run folder's split.json: its (repeat, fold) cell of the partition, written before the
    run is handed to an executor (a SLURM job, a worker), which finds it in its own folder. One
    already there must be of this partition and cell (a run resumes on the images it began on)."""
    cells: dict[tuple[int, int], bytes] = {}  # a cell's split.json, made once for its runs
    for plan in plans:
        key = (plan.repeat, plan.fold)
        if key not in cells:
            cells[key] = partition.cell(*key).to_json().encode()
        path = study_dir / plan.name / SPLIT_FILE
        if not path.is_file():
            atomic_write_bytes(path, cells[key])
        elif path.read_bytes() != cells[key]:
            raise DataError(f"{path} is not the split of repeat {plan.repeat}, fold {plan.fold} "
                            f"of this study's {FOLDS_FILE}; delete the run folder {path.parent} "
                            "to train it again on its cell")


def _refuse_if_on_slurm(study_dir: Path) -> None:
    """A local run must not train the runs that SLURM jobs are training."""
    jobs = active_jobs(study_dir)
    if jobs:
        raise ConfigError(f"{study_dir}: {len(jobs)} runs of this study are still SLURM jobs "
                          f"({', '.join(jobs[:4])}{', ...' if len(jobs) > 4 else ''}); collect "
                          "them with --executor slurm, or scancel them first")
