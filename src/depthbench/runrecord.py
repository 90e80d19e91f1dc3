"""The run record: what a run folder's `result.json` and `metrics.csv` hold, defined once.

The engine writes these files, the study runner reads them (and writes the failure record of a
worker that died), the report reads nothing else. All three go through this module: the pydantic
models below are the schema, `write_result` / `read_result` the one writer and reader of
`result.json`, `write_metrics` / `read_metrics` those of `metrics.csv`. No torch here: the report
imports it.

`record_version` says which schema wrote a record; a record without it is version 1. Fields are
added with defaults (an older record still reads); a record from a newer depthbench is refused
with one line. Unknown keys are kept, so a rewrite (the failure record) loses nothing.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from depthbench._io import atomic_write_json, atomic_write_text
from depthbench.errors import DepthbenchError

RECORD_VERSION = 1


@dataclass(frozen=True)
class EpochRow:
    """One row of metrics.csv: one epoch (counting from 1); its fields are the columns."""

    epoch: int
    train_loss: float  # the epoch's mean
    train_acc: float
    val_loss: float | None  # None without a validation split
    val_acc: float | None
    val_correct: int
    val_total: int
    lr: float
    seconds: float  # the epoch's training and validation
    train_correct: int
    train_total: int


METRICS_COLUMNS = [f.name for f in fields(EpochRow)]

Status = Literal["finished", "failed", "running", "interrupted"]
# A run in one of these states is done: a study neither trains nor waits for it again.
FINAL_STATUSES = ("finished", "failed")

# A study's run folder: `<model>__<variant>__s<seed>`, and in a cross-validated study
# `<model>__<variant>__s<seed>__r<repeat>__f<fold>` (the study writes it, the report parses it).
RUN_DIR_PATTERN = re.compile(r"^(?P<model>.+?)__(?P<variant>.+?)__s(?P<seed>\d+)"
                             r"(?:__r(?P<repeat>\d+)__f(?P<fold>\d+))?$")


def run_dir_name(model: str, variant: str, seed: int, repeat: int | None = None,
                 fold: int | None = None) -> str:
    """The folder of one grid point of a study, inside the study folder (with its repeat and
    fold in a cross-validated study)."""
    cell = f"__r{repeat}__f{fold}" if fold is not None else ""
    return f"{model}__{variant}__s{seed}{cell}"


# The variant of a model trained without an ablation.
BASE_VARIANT = "base"


def variant_name(option: str, rate: float) -> str:
    """A study variant's name from its option and rate: `key_drop` 0.1 -> `keydrop0.1`."""
    return f"{option.replace('_', '')}{rate:g}"


