"""The report's sections, in order: summary, depth per family, SE ablation, key-dropout ablation,
learning curves, confusion matrices and per-class recall, cost, the source study's claims, the
source's table (flowers only), failed and all runs, methods. Each adds blocks to a `Document`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthbench.names import display_name, family_display
from depthbench.report import figures as F
from depthbench.report import stats as S
from depthbench.report.analysis import (
    BASE,
    COMPARISON_HEADER,
    CONVERGED_TRAIN_ACC,
    MIN_SEEDS_FOR_VARIANCE,
    Analysis,
    Comparison,
    Plan,
    group_label,
)
from depthbench.report.claims import judge_claims
from depthbench.report.document import Bullets, Document, Figure, Heading, Para, Table
from depthbench.report.fmt import (
    ci_text,
    fmt_p,
    gmacs_text,
    mean,
    mean_sd_text,
    ok,
    params_text,
    pct,
    pts,
    pts_ci,
)
from depthbench.report.records import Run
from depthbench.report.source import SOURCE_VAL_IMAGES, load_source

ACC_CI = ("Wilson score interval with one seed; crossed random-effects t over images × seeds "
          "(Satterthwaite) with several")


# ------------------------------------------------------------------------------------ helpers
def _img_size_text(an: Analysis) -> str:
    sizes = sorted({r.img_size for r in an.study.runs if r.img_size})
    return f"{sizes[0]} px" if len(sizes) == 1 else "each run's image size"


def _params_header(an: Analysis) -> str:
    k = len(an.study.classes)
    return f"params (with a {k}-class head)" if k else "params"


def _runs_cell(an: Analysis, key) -> str:
    runs = an.groups.get(key, [])
    fin = [r for r in runs if r.finished]
    if len(fin) == len(runs):
        return str(len(fin))
    return f"{len(fin)} of {len(runs)} ({len(runs) - len(fin)} not finished)"


def _overfit(an: Analysis, run: Run) -> float | None:
    """Eval-mode train-subset accuracy of the selected checkpoint minus its evaluation accuracy;
    None without the train-subset record."""
    tr, te = run.train_eval("best"), run.accuracy("best", an.split)
    return tr - te if ok(tr) and ok(te) else None


def _has_train_eval(runs: list[Run]) -> bool:
    return bool(runs) and all(r.train_eval("best") is not None for r in runs)


def _class_means(an: Analysis, runs: list[Run], which: str, metric: str) -> str:
    vals = [(r.class_metrics(which, an.split) or {}).get(metric) for r in runs]
    return mean_sd_text(vals)


def _majority_baseline(an: Analysis):
    for runs in an.groups.values():
        for r in runs:
            t = r.targets(an.split)
            if t:
                counts = np.bincount(np.asarray(t, dtype=int))
                k = int(counts.argmax())
                classes = an.study.classes
                name = classes[k] if k < len(classes) else str(k)
                return counts[k] / counts.sum(), name, int(counts[k]), int(counts.sum())
    return None


def _recipe_line(an: Analysis) -> str:
    cfg = next((r.result.get("config") for r in an.study.runs
                if isinstance(r.result.get("config"), dict)), None)
    if not cfg:
        return "Recipe: not recorded."
    shown = [f"{k}={cfg[k]}" for k in ("data", "recipe", "epochs", "batch_size", "lr",
                                        "optimizer", "scheduler", "dihedral", "flips", "img_size",
                                        "val", "test", "precision")
             if cfg.get(k) is not None]
    return "Recipe (first run's resolved config): " + ", ".join(shown) + "."


def _power_text(mdes: list[float]) -> str:
    lo, hi = f"{100 * min(mdes):.1f}", f"{100 * max(mdes):.1f}"
    level = "with 80% power at the Holm-corrected level"
    if min(mdes) >= 1.0:
        return (f"Power: no comparison here could detect even a 100-point difference {level}: "
                "too few test images or seeds to compare anything.")
    span = lo if lo == hi else f"{lo} to {hi}"
    if max(mdes) >= 1.0:
        span = f"{lo} at best (some comparisons could not detect even 100)"
    return (f"Power: with these test images and seeds, a comparison detects a true difference of "
            f"about {span} points {level}; smaller real differences would mostly go unnoticed.")


def _comparison_table(an: Analysis, comps: list[Comparison], caption: str) -> Table:
    return Table(COMPARISON_HEADER, [c.row() for c in comps],
                 caption=f"{caption}; Holm over all {comps[0].m} comparisons; method per row "
                         "(exact McNemar with one seed, crossed random-effects t with several)")


# ------------------------------------------------------------------------------------ summary
def summary(doc: Document, an: Analysis, plan: Plan) -> None:
    st = an.study
    runs = st.runs
    n_fin = sum(r.finished for r in runs)
    bad = [r for r in runs if not r.finished]
    tested = [c for c in an.comparisons if c.test is not None]
    doc.add(Heading("Summary"))
    seeds = sorted({r.seed for r in runs})
    doc.add(Bullets([
        f"Study folder: {st.path.name}; {len(runs)} runs ({n_fin} finished, {len(bad)} not "
        f"finished: see 'Failed and unfinished runs'); seeds: {', '.join(map(str, seeds))}.",
        f"Classes ({len(st.classes)}): {', '.join(st.classes) or 'unknown'}.",
        _recipe_line(an),
        f"Checkpoints are selected by validation accuracy (the 'best' epoch); accuracies, tests "
        f"and intervals below are on the {an.eval_name} split unless labeled otherwise.",
        f"Paired comparisons made: {len(tested)}, each counted once; a difference is called "
        f"real only when its Holm-adjusted p (over all {len(tested)}) is below 0.05, and "
        f"'no difference' only when the equivalence test within ±{100 * an.margin:g} points "
        "passes.",
    ]))
    if n_fin == 0:
        doc.add(Para("No run finished: there is nothing to compare. The reasons are listed under "
                     "'Failed and unfinished runs'.", css="warning"))
        return
    if tested:
        mdes = [c.mde for c in tested if ok(c.mde)]
        verdicts = {v: sum(c.verdict == v for c in tested) for v in
                    ("a_better", "b_better", "equivalent", "no_difference", "not_testable")}
        doc.add(Para(
            (_power_text(mdes) if mdes else "Power: no comparison could be tested.")
            + f" Verdicts: {verdicts['a_better'] + verdicts['b_better']} real differences, "
            f"{verdicts['equivalent']} equivalent, {verdicts['no_difference']} inconclusive, "
            f"{verdicts['not_testable']} not testable."))
    degenerate = [k for k in an.groups if an.degenerate_runs(k)]
    if degenerate:
        doc.add(Para(
            "Degenerate runs (≥ 90% of the images predicted as one class that is < 90% of the "
            "data): " + ", ".join(an.label(k) for k in degenerate) + ". They are near-constant "
            "predictors, not classifiers; comparisons resting on them are not testable under "
            "this budget.", css="warning"))
    if an.split == "val":
        doc.add(Para("This study has no test split: the evaluation split is the validation split "
                     "that also selected the checkpoints, so its accuracies are optimistic.",
                     css="warning"))
    if an.max_seeds() < MIN_SEEDS_FOR_VARIANCE:
        one = an.max_seeds() == 1
        doc.add(Para(f"With {an.max_seeds()} seed(s) per model, seed variance is "
                     + ("not estimated: each test compares two trained runs, not two "
                        "architectures, and run-to-run variance is not in it." if one else
                        "barely estimated (one or two degrees of freedom): intervals are wide.")
                     + f" Use {MIN_SEEDS_FOR_VARIANCE} or more seeds.", css="note"))
    base = _majority_baseline(an)
    top = plan.top
    if base is None:
        doc.add(Para("The majority-class baseline cannot be computed: no run recorded per-image "
                     f"targets on the {an.eval_name} split.", css="warning"))
    elif top is not None:
        rate, cls, k, n = base
        acc, low, high, method = an.accuracy_ci(top)
        line = (f"Best model (highest mean validation accuracy): {an.label(top)}, "
                f"{an.eval_name} accuracy {pct(acc)} (95% CI {ci_text(low, high)}, {method}); "
                f"majority-class baseline (always '{cls}'): {pct(rate)} ({k}/{n}).")
        if ok(low) and low > rate:
            doc.add(Para(line + " The best model clearly beats the baseline (its CI lies above "
                         "it)."))
        else:
            doc.add(Para(line + " The best model does NOT clearly beat the majority-class "
                         f"baseline on the {an.eval_name} split: its 95% CI reaches down to "
                         "the baseline, so this study's comparisons say little about the "
                         "architectures. Train longer or on more data before drawing conclusions.",
                         css="warning"))


# ---------------------------------------------------------------------------- depth per family
def depth(doc: Document, an: Analysis, plan: Plan, fig_dir: Path, written: set) -> None:
    doc.add(Heading("Depth comparison per family"))
    doc.add(Para("Each family at its depths under one recipe. 'Selected checkpoint' is the epoch "
                 "with the best validation accuracy; 'last epoch' is the end of training. Values "
                 "are mean ± sample sd over seeds (no sd with one seed); train loss is the epoch "
                 "mean over samples, train acc the running accuracy during the epoch. Balanced "
                 "accuracy is the mean per-class recall; macro-F1 the mean per-class F1."))
    ev = an.eval_name
    px = _img_size_text(an)
    for fam in an.families():
        keys = an.models_in(fam)
        if not keys:
            continue
        doc.add(Heading(family_display(fam), level=3))
        for which, label in (("best", "selected checkpoint (best validation epoch)"),
                             ("last", "last epoch")):
            header = (["model", _params_header(an), f"GMACs at {px}", "runs", "epoch",
                       "train loss", "train acc", "val acc"]
                      + (["test acc"] if an.split == "test" else [])
                      + [f"{ev} balanced acc", f"{ev} macro-F1", f"{ev} acc 95% CI"])
            rows = []
            for key in keys:
                runs = an.finished(key)
                any_run = an.groups[key][0]
                head = [an.label(key), params_text(any_run.params), gmacs_text(any_run.macs),
                        _runs_cell(an, key)]
                if not runs:
                    reasons = "; ".join(sorted({r.reason or r.status for r in an.groups[key]}))
                    rows.append(head + [f"no finished run: {reasons}"]
                                + ["–"] * (len(header) - len(head) - 1))
                    continue
                epochs = "/".join(str(r.checkpoint(which).get("epoch", "?")) for r in runs)
                acc, low, high, _ = an.accuracy_ci(key, which)
                cells = [epochs,
                         mean_sd_text([r.checkpoint(which).get("train_loss") for r in runs],
                                      "loss"),
                         mean_sd_text([r.checkpoint(which).get("train_acc") for r in runs]),
                         mean_sd_text([r.accuracy(which, "val") for r in runs])]
                if an.split == "test":
                    cells.append(mean_sd_text([r.accuracy(which, "test") for r in runs]))
                cells += [_class_means(an, runs, which, "balanced_accuracy"),
                          _class_means(an, runs, which, "macro_f1"), ci_text(low, high)]
                rows.append(head + cells)
            doc.add(Table(header, rows, caption=f"{family_display(fam)}: {label}; CI: {ACC_CI}"))
        comps = plan.depth.get(fam, [])
        if comps:
            doc.add(_comparison_table(an, comps, f"{family_display(fam)}: deeper vs shallower, "
                                                 f"{ev} accuracy at the selected checkpoint"))
    points = []
    for key in an.groups:
        if key[1] != BASE or not an.finished(key):
            continue
        acc, low, high, _ = an.accuracy_ci(key)
        macs = an.groups[key][0].macs
        if ok(acc) and ok(low) and ok(macs) and macs > 0:
            points.append((display_name(key[0]), macs / 1e9, 100 * acc, 100 * low, 100 * high))
    if points:
        name = "accuracy_vs_gmacs.png"
        F.accuracy_vs_cost(points, fig_dir / name, ylabel=f"{ev} accuracy (%)")
        written.add(name)
        doc.add(Figure(f"figures/{name}", f"{ev.capitalize()} accuracy at the selected checkpoint "
                                          f"against GMACs per image at {px}, with 95% CIs "
                                          f"({ACC_CI})."))


# ----------------------------------------------------------------------------------- ablations
def se(doc: Document, an: Analysis, plan: Plan) -> None:
    doc.add(Heading("SE ablation (SE-ResNet vs ResNet at the same depth)"))
    if not plan.se:
        doc.add(Para("Not run in this study: it needs resnetN and seresnetN at the same depth."))
        return
    rows = [[c.a[0].removeprefix("seresnet"), pct(an.accuracy_ci(c.b)[0]),
             pct(an.accuracy_ci(c.a)[0])] + c.row() for c in plan.se]
    doc.add(Table(["depth", f"ResNet {an.eval_name} acc", f"SE-ResNet {an.eval_name} acc"]
                  + COMPARISON_HEADER, rows,
                  caption="Δ = SE-ResNet − ResNet, selected checkpoints, paired by seed and image; "
                          f"Holm over all {plan.se[0].m} comparisons"))


def _variant_desc(an: Analysis, key) -> str:
    runs = an.groups.get(key, [])
    cfg = (runs[0].result.get("config") or {}) if runs else {}
    opts = cfg.get("model_kwargs") if isinstance(cfg.get("model_kwargs"), dict) else cfg
    shown = {k: opts[k] for k in ("key_drop", "key_drop_mode", "key_drop_schedule", "se_drop")
             if isinstance(opts, dict) and opts.get(k) not in (None, 0, 0.0)}
    return key[1] + (f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else "")


def variants(doc: Document, an: Analysis, plan: Plan) -> None:
    doc.add(Heading("Key-dropout ablation (variant vs base of the same model)"))
    if not plan.variants:
        doc.add(Para("Not run in this study: no model has a variant beside its base run."))
        return
    ev = an.eval_name
    runs = [r for c in plan.variants for k in (c.a, c.b) for r in an.finished(k)]
    with_overfit = _has_train_eval(runs)
    doc.add(Para("Key dropout targets overfitting. The table gives the variant's effect on "
                 f"{ev} accuracy (Δ with its test) and, when the runs recorded it, on "
                 f"overfitting = train accuracy of the selected checkpoint in eval mode on a "
                 f"fixed train subset − {ev} accuracy (lower is less overfitting). For SE-ResNet "
                 "the 'key' is the SE channel gate (se_drop)."
                 + ("" if with_overfit else " The runs did not record the eval-mode train "
                    "accuracy, so overfitting is not shown (the running train accuracy is "
                    "measured in train mode and would not be comparable).")))
    rows = []
    for c in plan.variants:
        ra = {r.seed: r for r in an.finished(c.a)}
        rb = {r.seed: r for r in an.finished(c.b)}
        common = sorted(set(ra) & set(rb))
        row = [an.label(c.a, display_name(c.a[0])), _variant_desc(an, c.a), str(len(c.seeds)),
               pct(an.accuracy_ci(c.b)[0]), pct(an.accuracy_ci(c.a)[0]), pts(c.delta),
               pts_ci(c.low, c.high), c.method or "–", fmt_p(c.p), fmt_p(c.p_holm)]
        if with_overfit:
            ov_a = [_overfit(an, ra[s]) for s in common]
            ov_b = [_overfit(an, rb[s]) for s in common]
            d_ov = [x - y for x, y in zip(ov_a, ov_b) if ok(x) and ok(y)]
            row += [mean_sd_text(ov_b, "pts"), mean_sd_text(ov_a, "pts"),
                    mean_sd_text(d_ov, "pts")]
        rows.append(row + [c.words()])
    header = ["model", "variant", "seeds", f"base {ev} acc", f"variant {ev} acc",
              "Δ acc (points)", "95% CI", "method", "p", "p (Holm)"]
    if with_overfit:
        header += ["overfit base (points)", "overfit variant (points)", "Δ overfit (points)"]
    doc.add(Table(header + ["result (accuracy)"], rows,
                  caption="Δ = variant − base, paired by seed and image; Holm over all "
                          f"{plan.variants[0].m} comparisons"
                          + ("; overfit mean ± sd over seeds" if with_overfit else "")))


# -------------------------------------------------------------------------------------- figures
def curves(doc: Document, an: Analysis, fig_dir: Path, written: set) -> None:
    doc.add(Heading("Learning curves"))
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
                       "accuracy per epoch; line = mean over seeds, band = min–max over seeds "
                       "(n = seeds)."))
    if not any_fig:
        doc.add(Para("No finished run has per-epoch records (metrics.csv)."))


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
    for fam in an.families():
        key = an.selected([k for k in an.groups if an.groups[k][0].family == fam])
        if key is None:
            continue
        mats = [m for m in (_confusion(an, r, len(classes)) for r in an.finished(key))
                if m is not None]
        if not mats or any(m.shape != mats[0].shape for m in mats):
            continue
        total = np.sum(mats, axis=0)
        labels = classes if len(classes) == total.shape[0] else [str(i) for i in
                                                                 range(total.shape[0])]
        name = f"confusion_{fam}.png"
        title = f"{group_label(key)} ({an.eval_name}, {len(mats)} seed(s) summed)"
        F.confusion_matrix(total, labels, title, fig_dir / name)
        written.add(name)
        any_fig = True
        doc.add(Figure(f"figures/{name}",
                       f"{family_display(fam)}: {an.label(key)}, the family's highest mean "
                       f"validation accuracy; {an.eval_name} images, selected checkpoint, "
                       f"counts summed over {len(mats)} seed(s), colour = fraction of true class."))
    for key in an.groups:
        per_run = [r.class_metrics("best", an.split) for r in an.finished(key)]
        per_run = [m["recall"] for m in per_run if m]
        if per_run and len(classes) and all(len(x) == len(per_run[0]) for x in per_run):
            recall_rows.append([an.label(key), str(len(per_run))] + [
                mean_sd_text([x[i] for x in per_run]) for i in range(len(per_run[0]))])
    if recall_rows:
        width = max(len(r) for r in recall_rows) - 2
        names = classes if len(classes) == width else [str(i) for i in range(width)]
        doc.add(Table(["model", "runs"] + [f"recall: {c}" for c in names], recall_rows,
                      caption=f"Per-class recall on the {an.eval_name} split at the selected "
                              "checkpoint, mean ± sd over seeds"))
    if not any_fig:
        doc.add(Para(f"No finished run recorded a confusion matrix on the {an.eval_name} split."))


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
    doc.add(Table(["model", _params_header(an), f"GMACs / image at {_img_size_text(an)}"]
                  + (["GMACs / image at 224 px"] if at_224 else [])
                  + ["train images/s", "inference images/s", "peak memory (MB)", "run time (s)",
                     "runs averaged"], rows,
                  caption="Measured during each run (result.json costs), mean over finished runs; "
                          f"device: {', '.join(sorted(devices)) or 'not recorded'}"))


# --------------------------------------------------------------------------------------- claims
def claims(doc: Document, an: Analysis, plan: Plan) -> None:
    doc.add(Heading("What holds of the source study's claims"))
    doc.add(Bullets([c.text() for c in judge_claims(an, plan)]))


def source(doc: Document, an: Analysis) -> None:
    doc.add(Heading("Beside the source study (flowers)"))
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
    doc.add(Table(["model", "source train loss (published)", "source train acc (published)",
                   "source val acc (published)", "source best-val epoch: val acc",
                   "source last-epoch val acc", "ours: val acc (selected)",
                   "ours: val acc (last)", "ours: test acc (selected)", "our runs"], rows,
                  caption="The source's published table (per-column best over 100 epochs, one run "
                          "each), what its records give at one epoch, and this study (mean ± sd "
                          "over seeds)"))
    se34, se50 = src.get("seresnet34"), src.get("seresnet50")
    off = se50.not_whole_counts() if se50 else 0
    mismatch = [f"{display_name(m)} (published {pct(s.published['val_acc'], 2)}, records' best "
                f"{pct(s.best_val_epoch['val_acc'], 2)} at epoch {s.best_val_epoch['epoch']})"
                for m, s in src.items()
                if abs(s.published["val_acc"] - s.best_val_epoch["val_acc"]) > 5e-4]
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
        f"One run per model on {SOURCE_VAL_IMAGES} validation images: a single accuracy near 75% "
        "has a standard error of about 2.3 points, so most gaps in the source table are noise.",
    ]
    if mismatch:
        notes.append("Published values that differ from the records' best validation epoch: "
                     + "; ".join(mismatch) + ".")
    notes.append("Our validation images are not the source's (our split manifest, possibly with "
                 "a test split), so the columns are comparable in protocol, not image by image.")
    doc.add(Bullets(notes))


# ----------------------------------------------------------------------------------------- runs
def run_tables(doc: Document, an: Analysis) -> None:
    doc.add(Heading("Failed and unfinished runs"))
    bad = [r for r in an.study.runs if not r.finished]
    if not bad:
        doc.add(Para(f"None: all {len(an.study.runs)} runs finished."))
    else:
        doc.add(Table(["run", "model", "variant", "seed", "status", "epoch", "reason"],
                      [[r.name, display_name(r.model), r.variant, str(r.seed), r.status,
                        str(r.failure_epoch) if r.failure_epoch is not None else "–",
                        r.reason or "–"] for r in bad]))
    doc.add(Heading("All runs"))
    rows = []
    for group in an.groups.values():
        for r in group:
            status = r.status + (" (degenerate)" if r.finished and r.degenerate(an.split) else "")
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
            cells += [pct(metrics.get("balanced_accuracy")), pct(metrics.get("macro_f1")),
                      f"{r.seconds:.0f}" if ok(r.seconds) else "–"]
            rows.append(cells)
    doc.add(Table(["run", "status", "best epoch", "val acc (selected)", "test acc (selected)",
                   "val acc (last)", "test acc (last)", f"{an.eval_name} balanced acc (selected)",
                   f"{an.eval_name} macro-F1 (selected)", "seconds"], rows,
                  caption="Every run: accuracy with correct/total and its 95% Wilson interval; "
                          "also in results.csv"))


# -------------------------------------------------------------------------------------- methods
def methods(doc: Document, an: Analysis) -> None:
    m = sum(c.test is not None for c in an.comparisons)
    doc.add(Heading("Methods"))
    doc.add(Bullets([
        "Selection: the checkpoint is the epoch with the best validation accuracy; the test split "
        "is evaluated once per checkpoint (selected and last). No per-column maxima.",
        "Single accuracies: Wilson score 95% interval on correct/total "
        "(scipy.stats.binomtest(k, n).proportion_ci(method='wilson')); a group's mean over "
        "several seeds: the crossed random-effects t below, on the per-image outcomes.",
        "Two models, one seed, the same images: b = images only A got right, c = only B; "
        "Δ = (b − c)/n; exact McNemar p = scipy.stats.binomtest(b, b + c, 0.5).pvalue; interval: "
        "Clopper–Pearson for b/(b + c) mapped to Δ given b + c, so interval and test agree. With "
        "b + c = 0 the interval is ± the Clopper–Pearson upper bound of the disagreement rate.",
        "Two models, several seeds: per-image, per-seed differences d[s, i] ∈ {−1, 0, 1} under "
        "the crossed random-effects model d = μ + image + seed + ε; Var(μ̂) = (MS_img + MS_seed "
        "− MS_res)/(nS) with a negative seed component set to zero, Satterthwaite degrees of "
        "freedom, t interval and t test (the same t for both). If no variance can be estimated "
        "(every difference equal), the exact sign test over images on the seed-averaged "
        "differences.",
        f"Multiple comparisons: Holm over all {m} distinct comparisons in this report (each "
        "counted once, whichever sections show it). 'A beats B' only when the Holm-adjusted p is "
        "below 0.05.",
        f"Equivalence: two one-sided tests (TOST) that |Δ| < {100 * an.margin:g} points (study "
        "option report.equivalence_margin), Holm-adjusted over the same comparisons; with one "
        "seed on an exact bound for Δ (Clopper–Pearson boxes for the disagreement rate and for b/(b + c), "
        "Bonferroni-split), because the conditional interval narrows as disagreement falls; with "
        "several, on the same t. 'Equivalent' / 'does not help' only when it passes; otherwise "
        "'inconclusive', with the test-set size or seed count that would decide it.",
        "Detectable difference: the |Δ| found with 80% power by a two-sided test at α/m (the "
        "Holm level of the smallest p): (z + z₀.₈)·√(r/n) with one seed at the observed "
        "disagreement rate r (at least (z + z₀.₈)²/n), (t + t₀.₈)·se with several; capped at "
        "100 points. Intervals of Δ are clipped to [−100, +100] points.",
        "Degenerate run: ≥ 90% of the evaluation images predicted as one class that is < 90% of "
        "the images; marked in every table; comparisons resting on one are 'not testable under "
        "this budget' (they still count in Holm's m).",
        f"Converged: last-epoch train accuracy ≥ {100 * CONVERGED_TRAIN_ACC:.0f}% (mean over "
        "seeds; the eval-mode train-subset accuracy when recorded). Overfitting: eval-mode "
        "accuracy of the selected checkpoint on a fixed train subset (the same images in every "
        "run) − evaluation accuracy; not shown when runs did not record it.",
        "Majority-class baseline: the share of the most frequent class among the evaluation "
        "images (from the recorded targets). Balanced accuracy: mean per-class recall over the "
        "classes present; macro-F1: mean per-class F1.",
        "Everything here is recomputed from the run folders (result.json's per-image predictions) "
        "by `depthbench report DIR`; comparisons.csv carries b, c and n for every row.",
    ]))
