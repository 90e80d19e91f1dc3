"""The report's sections after its first screen (`overview`), in order: the comparisons by
question with every comparison's sentence, training (selected and last epochs, learning curves),
confusion matrices and per-class recall, cost, the source's table (flowers only), the runs, the
methods. Each adds blocks to a `Document`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthbench.names import VARIANT_OPTIONS, display_name, family_display
from depthbench.report import figures as F
from depthbench.report import stats as S
from depthbench.report.analysis import (
    BASE,
    COMPARISON_HEADER,
    CONVERGED_TRAIN_ACC,
    POOLED_REPEAT,
    QUESTIONS,
    Analysis,
    Comparison,
    Plan,
    group_label,
)
from depthbench.report.document import Bullets, Details, Document, Figure, Heading, Para, Table
from depthbench.report.fmt import ci_text, gmacs_text, mean, mean_sd_text, ok, params_text, pct
from depthbench.report.overview import delta_ci_text, epochs_text, params_header
from depthbench.report.records import Run
from depthbench.report.source import SOURCE_VAL_IMAGES, load_source


# -------------------------------------------------------------------------------- comparisons
def comparisons(doc: Document, an: Analysis, plan: Plan) -> None:
    """One table per question, then every comparison's sentence once."""
    doc.add(Heading("Comparisons"))
    if not an.comparisons:
        doc.add(Para("No pair of models finished: nothing to compare."))
        return
    m = sum(c.test is not None for c in an.comparisons)
    paired = ("by (repeat, fold, seed) cell: the same training and test images, the same "
              f"training seed ({an.design_text()})" if an.cv else "by seed and image")
    doc.add(Para(
        f"Δ = A − B in {an.eval_name} accuracy points at the checkpoints validation selected, "
        f"paired {paired}; Holm over all {m} comparisons. Verdict (A against B): "
        f"better / worse (Holm-adjusted p < {S.ALPHA:g}), equivalent (within "
        f"±{100 * an.margin:g} points by TOST), inconclusive (neither), not testable "
        "(degenerate runs, runs that did not beat the majority class, or runs that cannot be "
        f"paired). Method per row: {delta_ci_text(an)} (Methods)."))
    for q, comps in plan.by_question():
        doc.add(Heading(QUESTIONS[q], level=3))
        if q == "variant":
            _variant_table(doc, an, comps)
        elif q == "across":
            doc.add(_comparison_table(comps, _across_cells(an), ["GMACs at 224 px (A / B)"]))
        else:
            doc.add(_comparison_table(comps))
    doc.add(Heading("Comparisons in detail", level=3),
            Details([(f"{c.name}: {c.word}", c.sentence()) for _, cs in plan.by_question()
                     for c in cs]))


def _comparison_table(comps: list[Comparison], extra=None, extra_header=()) -> Table:
    rows = [c.row() + (extra(c) if extra else []) for c in comps]
    return Table(COMPARISON_HEADER + list(extra_header), rows)


def _across_cells(an: Analysis):
    def cells(c: Comparison) -> list[str]:
        ga, gb = an.gmacs_224(c.a), an.gmacs_224(c.b)
        return [f"{ga:.3g} / {gb:.3g}" if ga and gb else "–"]
    return cells


def _variant_desc(an: Analysis, key) -> str:
    runs = an.groups.get(key, [])
    cfg = (runs[0].result.get("config") or {}) if runs else {}
    opts = cfg.get("model_kwargs") if isinstance(cfg.get("model_kwargs"), dict) else cfg
    shown = {k: opts[k] for k in VARIANT_OPTIONS
             if isinstance(opts, dict) and opts.get(k) not in (None, 0, 0.0)}
    return key[1] + (f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else "")



