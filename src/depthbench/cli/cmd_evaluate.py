"""Evaluate a checkpoint (best.safetensors or last.ckpt) on a split of a dataset."""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", required=True, metavar="DATA")
    p.add_argument("--split", choices=["val", "test", "all"], default="val")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--cache-dir", metavar="DIR", help="decoded-image cache folder")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    # on use: `--help` loads no numpy, PIL or torch
    from depthbench.engine.inputs import check_evaluate

    check_evaluate(args.checkpoint, args.data, args.batch_size)  # a typo answers before torch
    from depthbench.engine.evaluate import evaluate_checkpoint  # on use: `--help` stays torch-free

    r = evaluate_checkpoint(args.checkpoint, args.data, args.split, batch_size=args.batch_size,
                            accelerator=args.accelerator, cache_dir=args.cache_dir)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['model']} on {r['data']} ({r['split']}): accuracy {r['accuracy']:.4f} "
          f"({r['correct']}/{r['total']}), loss {r['loss']:.4f}")
    width = max(len(c) for c in r["per_class"])
    print(f"  {'class':<{width}}  precision  recall     f1  support")
    for c, m in r["per_class"].items():
        print(f"  {c:<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}  "
              f"{m['support']:7d}")
    return 0
