"""Accuracy of the `modern` recipe with its random stage per image (old) against batched (new).

`python -m benchmarks.augment_parity --old-src OLD/src [--out DIR] [--seeds 4] [--epochs 3]
[--analyze]`

The batched stage (`data.batch_augment`) draws the same distributions as torchvision's per-image
stage but cannot give the same images, so the two are compared the way the report compares two
settings: ResNet-18 on the bundled ELPV images (64 px, the `quick` preset's split, optimiser and
schedule, full epochs), `--seeds` seeds per side, paired by seed and test image, with the report's
own test (`report.stats.compare_outcomes`: the crossed random-effects and seed-level t, the larger
p). The old side runs `depthbench train` from `--old-src` (the `src` folder of a checkout from
before the batched stage, e.g. `git worktree add /tmp/old <commit>`), the new side from this
tree; each run is its own process with one torch thread at nice 5, a seed's two sides side by
side. `--analyze` only reads the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from depthbench.report.stats import compare_outcomes, mean_ci

HERE = Path(__file__).resolve().parents[1] / "src"
SIDES = ("per-image", "batched")
TRAIN = ["--model", "resnet18", "--data", "elpv", "--recipe", "modern", "--img-size", "64",
         "--batch-size", "32", "--lr", "0.0005", "--warmup-epochs", "1", "--min-lr", "0.00001",
         "--val", "0.1", "--test", "0.15", "--split-seed", "0", "--quiet"]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.augment_parity",
                                description=__doc__.splitlines()[0])
    p.add_argument("--old-src", help="the src folder of a checkout with the per-image stage")
    p.add_argument("--out", default="runs/augment-parity", help="folder of the runs")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--analyze", action="store_true", help="only read finished runs")
    return p


def train(side: str, src: Path, seed: int, epochs: int, out: Path) -> subprocess.Popen | None:
    """Start one run (None when it already finished), one torch thread, at nice 5."""
    run = out / side / f"seed-{seed}"
    if (run / "result.json").is_file() and json.loads(
            (run / "result.json").read_text(encoding="utf-8")).get("status") == "finished":
        return None
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    cmd = ["nice", "-n", "5", sys.executable, "-m", "depthbench", "train", *TRAIN,
           "--epochs", str(epochs), "--seed", str(seed), "--out", str(run)]
    return subprocess.Popen(cmd, env=env)


def outcomes(run: Path) -> tuple[list[int], float]:
    """Test outcomes (1 right, 0 wrong) at the selected checkpoint, and the run's training
    seconds (wall clock)."""
    r = json.loads((run / "result.json").read_text(encoding="utf-8"))
    test = r["best"]["test"]
    return [int(p == t) for p, t in zip(test["predictions"], test["targets"], strict=True)], float(
        r["costs"]["train_seconds"])


def analyze(out: Path, seeds: int) -> str:
    runs = {side: [outcomes(out / side / f"seed-{s}") for s in range(seeds)] for side in SIDES}
    old, new = ([o for o, _ in runs[side]] for side in SIDES)
    test, b, c, n = compare_outcomes(new, old)
    rows = ["| side | seeds | test accuracy (%) | 95% CI | mean train seconds (wall) |", "|---|---|---|---|---|"]
    for side, ys in zip(SIDES, (old, new)):
        mean, lo, hi, _ = mean_ci(ys)
        secs = sum(t for _, t in runs[side]) / seeds
        rows.append(f"| {side} | {seeds} | {100 * mean:.1f} | [{100 * lo:.1f}, {100 * hi:.1f}] | "
                    f"{secs:.0f} |")
    per_seed = ", ".join(f"{100 * (sum(a) - sum(o)) / n:+.1f}" for a, o in zip(new, old))
    verdict = "differ" if test.p < 0.05 else "no difference detected"
    return ("\n".join(rows) + f"\n\nbatched - per-image: Δ = {100 * test.delta:+.2f} points, "
            f"95% CI [{100 * test.low:+.2f}, {100 * test.high:+.2f}], p = {test.p:.3f} "
            f"({test.method}; {n} test images, {b} right only batched, {c} right only per-image, "
            f"summed over seeds; per seed: {per_seed}): {verdict}.")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    out = Path(args.out)
    if not args.analyze:
        if not args.old_src:
            raise SystemExit("augment_parity: --old-src is needed to train the per-image side")
        for seed in range(args.seeds):  # a seed's two runs side by side: load hits both alike
            procs = [train(side, src, seed, args.epochs, out)
                     for side, src in zip(SIDES, (Path(args.old_src), HERE))]
            if [p.wait() for p in procs if p is not None] != [0] * sum(p is not None for p in procs):
                raise SystemExit(f"augment_parity: a run of seed {seed} failed")
    print(analyze(out, args.seeds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
