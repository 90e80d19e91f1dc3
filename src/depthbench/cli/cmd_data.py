"""Inspect a dataset: `depthbench data check DATA` counts classes and splits and lists problems.

Exits 0 when the check ran (problems are reported, not fatal), 2 on a user error (missing folder,
one class only, a class with no usable image, a bad fraction).
"""

from __future__ import annotations

import json

from depthbench.configio import BUNDLED_DATA, DEFAULT_TEST, DEFAULT_VAL


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="count images per class and split; list unusable files")
    c.add_argument("data", metavar="DATA", help="image folder (one sub-folder per class), "
                                                f"or a bundled name: {', '.join(BUNDLED_DATA)}")
    c.add_argument("--val", type=float, default=DEFAULT_VAL,
                   help=f"validation fraction per class ({DEFAULT_VAL:g})")
    c.add_argument("--test", type=float, default=DEFAULT_TEST,
                   help=f"test fraction per class ({DEFAULT_TEST:g})")
    c.add_argument("--seed", type=int, default=0, help="split seed (0)")
    c.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    from depthbench.data import check_dataset, format_check  # on use: `--help` stays light

    result = check_dataset(args.data, val=args.val, test=args.test, seed=args.seed)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else format_check(result))
    return 0
