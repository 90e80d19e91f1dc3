"""The study report built from hand-made run folders (a test fixture standing in for the engine's
records, following docs/internals.md), the `depthbench report` command, and the HTML in Chromium.

Tests check behaviour: the verdict of each constructed comparison (`Comparison.verdict`), the
CSV files' columns and words, the claims' outcomes, the blocks the report is made of, and what
Chromium renders; not the report's prose."""

import ast
import csv
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from html import unescape
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure as MplFigure
from scipy import stats

import crossed_cv
from depthbench import names
from depthbench.cli.main import main
from depthbench.errors import DepthbenchError
from depthbench.report import figures as F
from depthbench.report import overview, sections
from depthbench.report import stats as S
from depthbench.report.analysis import VERDICTS, Analysis, CVDecision, decide, plan_comparisons
from depthbench.report.build import build, build_report
from depthbench.report.claims import judge_claims
from depthbench.report.document import (
    Bullets,
    Document,
    Figure,
    FigureRow,
    Para,
    Table,
    to_markdown,
)
from depthbench.report.exports import COMPARISON_COLUMNS, comparisons_csv, results_csv
from depthbench.report.pairs import RUNNER_UP, comparison_pairs
from depthbench.report.records import load_study
from depthbench.report.source import FLOWERS_COUNTS

CLASSES = ["cat", "dog", "fox", "owl"]
FLOWERS = sorted(FLOWERS_COUNTS)
# published parameter counts at 1000 classes: realistic values for the made-up records (a model
# without one gets PARAMS_OTHER)
PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
          "seresnet18": 11_778_592, "seresnet34": 21_958_868, "seresnet50": 28_088_024,
          "swin_tiny_patch4_window7_224": 28_288_354, "swin_small_patch4_window7_224": 49_606_258,
          "swin_base_patch4_window7_224": 87_768_224}
PARAMS_OTHER = 30_000_000


# ------------------------------------------------------------------------------ fixture helpers
def _targets(n, k, seed):
    """A fixed, unbalanced split: class 0 is the majority (like a real per-class split)."""
    rng = np.random.default_rng(1000 + seed)
    weights = np.array([2.0] + [1.0] * (k - 1))
    return rng.choice(k, size=n, p=weights / weights.sum()).tolist()


def _config(model, variant, epochs, test):
    cfg = {"model": model, "data": "hand-made", "recipe": "source", "epochs": epochs,
           "precision": "bf16-mixed", "img_size": 32, "val": 0.1, "test": 0.25 if test else 0.0, "key_drop": None,
           "key_drop_mode": None, "se_drop": None}
    m = re.fullmatch(r"(keydrop|sedrop)([\d.]+)", variant)
    if m:
        cfg["key_drop" if m[1] == "keydrop" else "se_drop"] = float(m[2])
        if m[1] == "keydrop":
            cfg["key_drop_mode"] = "dropkey"
    return cfg


def _pattern(n, acc, seed, flip=0.05):
    """Which test images a model gets right: a pattern fixed by its accuracy (so two models given
    the same accuracy agree image by image) with `flip` of the images redrawn per seed."""
    base = np.random.default_rng(zlib.crc32(f"pattern/{acc}".encode())).random(n) < acc
    rng = np.random.default_rng(zlib.crc32(f"flip/{seed}/{acc}".encode()))
    redraw = rng.random(n) < flip
    return np.where(redraw, rng.random(n) < acc, base)


def _outcome(targets, right, k, predictions=None):
    t = np.asarray(targets)
    pred = (np.asarray(predictions) if predictions is not None
            else np.where(right, t, (t + 1) % k))
    conf = np.zeros((k, k), dtype=int)
    np.add.at(conf, (t, pred), 1)
    correct = int((pred == t).sum())
    return {"accuracy": correct / t.size, "correct": correct, "total": int(t.size),
            "loss": 1.0, "per_class": {}, "confusion": conf.tolist(),
            "predictions": pred.tolist(), "targets": t.tolist()}


def make_run(study, model, seed, acc, variant="base", epochs=4, classes=CLASSES, n_val=60,
             n_test=150, status="finished", train_acc=None, failure=None, test=True, right=None,
             predictions=None, val_acc=None, train_eval=None, macs_224=None, best_at=None):
    """Write one run folder (metrics.csv + result.json).

    Test predictions at both checkpoints: `predictions` if given, else right on the images
    `right` marks, else on `_pattern(acc)`. Validation accuracy at the selected epoch is
    `val_acc` (default `acc`). `train_eval`: the eval-mode train-subset accuracy to record.
    `best_at`: the epoch validation selects (default: its best validation accuracy).
    """
    k = len(classes)
    run = Path(study) / f"{model}__{variant}__s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    done = epochs if status == "finished" else max(1, epochs // 2)
    val_t, test_t = _targets(n_val, k, 0), _targets(n_test, k, 1)
    val_acc = acc if val_acc is None else val_acc
    test_right = _pattern(n_test, acc, seed) if right is None else np.asarray(right, bool)
    rows = []
    for e in range(1, done + 1):
        frac = e / epochs
        ta = train_acc if train_acc is not None else min(1.0, acc + 0.25 * frac)
        val = _outcome(val_t, _pattern(n_val, val_acc * (0.6 + 0.4 * frac), seed, 0.0), k)
        rows.append(({"epoch": e, "train_loss": round(1.5 * (1 - frac) + 0.05, 5),
                      "train_acc": ta, "val_loss": val["loss"], "val_acc": val["accuracy"],
                      "val_correct": val["correct"], "val_total": val["total"], "lr": 1e-3,
                      "seconds": 2.5}, val))
    best = (rows[best_at - 1] if best_at else
            max(rows, key=lambda rv: (rv[0]["val_acc"], rv[0]["epoch"])))
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0][0]))
        w.writeheader()
        w.writerows(r for r, _ in rows)

    def section(row, val):
        out = {"epoch": row["epoch"], "train_loss": row["train_loss"],
               "train_acc": row["train_acc"], "val": val,
               "test": _outcome(test_t, test_right, k, predictions) if test else None}
        if train_eval is not None:
            out["train_eval"] = {"accuracy": train_eval, "correct": round(train_eval * 200),
                                 "total": 200}
        return out

    result = {
        "status": status, "failure": failure, "model": model, "family": names.family_of(model),
        "variant": variant, "seed": seed, "config": _config(model, variant, epochs, test),
        "classes": classes, "img_size": 32, "params": PARAMS.get(model, PARAMS_OTHER),
        "macs": int(PARAMS.get(model, PARAMS_OTHER) * 150), "epochs_completed": done,
        "best_epoch": best[0]["epoch"], "best": section(*best), "last": section(*rows[-1]),
        "costs": {"train_seconds": 2.5 * done, "train_images_per_s": 120.0,
                  "infer_images_per_s": 400.0, "peak_memory_mb": 512.0},
        "provenance": {"versions": {}, "git_revision": "abc", "manifest_hash": "h",
                       "device": "cpu", "started": "2026-01-01T00:00:00", "seconds": 2.5 * done},
    }
    if macs_224 is not None:
        result["macs_224"] = macs_224
    if status != "finished":
        result["best"] = result["last"] = None
    (run / "result.json").write_text(json.dumps(result))
    return run


def make_study(root, seeds, models=None, accs=None, **kw):
    models = models or list(names.MODELS)
    accs = accs or {}
    for s in seeds:
        for m in models:
            make_run(root, m, s, accs.get(m, 0.7), **kw)
    return Path(root)


def _analysis(root):
    an = Analysis(load_study(root))
    return an, plan_comparisons(an)


def _claims(root) -> dict:
    """The source study's claims, judged from `root`'s records: {claim: Claim}."""
    return {c.claim: c for c in judge_claims(*_analysis(root))}


def _rows(root) -> dict:
    """comparisons.csv as {(a_model, a_variant, b_model, b_variant): row}."""
    return {(r["a_model"], r["a_variant"], r["b_model"], r["b_variant"]): r
            for r in _csv(root / "comparisons.csv")}


def _text_report(root):
    """The report without its figures (drawing them is the slow part): its lead, notes and
    tables, results.csv and comparisons.csv as rows. Returns (analysis, plan, the document,
    {run_dir: results row}, {(a_model, b_model): comparisons row})."""
    an, plan = _analysis(root)
    doc = Document("report")
    doc.add(Para(overview._lead(an), css="lead"), *overview._notes(an, plan))
    overview.models_table(doc, an)
    overview.claims(doc, an, plan)
    sections.comparisons(doc, an, plan)
    sections.runs(doc, an)
    results = {r["run_dir"]: r for r in csv.DictReader(io.StringIO(results_csv(an.study)))}
    comps = {(r["a_model"], r["b_model"]): r
             for r in csv.DictReader(io.StringIO(comparisons_csv(an)))}
    return an, plan, doc, results, comps