def _variant_table(doc: Document, an: Analysis, comps: list[Comparison]) -> None:
    ev = an.eval_name
    runs = [r for c in comps for k in (c.a, c.b) for r in an.finished(k)]
    with_overfit = _has_train_eval(runs)
    doc.add(Para("Key dropout targets overfitting: beside the variant's effect on "
                 f"{ev} accuracy, overfitting = train accuracy of the selected checkpoint in eval "
                 f"mode on a fixed train subset − {ev} accuracy (lower is less overfitting). For "
                 "SE-ResNet the 'key' is the SE channel gate (se_drop)."
                 + ("" if with_overfit else " The runs did not record the eval-mode train "
                    "accuracy, so overfitting is not shown (the running train accuracy is "
                    "measured in train mode and would not be comparable).")))

    def cells(c: Comparison) -> list[str]:
        if not with_overfit:
            return [_variant_desc(an, c.a)]
        base, variant, delta = overfit(an, c)
        return [_variant_desc(an, c.a), mean_sd_text(base, "pts"),
                mean_sd_text(variant, "pts"), mean_sd_text(delta, "pts")]

    doc.add(_comparison_table(comps, cells, ["variant"] + (
        ["overfit base (points)", "overfit variant (points)", "Δ overfit (points)"]
        if with_overfit else [])))


def overfit(an: Analysis, c: Comparison) -> tuple[list, list, list]:
    """Overfitting of B (the base) and of A (the variant) on each seed (cell, when
    cross-validated) both ran, and A − B."""
    ra = {r.cell: r for r in an.finished(c.a)}
    rb = {r.cell: r for r in an.finished(c.b)}
    common = sorted(set(ra) & set(rb))
    ov_a = [_overfit(an, ra[s]) for s in common]
    ov_b = [_overfit(an, rb[s]) for s in common]
    return ov_b, ov_a, [x - y for x, y in zip(ov_a, ov_b) if ok(x) and ok(y)]


def _overfit(an: Analysis, run: Run) -> float | None:
    """Eval-mode train-subset accuracy of the selected checkpoint minus its evaluation accuracy;
    None without the train-subset record."""
    tr, te = run.train_eval("best"), run.accuracy("best", an.split)
    return tr - te if ok(tr) and ok(te) else None


def _has_train_eval(runs: list[Run]) -> bool:
    return bool(runs) and all(r.train_eval("best") is not None for r in runs)



# ----------------------------------------------------------------------------------- training
def training(doc: Document, an: Analysis, fig_dir: Path, written: set) -> None:
    """The selected and the last epoch in one table (last-epoch columns only where they differ),
    then the learning curves."""
    doc.add(Heading("Training"), Para(
        f"Values are mean ± sample sd over {an.per} (no sd with one); train loss is the epoch "
        "mean over samples, train acc the running accuracy during the epoch. " + _recipe_line(an)))
    differs = any(r.checkpoint("last").get("epoch") != r.checkpoint("best").get("epoch")
                  for r in an.study.runs if r.finished)
    header = ["model", "selected epoch", "train loss", "train acc", "val acc"] + (
        ["last epoch", "train loss (last)", "train acc (last)", "val acc (last)"]
        if differs else [])
    rows = []
    for key in an.groups:
        fin = an.finished(key)
        if not fin:  # the reasons are listed under Runs
            rows.append([group_label(key), "no finished run"] + ["–"] * (len(header) - 2))
            continue
        same = all(r.checkpoint("last").get("epoch") == r.checkpoint("best").get("epoch")
                   for r in fin)
        rows.append([group_label(key)] + _epoch_cells(fin, "best") + (
            (["= selected"] * 4 if same else _epoch_cells(fin, "last")) if differs else []))
    doc.add(Table(header, rows, caption="The checkpoint validation selected"
                  + (" and the last epoch" if differs else " (here also the last epoch)")))
    curves(doc, an, fig_dir, written)


def _epoch_cells(runs: list[Run], which: str) -> list[str]:
    return [epochs_text(runs, which),
            mean_sd_text([r.checkpoint(which).get("train_loss") for r in runs], "loss"),
            mean_sd_text([r.checkpoint(which).get("train_acc") for r in runs]),
            mean_sd_text([r.accuracy(which, "val") for r in runs])]


