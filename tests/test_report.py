"""The study report built from hand-made run folders (a test fixture standing in for the engine's
records, following docs/internals.md), the `depthbench report` command, and the HTML in Chromium."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from depthbench.cli.main import main
from depthbench.errors import DepthbenchError
from depthbench.report import build_report, load_study

CLASSES = ["cat", "dog", "fox", "owl"]
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
          "seresnet18": 11_778_592, "seresnet34": 21_958_868, "seresnet50": 28_088_024,
          "swin_tiny_patch4_window7_224": 28_288_354, "swin_small_patch4_window7_224": 49_606_258,
          "swin_base_patch4_window7_224": 87_768_224}
FAMILY = {m: ("seresnet" if m.startswith("se") else "resnet" if m.startswith("res") else "swin")
          for m in PARAMS}


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
             predictions=None, val_acc=None, train_eval=None, macs_224=None):
    """Write one run folder (metrics.csv + result.json).

    Test predictions at both checkpoints: `predictions` if given, else right on the images
    `right` marks, else on `_pattern(acc)`. Validation accuracy at the selected epoch is
    `val_acc` (default `acc`). `train_eval`: the eval-mode train-subset accuracy to record.
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
    best = max(rows, key=lambda rv: (rv[0]["val_acc"], rv[0]["epoch"]))
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
        "status": status, "failure": failure, "model": model, "family": FAMILY[model],
        "variant": variant, "seed": seed, "config": _config(model, variant, epochs, test),
        "classes": classes, "img_size": 32, "params": PARAMS[model],
        "macs": int(PARAMS[model] * 150), "epochs_completed": done,
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
    models = models or list(PARAMS)
    accs = accs or {}
    for s in seeds:
        for m in models:
            make_run(root, m, s, accs.get(m, 0.7), **kw)
    return Path(root)


def _section(md, title):
    """The text of one `## title` section of report.md."""
    m = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", md, re.S | re.M)
    assert m, f"section {title!r} missing"
    return m.group(1)


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
    md_path = build_report(root)
    return root, md_path.read_text()


def test_report_writes_every_file(full_study):
    root, md = full_study
    for name in ("results.csv", "comparisons.csv", "report.md", "report.html"):
        assert (root / name).is_file()
    pngs = sorted(p.name for p in (root / "figures").glob("*.png"))
    assert pngs == ["accuracy_vs_gmacs.png", "confusion_resnet.png", "confusion_seresnet.png",
                    "confusion_swin.png", "curves_resnet.png", "curves_seresnet.png",
                    "curves_swin.png"]
    for p in (root / "figures").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md + (root / "report.html").read_text()
    for private in ("STATS", "shared/", "SEED.md", "DESIGN.md", "bootstrap", "Fisher"):
        assert private not in text


def test_results_csv_one_row_per_run_with_counts_intervals_and_class_metrics(full_study):
    root, _ = full_study
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
    root, md = full_study
    assert open(root / "comparisons.csv").readline().strip() == (
        "section,a_model,a_variant,b_model,b_variant,seeds,n_images,a_only,b_only,delta_pts,"
        "ci_low_pts,ci_high_pts,method,p,p_holm,mde_pts,verdict")
    rows = _csv(root / "comparisons.csv")
    pairs = [frozenset({(r["a_model"], r["a_variant"]), (r["b_model"], r["b_variant"])})
             for r in rows]
    assert len(pairs) == len(set(pairs))  # each comparison once
    # depth: 3 pairs x 3 families, SE: 3, variants: 2; "SE-ResNet-50 is best" is its depth row
    assert len(rows) == 14 and f"Paired comparisons made: {len(rows)}" in md
    p = [float(r["p"]) for r in rows]
    holm = [min(1.0, x) for x in np.maximum.accumulate(
        np.sort(p) * (len(p) - np.arange(len(p))))]
    assert sorted(float(r["p_holm"]) for r in rows) == pytest.approx(sorted(holm), rel=1e-5)
    for r in rows:
        assert r["verdict"] in {"a_better", "b_better", "no_difference", "equivalent",
                                "not_testable"}
        assert int(r["seeds"]) == 3 and int(r["n_images"]) == 150
        assert float(r["ci_low_pts"]) <= float(r["delta_pts"]) <= float(r["ci_high_pts"])
        if r["verdict"] in ("a_better", "b_better"):
            assert float(r["p_holm"]) < 0.05
    se50 = next(r for r in rows if r["a_model"] == "seresnet50" and r["b_model"] == "resnet50")
    assert se50["verdict"] == "a_better" and se50["method"] == "crossed random-effects t"