def _tables(built) -> list[Table]:
    return [b for b in built.doc.blocks if isinstance(b, Table)]


def _table_with(tables, cell_prefix: str) -> Table:
    """The first table with a row whose first cell starts with `cell_prefix`."""
    return next(t for t in tables if any(r[0].startswith(cell_prefix) for r in t.rows))


# --------------------------------------------------------------------------------------- tests
def _csv(path):
    return list(csv.DictReader(open(path, newline="")))


@pytest.fixture(scope="module")
def full_study(tmp_path_factory):
    """Nine models, 3 seeds, a key-dropout variant for each attention family, one failed run."""
    root = tmp_path_factory.mktemp("full")
    accs = {"resnet18": 0.55, "resnet34": 0.56, "resnet50": 0.55, "seresnet18": 0.8,
            "seresnet34": 0.82, "seresnet50": 0.9, "swin_tiny_patch4_window7_224": 0.6,
            "swin_small_patch4_window7_224": 0.6, "swin_base_patch4_window7_224": 0.58}
    make_study(root, [0, 1, 2], accs=accs, train_eval=0.97, macs_224=10**9)
    for s in (0, 1, 2):
        make_run(root, "swin_tiny_patch4_window7_224", s, 0.62, variant="keydrop0.1",
                 train_acc=0.7, train_eval=0.9, macs_224=10**9)
        make_run(root, "seresnet18", s, 0.8, variant="sedrop0.1", train_eval=0.97,
                 macs_224=10**9)
    make_run(root, "swin_small_patch4_window7_224", 3, 0.6, status="failed",
             failure={"epoch": 2, "reason": "loss became NaN at epoch 2 (lr too high?)"})
    (root / "resnet50__base__s3").mkdir()  # a run that never wrote result.json
    built = build(root)
    return root, built.path.read_text(), built


def test_report_writes_every_file(full_study):
    root, md, built = full_study
    for name in ("results.csv", "comparisons.csv", "report.md", "report.html"):
        assert (root / name).is_file()
    pngs = sorted(p.name for p in (root / "figures").glob("*.png"))
    assert pngs == ["accuracy_vs_gmacs.png", "confusion_resnet.png", "confusion_seresnet.png",
                    "confusion_swin.png", "curves_resnet.png", "curves_seresnet.png",
                    "curves_swin.png", "verdicts.png"]
    for p in (root / "figures").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md + (root / "report.html").read_text()
    for private in ("STATS", "shared/", "SEED.md", "DESIGN.md", "bootstrap", "Fisher"):
        assert private not in text


def test_results_csv_one_row_per_run_with_counts_intervals_and_class_metrics(full_study):
    root, _, built = full_study
    rows = _csv(root / "results.csv")
    assert len(rows) == 9 * 3 + 2 * 3 + 2
    r = next(r for r in rows if r["run_dir"] == "resnet18__base__s0")
    assert r["status"] == "finished" and int(r["params"]) == PARAMS["resnet18"]
    result = json.loads((root / "resnet18__base__s0" / "result.json").read_text())
    test = result["best"]["test"]
    assert int(r["best_test_correct"]) == test["correct"] and int(r["best_test_total"]) == 150
    assert float(r["best_test_acc"]) == pytest.approx(test["correct"] / 150)
    ci = stats.binomtest(test["correct"], 150).proportion_ci(method="wilson")
    assert float(r["best_test_wilson_low"]) == pytest.approx(ci.low)
    assert float(r["best_test_wilson_high"]) == pytest.approx(ci.high)
    t, p = np.array(test["targets"]), np.array(test["predictions"])
    recalls = [np.mean(p[t == c] == c) for c in range(4)]
    assert float(r["best_test_balanced_acc"]) == pytest.approx(np.mean(recalls))
    f1 = [2 * np.sum((p == c) & (t == c)) / (np.sum(p == c) + np.sum(t == c)) for c in range(4)]
    assert float(r["best_test_macro_f1"]) == pytest.approx(np.mean(f1))
    assert float(r["best_train_eval_acc"]) == pytest.approx(0.97)
    assert r["degenerate"] == "False" and r["macs_224"] == str(10**9) and r["img_size"] == "32"
    assert int(r["last_epoch"]) == 4 and int(r["best_epoch"]) == result["best_epoch"]
    failed = next(r for r in rows if r["run_dir"] == "swin_small_patch4_window7_224__base__s3")
    assert failed["status"] == "failed" and "NaN" in failed["failure_reason"]
    assert failed["failure_epoch"] == "2"
    incomplete = next(r for r in rows if r["run_dir"] == "resnet50__base__s3")
    assert incomplete["status"] == "incomplete"


def test_comparisons_csv_once_each_with_recomputable_holm(full_study):
    root, _, built = full_study
    rows = _csv(root / "comparisons.csv")
    assert list(rows[0]) == COMPARISON_COLUMNS
    assert {"a_only", "b_only", "n_images", "p", "p_holm", "verdict"} <= set(rows[0])
    pairs = [frozenset({(r["a_model"], r["a_variant"]), (r["b_model"], r["b_variant"])})
             for r in rows]
    assert len(pairs) == len(set(pairs))  # each comparison once
    # depth: 3 pairs x 3 families, SE: 3, variants: 2, across: 3 Swin x (ResNet, SE-ResNet);
    # "SE-ResNet-50 is best" is its depth row
    sections_of = [r["section"] for r in rows]
    assert [sections_of.count(s) for s in ("depth", "se", "variant", "across")] == [9, 3, 2, 6]
    assert len(rows) == 20
    p = [float(r["p"]) for r in rows]
    holm = [min(1.0, x) for x in np.maximum.accumulate(
        np.sort(p) * (len(p) - np.arange(len(p))))]
    assert sorted(float(r["p_holm"]) for r in rows) == pytest.approx(sorted(holm), rel=1e-5)
    for r in rows:
        assert r["verdict"] in VERDICTS
        assert int(r["seeds"]) == 3 and int(r["n_images"]) == 150
        assert float(r["ci_low_pts"]) <= float(r["delta_pts"]) <= float(r["ci_high_pts"])
        if r["verdict"] in ("a_better", "b_better"):
            assert float(r["p_holm"]) < 0.05
        if r["verdict"] == "equivalent":
            assert float(r["tost_p_holm"]) < 0.05
        assert float(r["margin_pts"]) == 2.0
    se50 = next(r for r in rows if r["a_model"] == "seresnet50" and r["b_model"] == "resnet50")
    assert se50["verdict"] == "a_better" and se50["method"] == S.SEEDS
    assert "no_difference" not in (root / "comparisons.csv").read_text()


def test_the_first_screen_is_the_answer(full_study):
    """The report opens with the verdict figure beside accuracy against GMACs at 224 px, then one
    table of every model and variant, then the source's claims, one verdict each."""
    root, _, built = full_study
    an, plan, blocks = built.analysis, built.plan, built.doc.blocks
    first = next(b for b in blocks if isinstance(b, Figure | FigureRow | Table))
    assert isinstance(first, FigureRow)
    assert [Path(f.path).name for f in first.figures] == ["verdicts.png", "accuracy_vs_gmacs.png"]
    tables = [b for b in blocks if isinstance(b, Table)]
    models, claims = tables[0], tables[1]
    assert [r[0] for r in models.rows] == [
        "ResNet-18", "ResNet-34", "ResNet-50", "SE-ResNet-18", "SE-ResNet-18 [sedrop0.1]",
        "SE-ResNet-34", "SE-ResNet-50", "Swin-T", "Swin-T [keydrop0.1]", "Swin-S", "Swin-B"]
    assert [r[0] for r in claims.rows] == [c.claim for c in judge_claims(an, plan)]
    assert all(r[1] for r in claims.rows)


def test_the_verdict_figure_has_one_row_per_comparison_grouped_by_question(full_study):
    root, _, built = full_study
    an, plan = built.analysis, built.plan
    groups = overview.verdict_groups(plan)
    assert [g for g, _ in groups] == ["Depth, per family", "SE, per depth", "Key dropout",
                                      "Across families at matched cost"]
    rows = [r for _, rs in groups for r in rs]
    csv_rows = _csv(root / "comparisons.csv")
    assert len(rows) == len(csv_rows) == len(an.comparisons)
    for r, c in zip(rows, csv_rows):
        assert r.verdict == c["verdict"]
        assert (r.delta, r.low, r.high) == pytest.approx(
            (float(c["delta_pts"]), float(c["ci_low_pts"]), float(c["ci_high_pts"])), abs=1e-3)
        assert r.mde == pytest.approx(float(c["mde_pts"]), abs=1e-3)


def test_models_table_counts_failed_seeds_and_flags(full_study):
    root, _, built = full_study
    models = _tables(built)[0]
    header = models.header
    row = dict(zip(header, next(r for r in models.rows if r[0] == "Swin-S")))
    assert row["runs"] == "3 of 4"  # a failed seed is counted, not dropped
    assert row["degenerate"] == "no" and row["GMACs at 224 px"] == "1"
    se50 = dict(zip(header, next(r for r in models.rows if r[0] == "SE-ResNet-50")))
    assert " ± " in se50["test acc"] and se50["params (4-class head)"] == "28.09 M"