def _recipe_line(an: Analysis) -> str:
    cfg = next((r.result.get("config") for r in an.study.runs
                if isinstance(r.result.get("config"), dict)), None)
    if not cfg:
        return "Recipe: not recorded."
    keys = ("data", "recipe", "epochs", "batch_size", "lr", "optimizer", "scheduler", "crop_scale",
            "trivial_augment", "eval_crop", "dihedral", "flips", "img_size", "val", "test",
            "precision")
    shown = [f"{k}={cfg[k]}" for k in keys  # a fold, not a fraction, is a cell's test split
             if cfg.get(k) is not None and not (k == "test" and an.cv)]
    return "Recipe (first run's resolved config): " + ", ".join(shown) + "."



def curves(doc: Document, an: Analysis, fig_dir: Path, written: set) -> None:
    doc.add(Heading("Learning curves", level=3))
    any_fig = False
    for fam in an.families():
        series = {}
        for key, runs in an.groups.items():
            if runs[0].family != fam:
                continue
            per_seed = []
            for r in runs:
                if not r.finished or not r.metrics:
                    continue
                e, loss = r.curve("train_loss")
                e2, acc = r.curve("val_acc")
                if e.size and np.array_equal(e, e2):
                    per_seed.append((e, loss, 100 * acc))
            if per_seed:
                series[group_label(key)] = per_seed
        if not series:
            continue
        name = f"curves_{fam}.png"
        F.learning_curves(series, f"{family_display(fam)}: per-epoch records", fig_dir / name)
        written.add(name)
        any_fig = True
        doc.add(Figure(f"figures/{name}",
                       f"{family_display(fam)}: train loss (epoch mean) and validation "
                       f"accuracy per epoch; line = mean over {an.per}, band = min–max over "
                       f"{an.per} (n = {an.per})."))
    if not any_fig:
        doc.add(Para("No finished run has per-epoch records (metrics.csv)."))



# ----------------------------------------------------------------------------------- confusion
def _confusion(an: Analysis, run: Run, n: int):
    s = run.split("best", an.split) or {}
    if s.get("confusion"):
        return np.asarray(s["confusion"], dtype=int)
    if s.get("predictions") is not None and s.get("targets") is not None:
        m = np.zeros((n, n), dtype=int)
        np.add.at(m, (np.asarray(s["targets"]), np.asarray(s["predictions"])), 1)
        return m
    return None


def confusion(doc: Document, an: Analysis, fig_dir: Path, written: set) -> None:
    doc.add(Heading("Confusion matrices (best model per family)"))
    classes = an.study.classes
    any_fig = False
    recall_rows = []
    pooled = (f"the test predictions of repeat {POOLED_REPEAT}'s {an.design[0]} folds pooled "
              "(every image once per seed)" if an.cv else "")
    for fam in an.families():
        key = an.selected([k for k in an.groups if an.groups[k][0].family == fam])
        if key is None:
            continue
        mats = [m for m in (_confusion(an, r, len(classes)) for pool in an.pools(key)
                            for r in pool) if m is not None]
        if not mats or any(m.shape != mats[0].shape for m in mats):
            continue
        total = np.sum(mats, axis=0)
        labels = classes if len(classes) == total.shape[0] else [str(i) for i in
                                                                 range(total.shape[0])]
        seeds = len(an.pools(key))
        name = f"confusion_{fam}.png"
        title = (f"{group_label(key)} ({an.eval_name}, "
                 + (f"repeat {POOLED_REPEAT}, " if an.cv else "") + f"{seeds} seed(s) summed)")
        F.confusion_matrix(total, labels, title, fig_dir / name)
        written.add(name)
        any_fig = True
        doc.add(Figure(f"figures/{name}",
                       f"{family_display(fam)}: {an.label(key)}, the family's highest mean "
                       f"validation accuracy; {an.eval_name} images, selected checkpoint, "
                       + (f"{pooled}, " if an.cv else "")
                       + f"counts summed over {seeds} seed(s), colour = fraction of true class."))
    for key in an.groups:
        per_seed = [_pooled_recall(pool, an.split, len(classes)) for pool in an.pools(key)]
        per_seed = [x for x in per_seed if x]
        if per_seed and len(classes) and all(len(x) == len(per_seed[0]) for x in per_seed):
            recall_rows.append([an.label(key), str(len(per_seed))] + [
                mean_sd_text([x[i] for x in per_seed]) for i in range(len(per_seed[0]))])
    if recall_rows:
        width = max(len(r) for r in recall_rows) - 2
        names = classes if len(classes) == width else [str(i) for i in range(width)]
        doc.add(Table(["model", "seeds" if an.cv else "runs"] + [f"recall: {c}" for c in names],
                      recall_rows,
                      caption=f"Per-class recall on the {an.eval_name} split at the selected "
                              "checkpoint, mean ± sd over seeds"
                              + (f"; each seed's recall from {pooled}" if an.cv else "")))
    if not any_fig:
        doc.add(Para(f"No finished run recorded a confusion matrix on the {an.eval_name} split."))


