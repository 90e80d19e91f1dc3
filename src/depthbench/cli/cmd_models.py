"""List every model with its parameter count and the MACs of one forward pass of one image.

Swin models at sizes other than 224 px use the window `depthbench.models.default_window_size`
picks (the same one training uses); a size no window can tile is an error naming sizes that work.
"""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    p.add_argument("--img-size", type=int, default=224, help="input size in pixels (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier classes (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def format_table(rows: list[dict]) -> str:
    header = ("model", "family", "params", "GMACs", "img size", "window")
    lines = [(r["name"], r["family"], f"{r['params']:,}", f"{r['macs'] / 1e9:.2f}",
              str(r["img_size"]), str(r.get("window_size", "-"))) for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    right = {2, 3, 4, 5}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])


def run(args) -> int:
    from depthbench.models.complexity import model_costs  # on use: `--help` stays torch-free

    rows = model_costs(args.img_size, args.num_classes)
    if args.json:
        print(json.dumps({"models": rows}, indent=2))
    else:
        print(format_table(rows))
    return 0
