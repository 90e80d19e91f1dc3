"""Train one model on one dataset with one recipe; writes the run's records to --out.

Every option has one name: `--batch-size` here is `batch_size` in a `--config` YAML file. Values
given on the command line win over the file, which wins over the recipe's defaults. `--resume`
continues the unfinished run in --out from its last.ckpt (its config.yaml supplies the options).
"""

from __future__ import annotations

import argparse

# flag -> (type, help); the dest of each flag is its TrainConfig field
_OPTIONS: dict[str, tuple[type | None, str]] = {
    "--model": (str, "model name (`depthbench models`), e.g. resnet18, swin_t"),
    "--data": (str, "image folder (one sub-folder per class), `elpv` or `synthetic[:opts]`"),
    "--out": (str, "run folder to write (created)"),
    "--epochs": (int, "epochs (seed/modern: 100)"),
    "--batch-size": (int, "images per step on each device (128)"),
    "--lr": (float, "base learning rate (seed: 2e-4; modern: 5e-4 * batch / 512)"),
    "--optimizer": (str, "adam | adamw | sgd (seed: adam; modern: adamw)"),
    "--weight-decay": (float, "weight decay, none on norms/biases/position tables (modern: 0.05)"),
    "--scheduler": (str, "constant | cosine (modern: cosine)"),
    "--warmup-epochs": (float, "linear warmup epochs (modern: 5)"),
    "--min-lr": (float, "final lr of the cosine schedule (modern: 1e-6)"),
    "--label-smoothing": (float, "label smoothing (modern: 0.1)"),
    "--grad-clip": (float, "max global gradient norm, 0 = off (modern: 5)"),
    "--img-size": (int, "input size in pixels (224)"),
    "--drop-path-rate": (float, "stochastic depth (modern: Swin-T/S/B 0.2/0.3/0.5)"),
    "--window-size": (int, "Swin window (default: from --img-size)"),
    "--key-drop": (float, "Swin key-dropout rate"),
    "--key-drop-mode": (str, "element | dropkey"),
    "--key-drop-schedule": (str, "constant | linear (over depth)"),
    "--se-drop": (float, "SE channel-gate dropout rate"),
    "--seed": (int, "seed of initialization, shuffling and augmentation (0)"),
    "--split-seed": (int, "seed of the train/val/test split (0)"),
    "--val": (float, "fraction of each class for validation (0.1)"),
    "--test": (float, "fraction of each class held out for test (0)"),
    "--pretrained": (str, "timm/torchvision weights (.safetensors or a weights-only torch file)"),
    "--devices": (int, "devices (processes) to train on; 2+ = DDP"),
    "--precision": (str, "auto | 32 | 16-mixed | bf16-mixed (auto: bf16-mixed on CUDA GPUs of "
                         "compute capability 8.0+ and CPUs with AMX or AVX512-BF16, else 32)"),
    "--workers": (int, "data-loader workers (default: 0 on CPU, up to 8 on GPU)"),
    "--cache-dir": (str, "decoded-image cache folder"),
    "--memory-budget-mb": (int, "memory for the decoded-image cache"),
    "--limit-train-batches": (int, "train on at most N batches per epoch (tests, benchmarks)"),
}
_FLAGS = ("--compile", "--channels-last", "--quiet")


def add_arguments(p) -> None:
    for flag, (typ, help_) in _OPTIONS.items():
        p.add_argument(flag, type=typ, help=help_, default=None)
    p.add_argument("--recipe", choices=["seed", "modern"], default=None,
                   help="seed: the source study exactly; modern: AdamW, warmup+cosine, ...")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: on for CNNs on GPUs, and on the "
                        "CPU from 128 px, where it is faster)")
    p.add_argument("--quiet", action="store_true", default=None, help="log lines only, no bar")
    p.add_argument("--config", metavar="FILE", help="YAML file of options (same names, a_b)")
    p.add_argument("--split", metavar="FILE", help="reuse this split manifest (copied to --out)")
    p.add_argument("--variant", default="base", help="variant name recorded in result.json")
    p.add_argument("--resume", action="store_true", help="continue --out from its last.ckpt")
    p.add_argument("--json", action="store_true", help="print result.json on stdout at the end")


def config_from_args(args):
    """TrainConfig from (--resume: the run's config.yaml) < --config FILE < command-line flags."""
    from pathlib import Path

    from depthbench.engine.config import load_config_file, make_config

    values: dict = {}
    source = "command line"
    if args.resume and args.out and (Path(args.out) / "config.yaml").is_file():
        values.update(load_config_file(Path(args.out) / "config.yaml"))
        source = str(Path(args.out) / "config.yaml")
    if args.config:
        values.update(load_config_file(args.config))
        source = args.config
    dests = [f.lstrip("-").replace("-", "_") for f in (*_OPTIONS, *_FLAGS)] + ["recipe", "accelerator"]
    given = {k: getattr(args, k) for k in dests if getattr(args, k, None) is not None}
    values.update(given)
    return make_config(values, source=source if not given else f"{source} + flags")


def run(args) -> int:
    import json
    import sys

    from depthbench.engine.trainer import TrainingInterrupted, train

    config = config_from_args(args)
    try:
        result = train(config, config.out, split_path=args.split, variant=args.variant,
                       resume=args.resume)
    except TrainingInterrupted as e:
        print(f"depthbench: {e}", file=sys.stderr)
        return 130
    best = result.get("best") or {}
    val = best.get("val") or {}
    if args.json:
        print(json.dumps(result, indent=2))
    elif val:
        test = best.get("test")
        line = (f"{config.out}: best epoch {result['best_epoch']}: val acc {val['accuracy']:.4f} "
                f"({val['correct']}/{val['total']})")
        if test:
            line += f", test acc {test['accuracy']:.4f} ({test['correct']}/{test['total']})"
        print(line)
    else:
        print(f"{config.out}: finished {result['epochs_completed']} epochs (no validation split: "
              "best.safetensors holds the last epoch)")
    return 0