def _pooled_recall(runs: list[Run], split: str, k: int) -> list | None:
    """Per-class recall of the runs' predictions taken together (one run: its own)."""
    parts = [r.split("best", split) or {} for r in runs]
    if not parts or any(p.get("predictions") is None or p.get("targets") is None for p in parts):
        return None
    return S.class_metrics([t for p in parts for t in p["targets"]],
                           [y for p in parts for y in p["predictions"]], k)["recall"]



# ----------------------------------------------------------------------------------------- cost
def cost(doc: Document, an: Analysis) -> None:
    doc.add(Heading("Cost"))
    rows = []
    devices = set()
    at_224 = any(r.macs_224 is not None for r in an.study.runs)
    for key, runs in an.groups.items():
        fin = an.finished(key)
        head = [an.label(key), params_text(runs[0].params), gmacs_text(runs[0].macs)] + (
            [gmacs_text(runs[0].macs_224)] if at_224 else [])
        if not fin:
            rows.append(head + ["–"] * 4 + ["0 (no finished run)"])
            continue
        costs = [r.costs for r in fin]
        devices |= {str((r.result.get("provenance") or {}).get("device")) for r in fin
                    if (r.result.get("provenance") or {}).get("device")}

        def m(k, costs=costs):
            return mean(c.get(k) for c in costs)

        def num(x, fmt):
            return format(x, fmt) if ok(x) else "–"

        rows.append(head + [num(m("train_images_per_s"), ".1f"),
                            num(m("infer_images_per_s"), ".1f"), num(m("peak_memory_mb"), ".0f"),
                            num(mean(r.seconds for r in fin), ".0f"), str(len(fin))])
    doc.add(Table(["model", params_header(an), f"GMACs / image at {_img_size_text(an)}"]
                  + (["GMACs / image at 224 px"] if at_224 else [])
                  + ["train images/s", "inference images/s", "peak memory (MB)", "run time (s)",
                     "runs averaged"], rows,
                  caption="Measured during each run (result.json costs), mean over finished runs; "
                          f"device: {', '.join(sorted(devices)) or 'not recorded'}"))



def _img_size_text(an: Analysis) -> str:
    sizes = sorted({r.img_size for r in an.study.runs if r.img_size})
    return f"{sizes[0]} px" if len(sizes) == 1 else "each run's image size"


# --------------------------------------------------------------------------------------- source
def source(doc: Document, an: Analysis) -> None:
    src = load_source()
    rows = []
    for model, sm in src.items():
        runs = an.finished((model, BASE))
        b = sm.best_val_epoch
        rows.append([
            display_name(model),
            f"{sm.published['train_loss']:.2g}", pct(sm.published["train_acc"], 2),
            pct(sm.published["val_acc"], 2),
            f"{b['epoch']}: {pct(b['val_acc'], 2)} (train acc {pct(b['train_acc'], 1)})",
            pct(sm.last_epoch["val_acc"], 2),
            mean_sd_text([r.accuracy("best", "val") for r in runs]) if runs else "not run",
            mean_sd_text([r.accuracy("last", "val") for r in runs]) if runs else "–",
            (mean_sd_text([r.accuracy("best", "test") for r in runs]) if runs else "–")
            if an.split == "test" else "–",
            str(len(runs)),
        ])
    doc.add(Heading("Beside the source study (flowers)"))
    doc.add(Table(["model", "source train loss (published)", "source train acc (published)",
                   "source val acc (published)", "source best-val epoch: val acc",
                   "source last-epoch val acc", "ours: val acc (selected)",
                   "ours: val acc (last)", "ours: test acc (selected)", "our runs"], rows,
                  caption="The source's published table (per-column best over 100 epochs, one run "
                          "each), what its records give at one epoch, and this study (mean ± sd "
                          "over seeds)"))
    doc.add(Bullets(_source_notes(src)))


