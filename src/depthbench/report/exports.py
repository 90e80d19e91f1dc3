"""The report's machine-readable files: results.csv (one row per run) and comparisons.csv (one row
per comparison, with the counts that let anyone recompute its p-value; for a cross-validated
study, each cell's counts)."""

from __future__ import annotations

import csv
import io

import numpy as np

from depthbench.report import stats as S
from depthbench.report.analysis import Analysis, CVDecision
from depthbench.report.records import Run, Study

RESULT_COLUMNS = [
    "model", "family", "variant", "seed", "repeat", "fold", "status", "failure_epoch", "failure_reason", "params",
    "macs", "img_size", "macs_224", "epochs_completed", "best_epoch", "degenerate",
    "did_not_learn", "majority_rate",
    "best_train_loss", "best_train_acc", "best_train_eval_acc",
    "best_val_acc", "best_val_correct", "best_val_total", "best_val_wilson_low",
    "best_val_wilson_high", "best_val_balanced_acc", "best_val_macro_f1",
    "best_test_acc", "best_test_correct", "best_test_total", "best_test_wilson_low",
    "best_test_wilson_high", "best_test_balanced_acc", "best_test_macro_f1",
    "last_epoch", "last_train_loss", "last_train_acc", "last_train_eval_acc",
    "last_val_acc", "last_val_correct", "last_val_total", "last_val_wilson_low",
    "last_val_wilson_high", "last_val_balanced_acc", "last_val_macro_f1",
    "last_test_acc", "last_test_correct", "last_test_total", "last_test_wilson_low",
    "last_test_wilson_high", "last_test_balanced_acc", "last_test_macro_f1",
    "seconds", "run_dir",
]
COMPARISON_COLUMNS = [
    "section", "a_model", "a_variant", "b_model", "b_variant", "seeds", "n_images", "a_only",
    "b_only", "delta_pts", "ci_low_pts", "ci_high_pts", "method", "p", "p_holm", "mde_pts",
    "margin_pts", "tost_p_holm", "verdict", "seeds_needed", "images_needed",
    "folds", "repeats", "J", "n_test", "n_train", "cells", "image_sq", "folds_needed",
    "repeats_needed",
]


def results_csv(study: Study) -> str:
    """One row per run of the study as its study.yaml lists it, finished or not (accuracies as
    fractions); the run folders it leaves out are named in the report. `did_not_learn`: the
    Wilson interval of the selected checkpoint's accuracy on the evaluation split does not lie
    above `majority_rate`, that split's majority-class rate."""
    eval_split = study.eval_split
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in study.runs:  # in the report's order
        row = {"model": r.model, "family": r.family, "variant": r.variant, "seed": r.seed,
               "repeat": r.repeat, "fold": r.fold, "status": r.status, "failure_epoch": r.failure_epoch,
               "failure_reason": r.reason if not r.finished else None,
               "params": r.params, "macs": r.macs, "img_size": r.img_size,
               "macs_224": r.macs_224,
               "epochs_completed": r.result.get("epochs_completed", len(r.metrics) or None),
               "best_epoch": r.result.get("best_epoch"), "seconds": r.seconds,
               "degenerate": r.degenerate(eval_split) if r.finished else None, "run_dir": r.name}
        for which in ("best", "last"):
            ck = r.checkpoint(which)
            if which == "last":
                row["last_epoch"] = ck.get("epoch")
            row[f"{which}_train_loss"] = ck.get("train_loss")
            row[f"{which}_train_acc"] = ck.get("train_acc")
            row[f"{which}_train_eval_acc"] = r.train_eval(which)
            for split in ("val", "test"):
                s = ck.get(split) or {}
                pre = f"{which}_{split}"
                row[f"{pre}_acc"] = r.accuracy(which, split)
                row[f"{pre}_correct"] = s.get("correct")
                row[f"{pre}_total"] = s.get("total")
                if s.get("total"):
                    row[f"{pre}_wilson_low"], row[f"{pre}_wilson_high"] = S.wilson_ci(
                        s["correct"], s["total"])
                metrics = r.class_metrics(which, split) or {}
                row[f"{pre}_balanced_acc"] = metrics.get("balanced_accuracy")
                row[f"{pre}_macro_f1"] = metrics.get("macro_f1")
        row.update(_learning(r, eval_split))
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _learning(r: Run, split: str) -> dict:
    """The run's `did_not_learn` flag and the majority-class rate it is judged against."""
    learned = r.learned(split) if r.finished else None
    targets = r.targets(split) if learned is not None else None
    _, top, n = S.majority(targets) if targets else (None, None, None)
    return {"did_not_learn": None if learned is None else not learned,
            "majority_rate": top / n if n else None}