def test_report_has_every_section(full_study):
    _, md = full_study
    for title in ("Summary", "Depth comparison per family",
                  "SE ablation (SE-ResNet vs ResNet at the same depth)",
                  "Key-dropout ablation (variant vs base of the same model)", "Learning curves",
                  "Confusion matrices (best model per family)", "Cost",
                  "What holds of the source study's claims", "Failed and unfinished runs",
                  "All runs", "Methods"):
        _section(md, title)
    assert "Beside the source study" not in md  # not the flowers layout
    assert "precision=bf16-mixed" in _section(md, "Summary")  # the resolved precision
    html = (full_study[0] / "report.html").read_text()
    for heading in re.findall(r"^#{2,3} (.+)$", md, re.M):
        assert f">{heading.replace(chr(39), '&#x27;')}</h" in html, heading
    assert "recall: cat" in html  # per-class recall


def test_tables_label_size_head_runs_and_method(full_study):
    _, md = full_study
    depth = _section(md, "Depth comparison per family")
    for fam in ("ResNet", "SE-ResNet", "Swin"):
        assert f"*{fam}: selected checkpoint (best validation epoch); CI: Wilson" in depth
        assert f"*{fam}: last epoch; CI:" in depth
    assert "params (with a 4-class head) | GMACs at 32 px | runs |" in depth
    assert "test balanced acc | test macro-F1 |" in depth
    row = next(line for line in depth.splitlines() if line.startswith("| SE-ResNet-50 |"))
    assert "28.09 M" in row and " ± " in row and "| 3 |" in row
    # a failed seed is counted, not dropped
    assert any(line.startswith("| Swin-S |") and "3 of 4 (1 not finished)" in line
               for line in depth.splitlines())
    cost = _section(md, "Cost")
    assert "GMACs / image at 32 px | GMACs / image at 224 px |" in cost and "| 1 |" in cost
    assert "seed variance is not estimated" not in md


def test_overfitting_uses_the_eval_mode_train_subset(full_study):
    root, md = full_study
    kd = _section(md, "Key-dropout ablation (variant vs base of the same model)")
    assert "overfit base (points)" in kd and "Δ overfit (points)" in kd
    row = next(line for line in kd.splitlines() if line.startswith("| Swin-T |"))
    assert "keydrop0.1 (key_drop=0.1, key_drop_mode=dropkey) | 3 |" in row
    te = [json.loads((root / f"swin_tiny_patch4_window7_224__keydrop0.1__s{s}" / "result.json")
                     .read_text())["best"]["test"]["accuracy"] for s in range(3)]
    ov = [100 * (0.9 - x) for x in te]
    assert f"| +{np.mean(ov):.1f} ± {np.std(ov, ddof=1):.1f} |" in row


def test_no_overfit_column_without_train_eval(tmp_path):
    for s in (0, 1):
        make_run(tmp_path, "swin_tiny_patch4_window7_224", s, 0.6)
        make_run(tmp_path, "swin_tiny_patch4_window7_224", s, 0.6, variant="keydrop0.1",
                 train_acc=0.3)
    md = build_report(tmp_path).read_text()
    kd = _section(md, "Key-dropout ablation (variant vs base of the same model)")
    assert "overfit base" not in kd
    assert "not shown" in kd
    assert "GMACs / image at 224 px" not in _section(md, "Cost")


def test_failed_and_incomplete_runs_are_shown(full_study):
    _, md = full_study
    bad = _section(md, "Failed and unfinished runs")
    assert "swin_small_patch4_window7_224__base__s3" in bad and "loss became NaN" in bad
    assert "resnet50__base__s3" in bad and "incomplete" in bad


# ------------------------------------------------------------------- verdicts and claim outcomes
def _claim(md, claim):
    text = _section(md, "What holds of the source study's claims")
    line = next(line for line in text.splitlines() if f"'{claim}'" in line)
    return line.split(f"'{claim}': ", 1)[1]


def _right(n, *blocks):
    """Right on images 100..n (shared by every model) and on each [lo, hi) block given."""
    r = np.zeros(n, bool)
    r[100:] = True
    for lo, hi in blocks:
        r[lo:hi] = True
    return r


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory):
    """One seed, 400 test images, 15 distinct comparisons, predictions chosen image by image."""
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
    md = build_report(root).read_text()
    return root, md, {(r["a_model"], r["b_model"], r["a_variant"]): r
                      for r in _csv(root / "comparisons.csv")}