def _source_notes(src: dict) -> list[str]:
    """What the source's records show about its table (the published values, its SE-ResNet-50)."""
    se34, se50 = src.get("seresnet34"), src.get("seresnet50")
    off = se50.not_whole_counts() if se50 else 0
    mismatch = [f"{display_name(m)} (published {pct(s.published['val_acc'], 2)}, records' best "
                f"{pct(s.best_val_epoch['val_acc'], 2)} at epoch {s.best_val_epoch['epoch']})"
                for m, s in src.items()
                if abs(s.published["val_acc"] - s.best_val_epoch["val_acc"]) > 5e-4]
    typical = float(np.mean([s.published["val_acc"] for s in src.values()]))
    se = float(np.sqrt(typical * (1 - typical) / SOURCE_VAL_IMAGES))  # binomial, one run
    split_epochs = [display_name(m) for m, s in src.items()
                    if min(s.epochs, key=lambda r: r["train_loss"])["epoch"]
                    != s.best_val_epoch["epoch"]]
    notes = [
        "Per-column best: each published column is that column's best over 100 epochs, chosen on "
        "the validation set itself; for " + ", ".join(split_epochs) + " the lowest loss and the "
        "best validation accuracy come from different epochs. This report selects one checkpoint "
        "by validation and reports it, and the last epoch, labeled.",
        "The source's 'train loss' is the last mini-batch's loss; ours is the epoch mean.",
        f"SE-ResNet-50's record is not a real {SOURCE_VAL_IMAGES}-image evaluation: {off} of "
        f"{len(se50.epochs) if se50 else 0} per-epoch validation accuracies are not a whole "
        f"number of images out of {SOURCE_VAL_IMAGES}, and the source code built it from "
        "BasicBlocks [3, 4, 6, 3], the same network as its SE-ResNet-34"
        + (f", whose records are whole counts ({se34.not_whole_counts()} of "
           f"{len(se34.epochs)} off)" if se34 else "") + ".",
        f"One run per model on {SOURCE_VAL_IMAGES} validation images: a single accuracy near "
        f"{pct(typical, 0)} has a standard error of about {100 * se:.1f} points, so most gaps in "
        "the source table are noise.",
    ]
    if mismatch:
        notes.append("Published values that differ from the records' best validation epoch: "
                     + "; ".join(mismatch) + ".")
    notes.append("Our validation images are not the source's (our split manifest, possibly with "
                 "a test split), so the columns are comparable in protocol, not image by image.")
    return notes



# ----------------------------------------------------------------------------------------- runs
def runs(doc: Document, an: Analysis) -> None:
    st = an.study
    doc.add(Heading("Runs"))
    bad = [r for r in st.runs if not r.finished]
    doc.add(Heading("Failed and unfinished runs", level=3))
    if not bad:
        doc.add(Para(f"None: all {len(st.runs)} runs finished."))
    else:
        doc.add(Bullets([f"{r.name}: {r.status}"
                         + (f" at epoch {r.failure_epoch}" if r.failure_epoch is not None else "")
                         + f" — {r.reason or 'no reason recorded'}" for r in bad]))
    if st.left_out:
        doc.add(Heading("Left out", level=3), Para(
            "Run folders of this study folder that its study.yaml no longer lists (models, "
            "variants or seeds it has dropped); none of them is in any table, test or figure:"),
            Bullets([f"{r.name} ({r.status})" for r in st.left_out]))
    doc.add(Heading("All runs", level=3))
    doc.add(Table(["run", "status", "best epoch", "val acc (selected)", "test acc (selected)",
                   "val acc (last)", "test acc (last)", f"{an.eval_name} balanced acc (selected)",
                   f"{an.eval_name} macro-F1 (selected)", "seconds"],
                  [_run_row(an, r) for group in an.groups.values() for r in group],
                  caption=f"Every run: accuracy with correct/total and its {S.CONFIDENCE:.0%} "
                          "Wilson interval; also in results.csv"))


