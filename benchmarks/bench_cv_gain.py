"""What cross-validation buys on ELPV at a CPU budget: ResNet-18 against SE-ResNet-18 trained for
real, the single split against 5-fold cross-validation at equal runs of each model.

`python -m benchmarks.bench_cv_gain [--out DIR] [--analyze] [--keep-checkpoints] [--quick]`

Trains two studies with `depthbench run --config` (no analysis of the networks): the quick
preset's setting (its split, 10% validation and 15% test of each class; its recipe, optimiser,
schedule and 3 epochs of 50 batches; two runs at once, one thread each) at `IMG_SIZE` px, for
ResNet-18 and SE-ResNet-18 only, once on the single split with 10 seeds and once as 5-fold x 2
repeats with one seed. The 5-run designs are the first 5 seeds and the first repeat of those
studies. Each run's checkpoints are deleted once its study has finished (the report reads only
result.json; disk is what a 40-run study would otherwise fill). The runs are then read with the
report's own loader and analysis (`Analysis.compare`, so the pairing and the test are the
report's), and each design gets: the runs trained, their CPU and wall minutes, the observed Δ
(SE-ResNet-18 − ResNet-18), and the detectable Δ at the Holm level of the quick study's family
(`HOLM_M` comparisons) from `report.stats.mde`, with the variance components it measured. A
last table projects, with `report.stats.detectable`, the designs where cross-validation's
detectable Δ reaches half the single split's at equal runs. `--analyze` only reads the studies
under `--out`. `--quick`: synthetic images, one epoch of two batches, 2 and 4 runs (2 folds):
checks that everything runs, figures not worth quoting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks.bench_cv_calibration import HOLM_M, shares
from depthbench.report import stats as S
from depthbench.report.analysis import Analysis
from depthbench.report.records import load_study

PRESET = Path(__file__).resolve().parents[1] / "src/depthbench/configs/presets/quick.yaml"
IMG_SIZE = 32
MODELS = ("seresnet18", "resnet18")  # A and B, in the report's order of the SE question
CHECKPOINTS = ("best.safetensors", "last.ckpt")
PROJECTED_RUNS = (5, 10, 20, 30, 50, 100)


@dataclasses.dataclass(frozen=True)
class Setting:
    data: str
    folds: int
    runs: tuple[int, int]  # runs of each model of the two designs compared (the second trained)
    overrides: dict


FULL = Setting("elpv", 5, (5, 10), {})
QUICK = Setting("synthetic:n=80,size=32,classes=3,seed=0", 2, (2, 4),
                {"epochs": 1, "limit_train_batches": 2, "warmup_epochs": 0})


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_cv_gain",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/cv-gain", help="folder of the two studies")
    p.add_argument("--analyze", action="store_true", help="only read finished studies")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each run's best.safetensors and last.ckpt")
    p.add_argument("--quick", action="store_true", help=QUICK.data + ", 2 and 4 runs")
    return p


def study_files(out: Path, setting: Setting) -> dict[str, Path]:
    """The two study files: {"split": 10 seeds on the quick split, "cv": K-fold x R, one seed}."""
    spec = yaml.safe_load(PRESET.read_text(encoding="utf-8"))
    spec.update(data=setting.data, img_size=IMG_SIZE, models=list(MODELS), variants={}, jobs=2)
    spec["overrides"] = {**spec.get("overrides", {}), **setting.overrides}
    runs = setting.runs[1]
    sides = {
        "split": {**spec, "name": "cv-gain-split", "seeds": runs},
        "cv": {**spec, "name": "cv-gain-cv", "seeds": 1,
               "split": {"folds": setting.folds, "repeats": runs // setting.folds,
                         "val": spec["split"]["val"], "seed": spec["split"]["seed"]}},
    }
    paths = {}
    for side, body in sides.items():
        paths[side] = out / f"{body['name']}.yaml"
        paths[side].write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return paths


def train(out: Path, setting: Setting, keep: bool) -> dict[str, float]:
    """Run both studies (resuming what a previous call left), each nice'd; returns their wall
    seconds."""
    wall = {}
    for side, path in study_files(out, setting).items():
        t0 = time.perf_counter()
        subprocess.run(["nice", "-n", "10", sys.executable, "-m", "depthbench", "run",
                        "--config", str(path), "--out", str(out / side), "--no-analyze"],
                       check=True)
        wall[side] = time.perf_counter() - t0
        if not keep:
            for name in CHECKPOINTS:
                for path in (out / side).glob(f"*/{name}"):
                    path.unlink()
    (out / "wall.json").write_text(json.dumps(wall), encoding="utf-8")
    return wall


def cpu_seconds(run_dir: Path) -> float:
    """The study worker's CPU seconds for the run (its last `train.log` line)."""
    log = run_dir / "train.log"
    found = re.findall(r"worker exit \d+: cpu ([\d.]+) s",
                       log.read_text(encoding="utf-8") if log.is_file() else "")
    return float(found[-1]) if found else float("nan")


