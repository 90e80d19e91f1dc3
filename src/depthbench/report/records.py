"""Read a study folder's run records (result.json, metrics.csv): the report's only input.

The layout and schemas are the ones in docs/internals.md. A run folder is `<model>__<variant>__s<seed>`,
or `<model>__<variant>__s<seed>__r<repeat>__f<fold>` in a cross-validated study (whose runs train
with their cell's seed: the study's seed is the folder name's); a folder whose result.json is
missing or unreadable still becomes a run (status "incomplete" or "unreadable") so the report
shows it instead of dropping it. The study is the one its study.yaml describes now: run folders of
models, variants or seeds it no longer lists (a study rerun with fewer seeds) are left out and
named (`Study.left_out`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from depthbench.errors import DepthbenchError
from depthbench.names import ABLATIONS, canonical, family_of, model_order
from depthbench.report import stats as S
from depthbench.report.options import EQUIVALENCE_MARGIN, MARGIN_LIMITS
from depthbench.report.source import FLOWERS_COUNTS
from depthbench.runrecord import (
    BASE_VARIANT,
    RUN_DIR_PATTERN,
    RecordError,
    read_metrics,
    read_result,
    variant_name,
)

BASE = BASE_VARIANT


@dataclass
class Run:
    """One grid point of a study, as its records describe it."""

    path: Path
    model: str
    variant: str
    seed: int
    status: str  # finished | failed | running | incomplete | unreadable
    family: str
    result: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    reason: str | None = None  # why it failed or is incomplete
    failure_epoch: int | None = None
    repeat: int | None = None  # its cross-validation cell (None: the single split)
    fold: int | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def cell(self) -> tuple[int, int, int]:
        """(seed, repeat, fold): the cell A and B are paired on in a cross-validated study."""
        return self.seed, self.repeat or 0, self.fold or 0

    @cached_property
    def cell_split(self) -> CellSplit | None:
        """What the run's split.json says about its cross-validation cell (None when it has no
        readable split.json of a cell)."""
        return read_cell_split(self.path / "split.json")

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def sort_key(self) -> tuple:
        """The report's order: models in the canonical order, base before variants, by seed
        (then repeat and fold)."""
        return (model_order(self.model), self.variant != BASE, self.variant, self.seed,
                self.repeat or 0, self.fold or 0)

    def checkpoint(self, which: str) -> dict:
        """`best` (selected by validation) or `last` section of result.json ({} if absent)."""
        return self.result.get(which) or {}

    def split(self, which: str, split: str) -> dict | None:
        return self.checkpoint(which).get(split) or None

    def accuracy(self, which: str, split: str) -> float | None:
        s = self.split(which, split)
        if not s:
            return None
        if s.get("correct") is not None and s.get("total"):
            return s["correct"] / s["total"]
        return s.get("accuracy")

    def outcomes(self, which: str, split: str) -> np.ndarray | None:
        """Per-image 1/0 (right/wrong) in manifest order, or None without predictions."""
        s = self.split(which, split)
        if not s or s.get("predictions") is None or s.get("targets") is None:
            return None
        return (np.asarray(s["predictions"]) == np.asarray(s["targets"])).astype(np.int8)

    def class_metrics(self, which: str, split: str) -> dict | None:
        """Per-class recall, balanced accuracy and macro-F1 (None without predictions)."""
        s = self.split(which, split)
        if not s or s.get("predictions") is None or s.get("targets") is None:
            return None
        return S.class_metrics(s["targets"], s["predictions"], len(self.result.get("classes")
                                                                    or []))

    def degenerate(self, split: str, which: str = "best") -> bool:
        """`stats.degenerate` on this run's predictions and targets of `split`."""
        s = self.split(which, split)
        if not s or s.get("predictions") is None or s.get("targets") is None:
            return False
        return S.degenerate(s["targets"], s["predictions"])[0]

    def learned(self, split: str, which: str = "best") -> bool | None:
        """Whether the run beat the majority class on `split` (`stats.beats_majority`); None
        when the record lacks the counts or the true labels."""
        s = self.split(which, split)
        if not s or not s.get("total") or s.get("correct") is None or not s.get("targets"):
            return None
        return S.beats_majority(s["correct"], s["total"], s["targets"])

    def train_eval(self, which: str = "best") -> float | None:
        """Accuracy of the checkpoint in eval mode on the study's fixed train subset, or None
        when the record has none (never the running train-mode accuracy)."""
        te = self.checkpoint(which).get("train_eval")
        if not isinstance(te, dict):
            return None
        if te.get("correct") is not None and te.get("total"):
            return te["correct"] / te["total"]
        return te.get("accuracy")

    def targets(self, split: str) -> list[int] | None:
        for which in ("best", "last"):
            s = self.split(which, split)
            if s and s.get("targets") is not None:
                return list(s["targets"])
        return None

    @property
    def params(self) -> int | None:
        return self.result.get("params")

    @property
    def macs(self) -> int | None:
        return self.result.get("macs")

    @property
    def macs_224(self) -> int | None:
        return self.result.get("macs_224")

    @property
    def img_size(self) -> int | None:
        cfg = self.result.get("config") if isinstance(self.result.get("config"), dict) else {}
        return self.result.get("img_size") or cfg.get("img_size")

    @property
    def costs(self) -> dict:
        return self.result.get("costs") or {}

    @property
    def seconds(self) -> float | None:
        prov = self.result.get("provenance") or {}
        if prov.get("seconds") is not None:
            return prov["seconds"]
        if self.costs.get("train_seconds") is not None:
            return self.costs["train_seconds"]
        if self.metrics:
            return float(sum(r.get("seconds") or 0.0 for r in self.metrics))
        return None

    def curve(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        rows = [r for r in self.metrics if r.get(column) is not None]
        return (np.array([r["epoch"] for r in rows], dtype=int),
                np.array([r[column] for r in rows], dtype=float))


@dataclass(frozen=True)
class CellSplit:
    """A cross-validation cell's split.json, as far as the report needs it."""

    partition: str  # the hash of the study's partition
    repeat: int
    fold: int
    folds: int
    repeats: int
    test: list[str]  # the test fold's image paths, in the order of the run's predictions
    n_train: int


def read_cell_split(path: Path) -> CellSplit | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        entries = d["entries"]
        return CellSplit(str(d["partition"]), int(d["repeat"]), int(d["fold"]), int(d["folds"]),
                         int(d["repeats"]), [e["path"] for e in entries if e["split"] == "test"],
                         sum(e["split"] == "train" for e in entries))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


@dataclass
class Study:
    path: Path
    name: str
    runs: list[Run]  # the run folders of the study as study.yaml describes it, in report order
    spec: dict
    left_out: list[Run] = field(default_factory=list)  # run folders study.yaml no longer lists

    @property
    def eval_split(self) -> str:
        """Where the paired tests run: `test` when any finished run has a test split, else `val`
        (which also selected the checkpoints: optimistic, and the report says so)."""
        return "test" if any(r.split("best", "test") for r in self.runs if r.finished) else "val"

    @property
    def classes(self) -> list[str]:
        for r in self.runs:
            if r.result.get("classes"):
                return list(r.result["classes"])
        return []

    @property
    def margin(self) -> float:
        """The equivalence margin (a fraction): study.yaml's report.equivalence_margin, else the
        report's default."""
        opts = self.spec.get("report")
        value = opts.get("equivalence_margin") if isinstance(opts, dict) else None
        if value is None:
            return EQUIVALENCE_MARGIN
        lo, hi = MARGIN_LIMITS
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo < value < hi:
            raise DepthbenchError(
                f"{self.path / 'study.yaml'}: report.equivalence_margin must be a fraction "
                f"between {lo:g} and {hi:g} ({EQUIVALENCE_MARGIN:g} = "
                f"±{100 * EQUIVALENCE_MARGIN:g} points), got {value!r}")
        return float(value)

    @property
    def is_flowers(self) -> bool:
        return sorted(c.lower() for c in self.classes) == sorted(FLOWERS_COUNTS)

    @property
    def design(self) -> tuple[int, int] | None:
        """(folds, repeats) of a cross-validated study (from study.yaml, else its run folders),
        None for a single split."""
        split = self.spec.get("split") if isinstance(self.spec.get("split"), dict) else {}
        if isinstance(split.get("folds"), int):
            repeats = split.get("repeats")
            return split["folds"], repeats if isinstance(repeats, int) else 1
        cells = [(r.repeat, r.fold) for r in self.runs if r.fold is not None]
        if not cells:
            return None
        return max(f for _, f in cells) + 1, max(r for r, _ in cells) + 1


def load_study(study_dir: str | Path) -> Study:
    """Every run folder of `study_dir` that its study.yaml lists (all of them without one); a
    `DepthbenchError` when there is none."""
    study_dir = Path(study_dir).resolve()
    if not study_dir.is_dir():
        raise DepthbenchError(f"study folder not found: {study_dir} "
                              "(give the folder `depthbench run` wrote, e.g. runs/quick)")
    runs = []
    for d in sorted(p for p in study_dir.iterdir() if p.is_dir()):
        named = RUN_DIR_PATTERN.match(d.name)
        if (d / "result.json").is_file() or (d / "metrics.csv").is_file() or named:
            runs.append(load_run(d))
    if not runs:
        raise DepthbenchError(
            f"no run records in {study_dir}: expected run folders named "
            "<model>__<variant>__s<seed> holding result.json and metrics.csv "
            "(run `depthbench run --out DIR` first)")
    spec = _read_spec(study_dir / "study.yaml")
    keep = [_listed(r, spec) for r in runs]
    return Study(path=study_dir, name=str(spec.get("name") or study_dir.name),
                 runs=sorted((r for r, k in zip(runs, keep) if k), key=lambda r: r.sort_key),
                 spec=spec, left_out=[r for r, k in zip(runs, keep) if not k])


def _read_spec(path: Path) -> dict:
    """study.yaml as a dict ({} when absent or unreadable: the report then covers every folder)."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        spec = {}
    return spec if isinstance(spec, dict) else {}


def _listed(run: Run, spec: dict) -> bool:
    """Whether study.yaml, as it stands, lists this run's model, variant and seed (a key it does
    not have lists everything)."""
    models, seeds = spec.get("models"), spec.get("seeds")
    if isinstance(models, list) and run.model not in {canonical(str(m)) for m in models}:
        return False
    if isinstance(seeds, list) and run.seed not in seeds:
        return False
    split = spec.get("split") if isinstance(spec.get("split"), dict) else {}
    folds = split.get("folds")
    if spec and (run.fold is None) != (folds is None):  # the other design's folders
        return False
    if run.fold is not None and isinstance(folds, int) and (
            run.fold >= folds or run.repeat >= int(split.get("repeats") or 1)):
        return False
    variants = spec.get("variants")
    if run.variant == BASE or not isinstance(variants, dict):
        return True
    only = variants.get("models")
    if isinstance(only, list) and run.model not in {canonical(str(m)) for m in only}:
        return False
    return run.variant in {variant_name(opt, rate) for opt in ABLATIONS
                           for rate in variants.get(opt) or [] if isinstance(rate, int | float)}


def load_run(run_dir: Path) -> Run:
    named = RUN_DIR_PATTERN.match(run_dir.name)
    model = named["model"] if named else run_dir.name
    variant = named["variant"] if named else BASE
    seed = int(named["seed"]) if named else 0
    cell = ({"repeat": int(named["repeat"]), "fold": int(named["fold"])}
            if named and named["fold"] is not None else {})
    metrics, metrics_problem = read_metrics(run_dir / "metrics.csv")
    try:
        result = read_result(run_dir)
    except RecordError as e:
        return Run(run_dir, canonical(model), variant, seed, "unreadable", family_of(model),
                   metrics=metrics, reason=f"result.json {e.detail}", **cell)
    if result is None:
        reason = "no result.json (the run never finished; rerun the study to resume it)"
        return Run(run_dir, canonical(model), variant, seed, "incomplete", family_of(model),
                   metrics=metrics, reason=reason, **cell)
    model = canonical(str(result.get("model") or model))
    status = str(result.get("status") or "incomplete")
    failure = result.get("failure") or {}
    reason = failure.get("reason") if isinstance(failure, dict) else str(failure)
    if status != "finished" and metrics_problem:
        reason = f"{reason}; {metrics_problem}" if reason else metrics_problem
    if status == "running":
        reason = reason or "still running or interrupted (rerun the study to resume it)"
    if not cell and result.get("seed") is not None:  # a cell's run trains with the cell's seed
        seed = int(result["seed"])
    return Run(
        path=run_dir, model=model, variant=str(result.get("variant") or variant),
        seed=seed, status=status,
        family=str(result.get("family") or family_of(model)), result=result, metrics=metrics,
        reason=reason, failure_epoch=failure.get("epoch") if isinstance(failure, dict) else None,
        **cell)