def _run_row(an: Analysis, r: Run) -> list[str]:
    status = r.status + (" (degenerate)" if r.finished and r.degenerate(an.split) else "") + (
        " (did not learn)" if r.finished and r.learned(an.split) is False else "")
    cells = [r.name, status, str(r.checkpoint("best").get("epoch", "–"))]
    for which in ("best", "last"):
        for split in ("val", "test"):
            s = r.split(which, split) or {}
            if s.get("total"):
                low, high = S.wilson_ci(s["correct"], s["total"])
                cells.append(f"{pct(s['correct'] / s['total'])} ({s['correct']}/"
                             f"{s['total']}) {ci_text(low, high)}")
            else:
                cells.append("–")
    metrics = r.class_metrics("best", an.split) or {}
    return cells + [pct(metrics.get("balanced_accuracy")), pct(metrics.get("macro_f1")),
                    f"{r.seconds:.0f}" if ok(r.seconds) else "–"]


# -------------------------------------------------------------------------------------- methods
def methods(doc: Document, an: Analysis) -> None:
    m = sum(c.test is not None for c in an.comparisons)
    holm = (f"Multiple comparisons: Holm over all {m} distinct comparisons in this report (each "
            "counted once, whichever question asked for it; the comparisons across families "
            f"included). 'A beats B' only when the Holm-adjusted p is below {S.ALPHA:g}.")
    if an.cv:
        doc.add(Heading("Methods"), Bullets([_METHODS_FIXED[0], _cv_method(an), S.CV_METHOD,
                                             _CV_CALIBRATION, holm, (
            f"Equivalence: two one-sided tests (TOST) that |Δ| < {100 * an.margin:g} points "
            "(study option report.equivalence_margin), Holm-adjusted over the same comparisons, "
            "on the row's method. 'Equivalent' / 'does not help' only when it passes; otherwise "
            "'inconclusive', with what would decide it."),
            f"Detectable difference: the |Δ| the row's method finds with {S.POWER:.0%} power by a "
            "two-sided test at α/m (the Holm level of the smallest p), from the noncentral t "
            "with its standard error and degrees of freedom; capped at 100 points.",
            _CV_DECIDE, *_METHODS_FIXED[6:8], _did_not_learn(), _CV_RECOMPUTED, _converged()]))
        return
    doc.add(Heading("Methods"), Bullets(_METHODS_FIXED[:2] + [
        holm,
        f"Equivalence: two one-sided tests (TOST) that |Δ| < {100 * an.margin:g} points (study "
        "option report.equivalence_margin), Holm-adjusted over the same comparisons; with one "
        "seed on an exact bound for Δ (Clopper–Pearson boxes for the disagreement rate and for "
        "b/(b + c), Bonferroni-split), because the conditional interval narrows as disagreement "
        "falls; with several, on both t tests. 'Equivalent' / 'does not help' only when it "
        "passes; otherwise 'inconclusive', with what would decide it.",
    ] + _METHODS_FIXED[2:] + [_did_not_learn(), _converged()]))


def _did_not_learn() -> str:
    return (f"Did not learn: a run whose {S.CONFIDENCE:.0%} Wilson interval of its accuracy on "
            "the evaluation split (selected checkpoint) does not lie above that split's "
            "majority-class rate; marked in every table and in results.csv (did_not_learn, "
            "majority_rate). Comparisons resting on one are 'not testable under this budget' "
            "whatever their p-value (they still count in Holm's m), and so are the source's "
            "claims resting on them.")