@dataclasses.dataclass
class Measured:
    """One design's comparison of A and B, as the report computes it."""

    name: str
    runs: int  # of each model
    trained: int
    cpu_min: float
    wall_min: float  # the runs' own wall minutes, summed
    test: S.Test
    mde: float
    run_sd: float  # sd over runs of a run's Δ (over a seed's test split, or a cell's fold)
    components: S.Components | S.CVComponents  # as the report's planner measured them
    design: S.Design

    def terms(self) -> S.CVComponents:
        """The components as image, training set, seed, residual (a single split's run term
        in the training-set place, as `Components.cv` puts it)."""
        c = self.components
        return c if isinstance(c, S.CVComponents) else c.cv()


def measure(study, name: str, keep) -> Measured:
    """The report's comparison of `MODELS` over the runs `keep` selects."""
    runs = [r for r in study.runs if keep(r)]
    sub = dataclasses.replace(study, runs=runs)
    an = Analysis(sub)
    c = an.compare("se", (MODELS[0], "base"), (MODELS[1], "base"))
    if c.test is None:
        raise SystemExit(f"{name}: no comparison: {c.problem}")
    if c.cells is None:
        components, design = S.Components.of(c.diffs), S.Design(c.n, len(c.seeds))
        per_run = c.diffs.mean(axis=1)
    else:
        kept, _ = S.cell_grid(c.cells)
        _, components, design = S.cv_components(*S.cell_counts(kept))
        per_run = np.array([x.a.mean() - x.b.mean() for x in kept])
    fin = [r for r in runs if r.finished]
    return Measured(name, design.runs, len(fin), sum(cpu_seconds(r.path) for r in fin) / 60,
                    sum(r.seconds or 0.0 for r in fin) / 60, c.test, S.mde(c.test, HOLM_M),
                    float(np.std(per_run, ddof=1)), components, design)


def designs(out: Path, setting: Setting) -> list[Measured]:
    split, cv = load_study(out / "split"), load_study(out / "cv")
    k = setting.folds
    rows = []
    for runs in setting.runs:
        rows.append(measure(split, f"single split, {runs} seeds", lambda r, n=runs: r.seed < n))
        rep = runs // k
        rows.append(measure(
            dataclasses.replace(cv, spec={**cv.spec, "split": {**cv.spec["split"],
                                                               "repeats": rep}}),
            f"{k}-fold x {rep}", lambda r, n=rep: (r.repeat or 0) < n))
    return rows