def test_last_epoch_columns_only_where_they_differ(tmp_path):
    make_run(tmp_path, "resnet18", 0, 0.6)
    make_run(tmp_path, "resnet34", 0, 0.6, best_at=2)
    doc = _text_report(tmp_path)[2]
    models = next(b for b in doc.blocks if isinstance(b, Table))
    rows = {r[0]: dict(zip(models.header, r)) for r in models.rows}
    assert rows["ResNet-34"]["last epoch"] == "4" and rows["ResNet-34"]["selected epoch"] == "2"
    assert rows["ResNet-18"]["last epoch"] == "= selected"


def test_verdicts_are_one_word_in_tables_and_sentences_once(full_study):
    root, md, built = full_study
    an, tables = built.analysis, _tables(built)
    depth = _table_with(tables, "ResNet-34 vs ResNet-18")
    verdicts = {r[0]: r[depth.header.index("verdict (A)")] for r in depth.rows}
    words = {"better", "worse", "equivalent", "inconclusive", "not testable"}
    assert set(verdicts.values()) <= words
    sentences = [c.sentence() for c in an.comparisons]
    for c in an.comparisons:  # the full sentence once, in the detail list
        assert md.count(f"**{c.name}: {c.word}**: {c.sentence()}") == 1
        assert md.count(c.sentence()) == sentences.count(c.sentence())
    assert max(len(str(cell)) for t in tables for row in t.rows for cell in row) <= 120


def test_overfitting_uses_the_eval_mode_train_subset(full_study):
    root, _, built = full_study
    an, plan = built.analysis, built.plan
    swin = next(c for c in plan.variants if c.a[0].startswith("swin"))
    base, variant, delta = sections.overfit(an, swin)
    te = [json.loads((root / f"swin_tiny_patch4_window7_224__keydrop0.1__s{s}" / "result.json")
                     .read_text())["best"]["test"]["accuracy"] for s in range(3)]
    assert variant == pytest.approx([0.9 - x for x in te])
    assert delta == pytest.approx([v - b for v, b in zip(variant, base)])


def test_no_overfit_column_without_train_eval(tmp_path):
    for s in (0, 1):
        make_run(tmp_path, "swin_tiny_patch4_window7_224", s, 0.6)
        make_run(tmp_path, "swin_tiny_patch4_window7_224", s, 0.6, variant="keydrop0.1",
                 train_acc=0.3)
    kd = _table_with(_tables(build(tmp_path)), "Swin-T [keydrop0.1] vs Swin-T")
    assert "variant" in kd.header and not any("overfit" in h for h in kd.header)


def test_failed_and_incomplete_runs_are_shown(full_study):
    root, md, built = full_study
    assert "swin_small_patch4_window7_224__base__s3" in md and "loss became NaN" in md
    assert "resnet50__base__s3" in md
    statuses = {r.name: r.status for r in load_study(root).runs}
    assert statuses["resnet50__base__s3"] == "incomplete"


# ------------------------------------------------------------------- verdicts and claim outcomes
def _right(n, *blocks):
    """Right on images 100..n (shared by every model) and on each [lo, hi) block given."""
    r = np.zeros(n, bool)
    r[100:] = True
    for lo, hi in blocks:
        r[lo:hi] = True
    return r


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory):
    """One seed, 400 test images, 21 distinct comparisons, predictions chosen image by image."""
    root = tmp_path_factory.mktemp("hand")
    n = 400
    right = {"resnet18": _right(n, (0, 45)),  # vs ResNet-34: b = 5, c = 45
             "resnet34": _right(n, (45, 50)),
             "resnet50": _right(n),  # vs ResNet-34: b = 0, c = 5
             "seresnet18": _right(n, (0, 95)), "seresnet34": _right(n, (0, 95)),
             "seresnet50": _right(n, (0, 95)),
             "swin_tiny_patch4_window7_224": _right(n, (50, 60)),
             "swin_small_patch4_window7_224": _right(n, (50, 60)),
             "swin_base_patch4_window7_224": _right(n, (50, 60))}
    val = {"seresnet50": 0.95, "resnet18": 0.9}  # SE-ResNet-50 best, ResNet-18 the runner-up
    for model, r in right.items():
        make_run(root, model, 0, 0.7, n_test=n, right=r, val_acc=val.get(model, 0.6),
                 train_acc=0.99)
    for model, variant in (("swin_tiny_patch4_window7_224", "keydrop0.1"),
                           ("seresnet18", "sedrop0.1")):
        make_run(root, model, 0, 0.7, variant=variant, n_test=n, right=right[model],
                 train_acc=0.99)
    build_report(root)
    return root, _rows(root)


def test_hand_made_counts_give_the_exact_test_after_holm_over_all(hand_made):
    root, rows = hand_made
    # depth 9, SE 3, variants 2, across families 6 (every Swin is nearest to ResNet-50 and
    # SE-ResNet-50 in MACs), SE-ResNet-50 against the runner-up ResNet-18: 21
    m = len(rows)
    assert m == 21
    r = rows[("resnet34", "base", "resnet18", "base")]
    assert (int(r["a_only"]), int(r["b_only"]), int(r["n_images"])) == (5, 45, 400)
    exact = stats.binomtest(5, 50, 0.5)
    assert float(r["p"]) == pytest.approx(exact.pvalue, rel=1e-5)
    ci = exact.proportion_ci(method="exact")
    assert float(r["ci_low_pts"]) == pytest.approx(100 * 50 / 400 * (2 * ci.low - 1), abs=1e-4)
    assert float(r["ci_high_pts"]) == pytest.approx(100 * 50 / 400 * (2 * ci.high - 1), abs=1e-4)
    p_all = sorted(float(x["p"]) for x in rows.values())
    rank = p_all.index(min(p_all, key=lambda x: abs(x - exact.pvalue)))
    holm = max(min(1.0, (m - i) * p_all[i]) for i in range(rank + 1))
    assert float(r["p_holm"]) == pytest.approx(holm, rel=1e-4)
    assert r["verdict"] == "b_better" and r["method"] == "exact McNemar"
    r = rows[("resnet50", "base", "resnet34", "base")]
    assert (int(r["a_only"]), int(r["b_only"])) == (0, 5)
    assert float(r["p"]) == pytest.approx(0.0625) and r["verdict"] == "inconclusive"
    assert r["images_needed"] and not r["seeds_needed"]  # one seed: only images can be counted
    across = {(k[0], k[2]) for k, x in rows.items() if x["section"] == "across"}
    assert ("swin_tiny_patch4_window7_224", "resnet50") in across
    assert ("swin_tiny_patch4_window7_224", "seresnet50") in across


def test_hand_made_claims(hand_made):
    root, rows = hand_made
    claims = _claims(root)
    # SE-ResNet right on 95 more images than ResNet at every depth (b = 95..50, c = 0..45)
    assert claims["SE helps at every depth"].outcome == "supported"
    # ResNet-34 vs ResNet-18 is significant the other way, ResNet-50 vs 34 inconclusive
    assert claims["Deeper plain ResNet does not help"].outcome == "inconclusive"
    # SE-ResNet-50 vs the runner-up ResNet-18: 95 vs 45 extra images right
    best = claims["SE-ResNet-50 is best"]
    assert best.outcome == "supported" and "SE-ResNet-50 vs ResNet-18: better" in best.detail
    # every model reached 99% train accuracy: Swin converged, the claim fails
    assert claims["Swin does not converge"].outcome == "not supported"
    # each Swin is right on 10 images ResNet-50 misses, and on 85 fewer than SE-ResNet-50
    t_vs_r50 = rows[("swin_tiny_patch4_window7_224", "base", "resnet50", "base")]["verdict"]
    t_vs_se50 = rows[("swin_tiny_patch4_window7_224", "base", "seresnet50", "base")]["verdict"]
    assert t_vs_se50 == "b_better"
    assert claims["Swin is no better than the CNNs at matched cost"].outcome == (
        "not supported" if t_vs_r50 == "a_better" else "supported")
    for c in claims.values():
        assert len(c.reason) <= 120 and "\n" not in c.reason


