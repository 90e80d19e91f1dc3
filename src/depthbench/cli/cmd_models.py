"""List every model with its parameter count and the MACs of one forward pass of one image."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--img-size", type=int, default=224, help="input size in pixels (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier classes (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def run(args) -> int:
    raise NotImplementedError("models: being built")
