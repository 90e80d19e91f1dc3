"""Train one model on one dataset with one recipe; writes the run's records to --out."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--model", metavar="NAME")
    p.add_argument("--data", metavar="DATA")
    p.add_argument("--out", metavar="DIR")
    p.add_argument("--recipe", choices=["seed", "modern"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--img-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--pretrained", metavar="FILE")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"])
    p.add_argument("--devices", type=int)


def run(args) -> int:
    raise NotImplementedError("train: being built")