class RecordError(DepthbenchError):
    """A result.json that cannot be read: torn, not a run record, or from a newer depthbench."""

    def __init__(self, path: Path, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path, self.detail = path, detail


class NewerRecordError(RecordError):
    """A result.json written by a newer depthbench (its `record_version` is above ours)."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class ClassStats(_Part):
    precision: float
    recall: float
    f1: float
    support: int


class SplitEval(_Part):
    """One split's evaluation (`engine.metrics.summarize`); `predictions`/`targets` follow the
    manifest's order of that split, so two runs of one study pair image by image."""

    accuracy: float | None = None
    correct: int | None = None
    total: int | None = None
    loss: float | None = None
    per_class: dict[str, ClassStats] = {}
    confusion: list[list[int]] = []
    predictions: list[int] | None = None
    targets: list[int] | None = None


class TrainEval(_Part):
    """The training images evaluated with the eval transform (no augmentation)."""

    accuracy: float | None = None
    correct: int | None = None
    total: int | None = None


class Checkpoint(_Part):
    """`best` (selected by validation accuracy) or `last` epoch's weights, evaluated."""

    epoch: int = Field(ge=1)  # counts from 1, as metrics.csv
    train_loss: float | None = None
    train_acc: float | None = None
    val: SplitEval | None = None
    test: SplitEval | None = None
    train_eval: TrainEval | None = None


class Failure(_Part):
    epoch: int | None = None
    reason: str


class Costs(_Part):
    train_seconds: float | None = None
    train_images_per_s: float | None = None
    infer_images_per_s: float | None = None
    peak_memory_mb: float | None = None


class Slurm(_Part):
    job_id: str | int | None = None
    array_index: int | None = None
    node: str | None = None
    partition: str | None = None


class Provenance(_Part):
    versions: dict[str, str] = {}
    git_revision: str | None = None
    manifest_hash: str | None = None
    device: str | None = None
    world_size: int | None = None
    precision: str | None = None
    # the CUDA settings the trainer made (`engine.devices.configure_backends`); False on the CPU
    tf32: bool | None = None
    cudnn_benchmark: bool | None = None
    batches: str | None = None  # "device memory" or "data loader, N workers"
    slurm: Slurm | None = None
    started: str | None = None
    seconds: float | None = None
    recorded: str | None = None  # when the runner wrote a dead worker's failure record


class RunResult(_Part):
    """result.json. `config` is the resolved `TrainConfig` (engine.config) as a mapping."""

    record_version: int = RECORD_VERSION
    # how the run stands: finished, or why not
    status: Status
    failure: Failure | None = None
    # what was trained: the grid point, its resolved config, the model's size
    model: str | None = None
    family: str | None = None
    variant: str | None = None
    seed: int | None = None
    config: dict[str, Any] | None = None
    classes: list[str] | None = None
    img_size: int | None = None
    params: int | None = None
    macs: int | None = None  # one image at img_size
    macs_224: int | None = None  # one image at 224 px (compares across studies)
    # what it reached
    epochs_completed: int = 0
    best_epoch: int | None = None
    best: Checkpoint | None = None
    last: Checkpoint | None = None
    # what it cost, and where and from what it came
    costs: Costs | None = None
    provenance: Provenance | None = None
    requeues: int = 0  # times a scheduler (SLURM) requeued it


# --- result.json --------------------------------------------------------------------------------

def write_result(run_dir: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Validate `record` against `RunResult`, stamp the current `record_version`, write
    `run_dir/result.json` atomically; returns the dict written."""
    data = RunResult.model_validate({**record, "record_version": RECORD_VERSION}).model_dump(
        exclude_unset=True)
    atomic_write_json(Path(run_dir) / "result.json", data)
    return data


def read_result(run_dir: str | Path, *, lenient: bool = False) -> dict[str, Any] | None:
    """`run_dir/result.json`, validated against `RunResult` (its keys as written: a record
    from an older depthbench lacks the fields added since); None when there is none. A torn or malformed file is a `RecordError`, or None with `lenient` (the run
    then counts as unfinished); a record from a newer depthbench is always a `NewerRecordError`."""
    path = Path(run_dir) / "result.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        if lenient:
            return None
        raise RecordError(path, f"unreadable ({e})") from None
    if isinstance(raw, dict) and isinstance(raw.get("record_version"), int) \
            and raw["record_version"] > RECORD_VERSION:
        raise NewerRecordError(
            path, f"written by a newer depthbench (record_version {raw['record_version']}, this "
            f"one reads up to {RECORD_VERSION}); upgrade depthbench to read it")
    try:
        return RunResult.model_validate(raw).model_dump(exclude_unset=True)
    except ValidationError as e:
        if lenient:
            return None
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise RecordError(path, f"not a run record ({where}: {err['msg']})") from None


def failed_record(existing: dict[str, Any] | None, *, config: dict[str, Any], variant: str,
                  family: str | None, reason: str, epochs_completed: int) -> dict[str, Any]:
    """The record of a run whose worker died before its engine could say so: `existing` (what
    the engine had written, if anything) marked failed at the next epoch, `best`/`last` null."""
    lines = reason.strip().splitlines()
    result = {
        **(existing or {}),
        "status": "failed",
        "failure": {"epoch": epochs_completed + 1,
                    "reason": lines[-1][:500] if lines else "unknown"},
        "model": config.get("model"), "family": family, "variant": variant,
        "seed": config.get("seed"), "config": config, "epochs_completed": epochs_completed,
        "best": (existing or {}).get("best"), "last": (existing or {}).get("last"),
    }
    return result


# --- metrics.csv --------------------------------------------------------------------------------

def write_metrics(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """metrics.csv from the per-epoch rows (floats with repr: they read back exactly)."""
    lines = [",".join(METRICS_COLUMNS)]
    for r in rows:
        lines.append(",".join("" if r[c] is None else repr(r[c]) if isinstance(r[c], float)
                              else str(r[c]) for c in METRICS_COLUMNS))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_metrics(path: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """(rows of metrics.csv as numbers, None) or ([], what is wrong); no file: ([], None).
    Only METRICS_COLUMNS are read; an empty cell is None."""
    path = Path(path)
    if not path.is_file():
        return [], None
    rows = []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            for raw in csv.DictReader(f):
                rows.append({k: _number(raw.get(k)) for k in METRICS_COLUMNS if k in raw})
    except (OSError, csv.Error) as e:
        return [], f"metrics.csv unreadable: {e}"
    return [r for r in rows if r.get("epoch") is not None], None


def _number(x: str | None) -> int | float | None:
    if x is None or str(x).strip() == "":
        return None
    try:
        v = float(x)
    except ValueError:
        return None
    return int(v) if v.is_integer() and abs(v) < 2**53 and "." not in str(x) else v
