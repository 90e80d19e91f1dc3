"""The run record (depthbench.runrecord): one schema, one reader and writer, used by every layer."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from depthbench.report.records import load_run
from depthbench.runrecord import (
    METRICS_COLUMNS,
    RECORD_VERSION,
    NewerRecordError,
    RecordError,
    read_metrics,
    read_result,
    write_metrics,
    write_result,
)
from depthbench.study.records import read_result as study_read_result

SPLIT = {"accuracy": 0.5, "correct": 1, "total": 2, "loss": 0.7,
         "per_class": {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2}},
         "confusion": [[1, 1], [0, 0]], "predictions": [0, 1], "targets": [0, 0]}


def record(**kw) -> dict:
    best = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.75, "val": SPLIT, "test": None}
    return {"status": "finished", "failure": None, "model": "resnet18", "family": "resnet",
            "variant": "base", "seed": 0, "config": {"model": "resnet18", "epochs": 1},
            "epochs_completed": 1, "best_epoch": 1, "best": best, "last": best, **kw}


def test_write_then_read_is_the_same_record(tmp_path):
    written = write_result(tmp_path, record())
    assert written["record_version"] == RECORD_VERSION
    assert json.loads((tmp_path / "result.json").read_text()) == written
    assert read_result(tmp_path) == written
    assert isinstance(written["best"]["val"]["per_class"]["a"]["support"], int)


def test_fields_added_by_newer_writers_are_optional(tmp_path):
    train_eval = {"accuracy": 1.0, "correct": 4, "total": 4}
    slurm = {"job_id": "17", "array_index": 2, "node": "n1", "partition": "gpu"}
    r = record(macs_224=10, requeues=1, provenance={"precision": "32-true", "slurm": slurm})
    r["best"] = {**r["best"], "train_eval": train_eval}
    write_result(tmp_path, r)
    back = read_result(tmp_path)
    assert back["best"]["train_eval"] == train_eval and back["provenance"]["slurm"] == slurm
    assert (back["macs_224"], back["requeues"]) == (10, 1)
    old = record()  # an older record (no record_version, none of those fields) still reads
    (tmp_path / "result.json").write_text(json.dumps(old))
    assert read_result(tmp_path) == old


def test_a_newer_record_is_refused_in_one_line(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps(record(record_version=RECORD_VERSION + 1)))
    with pytest.raises(NewerRecordError, match="newer depthbench .* upgrade depthbench") as e:
        read_result(tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(NewerRecordError):  # the runner never retrains over it
        study_read_result(tmp_path)
    run = load_run(tmp_path)  # the report shows it, unreadable, with the reason
    assert run.status == "unreadable" and "newer depthbench" in run.reason


def test_torn_or_malformed_records(tmp_path):
    assert read_result(tmp_path) is None  # no record yet
    (tmp_path / "result.json").write_text('{"status": "finished", ')
    with pytest.raises(RecordError, match="unreadable"):
        read_result(tmp_path)
    assert read_result(tmp_path, lenient=True) is None
    (tmp_path / "result.json").write_text(json.dumps(record(status="done")))
    with pytest.raises(RecordError, match=r"not a run record \(status"):
        read_result(tmp_path)
    with pytest.raises(ValidationError):  # the writer checks the same schema (a bug if not)
        write_result(tmp_path, record(epochs_completed="many"))


def test_metrics_round_trip(tmp_path):
    rows = [{c: None for c in METRICS_COLUMNS} | {"epoch": e, "train_loss": 0.1 * e, "lr": 2e-4,
                                                   "val_total": 3} for e in (1, 2)]
    write_metrics(tmp_path / "metrics.csv", rows)
    back, problem = read_metrics(tmp_path / "metrics.csv")
    assert problem is None and back == rows