def comparisons_csv(an: Analysis) -> str:
    """One row per distinct comparison (counted once), in the order the report makes them.

    a_only/b_only are the discordant counts summed over seeds; with one seed,
    scipy.stats.binomtest(a_only, a_only + b_only, 0.5).pvalue is the row's p. `verdict` is one
    of analysis.VERDICTS; for an inconclusive row, seeds_needed / images_needed say what would
    detect its difference (seeds at this test-set size; else test images; empty: neither).

    A cross-validated row (those columns empty on the others) carries the design (`folds`,
    `repeats`) and the J cells its test used (the largest complete grid of repeats x folds x
    seeds) with the mean test and training images of a cell (`n_test`, `n_train`); `cells`,
    every cell as `repeat:fold:seed:a_only:b_only:n_test:n_train`, separated by `;`
    (`stats.format_cells`), and `image_sq`, the sum over images of the square of each image's
    total difference (A right minus B right) over its cells: from these two alone
    `stats.cv_test(stats.parse_cells(cells), image_sq)` recomputes the row's test. Its
    a_only/b_only are summed over those cells. An inconclusive one says what would detect its
    difference in `folds_needed`, `repeats_needed` and `seeds_needed` (seeds per fold; all three
    empty: not within `stats.MAX_RUNS` runs of each model).
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COMPARISON_COLUMNS, lineterminator="\n")
    w.writeheader()
    for c in an.comparisons:
        tested = c.test is not None
        w.writerow({
            "section": c.section, "a_model": c.a[0], "a_variant": c.a[1], "b_model": c.b[0],
            "b_variant": c.b[1], "seeds": len(c.seeds), "n_images": c.n or "",
            "a_only": c.a_only if tested else "", "b_only": c.b_only if tested else "",
            "delta_pts": _pts(c.delta), "ci_low_pts": _pts(c.low), "ci_high_pts": _pts(c.high),
            "method": c.method, "p": _num(c.p), "p_holm": _num(c.p_holm),
            "mde_pts": _pts(c.mde), "margin_pts": _pts(c.margin),
            "tost_p_holm": _num(c.tost_holm), "verdict": c.verdict,
            **_needed(c.decide),
            **_cells(an, c)})
    return buf.getvalue()


def _needed(decide) -> dict:
    """What would detect an open row's difference: seeds, else test images (a single split);
    the design (cross-validated); nothing when no route would, or the row is not open."""
    if decide is None:
        return {}
    if isinstance(decide, CVDecision):
        d = decide.detect
        return {} if d is None else {"folds_needed": d.folds, "repeats_needed": d.repeats,
                                     "seeds_needed": d.seeds}
    return {"seeds_needed": decide.seeds or "",
            "images_needed": "" if decide.seeds else decide.images or ""}


def _cells(an: Analysis, c) -> dict:
    if not c.counts:
        return {"folds": an.design[0], "repeats": an.design[1]} if an.cv else {}
    return {"folds": an.design[0], "repeats": an.design[1], "J": len(c.counts),
            "n_test": f"{float(np.mean([x.n_test for x in c.counts])):.10g}",
            "n_train": f"{float(np.mean([x.n_train for x in c.counts])):.10g}",
            "cells": S.format_cells(c.counts), "image_sq": c.image_sq}


def _num(x) -> str:
    return "" if x is None or x != x else f"{x:.6g}"


def _pts(x) -> str:
    return "" if x is None or x != x else f"{100 * x:.4f}"
