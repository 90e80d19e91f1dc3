"""Inspect a dataset: `depthbench data check DATA` counts classes and splits and lists problems.

Exits 0 when the check ran (problems are reported, not fatal), 2 on a user error (missing folder,
one class only, a class with no usable image, a bad fraction).
"""

from __future__ import annotations


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="count images per class and split; list unusable files")
    c.add_argument("data", metavar="DATA", help="image folder (one sub-folder per class), "
                                                "or a bundled name: elpv, synthetic")
    c.add_argument("--val", type=float, default=0.1, help="validation fraction per class (0.1)")
    c.add_argument("--test", type=float, default=0.0, help="test fraction per class (0)")
    c.add_argument("--seed", type=int, default=0, help="split seed (0)")
    c.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    import json

    from depthbench.data import check_dataset, format_check

    result = check_dataset(args.data, val=args.val, test=args.test, seed=args.seed)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else format_check(result))
    return 0
