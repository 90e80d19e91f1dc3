"""Accuracy parity of bf16-mixed against fp32 at the `quick` preset's setting.

`python -m benchmarks.precision_parity [--out DIR] [--models resnet18,seresnet18,swin_t]
[--seeds 3] [--analyze]`

Runs the `quick` preset twice, restricted to `--models` (no variants) and `--seeds` seeds, once
with `precision: 32-true` and once with `precision: bf16-mixed` (same split, seeds and recipe;
`depthbench run`, so the same packing on the CPU cores), then pairs the runs by model and seed
and prints, per model and over all pairs, the mean bf16 - fp32 difference of test accuracy at the
selected checkpoint with its 95% Student-t interval, and the mean CPU seconds per run of each side.
`--analyze` only reads two finished study folders under `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import yaml
from scipy import stats

PRESET = Path(__file__).resolve().parents[1] / "src/depthbench/configs/presets/quick.yaml"
SIDES = {"fp32": "32-true", "bf16": "bf16-mixed"}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision_parity",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/precision-parity", help="folder of the two studies")
    p.add_argument("--models", default="resnet18,seresnet18,swin_t")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--analyze", action="store_true", help="only read finished studies")
    p.add_argument("--quick", action="store_true", help="ResNet-18, one seed, two batches")
    return p


def study_file(out: Path, side: str, models: list[str], seeds: int, quick: bool = False) -> Path:
    spec = yaml.safe_load(PRESET.read_text(encoding="utf-8"))
    spec.update(name=f"parity-{side}", models=models, seeds=seeds, variants={})
    spec["overrides"] = {**spec.get("overrides", {}), "precision": SIDES[side],
                         **({"epochs": 1, "limit_train_batches": 2} if quick else {})}
    path = out / f"parity-{side}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def read_runs(folder: Path) -> dict[tuple[str, int], dict]:
    """Finished runs by (model, seed), each with `cpu_s`: the study worker's CPU seconds (its
    last `train.log` line), which a loaded machine disturbs less than the wall clock."""
    runs = {}
    for f in folder.glob("*/result.json"):
        r = json.loads(f.read_text(encoding="utf-8"))
        if r.get("status") == "finished":
            log = f.parent / "train.log"
            m = re.search(r"worker exit \d+: cpu ([\d.]+) s",
                          log.read_text(encoding="utf-8") if log.is_file() else "")
            r["cpu_s"] = float(m.group(1)) if m else math.nan
            runs[(r["model"], r["seed"])] = r
    return runs


def interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval of paired differences (nan bounds for one pair)."""
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def analyze(out: Path) -> str:
    a, b = read_runs(out / "parity-fp32"), read_runs(out / "parity-bf16")
    keys = sorted(set(a) & set(b))
    lines = ["| model | pairs | fp32 test acc | bf16 test acc | bf16 - fp32 (points) | 95% CI |"
             " fp32 CPU s | bf16 CPU s |", "|---|---|---|---|---|---|---|---|"]
    groups = {m: [k for k in keys if k[0] == m] for m in dict.fromkeys(k[0] for k in keys)}
    groups["all"] = keys
    for name, ks in groups.items():
        if not ks:
            continue
        fa = [a[k]["best"]["test"]["accuracy"] * 100 for k in ks]
        fb = [b[k]["best"]["test"]["accuracy"] * 100 for k in ks]
        mean, lo, hi = interval([y - x for x, y in zip(fa, fb)])
        ta = sum(a[k]["cpu_s"] for k in ks) / len(ks)
        tb = sum(b[k]["cpu_s"] for k in ks) / len(ks)
        lines.append(f"| {name} | {len(ks)} | {sum(fa) / len(fa):.1f} | {sum(fb) / len(fb):.1f} | "
                     f"{mean:+.1f} | [{lo:+.1f}, {hi:+.1f}] | {ta:.0f} | {tb:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.analyze:
        models = ["resnet18"] if args.quick else [m for m in args.models.split(",") if m]
        for side in SIDES:
            spec = study_file(out, side, models, 1 if args.quick else args.seeds, args.quick)
            subprocess.run([sys.executable, "-m", "depthbench", "run", "--config", str(spec),
                            "--out", str(out / f"parity-{side}")], check=True)
    print(analyze(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
