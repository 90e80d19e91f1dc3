"""What the runner reads from (and, for a run that died, writes into) a run folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from depthbench._io import atomic_write_json


def read_result(run_dir: Path) -> dict | None:
    """result.json, or None when it is missing or torn (the run then counts as unfinished)."""
    try:
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def status_of(run_dir: Path) -> str:
    """finished | failed | started (a folder with some records) | new."""
    result = read_result(run_dir)
    if result and result.get("status") in ("finished", "failed"):
        return result["status"]
    return "started" if run_dir.is_dir() and any(run_dir.iterdir()) else "new"


def epochs_done(run_dir: Path) -> int:
    """Rows in metrics.csv: the epochs this run has completed so far."""
    try:
        with open(run_dir / "metrics.csv", encoding="utf-8") as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except OSError:
        return 0


def write_failure(run_dir: Path, config: dict[str, Any], variant: str, reason: str,
                  overwrite_running: bool = True) -> dict:
    """Record a run as failed, for a child that died before its engine could say so.

    An engine-written `failed` or `finished` result is kept as is (it knows more); a missing,
    torn, `running` or `interrupted` one is replaced by a result with the internals.md shape, its metrics null.
    """
    existing = read_result(run_dir)
    if existing and (existing.get("status") not in ("running", "interrupted")
                     or not overwrite_running):
        return existing
    from depthbench.models import family

    done = epochs_done(run_dir)
    result = {
        **(existing or {}),
        "status": "failed",
        "failure": {"epoch": done + 1, "reason": reason.strip().splitlines()[-1][:500]
                    if reason.strip() else "unknown"},
        "model": config.get("model"),
        "family": _family(family, config.get("model")),
        "variant": variant,
        "seed": config.get("seed"),
        "config": config,
        "epochs_completed": done,
    }
    for key in ("best", "last"):
        result.setdefault(key, None)
    result.setdefault("provenance", {}).setdefault("recorded", time.strftime("%Y-%m-%dT%H:%M:%S"))
    atomic_write_json(run_dir / "result.json", result)
    return result


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
    atomic_write_json(run_dir / "result.json", result)
    return result


def _family(family, model: str | None) -> str | None:
    try:
        return family(model) if model else None
    except Exception:  # noqa: BLE001 - an unknown model name is itself the failure being recorded
        return None
