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


def model_costs(img_size: int = 224, num_classes: int = 1000) -> list[dict]:
    """One row per registered model: name, family, params, macs, img_size (+ window_size for Swin).

    Models are built on the meta device: shapes only, no weights, so listing all nine takes
    seconds; parameter counts and MACs depend on shapes alone.
    """
    from depthbench.errors import ConfigError
    from depthbench.models import default_window_size, family, list_models
    from depthbench.models.complexity import count_macs, count_params, meta_model

    if img_size < 32:
        raise ConfigError(f"--img-size {img_size} is too small: the models downsample by 32; "
                          "use 32 or more")
    if num_classes < 1:
        raise ConfigError(f"--num-classes {num_classes} must be at least 1")
    window = default_window_size(img_size)  # ConfigError (one line) if no Swin window tiles it
    rows = []
    for name in list_models():
        fam = family(name)
        kwargs = {"img_size": img_size}
        if fam == "swin":
            kwargs["window_size"] = window
        model = meta_model(name, num_classes, **kwargs)
        row = {"name": name, "family": fam, "params": count_params(model),
               "macs": count_macs(model, img_size), "img_size": img_size}
        if fam == "swin":
            row["window_size"] = window
        rows.append(row)
    return rows


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
    rows = model_costs(args.img_size, args.num_classes)
    if args.json:
        print(json.dumps({"models": rows}, indent=2))
    else:
        print(format_table(rows))
    return 0
