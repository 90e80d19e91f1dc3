"""The study folder: what it holds, checked before a study starts, and recorded once it does.

`preflight` checks everything that would fail every run before a file is written: the study the
folder already holds (`check_folder`: refused naming every setting that differs, with both
values), the device the runs ask for, their pretrained weights, the data and its split. A failed
start therefore leaves the folder as it was, and the corrected command is not refused. Once the
study starts, `record_study` writes `study.yaml` (the study as it now stands: a rerun with fewer
seeds records them, and the report leaves the other seeds' folders out, naming them) and the
split manifest, once.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from depthbench._io import atomic_write_text, remove_stale_temps
from depthbench.data import Manifest, make_split, open_source, small_classes
from depthbench.engine.config import OPERATIONAL_KEYS, low_lr_warning
from depthbench.engine.devices import device_type
from depthbench.errors import ConfigError
from depthbench.folderlock import FolderLock, FolderLocked
from depthbench.runrecord import RUN_DIR_PATTERN
from depthbench.study.grid import plan_runs
from depthbench.study.schema import StudySpec
from depthbench.study.slurm import active_jobs

# Keys that may change between invocations on one study folder: seeds add or leave out runs (the
# report covers the seeds study.yaml lists now); jobs and executor only change where and when runs
# train, as the operational `overrides` (engine.config.OPERATIONAL_KEYS) change how. Anything
# else would mix two studies in a report.
_RERUN_MAY_CHANGE = {"seeds", "jobs", "executor", "report"}


@dataclass
class Start:
    """What the checks found, for the study to start with: the split (the folder's, or a new one
    not saved yet) and the warnings to print once it starts."""

    manifest: Manifest
    new_split: bool
    warnings: list[str]


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
    path = study_dir / "split.json"
    s = spec.split
    if path.is_file():
        manifest = Manifest.load(path)
        manifest.verify(source)
    else:
        manifest = make_split(source, val=s.val, test=s.test, seed=s.seed)
    counts = {cls: sum(n.values()) for cls, n in manifest.class_counts().items()}
    warnings = [p["problem"] for p in small_classes(counts, s.val, s.test)]
    lr = low_lr_warning(plan_runs(spec)[0].train_config())
    return Start(manifest, not path.is_file(), warnings + ([lr] if lr else []))


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


def record_study(study_dir: Path, spec: StudySpec, start: Start, console) -> Path:
    """study.yaml, the study as it now stands (a rerun with fewer seeds says so: the report then
    leaves the other seeds' folders out and names them), and the split manifest, written once."""
    atomic_write_text(study_dir / "study.yaml", yaml.safe_dump(spec.model_dump(mode="json"),
                                                               sort_keys=False))
    path = study_dir / "split.json"
    if start.new_split:
        start.manifest.save(path)
        counts = start.manifest.counts()
        console.print(f"{study_dir}: split {spec.data}: {counts['train']} train, {counts['val']} "
                      f"val, {counts['test']} test images ({len(start.manifest.classes)} classes)")
    return path


def _refuse_if_on_slurm(study_dir: Path) -> None:
    """A local run must not train the runs that SLURM jobs are training."""
    jobs = active_jobs(study_dir)
    if jobs:
        raise ConfigError(f"{study_dir}: {len(jobs)} runs of this study are still SLURM jobs "
                          f"({', '.join(jobs[:4])}{', ...' if len(jobs) > 4 else ''}); collect "
                          "them with --executor slurm, or scancel them first")