def _converged() -> str:
    return (f"Converged: last-epoch train accuracy ≥ {100 * CONVERGED_TRAIN_ACC:.0f}% (mean over "
            "seeds; the eval-mode train-subset accuracy when recorded). Overfitting: eval-mode "
            "accuracy of the selected checkpoint on a fixed train subset (the same images in "
            "every run) − evaluation accuracy; not shown when runs did not record it.")


def _cv_method(an: Analysis) -> str:
    k, r = an.design
    split = an.study.spec.get("split") if isinstance(an.study.spec.get("split"), dict) else {}
    val = split.get("val")
    grouped = " and the groups file's groups" if split.get("groups") else ""
    return (
        f"Cross-validation ({an.design_text()}): each repeat partitions the images into {k} "
        "folds stratified by class (scikit-learn's StratifiedKFold, or StratifiedGroupKFold so "
        f"that exact duplicates{grouped} share a fold; each of the {r} repeat"
        f"{'s' if r != 1 else ''} shuffled from the split seed and the repeat), so every image "
        "is tested once per repeat and seed. In each (repeat, fold) cell the fold is the test "
        "split, " + (f"{100 * val:g}% " if isinstance(val, int | float) else "a fraction ")
        + "of each class of the other images selects the checkpoint, the rest train; every "
        "model of a cell trains with that cell's seed. A comparison uses the cells both models "
        "finished, the largest complete grid of repeats × folds × seeds among them (the model "
        "below needs every repeat it keeps to test every image once per seed; a comparison's "
        "sentence says how many cells it left out); a model's accuracy comes from the same "
        "model over its cells. Confusion matrices and per-class recall pool the folds of repeat "
        f"{POOLED_REPEAT} (every image once per seed).")


# Where the calibration of the tests is measured: the benchmarks and their sections of
# depthbench's BENCHMARKS.md (the figures live there, measured for the designs they simulate)
PAIRED_CALIBRATION = ("bench_calibration", "Calibration of the paired tests")
CV_CALIBRATION = ("bench_cv_calibration", "Calibration of the cross-validated comparison")


def _measured_in(bench: tuple[str, str]) -> str:
    module, section = bench
    return (f"the rates: `python -m benchmarks.{module}`, depthbench's BENCHMARKS.md, "
            f"'{section}'")


_CALIBRATED = (f"calibrated (at most {S.CALIBRATED_RATE:.0%} false positives at nominal "
               f"{S.ALPHA:.0%}, no true difference)")
_CV_CALIBRATION = (
    "Why this method: by simulation with real learners trained on a study's own folds (so the "
    "training sets overlap as they do here) and under an item-response model where most images "
    "are always right or always wrong, over several designs of folds, repeats and seeds per fold, "
    f"it is {_CALIBRATED}; a t over the cells' differences (which counts the images every repeat "
    "shares as new) and McNemar's test on the pooled predictions (which ignores run-to-run "
    "variance) reject more often, and the corrected repeated k-fold t (Nadeau & Bengio's variance "
    "factor 1/J + n_test/n_train) holds but detects only larger differences at the same runs "
    f"({_measured_in(CV_CALIBRATION)}).")
_CV_DECIDE = (
    "What would decide an inconclusive comparison: from the crossed CV t's variance components, "
    "the cheapest design with this study's folds, repeats and seeds per fold or more of them "
    f"({' or '.join(map(str, S.FOLD_CHOICES))} folds, up to {S.MAX_REPEATS} repeats and "
    f"{S.MAX_SEEDS} seeds per fold, at most {S.MAX_RUNS} runs of each model) whose test would "
    f"have {S.POWER:.0%} power at the Holm level ('beyond this data' when none would); the same for "
    "showing equivalence. More runs shrink the run-to-run terms; the image term shrinks only "
    "with more images, and sets the floor.")