def test_constructed_comparisons_get_each_verdict(tmp_path):
    """a_better, b_better, equivalent, inconclusive and not_testable, one constructed pair each."""
    n = 2000
    cases = {"a": ("resnet34", _right(n, (0, 60)), "resnet18", _right(n)),  # b = 60, c = 0
             "b": ("resnet34", _right(n), "resnet18", _right(n, (0, 60))),
             "eq": ("resnet34", _right(n, (0, 10)), "resnet18", _right(n, (10, 20))),
             # 250 images, both runs well above the majority class
             "open": ("resnet34", _right(250, (0, 3)), "resnet18", _right(250)),
             "degenerate": ("resnet34", None, "resnet18", _right(n))}
    verdicts = {}
    for name, (a, ra, b, rb) in cases.items():
        root, n = tmp_path / name, len(rb)
        kw = {"predictions": np.zeros(n, int)} if ra is None else {"right": ra}
        make_run(root, a, 0, 0.7, n_test=n, **kw)
        make_run(root, b, 0, 0.7, n_test=n, right=rb)
        an, plan = _analysis(root)
        (c,) = an.comparisons
        verdicts[name] = (c.verdict, c.word)
    assert verdicts == {"a": ("a_better", "better"), "b": ("b_better", "worse"),
                        "eq": ("equivalent", "equivalent"),
                        "open": ("inconclusive", "inconclusive"),
                        "degenerate": ("not_testable", "not testable")}


def test_deeper_helps_is_not_supported(tmp_path):
    make_run(tmp_path, "resnet18", 0, 0.5, n_test=400, right=_right(400))
    make_run(tmp_path, "resnet34", 0, 0.5, n_test=400, right=_right(400, (0, 60)))
    claim = _claims(tmp_path)["Deeper plain ResNet does not help"]
    assert claim.outcome == "not supported" and "ResNet-34 vs ResNet-18: better" in claim.detail


def test_does_not_help_needs_equivalence(tmp_path):
    """Identical predictions on enough images: equivalent within ±2 points; the same on 150
    images (too few to bound the disagreement): inconclusive, saying what would decide it."""
    big, small = tmp_path / "big", tmp_path / "small"
    for root, n in ((big, 2000), (small, 150)):
        for m in ("resnet18", "resnet34"):
            make_run(root, m, 0, 0.7, n_test=n, right=_right(n, (0, 40)))
    build_report(big)
    assert _claims(big)["Deeper plain ResNet does not help"].outcome == "equivalent"
    assert _csv(big / "comparisons.csv")[0]["verdict"] == "equivalent"
    build_report(small)
    an, _ = _analysis(small)
    (c,) = an.comparisons
    assert c.verdict == "inconclusive" and c.decide.images_eq > 150
    assert _claims(small)["Deeper plain ResNet does not help"].outcome == "inconclusive"
    assert _csv(small / "comparisons.csv")[0]["verdict"] == "inconclusive"


def test_what_would_decide_it_is_seeds_up_to_20_else_images_to_two_figures():
    """A small difference on one seed needs far more images than the test split
    holds (said to two significant figures); with seeds, a moderate one needs a few more seeds."""
    from depthbench.report.analysis import Comparison
    from depthbench.report.fmt import about

    c = Comparison("depth", ("swin_base_patch4_window7_224", "base"),
                   ("swin_tiny_patch4_window7_224", "base"), "Swin-B", "Swin-T", m=15)
    c.test, c.a_only, c.b_only, c.n = S.compare_outcomes([_right(392, (0, 30))],
                                                         [_right(392, (30, 58))])
    c.seeds = [0]
    d = decide(c)
    assert d.seeds == 0 and d.images > 100 * 392
    assert f"about {about(d.images)} " in d.text() and about(d.images).endswith(",000")
    assert d.short().startswith("difference: beyond this data")

    rng = np.random.default_rng(0)  # three seeds, Δ = +3.4 points, p = 0.11 (one comparison)
    a = [rng.random(392) < 0.75 for _ in range(3)]
    b = [np.where(rng.random(392) < 0.7, x, rng.random(392) < 0.6) for x in a]
    c.test, c.a_only, c.b_only, c.n = S.compare_outcomes(a, b)
    c.seeds, c.m = [0, 1, 2], 1
    c.diffs = np.stack([x.astype(float) - y for x, y in zip(a, b)])
    d = decide(c)
    assert 3 < d.seeds <= S.MAX_SEEDS, d
    assert f"about {d.seeds} seeds" in d.text() and d.short().startswith(f"difference: ≈ {d.seeds}")
    assert d.seeds_eq == 0 and "outside the margin" in d.short()  # |Δ| > 2: not equivalence


def test_equivalence_margin_is_a_study_option(tmp_path):
    for m, acc in (("resnet18", 0.70), ("resnet34", 0.71)):
        make_run(tmp_path, m, 0, acc, n_test=400)
    build_report(tmp_path)
    assert _csv(tmp_path / "comparisons.csv")[0]["verdict"] == "inconclusive"
    (tmp_path / "study.yaml").write_text("name: x\nreport: {equivalence_margin: 0.3}\n")
    build_report(tmp_path)
    row = _csv(tmp_path / "comparisons.csv")[0]
    assert row["verdict"] == "equivalent" and float(row["margin_pts"]) == 30
    (tmp_path / "study.yaml").write_text("name: x\nreport: {equivalence_margin: 2}\n")
    with pytest.raises(DepthbenchError, match="report.equivalence_margin"):
        build_report(tmp_path)


def test_study_spec_takes_the_margin_and_its_default_from_the_report():
    from depthbench.errors import ConfigError
    from depthbench.report.options import EQUIVALENCE_MARGIN
    from depthbench.study.schema import ReportSpec
    from depthbench.study.spec import validate_spec

    spec = validate_spec({"name": "x", "models": ["resnet18"],
                          "report": {"equivalence_margin": 0.05}})
    assert spec.model_dump(mode="json")["report"] == {"equivalence_margin": 0.05}
    assert validate_spec({"name": "x", "models": ["resnet18"]}).report is None
    assert ReportSpec().equivalence_margin == EQUIVALENCE_MARGIN
    with pytest.raises(ConfigError, match="report.equivalence_margin"):
        validate_spec({"name": "x", "models": ["resnet18"], "report": {"equivalence_margin": 1}})


def test_several_seeds_inconclusive_says_what_would_decide(tmp_path):
    make_study(tmp_path, [0, 1, 2], models=["resnet18", "resnet34"],
               accs={"resnet18": 0.70, "resnet34": 0.72})
    an, plan = _analysis(tmp_path)
    (c,) = an.comparisons
    assert c.verdict == "inconclusive" and c.method == S.SEEDS
    assert c.decide is not None and c.decide.n == 150 and c.decide.seeds_now == 3
    assert c.decide.seeds or c.decide.images or "beyond this data" in c.decide.short()
    assert "what would decide it" in c.sentence()
    assert _claims(tmp_path)["Deeper plain ResNet does not help"].outcome == "inconclusive"


def make_cv_study(root, accs, folds=3, repeats=2, seeds=(0, 1), n=150, missing=()):
    """Hand-made records of a cross-validated study: a run folder per model, seed, repeat and fold
    (`make_run`'s, named for its cell) whose split.json tests the fold's images; each model right
    on the images easier than its accuracy (one difficulty per image, so a better model is right
    where a worse one is), 10% of them redrawn per run. `missing`: (model, seed, repeat, fold)
    cells with no run."""
    paths = [f"{CLASSES[i % 4]}/{i:03d}.png" for i in range(n)]
    fold = [np.random.default_rng(r).permutation(n) % folds for r in range(repeats)]
    difficulty = np.random.default_rng(0).random(n)
    for model, acc in accs.items():
        pattern = difficulty < acc
        for s, r, k in itertools.product(seeds, range(repeats), range(folds)):
            if (model, s, r, k) in missing:
                continue
            test = np.flatnonzero(fold[r] == k)
            redraw = np.random.default_rng(zlib.crc32(f"{model}/{s}/{r}/{k}".encode()))
            right = np.where(redraw.random(test.size) < 0.1, redraw.random(test.size) < acc,
                             pattern[test])
            run = make_run(root, model, s, acc, n_test=test.size, right=right)
            run = run.rename(run.with_name(f"{run.name}__r{r}__f{k}"))
            entries = [{"path": paths[i], "split": "test" if fold[r][i] == k else "train"}
                       for i in range(n)]
            (run / "split.json").write_text(json.dumps({
                "partition": "hand-made", "folds": folds, "repeats": repeats, "repeat": r,
                "fold": k, "entries": entries}))
    (Path(root) / "study.yaml").write_text(json.dumps({
        "name": "cv", "models": list(accs), "seeds": list(seeds),
        "split": {"folds": folds, "repeats": repeats}}))
    return Path(root)


