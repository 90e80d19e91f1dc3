"""Classify images with a checkpoint; prints the top-k classes and probabilities."""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    from depthbench.engine import predict  # on use: `--help` stays torch-free

    preds = predict(args.checkpoint, args.images, top_k=args.top_k, accelerator=args.accelerator)
    if args.json:
        print(json.dumps(preds, indent=2))
        return 0
    for p in preds:
        top = ", ".join(f"{t['class']} {t['prob']:.3f}" for t in p["top"])
        print(f"{p['image']}: {top}")
    return 0
