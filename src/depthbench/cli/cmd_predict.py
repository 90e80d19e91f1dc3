"""Classify images with a checkpoint; prints the top-k classes and probabilities."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    raise NotImplementedError("predict: being built")