def test_cross_validated_rows_recompute_from_the_csv_and_say_what_would_decide(tmp_path):
    """Every cross-validated row's test from its `cells` and `image_sq` alone (the report's own
    parser, and the independent linear model); an open one names the design that would decide
    it, in the table, the sentence and the CSV; cells outside the complete grid are named."""
    make_cv_study(tmp_path, {"resnet18": 0.9, "resnet34": 0.92, "seresnet18": 0.99},
                  missing=[("seresnet18", 1, 1, 2)])
    an, plan, doc, _, comps = _text_report(tmp_path)
    sections.methods(doc, an)
    for c in an.comparisons:
        row = comps[(c.a[0], c.b[0])]
        counts = S.parse_cells(row["cells"])
        again = S.cv_test(counts, int(row["image_sq"]))
        assert again.method == row["method"] == S.CROSSED_CV
        assert f"{again.p:.6g}" == row["p"] and again.p == c.p
        assert crossed_cv.from_csv(row["cells"], int(row["image_sq"]))[3] == pytest.approx(c.p)
        assert (int(row["J"]), int(row["a_only"]), int(row["b_only"])) == (
            len(counts), sum(x.a_only for x in counts), sum(x.b_only for x in counts))
        assert float(row["n_test"]) == pytest.approx(np.mean([x.n_test for x in counts]))
        assert (row["n_images"], row["folds"], row["repeats"]) == ("150", "3", "2")
        assert c.verdict == row["verdict"] == "inconclusive"
    # seed 1 of repeat 1 lacks a fold: repeat 0 with both seeds is the grid, 5 cells left out
    se = an.compare("se", ("seresnet18", "base"), ("resnet18", "base"))
    row = comps[("seresnet18", "resnet18")]
    assert int(row["J"]) == 6 and "5 cells outside the complete grid" in se.sentence()
    d = se.decide.detect  # the study's own design, complete, would detect this difference
    assert isinstance(se.decide, CVDecision) and d.runs > 6
    assert (d.folds, d.repeats, d.seeds) == (
        int(row["folds_needed"]), int(row["repeats_needed"]), int(row["seeds_needed"]))
    assert S.detectable(S.cv_components(se.counts, se.image_sq)[1], d, se.m) <= abs(se.delta)
    assert f"about {d.name} ({d.runs} runs of each model)" in se.sentence()
    table = _table_with([b for b in doc.blocks if isinstance(b, Table)], se.name)
    assert next(r for r in table.rows if r[0] == se.name)[-1] == (
        f"difference: ≈ {d.name}; equivalence: outside the margin")
    # a small difference: no design up to the limit detects it, nor shows it equivalent
    depth = an.compare("depth", ("resnet34", "base"), ("resnet18", "base"))
    row = comps[("resnet34", "resnet18")]
    assert depth.decide.detect is depth.decide.equiv is None and not depth.test.note
    assert row["folds_needed"] == row["repeats_needed"] == row["seeds_needed"] == ""
    assert f"beyond this data: not with up to {S.MAX_RUNS} runs" in depth.sentence()
    methods = next(b for b in doc.blocks if isinstance(b, Bullets) and S.CV_METHOD in b.items)
    assert any(x.startswith("What would decide an inconclusive comparison: from the crossed CV")
               for x in methods.items)
    assert "(3-fold x 2 repeats, 2 seeds per fold: every image tested 4 times)" in overview._lead(
        an)


def test_degenerate_run_is_labelled_and_not_testable(tmp_path):
    n = 200
    t = np.asarray(_targets(n, 4, 1))
    assert np.mean(t == 0) < 0.9
    make_run(tmp_path, "resnet18", 0, 0.8, n_test=n, train_acc=0.5)
    make_run(tmp_path, "resnet34", 0, 0.8, n_test=n, train_acc=0.5,
             predictions=np.zeros(n, int))  # always the majority class
    make_run(tmp_path, "swin_tiny_patch4_window7_224", 0, 0.5, n_test=n, train_acc=0.4)
    an, _, doc, results, comps = _text_report(tmp_path)
    # always the majority class: degenerate, and no better than the majority class either
    assert an.label(("resnet34", "base")) == "ResNet-34 (degenerate; did not learn)"
    models = next(b for b in doc.blocks if isinstance(b, Table))
    flags = {r[0]: r[models.header.index("degenerate")] for r in models.rows}
    assert flags == {"ResNet-18": "no", "ResNet-34": "yes", "Swin-T": "no"}
    row = comps[("resnet34", "resnet18")]
    assert row["verdict"] == "not_testable" and row["p"]  # tested, counted in Holm, no verdict
    claims = _claims(tmp_path)
    deeper = claims["Deeper plain ResNet does not help"]
    assert deeper.outcome == "not testable" and deeper.budget and "degenerate" in deeper.detail
    # no model of any family converged (train accuracy 50% and 40%)
    converge = claims["Swin does not converge"]
    assert converge.outcome == "not testable" and converge.budget
    assert results["resnet34__base__s0"]["degenerate"] == "True"
    assert results["resnet18__base__s0"]["degenerate"] == "False"


def _guesses(n, weights, seed):
    """Predictions drawn without looking at the images (classes in proportion to `weights`):
    what a run that learned nothing gives."""
    w = np.asarray(weights, float)
    return np.random.default_rng(seed).choice(len(w), size=n, p=w / w.sum())


LEANING = [0.85, 0.05, 0.05, 0.05]  # mostly the majority class, not degenerate (< 90%)
UNIFORM = [1, 1, 1, 1]


def test_labels_independent_of_the_images_give_no_verdict(tmp_path):
    """Runs whose predictions ignore the images differ by about 12 points on 400 images, a
    difference the exact test calls real; none beats the majority class, so none decides."""
    n = 400
    for model, w, seed in (("resnet18", LEANING, 1), ("resnet34", UNIFORM, 2),
                           ("seresnet18", UNIFORM, 3)):
        make_run(tmp_path, model, 0, 0.3, n_test=n, predictions=_guesses(n, w, seed))
    an, _, _, results, comps = _text_report(tmp_path)
    assert len(an.comparisons) == 2
    assert any(c.p_holm < S.ALPHA for c in an.comparisons)  # a "real difference" before
    for c in an.comparisons:
        assert c.verdict == "not_testable" and not c.degenerate and c.unlearned
        assert "did not beat the majority class" in c.sentence()
    assert {r["verdict"] for r in comps.values()} == {"not_testable"}
    assert {r["did_not_learn"] for r in results.values()} == {"True"}
    rate = float(results["resnet18__base__s0"]["majority_rate"])
    assert rate == pytest.approx(np.mean(np.asarray(_targets(n, 4, 1)) == 0))
    claims = _claims(tmp_path)
    for name in ("SE helps at every depth", "Deeper plain ResNet does not help"):
        assert claims[name].outcome == "not testable" and claims[name].budget
    lead = overview._lead(an)
    assert "no run learned" in lead and " beats " not in lead


def test_one_learned_run_against_one_that_did_not_is_not_testable(tmp_path):
    n = 400
    one = tmp_path / "one"
    make_run(one, "resnet18", 0, 0.8, n_test=n)
    make_run(one, "seresnet18", 0, 0.3, n_test=n, predictions=_guesses(n, LEANING, 1))
    an, plan, doc, results, comps = _text_report(one)
    (c,) = an.comparisons
    assert c.p_holm < S.ALPHA and c.verdict == "not_testable"
    assert c.unlearned == ["seresnet18__base__s0"] and not c.degenerate
    assert "seresnet18__base__s0 did not beat the majority class" in c.sentence()
    row = comps[("seresnet18", "resnet18")]
    assert row["verdict"] == "not_testable" and row["p"]  # tested, counted in Holm
    assert {k: r["did_not_learn"] for k, r in results.items()} == {
        "resnet18__base__s0": "False", "seresnet18__base__s0": "True"}
    claim = _claims(one)["SE helps at every depth"]
    assert claim.outcome == "not testable" and claim.budget
    assert "did not learn" in claim.detail
    # the first screen says which runs learned before it counts the differences
    lead = overview._lead(an)
    assert lead.index("1 of 2 runs beat it") < lead.index("did not learn: SE-ResNet-18") < (
        lead.index("0 real difference"))
    first_note = overview._notes(an, plan)[0]
    assert first_note.css == "warning" and "Did not learn: SE-ResNet-18." in first_note.text
    runs_table = _table_with([b for b in doc.blocks if isinstance(b, Table)],
                             "seresnet18__base__s0")
    status = {r[0]: r[1] for r in runs_table.rows}
    assert status["seresnet18__base__s0"] == "finished (did not learn)"
    assert status["resnet18__base__s0"] == "finished"

    # two seeds, one of them learned: flagged in one of two, and still not testable
    mixed = tmp_path / "mixed"
    for s in (0, 1):
        make_run(mixed, "resnet18", s, 0.8, n_test=n)
    make_run(mixed, "seresnet18", 0, 0.3, n_test=n, predictions=_guesses(n, LEANING, 1))
    make_run(mixed, "seresnet18", 1, 0.8, n_test=n)
    an, _, doc, _, _ = _text_report(mixed)
    assert an.label(("seresnet18", "base")) == "SE-ResNet-18 (did not learn in 1 of 2 seeds)"
    models = next(b for b in doc.blocks if isinstance(b, Table))
    flags = {r[0]: r[models.header.index("did not learn")] for r in models.rows}
    assert flags == {"ResNet-18": "no", "SE-ResNet-18": "1 of 2"}
    (c,) = an.comparisons
    assert c.verdict == "not_testable" and c.unlearned == ["seresnet18__base__s0"]
    assert "SE-ResNet-18 (1 of 2 seeds)" in overview._lead(an)


