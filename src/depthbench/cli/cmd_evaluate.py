"""Evaluate a checkpoint (best.safetensors or last.ckpt) on a split of a dataset."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", required=True, metavar="DATA")
    p.add_argument("--split", choices=["val", "test", "all"], default="val")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    raise NotImplementedError("evaluate: being built")