def test_hand_made_counts_give_the_exact_test_after_holm_over_15(hand_made):
    root, md, rows = hand_made
    assert len(rows) == 15 and "Paired comparisons made: 15" in md
    r = rows[("resnet34", "resnet18", "base")]
    assert (int(r["a_only"]), int(r["b_only"]), int(r["n_images"])) == (5, 45, 400)
    exact = stats.binomtest(5, 50, 0.5)
    assert float(r["p"]) == pytest.approx(exact.pvalue, rel=1e-5)
    ci = exact.proportion_ci(method="exact")
    assert float(r["ci_low_pts"]) == pytest.approx(100 * 50 / 400 * (2 * ci.low - 1), abs=1e-4)
    assert float(r["ci_high_pts"]) == pytest.approx(100 * 50 / 400 * (2 * ci.high - 1), abs=1e-4)
    p_all = sorted(float(x["p"]) for x in rows.values())
    rank = p_all.index(min(p_all, key=lambda x: abs(x - exact.pvalue)))
    holm = max(min(1.0, (15 - i) * p_all[i]) for i in range(rank + 1))
    assert float(r["p_holm"]) == pytest.approx(holm, rel=1e-4)
    assert float(r["p_holm"]) <= 15 * exact.pvalue
    assert r["verdict"] == "b_better" and r["method"] == "exact McNemar"
    r = rows[("resnet50", "resnet34", "base")]
    assert (int(r["a_only"]), int(r["b_only"])) == (0, 5)
    assert float(r["p"]) == pytest.approx(0.0625) and r["verdict"] == "no_difference"
    depth = _section(md, "Depth comparison per family")
    assert "ResNet-34 beats ResNet-50" not in md and "ResNet-18 beats ResNet-34 (Δ = -10.0 points" in depth
    assert ("no significant difference after correcting for 15 comparisons (Δ = -1.2 points"
            in depth)


def test_hand_made_claims(hand_made):
    _, md, rows = hand_made
    # SE-ResNet right on 95 more images than ResNet at every depth (b = 95..50, c = 0..45)
    assert _claim(md, "SE helps at every depth").startswith("supported — ")
    # ResNet-34 vs ResNet-18 is significant the other way, ResNet-50 vs 34 inconclusive
    assert _claim(md, "Deeper plain ResNet does not help").startswith("inconclusive — ")
    # SE-ResNet-50 vs the runner-up ResNet-18: 95 vs 45 extra images right
    best = _claim(md, "SE-ResNet-50 is best")
    assert best.startswith("supported — ") and "SE-ResNet-50 beats ResNet-18" in best
    # every model reached 99% train accuracy: Swin converged, the claim fails
    assert _claim(md, "Swin does not converge").startswith("not supported — ")


def test_deeper_helps_is_not_supported(tmp_path):
    make_run(tmp_path, "resnet18", 0, 0.5, n_test=400, right=_right(400))
    make_run(tmp_path, "resnet34", 0, 0.5, n_test=400, right=_right(400, (0, 60)))
    md = build_report(tmp_path).read_text()
    assert _claim(md, "Deeper plain ResNet does not help").startswith("not supported — ")
    assert "ResNet-34 beats ResNet-18" in md


def test_does_not_help_needs_equivalence(tmp_path):
    """Identical predictions on enough images: equivalent within ±2 points; the same on 150
    images (too few to bound the disagreement): inconclusive, saying what would decide it."""
    big, small = tmp_path / "big", tmp_path / "small"
    for root, n in ((big, 2000), (small, 150)):
        for m in ("resnet18", "resnet34"):
            make_run(root, m, 0, 0.7, n_test=n, right=_right(n, (0, 40)))
    md = build_report(big).read_text()
    assert _claim(md, "Deeper plain ResNet does not help").startswith(
        "supported: equivalent within the margin (TOST) — ")
    assert _csv(big / "comparisons.csv")[0]["verdict"] == "equivalent"
    md = build_report(small).read_text()
    claim = _claim(md, "Deeper plain ResNet does not help")
    assert claim.startswith("inconclusive — ") and "what would decide it" in claim
    assert "test images" in claim
    assert _csv(small / "comparisons.csv")[0]["verdict"] == "no_difference"