def test_two_learned_runs_are_compared_and_the_winner_speaks(tmp_path):
    """Both runs beat the majority class: the verdict is the test's, and every sentence gives
    the difference from the winner's side."""
    n = 400
    make_run(tmp_path, "resnet18", 0, 0.8, n_test=n, right=_right(n, (0, 60)))
    make_run(tmp_path, "resnet34", 0, 0.8, n_test=n, right=_right(n))
    an, _, doc, results, _ = _text_report(tmp_path)
    (c,) = an.comparisons
    assert (c.a[0], c.b[0]) == ("resnet34", "resnet18") and not c.unlearned
    assert c.verdict == "b_better" and c.delta == pytest.approx(-60 / n)
    assert c.beats() == "ResNet-18 beats ResNet-34 by 15.0 points"
    sentence = c.sentence()
    assert sentence.startswith("ResNet-18 beats ResNet-34 by 15.0 points (Δ = ResNet-18 − "
                               "ResNet-34 = +15.0 points, 95% CI [+")
    lead = overview._lead(an)
    assert "every one of the 2 runs beats it" in lead
    assert "(ResNet-18 beats ResNet-34 by 15.0 points)" in lead
    for text in (lead, sentence, to_markdown(doc)):  # no negative number after "beats"
        assert not re.search(r"beats [^;\n]*?[\s(\[][-−]\d", text), text
    assert {r["did_not_learn"] for r in results.values()} == {"False"}


def test_one_seed_uses_exact_mcnemar_and_wilson(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet18"],
               accs={"resnet18": 0.6, "seresnet18": 0.62})
    an = build(tmp_path).analysis
    assert overview._seed_notes(an)  # the report says seed variance is not estimated
    row = _rows(tmp_path)[("seresnet18", "base", "resnet18", "base")]
    assert row["method"] == "exact McNemar" and row["seeds"] == "1" and row["n_images"] == "150"
    result = json.loads((tmp_path / "resnet18__base__s0" / "result.json").read_text())
    k, n = result["best"]["test"]["correct"], result["best"]["test"]["total"]
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert an.accuracy_ci(("resnet18", "base")) == pytest.approx((k / n, ci.low, ci.high, "Wilson"))
    best = _claims(tmp_path)["SE-ResNet-50 is best"]
    assert best.outcome == "not testable" and not best.budget


def test_seed_notes_with_two_seeds_not_three(tmp_path):
    for seeds in ((0, 1), (0, 1, 2)):
        root = tmp_path / str(len(seeds))
        make_study(root, list(seeds), models=["resnet18", "resnet34"])
        an, plan = _analysis(root)
        assert bool(overview._seed_notes(an)) == (len(seeds) == 2)
        (c,) = an.comparisons
        assert c.seeds == list(seeds) and c.method == S.SEEDS
        assert not plan.se and plan.se_not_run == ["seresnet18", "seresnet34", "seresnet50"]


def test_majority_baseline(tmp_path):
    # at chance (25% on 4 classes, majority class ~40%): the report must say so plainly
    make_study(tmp_path / "chance", [0], models=["resnet18", "resnet34"],
               accs={"resnet18": 0.25, "resnet34": 0.25})
    make_study(tmp_path / "good", [0], models=["resnet18"], accs={"resnet18": 0.95})
    an, plan = _analysis(tmp_path / "chance")
    assert overview.majority_baseline(an)[1] == "cat"
    assert overview._baseline_note(an, plan).css == "warning"
    an, plan = _analysis(tmp_path / "good")
    assert overview._baseline_note(an, plan).css == ""


