"""Inspect a dataset: `depthbench data check DATA` counts classes and splits and lists problems.

Exits 0 when the check ran (problems are reported, not fatal), 2 on a user error (missing folder,
one class only, a class with no usable image, a bad fraction).
"""

from __future__ import annotations

import argparse
import json
import sys

from depthbench.configio import BUNDLED_DATA, DEFAULT_TEST, DEFAULT_VAL, fold_options_problem
from depthbench.errors import ConfigError


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="count images per class and split; list unusable files")
    c.add_argument("data", metavar="DATA", help="image folder (one sub-folder per class), "
                                                f"or a bundled name: {', '.join(BUNDLED_DATA)}")
    c.add_argument("--val", type=float, default=DEFAULT_VAL,
                   help=f"validation fraction per class ({DEFAULT_VAL:g})")
    c.add_argument("--test", type=float, default=DEFAULT_TEST,
                   help=f"test fraction per class ({DEFAULT_TEST:g})")
    c.add_argument("--split-seed", type=int, default=0,
                   help="seed of the split (0), as `train --split-seed` and a study's split.seed")
    c.add_argument("--folds", type=int, metavar="K",
                   help="also show the K test folds of a cross-validated study (K >= 2): the "
                        "images of each class per fold")
    c.add_argument("--repeats", type=int, metavar="R",
                   help="with --folds: repeats of the k-fold partition (default 1)")
    c.add_argument("--groups", metavar="FILE",
                   help="CSV `path,group` (paths relative to DATA): images of one group never "
                        "straddle splits or folds, as a study's split.groups")
    # its old name (`train --seed` seeds the initialisation): still read, with a notice
    c.add_argument("--seed", type=int, dest="old_seed", help=argparse.SUPPRESS)
    c.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    from depthbench.data.check import check_dataset, format_check  # on use: `--help` stays light

    seed = args.split_seed if args.old_seed is None else args.old_seed
    folds_problem = fold_options_problem(args.folds, args.repeats, "--folds", "--repeats")
    if folds_problem:
        raise ConfigError(folds_problem[1])
    result = check_dataset(args.data, val=args.val, test=args.test, split_seed=seed,
                           folds=args.folds, repeats=args.repeats or 1, groups=args.groups)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else format_check(result))
    if args.old_seed is not None:  # after the check: an error stays one line
        print("depthbench: `data check --seed` is now --split-seed (the name `train` and a study "
              "use); the old name still works but will be removed", file=sys.stderr)
    return 0