_CV_RECOMPUTED = (
    "Everything here is recomputed from the run folders (result.json's per-image predictions "
    "and each run's split.json) by `depthbench report DIR`; comparisons.csv carries, for every "
    "row, its cells (repeat:fold:seed:A only:B only:test images:training images) and image_sq "
    "(the sum over images of the square of each image's total difference), from which "
    "depthbench.report.stats.cv_test recomputes its test.")


_Z_POWER = "z" + f"{S.POWER:g}".translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
_METHODS_FIXED = [
    "Selection: the checkpoint is the epoch with the best validation accuracy; the test split "
    "is evaluated once per checkpoint (selected and last). No per-column maxima.",
    "Two models, one seed, the same images: b = images only A got right, c = only B; "
    "Δ = (b − c)/n; exact McNemar p = scipy.stats.binomtest(b, b + c, 0.5).pvalue; interval: "
    "Clopper–Pearson for b/(b + c) mapped to Δ given b + c, so interval and test agree. With "
    "b + c = 0 the interval is ± the Clopper–Pearson upper bound of the disagreement rate. One "
    "seed tests the two trained runs, not the architectures: run-to-run variance is not in it.",
    "Two models, several seeds: per-image, per-seed differences d[s, i] ∈ {−1, 0, 1}, two t "
    "tests, and the larger p (the wider interval; both are centred on the mean difference, so "
    "interval and test agree). (1) The crossed random-effects model d = μ + image + seed + ε: "
    "Var(μ̂) = (MS_img + MS_seed − MS_res)/(nS), a negative seed component set to zero, "
    "Satterthwaite degrees of freedom (the exact sign test over images when no variance can be "
    "estimated). (2) The seed-level t over the S per-seed mean differences, S − 1 degrees of "
    "freedom (a zero spread read as one image in one seed). Why both, by simulation under two "
    "generative models (depthbench's own, and an item-response model where most images are "
    "always right or always wrong and runs differ by several points): the crossed t alone "
    "rejects too often with two and three seeds under the item-response model, because its seed term rests on S − 1 degrees of "
    "freedom and its df grows just when that term comes out small; the seed-level t alone "
    "ignores the images every seed shares, and rejects too often at five seeds under "
    f"depthbench's own. Together they are {_CALIBRATED} for 2, 3 and 5 seeds under both; two seeds are "
    f"calibrated but decide little ({_measured_in(PAIRED_CALIBRATION)}).",
    f"Single accuracies: Wilson score {S.CONFIDENCE:.0%} interval on correct/total "
    "(scipy.stats.binomtest(k, n).proportion_ci(method='wilson')); a group's mean over "
    "several seeds: the same two t tests on the per-image outcomes.",
    f"Detectable difference: the |Δ| found with {S.POWER:.0%} power by a two-sided test at α/m "
    f"(the Holm level of the smallest p): (z + {_Z_POWER})·√(r/n) with one seed at the observed "
    f"disagreement rate r (at least (z + {_Z_POWER})²/n); with several, the noncentral t's for each "
    "of the two tests, the larger; capped at 100 points. Intervals of Δ are clipped to "
    "[−100, +100] points.",
    "What would decide an inconclusive comparison: from the crossed model's variance "
    f"components, the seeds (up to {S.MAX_SEEDS}) that would give {S.POWER:.0%} power at the "
    "Holm level at this "
    "test-set size, or else the test images it would take ('beyond this data' when more than "
    "the test split holds), to two significant figures; the same for showing equivalence. One "
    "seed measures no run-to-run variance: images only, at its disagreement rate.",
    f"Degenerate run: ≥ {S.DEGENERATE_SHARE:.0%} of the evaluation images predicted as one class "
    f"that is < {S.DEGENERATE_SHARE:.0%} of the images; marked in every table; comparisons resting on one are 'not testable under "
    "this budget' (they still count in Holm's m).",
    "Majority-class baseline: the share of the most frequent class among the evaluation "
    "images (from the recorded targets). Balanced accuracy: mean per-class recall over the "
    "classes present; macro-F1: mean per-class F1.",
    "Everything here is recomputed from the run folders (result.json's per-image predictions) "
    "by `depthbench report DIR`; comparisons.csv carries b, c and n for every row.",
]
