"""Train one model on one dataset with one recipe; writes the run's records to --out.

Every option has one name: `--batch-size` here is `batch_size` in a `--config` YAML file. Values
given on the command line win over the file, which wins over the recipe's defaults. `--resume`
continues the unfinished run in --out from its last.ckpt (its config.yaml supplies the options);
with a larger --epochs it extends a finished run whose lr schedule is constant. `--resume` where
--out holds no run is an error (exit 2), as Hugging Face's Trainer refuses to resume without a
checkpoint: it never starts a new run in its place.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path

from depthbench.engine.config import (
    TrainConfig,
    load_config_file,
    make_config,
    option_help,
    saved_config,
)
from depthbench.errors import ConfigError


def add_arguments(p) -> None:
    """One flag per `TrainConfig` field (engine/config.py, the option table), then the flags of
    this command alone. Values are checked by TrainConfig, once: argparse only converts types."""
    for name, field in TrainConfig.model_fields.items():
        kind, choices = _kind(field.annotation)
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=option_help(name))
        else:
            p.add_argument(flag, type=kind, default=None, help=option_help(name),
                           metavar="{" + ",".join(choices) + "}" if choices else None)
    p.add_argument("--config", metavar="FILE", help="YAML file of options (same names, a_b)")
    p.add_argument("--split", metavar="FILE", help="reuse this split manifest (copied to --out)")
    p.add_argument("--variant", default="base", help="variant name recorded in result.json")
    p.add_argument("--resume", action="store_true",
                   help="continue --out from its last.ckpt (with a larger --epochs: extend it); "
                        "an error when --out holds no run")
    p.add_argument("--json", action="store_true", help="print result.json on stdout at the end")


def _kind(annotation) -> tuple[type, tuple[str, ...]]:
    """(argparse type, choices) of a field's annotation: `int | None` -> int, a Literal -> str
    with its values (checked by TrainConfig, which also reads a renamed recipe)."""
    inner = annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        inner = next(a for a in typing.get_args(annotation) if a is not type(None))
    while typing.get_origin(inner) is typing.Annotated:
        inner = typing.get_args(inner)[0]
    if typing.get_origin(inner) is typing.Literal:
        return str, tuple(str(v) for v in typing.get_args(inner))
    return inner, ()


def config_from_args(args):
    """TrainConfig from (--resume: the run's config.yaml) < --config FILE < command-line flags."""
    values: dict = {}
    source = "command line"
    from_file = load_config_file(args.config) if args.config else {}
    given = {k: getattr(args, k) for k in TrainConfig.model_fields
             if getattr(args, k, None) is not None}
    if args.resume:
        out = Path(given.get("out") or from_file.get("out") or "")
        values.update(saved_config(_run_to_resume(out)))
        source = str(out / "config.yaml")
    if args.config:
        values.update(from_file)
        source = args.config
    values.update(given)
    return make_config(values, source=source if not given else f"{source} + flags")


def _run_to_resume(out: Path) -> dict:
    """The options of the run `--resume` continues (its config.yaml). Nothing to resume is one
    line: `--resume` never starts a new run in place of the one the user meant."""
    if not str(out) or out == Path("."):
        raise ConfigError("--resume: give --out DIR, the folder of the run to continue")
    if (out / "config.yaml").is_file():
        return load_config_file(out / "config.yaml")
    what = ("no such folder" if not out.exists() else "a file, not a run folder"
            if not out.is_dir() else "it holds no run: no config.yaml")
    raise ConfigError(f"--resume: no run to resume in {out} ({what}); give the folder of an "
                      "interrupted run, or leave out --resume to start a new one")


def run(args) -> int:
    # on use: `--help` loads no numpy, PIL or torch
    from depthbench.engine.inputs import check_train

    config = config_from_args(args)
    check_train(config)  # data, model options, weights: a typo answers before torch loads
    from depthbench.engine.trainer import (  # on use: `--help` and a typo stay torch-free
        TrainingInterrupted,
        train,
    )

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
