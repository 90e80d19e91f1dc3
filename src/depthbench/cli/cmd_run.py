"""Run a whole study: every model, variant and seed of a preset or a study YAML, then the report."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--preset", choices=["quick", "paper", "modern", "smoke"])
    p.add_argument("--config", metavar="STUDY.yaml")
    p.add_argument("--data", metavar="DATA")
    p.add_argument("--out", metavar="DIR")
    p.add_argument("--seeds", type=int)
    p.add_argument("--jobs", type=int)


def run(args) -> int:
    raise NotImplementedError("run: being built")
