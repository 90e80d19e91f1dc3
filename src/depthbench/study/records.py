"""What the runner reads from (and, for a run that died, writes into) a run folder; the record
itself is defined in `depthbench.runrecord`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from depthbench import runrecord
from depthbench.data.split import SPLIT_FILE
from depthbench.engine.runlock import RunLock, RunLocked
from depthbench.names import MODELS, canonical, family_of


def read_result(run_dir: Path) -> dict | None:
    """result.json, or None when it is missing or torn (the run then counts as unfinished); one
    from a newer depthbench is a `NewerRecordError`."""
    return runrecord.read_result(run_dir, lenient=True)


def status_of(run_dir: Path) -> str:
    """finished | failed | started (a folder with some records) | new."""
    result = read_result(run_dir)
    if result and result["status"] in runrecord.FINAL_STATUSES:
        return result["status"]
    return "started" if run_dir.is_dir() and any(run_dir.iterdir()) else "new"


def run_split(run_dir: Path, study_split: Path | None) -> Path:
    """The split.json a run trains on: the study's one manifest, or (a cross-validated study,
    `study_split` None) the run folder's own, which the runner wrote for its cell."""
    return study_split if study_split is not None else run_dir / SPLIT_FILE


def epochs_done(run_dir: Path) -> int:
    """Rows in metrics.csv: the epochs this run has completed so far (0 when it has none or
    cannot be read)."""
    return len(runrecord.read_metrics(run_dir / "metrics.csv")[0])


def write_failure(run_dir: Path, config: dict[str, Any], variant: str, reason: str,
                  overwrite_running: bool = True) -> dict:
    """Record a run as failed, for a child that died before its engine could say so.

    An engine-written `failed` or `finished` result is kept as is (it knows more); a missing,
    torn, `running` or `interrupted` one is replaced by `runrecord.failed_record`. Written while
    holding the run folder (`engine.runlock`), so never over a live trainer's records.
    """
    try:
        with RunLock(run_dir, wait=_LOCK_WAIT_S):
            return _write_failure(run_dir, config, variant, reason, overwrite_running)
    except RunLocked:  # a live trainer took the folder over: the records are its own to write
        return read_result(run_dir) or {}


# How long a failure record waits for a run folder: the dead trainer's children (data-loader
# workers) may hold its lock a moment longer.
_LOCK_WAIT_S = 10.0


def _write_failure(run_dir: Path, config: dict[str, Any], variant: str, reason: str,
                   overwrite_running: bool) -> dict:
    existing = read_result(run_dir)
    if existing and (existing["status"] in runrecord.FINAL_STATUSES or not overwrite_running):
        return existing
    model = config.get("model")
    family = family_of(model) if model and canonical(model) in MODELS else None  # an unknown
    result = runrecord.failed_record(  # name may itself be the failure being recorded
        existing, config=config, variant=variant, family=family, reason=reason,
        epochs_completed=epochs_done(run_dir))
    provenance = result.get("provenance") or {}
    result["provenance"] = provenance | {
        "recorded": provenance.get("recorded") or time.strftime("%Y-%m-%dT%H:%M:%S")}
    return runrecord.write_result(run_dir, result)


def score_line(result: dict) -> str:
    """`best epoch 2: val 0.512, test 0.498`: a finished run in one line of progress."""
    best = result.get("best") or {}
    parts = []
    for split in ("val", "test"):
        m = best.get(split) or {}
        if m.get("accuracy") is not None:
            parts.append(f"{split} {m['accuracy']:.3f}")
    return ("best epoch " + str(best.get("epoch")) + ": " + ", ".join(parts)) if parts else "no scores"


def annotate_run(run_dir: Path, **fields: Any) -> dict | None:
    """Add what the runner knows and the engine does not to a run's result.json: `requeues`
    (top level) and `slurm` (inside `provenance`: job id, array index, node, partition)."""
    result = read_result(run_dir)
    if result is None:
        return None
    if "slurm" in fields:
        result.setdefault("provenance", {})["slurm"] = fields.pop("slurm")
    result.update(fields)
    return runrecord.write_result(run_dir, result)