def test_equivalence_margin_is_a_study_option(tmp_path):
    for m, acc in (("resnet18", 0.70), ("resnet34", 0.71)):
        make_run(tmp_path, m, 0, acc, n_test=400)
    build_report(tmp_path)
    assert _csv(tmp_path / "comparisons.csv")[0]["verdict"] == "no_difference"
    (tmp_path / "study.yaml").write_text("name: x\nreport: {equivalence_margin: 0.3}\n")
    md = build_report(tmp_path).read_text()
    assert _csv(tmp_path / "comparisons.csv")[0]["verdict"] == "equivalent"
    assert "within ±30 points" in md
    (tmp_path / "study.yaml").write_text("name: x\nreport: {equivalence_margin: 2}\n")
    with pytest.raises(DepthbenchError, match="report.equivalence_margin must be a fraction"):
        build_report(tmp_path)


def test_study_spec_takes_the_margin():
    from depthbench.errors import ConfigError
    from depthbench.study.spec import validate_spec

    spec = validate_spec({"name": "x", "models": ["resnet18"],
                          "report": {"equivalence_margin": 0.05}})
    assert spec.model_dump(mode="json")["report"] == {"equivalence_margin": 0.05}
    assert validate_spec({"name": "x", "models": ["resnet18"]}).report is None
    with pytest.raises(ConfigError, match="report.equivalence_margin"):
        validate_spec({"name": "x", "models": ["resnet18"], "report": {"equivalence_margin": 1}})


def test_several_seeds_inconclusive_says_what_would_decide(tmp_path):
    make_study(tmp_path, [0, 1, 2], models=["resnet18", "resnet34"],
               accs={"resnet18": 0.70, "resnet34": 0.72})
    md = build_report(tmp_path).read_text()
    claim = _claim(md, "Deeper plain ResNet does not help")
    assert claim.startswith("inconclusive — ") and "crossed random-effects t" in claim
    assert "what would decide it (at 150 test images" in claim or "larger test set" in claim


def test_degenerate_run_is_labelled_and_not_testable(tmp_path):
    n = 200
    t = np.asarray(_targets(n, 4, 1))
    assert np.mean(t == 0) < 0.9
    make_run(tmp_path, "resnet18", 0, 0.8, n_test=n, train_acc=0.5)
    make_run(tmp_path, "resnet34", 0, 0.8, n_test=n, train_acc=0.5,
             predictions=np.zeros(n, int))  # always the majority class
    make_run(tmp_path, "swin_tiny_patch4_window7_224", 0, 0.5, n_test=n, train_acc=0.4)
    md = build_report(tmp_path).read_text()
    for title in ("Depth comparison per family", "Cost", "All runs"):
        assert "ResNet-34 (degenerate)" in _section(md, title) or "(degenerate)" in _section(
            md, title), title
    assert "Degenerate runs" in _section(md, "Summary")
    row = _csv(tmp_path / "comparisons.csv")[0]
    assert row["verdict"] == "not_testable" and row["p"]  # tested, counted in Holm, no verdict
    claim = _claim(md, "Deeper plain ResNet does not help")
    assert claim.startswith("not testable under this budget — ") and "degenerate" in claim
    # no model of any family converged (train accuracy 50% and 40%)
    assert _claim(md, "Swin does not converge").startswith("not testable under this budget — ")
    results = {r["run_dir"]: r for r in _csv(tmp_path / "results.csv")}
    assert results["resnet34__base__s0"]["degenerate"] == "True"
    assert results["resnet18__base__s0"]["degenerate"] == "False"


def test_one_seed_uses_exact_mcnemar_and_wilson(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet18"],
               accs={"resnet18": 0.6, "seresnet18": 0.62})
    md = build_report(tmp_path).read_text()
    assert "With 1 seed(s) per model, seed variance is not estimated" in md
    se = _section(md, "SE ablation (SE-ResNet vs ResNet at the same depth)")
    row = next(line for line in se.splitlines() if line.startswith("| 18 |"))
    assert "| 1 | 150 |" in row and "exact McNemar" in row
    result = json.loads((tmp_path / "resnet18__base__s0" / "result.json").read_text())
    k, n = result["best"]["test"]["correct"], result["best"]["test"]["total"]
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    depth = _section(md, "Depth comparison per family")
    assert f"[{100 * ci.low:.1f}, {100 * ci.high:.1f}]" in depth
    assert _claim(md, "SE-ResNet-50 is best").startswith(
        "not testable here — SE-ResNet-50 was not run")


def test_two_seeds_say_variance_barely_estimated(tmp_path):
    make_study(tmp_path, [0, 1], models=["resnet18", "resnet34"])
    md = build_report(tmp_path).read_text()
    assert "With 2 seed(s) per model, seed variance is barely estimated" in md
    depth = _section(md, "Depth comparison per family")
    assert "ResNet-34 vs ResNet-18 | 2 | 150 |" in depth
    assert "Not run in this study" in _section(
        md, "SE ablation (SE-ResNet vs ResNet at the same depth)")


