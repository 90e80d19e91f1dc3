"""Two-process DDP on the CPU (gloo), through the command line as a user runs it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

DATA = "synthetic:n=48,size=32,classes=3,seed=0"


@pytest.mark.slow
def test_two_process_ddp_on_cpu_counts_every_sample_once(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "depthbench", "train", "--model", "resnet18", "--data", DATA,
           "--img-size", "32", "--epochs", "2", "--batch-size", "6", "--val", "0.25",
           "--test", "0.25", "--cache-dir", str(tmp_path / "cache"), "--accelerator", "cpu",
           "--devices", "2", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "finished" and result["provenance"]["world_size"] == 2
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # 24 train images in 2 shards of 12 (no padding needed); 12 val, 12 test, each counted once
    assert [(r["train_total"], r["val_total"]) for r in rows] == [("24", "12")] * 2
    for which in ("best", "last"):
        rec = result[which]
        row = rows[rec["epoch"] - 1]
        # the final evaluation (rank 0's saved weights) reproduces the epoch's record
        assert rec["val"]["correct"] == int(row["val_correct"])
        assert rec["val"]["total"] == 12 and rec["test"]["total"] == 12
        assert len(rec["test"]["predictions"]) == 12