def table(rows: list[Measured]) -> str:
    lines = ["| design | runs of each model | runs trained | CPU min | run wall min | "
             "Δ = SE-ResNet-18 − ResNet-18 (points) | 95% CI | p | method | df | "
             f"detectable Δ, Holm m = {HOLM_M} (points) | CV / single split | "
             "a run's Δ, sd over runs (points) | components ×10³: image / run / residual | "
             "Var(Δ): image / run / residual (%) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    split_mde = None
    for m in rows:
        t = m.test
        if not m.design.folds:
            split_mde = m.mde
        ratio = f"{m.mde / split_mde:.2f}" if m.design.folds and split_mde else ""
        image, train, seed, res = m.terms().as_array()
        comp = f"{1e3 * image:.2f} / {1e3 * (train + seed):.2f} / {1e3 * res:.2f}"
        lines.append(
            f"| {m.name} | {m.runs} | {m.trained} | {m.cpu_min:.1f} | {m.wall_min:.1f} | "
            f"{100 * t.delta:+.2f} | [{100 * t.low:+.2f}, {100 * t.high:+.2f}] | {t.p:.3g} | "
            f"{t.method} | {t.df:.1f} | {100 * m.mde:.2f} | {ratio} | {100 * m.run_sd:.2f} | "
            f"{comp} | "
            f"{shares(m.terms(), m.design)} |")
    return "\n".join(lines)


def projection(rows: list[Measured], setting: Setting) -> str:
    """The planner's detectable Δ at equal runs, single split with S seeds against K-fold x
    S/K, from the components the largest designs measured: each design's own, and the
    cross-validated ones for both (one set of terms for one comparison); then the fewest runs,
    up to `S.MAX_RUNS` of each model, at which cross-validation's is half the single split's."""
    split = next(m for m in reversed(rows) if not m.design.folds)
    cv = next(m for m in reversed(rows) if m.design.folds)
    k, n_split, n_all = setting.folds, split.design.images, cv.design.images

    def detectable(runs: int) -> tuple[float, float, float]:
        """(single split from its components, CV, single split from CV's components)."""
        return (S.detectable(split.components, S.Design(n_split, runs), HOLM_M),
                S.detectable(cv.components, S.Design(n_all, 1, k, runs // k), HOLM_M),
                S.detectable(cv.components, S.Design(n_split, runs), HOLM_M))

    lines = [f"| runs of each model | single split (its components) | {k}-fold (its components) "
             f"| ratio | single split (the {k}-fold components) | ratio |",
             "|---|---|---|---|---|---|"]
    for r in sorted(x for x in {*PROJECTED_RUNS, *setting.runs} if x % k == 0):
        own, cvd, same = detectable(r)
        lines.append(f"| {r} | {100 * own:.2f} | {100 * cvd:.2f} | {cvd / own:.2f} | "
                     f"{100 * same:.2f} | {cvd / same:.2f} |")
    every = [(r, *detectable(r)) for r in range(k, S.MAX_RUNS + 1, k)]
    found = (next((r for r, own, cvd, _ in every if cvd <= own / 2), None),
             next((r for r, _, cvd, same in every if cvd <= same / 2), None))
    words = [f"from {r} runs of each model" if r else f"not within {S.MAX_RUNS} runs"
             for r in found]
    return "\n".join(lines) + (
        f"\n\nHalf the single split's detectable Δ at equal runs: each design's own components: "
        f"{words[0]}; the {k}-fold components for both: {words[1]}")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setting = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.analyze:
        train(out, setting, args.keep_checkpoints)
    wall_file = out / "wall.json"
    wall = json.loads(wall_file.read_text(encoding="utf-8")) if wall_file.is_file() else {}
    rows = designs(out, setting)
    print(f"\n## What cross-validation buys on {setting.data} (ResNet-18 against SE-ResNet-18, "
          f"{IMG_SIZE} px)\n")
    print("Studies' wall minutes: " + ", ".join(f"{k} {v / 60:.1f}" for k, v in wall.items())
          + "\n")
    print(table(rows) + "\n")
    print(f"### Where the gain reaches half (`report.stats.detectable`, Holm m = {HOLM_M})\n")
    print(projection(rows, setting) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