def test_majority_baseline_warning(tmp_path):
    # at chance (25% on 4 classes, majority class ~40%): the report must say so plainly
    make_study(tmp_path, [0], models=["resnet18", "resnet34"], accs={"resnet18": 0.25,
                                                                     "resnet34": 0.25})
    md = build_report(tmp_path).read_text()
    assert "does NOT clearly beat the majority-class baseline" in md
    assert "(always 'cat')" in md


def test_majority_baseline_beaten(tmp_path):
    make_study(tmp_path, [0], models=["resnet18"], accs={"resnet18": 0.95})
    md = build_report(tmp_path).read_text()
    assert "clearly beats the baseline" in md and "NOT" not in md


def test_no_test_split_evaluates_on_validation_and_warns(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet18"], test=False)
    md = build_report(tmp_path).read_text()
    assert "This study has no test split" in md
    assert "test acc" not in _section(md, "Depth comparison per family")


def test_flowers_layout_puts_the_source_table_beside_ours(tmp_path):
    make_study(tmp_path, [0], models=["resnet18", "seresnet50"], classes=FLOWERS)
    md = build_report(tmp_path).read_text()
    src = _section(md, "Beside the source study (flowers)")
    assert "| SE-ResNet-50 | 6e-06 | 100.00% | 80.13% |" in src
    assert "| Swin-B |" in src and "not run" in src
    assert "98 of 100 per-epoch validation accuracies are not a whole number" in src
    assert "last mini-batch" in src and "Per-column best" in src
    assert "ResNet-50 (published 71.98%, records' best 72.53% at epoch 97)" in src


def test_all_failed_study_still_reports(tmp_path):
    make_run(tmp_path, "resnet18", 0, 0.5, status="failed",
             failure={"epoch": 1, "reason": "data: 3 unreadable images"})
    md = build_report(tmp_path).read_text()
    assert "unreadable images" in md and "No run finished" in md
    assert "no finished run: data: 3 unreadable images" in md
    assert _csv(tmp_path / "comparisons.csv") == []


def test_unreadable_result_is_reported_not_dropped(tmp_path):
    make_study(tmp_path, [0], models=["resnet18"])
    bad = tmp_path / "resnet34__base__s0"
    bad.mkdir()
    (bad / "result.json").write_text('{"status": "finished", ')  # torn by a crash
    md = build_report(tmp_path).read_text()
    row = next(line for line in _section(md, "Failed and unfinished runs").splitlines()
               if line.startswith("| resnet34__base__s0 |"))
    assert "unreadable" in row and "result.json unreadable" in row


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


# ------------------------------------------------------------------------------------ browser
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]

# Appended to a copy of the page: after load, mark each image as loaded (naturalWidth > 0) or
# broken, and list every resource the page fetched.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  imgs.forEach(function (im) {
    im.setAttribute('data-probe', im.complete && im.naturalWidth > 0 ? 'ok' : 'broken');
  });
  var res = performance.getEntriesByType('resource').map(function (r) { return r.name; });
  document.body.setAttribute('data-probe-images', String(imgs.length));
  document.body.setAttribute('data-probe-resources', res.join(' '));
  document.body.setAttribute('data-probe-done', 'yes');
});
</script>"""


def _chromium():
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium")
                                       else None)
    if exe is None:
        pytest.fail("chromium is not installed: `make test` installs it (Debian package "
                    "`chromium`), or run `apt-get install -y chromium`")
    return exe


@pytest.mark.browser
def test_html_renders_in_headless_chromium(full_study, tmp_path):
    exe = _chromium()
    root, _ = full_study
    html = (root / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "external resource"
    probe = root / "_probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    try:
        proc = subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'data-probe-done="yes"' in dom, "the page did not finish loading: " + proc.stderr[-500:]
    n_imgs = int(re.search(r'data-probe-images="(\d+)"', dom).group(1))
    assert n_imgs == 7
    assert dom.count('data-probe="ok"') == n_imgs, "an image failed to load"
    assert 'data-probe="broken"' not in dom
    resources = re.search(r'data-probe-resources="([^"]*)"', dom).group(1).split()
    # Chromium does not list file:// fetches in resource timing; anything listed came from
    # elsewhere and would be an external resource.
    assert resources == [], resources
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == n_imgs and all(s.startswith("figures/") for s in srcs)
    for heading in ("Depth comparison per family", "What holds of the source study"):
        assert heading in dom
