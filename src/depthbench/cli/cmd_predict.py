"""Classify images with a checkpoint; prints the top-k classes and probabilities.

A folder stands for every image file in it (and in its sub-folders). A file that cannot be read
gets one line on stderr (an `error` entry with `--json`) while the others are predicted; the exit
status is then 2.
"""

from __future__ import annotations

import json
import sys

from depthbench.errors import DepthbenchError


def add_arguments(p) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of them")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    # on use: `--help` loads no numpy, PIL or torch
    from depthbench.engine.inputs import check_predict

    check_predict(args.checkpoint, args.top_k)  # a typo answers before torch loads
    from depthbench.engine.evaluate import predict  # on use: `--help` stays torch-free

    preds = predict(args.checkpoint, args.images, top_k=args.top_k, accelerator=args.accelerator)
    failed = [p for p in preds if "error" in p]
    for p in failed:
        print(f"depthbench: error: {p['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(preds, indent=2))
    else:
        for p in preds:
            if "top" in p:
                print(f"{p['image']}: " + ", ".join(f"{t['class']} {t['prob']:.3f}"
                                                    for t in p["top"]))
    return DepthbenchError.exit_code if failed else 0
