"""Inspect a dataset: `depthbench data check DATA` counts classes and splits and lists problems."""

from __future__ import annotations


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="count images per class and split; list unusable files")
    c.add_argument("data", metavar="DATA", help="image folder (one sub-folder per class), "
                                                "or a bundled name: elpv, synthetic")
    c.add_argument("--val", type=float, default=0.1, help="validation fraction per class (0.1)")
    c.add_argument("--test", type=float, default=0.0, help="test fraction per class (0)")
    c.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    raise NotImplementedError("data check: being built")