def test_no_test_split_evaluates_on_validation_and_warns(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet18"], test=False)
    built = build(tmp_path)
    an, plan = built.analysis, built.plan
    assert an.split == "val" and load_study(tmp_path).eval_split == "val"
    assert any(p.css == "warning" and "validation" in p.text for p in overview._notes(an, plan))
    assert "validation acc" in _tables(built)[0].header


def test_se_pairs_follow_the_registry_so_a_new_depth_is_compared(tmp_path, monkeypatch):
    monkeypatch.setitem(names.MODELS, "resnet101", names.ModelInfo("resnet", "ResNet-101"))
    monkeypatch.setitem(names.MODELS, "seresnet101", names.ModelInfo("seresnet", "SE-ResNet-101"))
    monkeypatch.setitem(PARAMS, "resnet101", 44_549_160)
    monkeypatch.setitem(PARAMS, "seresnet101", 49_326_872)
    make_study(tmp_path, [0], models=["resnet18", "seresnet18", "resnet101", "seresnet101"])
    an, plan = _analysis(tmp_path)
    assert [(c.a[0], c.b[0]) for c in plan.se] == [("seresnet18", "resnet18"),
                                                   ("seresnet101", "resnet101")]
    assert plan.se_not_run == ["seresnet34", "seresnet50"]


def test_across_families_at_matched_cost(tmp_path):
    """Each Swin against the ResNet and the SE-ResNet nearest to it in GMACs at 224 px: Swin-T
    (4.5) against ResNet-50 (4.1) and SE-ResNet-50 (4.1, not SE-ResNet-34's 3.7)."""
    gmacs = {"resnet18": 1.82, "resnet34": 3.67, "resnet50": 4.11, "seresnet18": 1.82,
             "seresnet34": 3.67, "seresnet50": 4.12, "swin_tiny_patch4_window7_224": 4.49}
    for m, g in gmacs.items():
        make_run(tmp_path, m, 0, 0.7, macs_224=int(g * 1e9))
    an, plan = _analysis(tmp_path)
    assert [(c.a[0], c.b[0]) for c in plan.across] == [
        ("swin_tiny_patch4_window7_224", "resnet50"),
        ("swin_tiny_patch4_window7_224", "seresnet50")]
    assert all(c.m == len(an.comparisons) for c in an.comparisons)  # in Holm's family


def test_the_planner_counts_the_reports_comparisons_from_the_grid_alone(full_study, tmp_path):
    """`pairs.comparison_pairs`, from the (model, variant) points and the ranking, gives the
    report's comparisons in its order (the Holm family `plan` corrects in); before any run
    ranked the models, the best claim counts as one more comparison, unless its every possible
    runner-up is already compared with SE-ResNet-50."""
    an = Analysis(load_study(full_study[0]))
    plan_comparisons(an)
    points = [k for k in an.groups if an.finished(k)]
    base = [k for k in points if k[1] == "base"]

    def pairs(ranked, points=points):
        return comparison_pairs(points, lambda k: names.family_of(k[0]), an.gmacs_224, ranked)

    got = [(p.section, p.a, p.b) for p in pairs(an.ranked(base))]
    assert got == [(c.section, c.a, c.b) for c in an.comparisons] and len(got) > 10
    before = pairs(None)
    assert before[-1].b == RUNNER_UP and len(before) == len(got) + 1
    three = [("resnet50", "base"), ("seresnet50", "base"), ("seresnet18", "base")]
    # SE-ResNet-50 meets ResNet-50 (SE) and SE-ResNet-18 (depth): no runner-up is left
    assert [p.section for p in pairs(None, three)] == ["depth", "se"]


def test_report_covers_the_study_as_it_stands(tmp_path):
    """A study extended to 3 seeds, then run again with 2: the report covers seeds 0 and 1 and
    names the run folders of seed 2 it leaves out."""
    make_study(tmp_path, [0, 1, 2], models=["resnet18", "resnet34"])
    (tmp_path / "study.yaml").write_text(
        "name: shrunk\nmodels: [resnet18, resnet34]\nvariants: {key_drop: [], se_drop: []}\n"
        "seeds: [0, 1]\n")
    md = build_report(tmp_path).read_text()
    study = load_study(tmp_path)
    assert sorted({r.seed for r in study.runs}) == [0, 1]
    assert sorted(r.name for r in study.left_out) == ["resnet18__base__s2", "resnet34__base__s2"]
    assert {r["seed"] for r in _csv(tmp_path / "results.csv")} == {"0", "1"}
    assert _csv(tmp_path / "comparisons.csv")[0]["seeds"] == "2"
    assert "resnet18__base__s2" in md and "resnet34__base__s2" in md  # named, not hidden


def test_flowers_layout_puts_the_source_table_beside_ours(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet50"], classes=FLOWERS)
    tables = _tables(build(tmp_path))
    src = _table_with(tables, "Swin-B")
    rows = {r[0]: r for r in src.rows}
    assert rows["SE-ResNet-50"][1:4] == ["6e-06", "100.00%", "80.13%"]
    assert "not run" in rows["Swin-B"]
    notes = sections._source_notes(sections.load_source())
    assert any("98 of 100" in n for n in notes)
    assert any("ResNet-50 (published 71.98%, records' best 72.53% at epoch 97)" in n
               for n in notes)


def test_an_all_failed_study_reports(tmp_path):
    make_run(tmp_path, "resnet18", 0, 0.5, status="failed",
             failure={"epoch": 1, "reason": "data: 3 unreadable images"})
    md = build_report(tmp_path).read_text()
    assert "unreadable images" in md
    an, plan = _analysis(tmp_path)
    assert any(p.css == "warning" for p in overview._notes(an, plan))
    assert _csv(tmp_path / "comparisons.csv") == []


def test_unreadable_result_is_reported_not_dropped(tmp_path):
    make_study(tmp_path, [0], models=["resnet18"])
    bad = tmp_path / "resnet34__base__s0"
    bad.mkdir()
    (bad / "result.json").write_text('{"status": "finished", ')  # torn by a crash
    md = build_report(tmp_path).read_text()
    run = next(r for r in load_study(tmp_path).runs if r.name == bad.name)
    assert run.status == "unreadable" and "result.json" in run.reason
    assert f"{bad.name}: unreadable" in md


def test_rebuild_removes_stale_figures(tmp_path):
    make_study(tmp_path, [0], models=["resnet18"])
    build_report(tmp_path)
    (tmp_path / "figures" / "curves_swin.png").write_bytes(b"old")
    build_report(tmp_path)
    assert not (tmp_path / "figures" / "curves_swin.png").exists()


def test_no_run_records_is_a_clear_error(tmp_path):
    (tmp_path / "figures").mkdir()
    with pytest.raises(DepthbenchError, match="no run records in"):
        build_report(tmp_path)
    with pytest.raises(DepthbenchError, match="study folder not found"):
        load_study(tmp_path / "missing")


def test_cli_report_rebuilds_from_records(tmp_path, capsys):
    make_study(tmp_path, [0, 1], models=["resnet18", "seresnet18"])
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "report.html") in out
    for name in ("report.md", "results.csv", "comparisons.csv"):
        assert (tmp_path / name).is_file()


def test_cli_report_error_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "depthbench", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("depthbench: error: no run records in")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_the_report_package_loads_its_parts_lazily():
    """The study spec imports the report's defaults; they must not load scipy and matplotlib."""
    code = ("import sys; import depthbench.report.options; "
            "print('scipy' in sys.modules or 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False", out.stderr
# ------------------------------------------------------------------------------------ figures
# GMACs at 224 px that nearly coincide (two families: the report draws two figures a family)
NEAR_GMACS = {"resnet18": 1.814, "seresnet18": 1.816, "resnet50": 4.11, "seresnet50": 4.12}


def _capture(figs: list, mp: pytest.MonkeyPatch) -> None:
    """Collect every matplotlib figure saved while `mp` is active (drawn, as saved)."""
    original = MplFigure.savefig

    def savefig(self, *args, **kwargs):
        figs.append(self)
        return original(self, *args, **kwargs)

    mp.setattr(MplFigure, "savefig", savefig)


@pytest.fixture(scope="module")
def misleading(tmp_path_factory):
    """The cases that misled: GMACs that nearly coincide, a model that did not learn (SE-ResNet-18
    guesses), and a real difference where B wins (SE-ResNet-50 vs ResNet-50). 3 seeds, 300
    images."""
    root = tmp_path_factory.mktemp("misleading")
    accs = {"resnet18": 0.6, "resnet50": 0.9, "seresnet50": 0.75}
    for s in (0, 1, 2):
        for m, g in NEAR_GMACS.items():
            kw = ({"predictions": _guesses(300, LEANING, s)} if m == "seresnet18" else {})
            make_run(root, m, s, accs.get(m, 0.3), n_test=300, macs_224=int(g * 1e9), **kw)
    figs = []
    with pytest.MonkeyPatch.context() as mp:
        _capture(figs, mp)
        built = build(root)
    return root, built, figs


def _axes(figs, title: str):
    return next(ax for f in figs for ax in f.axes if ax.get_title().startswith(title))


def _no_misreadable_axis(figs) -> None:
    """No axis prints an offset or a power of ten apart from its ticks, and an axis labelled
    "log scale" is logarithmic."""
    assert figs
    for fig in figs:
        for ax in fig.axes:
            for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
                assert axis.get_offset_text().get_text() == "", (ax.get_title(), axis)
                if "log scale" in axis.get_label_text():
                    assert scale == "log", axis.get_label_text()


def test_no_axis_prints_an_offset_and_log_scale_is_logarithmic(misleading, tmp_path):
    _no_misreadable_axis(misleading[2])  # every figure of the report
    figs = []  # and values that differ in the fifth digit, where matplotlib would add an offset
    with pytest.MonkeyPatch.context() as mp:
        _capture(figs, mp)
        epochs = np.arange(1, 4)
        F.learning_curves({"A": [(epochs, np.array([1.81401, 1.81402, 1.81403]),
                                  np.array([58.001, 58.002, 58.003]))]}, "t", tmp_path / "c.png")
        F.accuracy_vs_cost([("A", 1.814, 58.001, 58.0005, 58.0015),
                            ("B", 1.816, 58.002, 58.0015, 58.0025)], tmp_path / "a.png",
                           ylabel="accuracy (%)")
    _no_misreadable_axis(figs)


def test_models_of_equal_cost_share_a_position(misleading):
    ax = _axes(misleading[2], "accuracy against compute")
    at = {c.get_label(): float(c.lines[0].get_xdata()[0]) for c in ax.containers}
    assert at == {"ResNet-18": 1.8, "SE-ResNet-18": 1.8, "ResNet-50": 4.1, "SE-ResNet-50": 4.1}
    assert list(ax.get_xticks()) == [1.8, 4.1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1.8", "4.1"]
    markers = {c.get_label(): c.lines[0].get_marker() for c in ax.containers}
    assert markers["ResNet-18"] != markers["SE-ResNet-18"]  # told apart where they coincide
    assert ax.get_xscale() == "log" and ax.get_xlabel().endswith("(log scale)")


def _row_y(ax, label: str) -> float:
    return next(y for y, t in zip(ax.get_yticks(), ax.get_yticklabels()) if t.get_text() == label)


def _arrows(ax) -> dict:
    """{(marker, y): line} for the arrows that mark a clipped interval's end."""
    return {(ln.get_marker(), float(ln.get_ydata()[0])): ln for ln in ax.lines
            if ln.get_marker() in ("<", ">")}


def test_the_forest_plot_holds_every_interval_or_marks_the_clipped_end(tmp_path):
    figs = []
    with pytest.MonkeyPatch.context() as mp:
        _capture(figs, mp)
        # one comparison, its interval past what the other numbers would give the axis
        F.verdict_forest([("SE, per depth", [F.VerdictRow(
            "SE-ResNet-18 vs ResNet-18", -13.3, -18.9, -7.7, 10.7, "b_better", "worse")])],
            2.0, tmp_path / "one.png")
        # eight narrow intervals and one of -60 to +100: the axis keeps to the narrow ones
        rows = [F.VerdictRow(f"row {i}", i - 3, i - 5, i - 1, 3, "b_better", "worse")
                for i in range(8)]
        rows.append(F.VerdictRow("wide", 10, -60, 100, 40, "inconclusive", "inconclusive"))
        F.verdict_forest([("Depth", rows)], 2.0, tmp_path / "wide.png")
    one, wide = (f.axes[0] for f in figs)
    low, high = one.get_xlim()
    assert low <= -18.9 and high >= 10.7 and not _arrows(one)
    low, high = wide.get_xlim()
    assert -60 < low and high < 100
    y = _row_y(wide, "wide")
    arrows = _arrows(wide)
    assert set(arrows) == {("<", y), (">", y)}
    assert [ln.get_xdata()[0] for ln in arrows.values()] == [low, high]
    assert all(ln.get_markersize() >= 8 and not ln.get_clip_on() for ln in arrows.values())
    assert {"-60.0", "+100.0"} <= {t.get_text() for t in wide.texts}  # where it really ends
    _no_misreadable_axis(figs)


# ------------------------------------------------------------------------------------ browser
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--hide-scrollbars"]
SCREEN = (1400, 900)  # the first screen a reviewer sees

# Appended to a copy of the page: after load, mark each image as loaded (naturalWidth > 0) or
# broken, list every resource the page fetched, and measure the layout: where the verdict figure
# sits, the longest and the tallest table cell, whether every table scrolls inside its own box,
# whether the table of contents' links all land, whether a print stylesheet exists, how wide
# the full-width figures are drawn, and the first screen's lead sentence.
PROBE = """<script>
window.addEventListener('load', function () {
  var b = document.body, imgs = Array.from(document.images);
  imgs.forEach(function (im) {
    im.setAttribute('data-probe', im.complete && im.naturalWidth > 0 ? 'ok' : 'broken');
  });
  var res = performance.getEntriesByType('resource').map(function (r) { return r.name; });
  b.setAttribute('data-probe-images', String(imgs.length));
  b.setAttribute('data-probe-resources', res.join(' '));
  var v = document.querySelector('img[src$="verdicts.png"]');
  if (v) {
    var r = v.getBoundingClientRect();
    b.setAttribute('data-probe-verdict', Math.round(r.top) + ' ' + Math.round(r.bottom));
  }
  var cells = Array.from(document.querySelectorAll('td, th'));
  b.setAttribute('data-probe-cell-chars', String(Math.max.apply(null,
    cells.map(function (c) { return c.innerText.trim().length; }).concat([0]))));
  b.setAttribute('data-probe-cell-px', String(Math.round(Math.max.apply(null,
    cells.map(function (c) { return c.getBoundingClientRect().height; }).concat([0])))));
  var tables = Array.from(document.querySelectorAll('table'));
  b.setAttribute('data-probe-scroll', tables.every(function (t) {
    return getComputedStyle(t.parentElement).overflowX === 'auto'; }) ? 'yes' : 'no');
  var links = Array.from(document.querySelectorAll('nav.toc a'));
  b.setAttribute('data-probe-toc', links.filter(function (a) {
    return document.getElementById(a.getAttribute('href').slice(1)); }).length + '/' +
    links.length + '/' + document.querySelectorAll('h2').length);
  var print = false;
  Array.from(document.styleSheets).forEach(function (s) {
    Array.from(s.cssRules).forEach(function (rule) {
      if (rule.media && rule.media.mediaText.indexOf('print') >= 0) print = true; }); });
  b.setAttribute('data-probe-print', print ? 'yes' : 'no');
  var alone = imgs.filter(function (im) { return !im.closest('.figrow'); });
  b.setAttribute('data-probe-fig-width', String(Math.min.apply(null, alone.map(function (im) {
    return im.getBoundingClientRect().width / b.clientWidth; }).concat([1])).toFixed(2)));
  var lead = document.querySelector('p.lead');
  b.setAttribute('data-probe-lead', lead ? lead.innerText : '');
  b.setAttribute('data-probe-done', 'yes');
});
</script>"""


def _chromium():
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium")
                                       else None)
    if exe is None:
        pytest.fail("chromium is not installed: `make test` installs it (Debian package "
                    "`chromium`), or run `apt-get install -y chromium`")
    return exe


def _render(study: Path, tmp: Path, screenshot: Path | None = None) -> dict:
    """Load the study's report.html at 1400x900 with the probe; return what it measured (and
    write a screenshot of the first screen when asked)."""
    html = (study / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "external resource"
    probe = study / "_probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    base = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}",
            f"--window-size={SCREEN[0]},{SCREEN[1]}", "--virtual-time-budget=5000"]
    try:
        proc = subprocess.run(base + ["--dump-dom", probe.as_uri()], capture_output=True,
                              text=True, timeout=120)
        if screenshot is not None:
            subprocess.run(base + [f"--screenshot={screenshot}", (study / "report.html").as_uri()],
                           capture_output=True, text=True, timeout=120, check=True)
    finally:
        probe.unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'data-probe-done="yes"' in dom, "the page did not finish loading: " + proc.stderr[-500:]
    body = re.search(r"<body([^>]*)>", dom).group(1)
    found = {k: unescape(v) for k, v in re.findall(r'data-probe-([a-z-]+)="([^"]*)"', body)}
    found["ok"], found["broken"] = dom.count('data-probe="ok"'), dom.count('data-probe="broken"')
    return found


@pytest.mark.browser
def test_html_renders_in_headless_chromium(full_study, tmp_path):
    root, _, built = full_study
    shot = tmp_path / "first_screen.png"
    p = _render(root, tmp_path, screenshot=shot)
    n_imgs = int(p["images"])
    assert n_imgs == 8 and p["ok"] == n_imgs and p["broken"] == 0
    # Chromium does not list file:// fetches in resource timing; anything listed came from
    # elsewhere and would be an external resource.
    assert p["resources"] == ""
    srcs = re.findall(r'<img src="([^"]+)"', (root / "report.html").read_text())
    assert len(srcs) == n_imgs and all(s.startswith("figures/") for s in srcs)
    # the first screen holds the whole verdict figure
    top, bottom = map(int, p["verdict"].split())
    assert 0 < top < bottom <= SCREEN[1], p["verdict"]
    # and the screenshot of that screen shows it: its equivalence band's colour is there
    from PIL import Image

    from depthbench.report.figures import MARGIN_BAND

    band = tuple(int(MARGIN_BAND[i:i + 2], 16) for i in (1, 3, 5))
    pixels = Image.open(shot).convert("RGB")
    assert pixels.size == SCREEN
    assert sum(n for n, rgb in pixels.getcolors(SCREEN[0] * SCREEN[1]) if rgb == band) > 500
    # tables scroll sideways instead of squeezing: short cells, no row taller than ~3 lines
    assert int(p["cell-chars"]) <= 120 and int(p["cell-px"]) <= 80, p
    assert p["scroll"] == "yes" and p["print"] == "yes"
    linked, links, h2 = map(int, p["toc"].split("/"))
    assert linked == links == h2 > 5
    assert float(p["fig-width"]) >= 0.9  # figures outside the first row span the page


@pytest.mark.browser
def test_html_renders_with_40_runs(tmp_path):
    models = list(names.MODELS)
    for s in range(4):
        for m in models:
            make_run(tmp_path, m, s, 0.6 + 0.01 * models.index(m),
                     macs_224=PARAMS.get(m, PARAMS_OTHER) * 150)
        make_run(tmp_path, "swin_tiny_patch4_window7_224", s, 0.6, variant="keydrop0.1",
                 macs_224=PARAMS["swin_tiny_patch4_window7_224"] * 150)
    build_report(tmp_path)
    assert len(load_study(tmp_path).runs) == 4 * len(models) + 4
    p = _render(tmp_path, tmp_path)
    assert p["ok"] == int(p["images"]) and p["broken"] == 0
    assert int(p["verdict"].split()[0]) < SCREEN[1]  # the verdict figure starts on screen one
    assert int(p["cell-chars"]) <= 120 and int(p["cell-px"]) <= 80, p


@pytest.mark.browser
def test_html_renders_the_cases_that_misled(misleading, tmp_path):
    """The study of near-equal costs, a model that did not learn and a winner on B's side, as
    Chromium shows it: every figure loads, and the lead says which runs learned before it names
    a real difference, from the winner's side."""
    root, built, _ = misleading
    p = _render(root, tmp_path)
    assert int(p["images"]) >= 5 and p["ok"] == int(p["images"]) and p["broken"] == 0
    lead = p["lead"]
    assert lead.index("9 of 12 runs beat it") < lead.index(
        "did not learn: SE-ResNet-18 (3 of 3 seeds)") < lead.index("real difference")
    assert "ResNet-50 beats SE-ResNet-50 by " in lead
    assert not re.search(r"beats [^;\n]*?[\s(\[][-−]\d", lead), lead


# ------------------------------------------------------------------------ the report's own words
def _printed_figures(path: Path) -> list[tuple[int, str]]:
    """String constants of a report module (docstrings and format specs aside) that type out a
    percentage or a decimal: each should read its constant instead."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(c) for n in ast.walk(tree) if isinstance(n, ast.FormattedValue)
            and n.format_spec is not None for c in ast.walk(n.format_spec)}
    skip |= {id(n.body[0].value) for n in ast.walk(tree)
             if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef) and n.body
             and isinstance(n.body[0], ast.Expr)}
    nums = re.compile(r"\d\s?%|(?<![\w.])0\.\d+")
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in skip and nums.search(node.value)):
            found.append((node.lineno, node.value))
    return found


def test_the_reports_words_read_their_constants():
    """No percentage or threshold typed into the report's prose (the null of McNemar's test, a
    fair coin, and the HTML's style sheet aside)."""
    report = Path(S.__file__).parent
    typed = {p.name: [(line, text[:80]) for line, text in _printed_figures(p)
                      if "binomtest(b, b + c, 0.5)" not in text and "font-family" not in text]
             for p in sorted(report.glob("*.py"))}
    assert {name: found for name, found in typed.items() if found} == {}


def test_the_methods_point_to_benchmark_sections_that_exist():
    """The calibration rates are measured by the benchmarks, not typed into the report: the
    Methods name the command and the section of BENCHMARKS.md that holds them."""
    root = Path(__file__).resolve().parents[1]
    headings = re.findall(r"^#+ (.+)$", (root / "BENCHMARKS.md").read_text(encoding="utf-8"), re.M)
    for module, section in (sections.PAIRED_CALIBRATION, sections.CV_CALIBRATION):
        assert (root / "benchmarks" / f"{module}.py").is_file()
        assert section in headings
