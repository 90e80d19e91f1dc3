"""The report's first screen and what follows it directly: the answer at a glance (one sentence
of counts, the verdict figure beside accuracy against GMACs at 224 px, and the notes that qualify
them), the table of every model and variant, and the source study's claims with one-word
verdicts."""

from __future__ import annotations

from pathlib import Path

from depthbench.report import figures as F
from depthbench.report import stats as S
from depthbench.report.analysis import (
    MIN_SEEDS_FOR_VARIANCE,
    QUESTIONS,
    Analysis,
    Plan,
    group_label,
)
from depthbench.report.claims import judge_claims
from depthbench.report.document import Details, Document, Figure, FigureRow, Heading, Para, Table
from depthbench.report.fmt import ci_text, mean, mean_sd_text, ok, params_text, pct

ACC_CI = ("Wilson score interval with one seed; with several, the wider of the crossed "
          "random-effects t (images × seeds) and the seed-level t")
VERDICT_FIGURE = "verdicts.png"


def acc_ci_text(an: Analysis) -> str:
    """How the accuracies' intervals were made (`ACC_CI`; the cells' method when
    cross-validated)."""
    if not an.cv:
        return ACC_CI
    methods = sorted({an.accuracy_ci(k)[3] for k in an.groups} - {""})
    return f"{', '.join(methods) or 'none'} over each model's (repeat, fold, seed) cells"


def delta_ci_text(an: Analysis) -> str:
    """The comparisons' methods, for captions."""
    if not an.cv:
        return "exact McNemar with one seed, crossed and seed-level t with several"
    methods = sorted({c.method for c in an.comparisons} - {""})
    return f"{', '.join(methods) or 'none'} over the (repeat, fold, seed) cells"


def verdict_groups(plan: Plan) -> list[tuple[str, list[F.VerdictRow]]]:
    """The verdict figure's rows: every comparison once, under its question (in points)."""
    # rows named without the degenerate marks (the verdict's colour and word carry them)
    return [(QUESTIONS[q], [F.VerdictRow(f"{group_label(c.a)} vs {group_label(c.b)}",
                                         100 * c.delta, 100 * c.low, 100 * c.high, 100 * c.mde,
                                         c.verdict, c.word) for c in comps])
            for q, comps in plan.by_question()]


def at_a_glance(doc: Document, an: Analysis, plan: Plan, fig_dir: Path, written: set) -> None:
    doc.add(Heading("At a glance"), Para(_lead(an), css="lead"))
    figs = []
    if an.comparisons:
        n = F.verdict_forest(verdict_groups(plan), 100 * an.margin, fig_dir / VERDICT_FIGURE)
        written.add(VERDICT_FIGURE)
        figs.append(Figure(
            f"figures/{VERDICT_FIGURE}",
            f"Every comparison (Δ = A − B, {an.eval_name} accuracy; {S.CONFIDENCE:.0%} CI by "
            f"the row's method: {delta_ci_text(an)}): blue = a real difference (Holm over all "
            f"{n}), green = shown equivalent within the shaded ±{100 * an.margin:g} points, grey "
            "= inconclusive, red = not testable (a degenerate run, a run that did not learn, or "
            "runs that cannot be paired); grey ticks: the difference each could detect; an "
            "arrow: the interval goes on past the axis, to the value printed beside it.",
            alt=f"Verdicts at a glance: {n} comparisons"))
    acc = _accuracy_figure(an, fig_dir, written)
    if acc:
        figs.append(acc)
    if len(figs) == 2:
        doc.add(FigureRow(figs, widths=(0.6, 0.4)))
    else:
        doc.add(*figs)
    doc.add(*_notes(an, plan))


def _lead(an: Analysis) -> str:
    """The counts, in this order: the runs, which of them learned, then the comparisons' verdicts
    (a difference is called real only after the reader knows what it rests on)."""
    st, t = an.study, an.tally()
    fin, k = sum(r.finished for r in st.runs), an.max_seeds()
    if an.cv:
        head = (f"{len(st.runs)} runs ({fin} finished) of {len(an.groups)} models and variants, "
                f"cross-validated ({an.design_text()}); each fold's test split, "
                f"{an.images() or '?'} images in all.")
    else:
        head = (f"{len(st.runs)} runs ({fin} finished) of {len(an.groups)} models and variants, "
                f"up to {k} finished seed{'s' if k != 1 else ''} each; {an.eval_name} split, "
                f"{an.images() or '?'} images.")
    learned = _learned_text(an)
    head += f" {learned}" if learned else ""
    if not an.comparisons:
        return head + " No paired comparison could be made."
    real = [c for c in an.comparisons if c.winner()]
    named = "; ".join(c.beats() for c in real[:4]) + ("; …" if len(real) > 4 else "")
    budget = sum(bool(c.unlearned) for c in an.comparisons)
    return (head + f" {len(an.comparisons)} paired comparisons, Holm-corrected together: "
            f"{t['a_better'] + t['b_better']} real difference(s)"
            + (f" ({named})" if real else "")
            + f", {t['equivalent']} shown equivalent within ±{100 * an.margin:g} points, "
            f"{t['inconclusive']} inconclusive, {t['not_testable']} not testable"
            + (f" ({budget} resting on runs that did not learn)" if budget else "") + ".")


def _learned_text(an: Analysis) -> str:
    """Which finished runs beat the majority class ('' when no run recorded its labels)."""
    base = majority_baseline(an)
    judged = [r for r in an.study.runs if r.finished and r.learned(an.split) is not None]
    if base is None or not judged:
        return ""
    rate, cls = base[:2]
    good = sum(bool(r.learned(an.split)) for r in judged)
    text = (f"The majority class ('{cls}') is {pct(rate)} of the {an.eval_name} images; "
            + (f"every one of the {good} runs beats it" if good == len(judged) else
               f"{good} of {len(judged)} runs beat it")
            + f" ({S.CONFIDENCE:.0%} Wilson interval above it)")
    bad = _unlearned(an)
    if not good:
        return text + ": no run learned, so no comparison can decide anything."
    return text + (f"; did not learn: {', '.join(bad)}." if bad else ".")


def _accuracy_figure(an: Analysis, fig_dir: Path, written: set) -> Figure | None:
    points = []
    at_224 = all(r.macs_224 is not None for r in an.study.runs if r.finished)
    for key in an.groups:
        acc, low, high, _ = an.accuracy_ci(key)
        g = an.gmacs_224(key)
        if an.finished(key) and ok(acc) and ok(low) and g:
            points.append((group_label(key), g, 100 * acc, 100 * low, 100 * high))
    if not points:
        return None
    name = "accuracy_vs_gmacs.png"
    px = "224 px" if at_224 else "each run's image size"
    F.accuracy_vs_cost(points, fig_dir / name, ylabel=f"{an.eval_name} accuracy (%)",
                       xlabel=f"GMACs per image at {px}")
    written.add(name)
    return Figure(f"figures/{name}", f"{an.eval_name.capitalize()} accuracy at the selected "
                                     f"checkpoint against GMACs per image at {px} (log scale), "
                                     f"{S.CONFIDENCE:.0%} CI ({acc_ci_text(an)}). GMACs are "
                                     f"rounded to {F.GMACS_DIGITS} significant figures, so "
                                     "models of equal cost share a position.")


def _notes(an: Analysis, plan: Plan) -> list[Para]:
    st = an.study
    baseline = _baseline_note(an, plan)  # first: what the comparisons below rest on
    out = [baseline] if baseline else []
    mdes = [c.mde for c in an.comparisons if ok(c.mde)]
    if mdes:
        lo, hi = 100 * min(mdes), 100 * max(mdes)
        span = f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f} to {hi:.1f}"
        out.append(Para(f"Power: a comparison here detects a true difference of about {span} "
                        f"points with {S.POWER:.0%} power at the Holm-corrected level; smaller "
                        "real differences would mostly go unnoticed.", css="note"))
    if not any(r.finished for r in st.runs):
        out.append(Para("No run finished: there is nothing to compare. The reasons are under "
                        "'Runs'.", css="warning"))
    degenerate = [k for k in an.groups if an.degenerate_runs(k)]
    if degenerate:
        out.append(Para(
            f"Degenerate runs (≥ {S.DEGENERATE_SHARE:.0%} of the images predicted as one class "
            f"that is < {S.DEGENERATE_SHARE:.0%} of the data): "
            + ", ".join(an.label(k) for k in degenerate) + ". They are near-constant "
            "predictors, not classifiers; comparisons resting on them are not testable under "
            "this budget.", css="warning"))
    if an.split == "val":
        out.append(Para("This study has no test split: the evaluation split is the validation "
                        "split that also selected the checkpoints, so its accuracies are "
                        "optimistic.", css="warning"))
    out += _seed_notes(an)
    if st.left_out:
        out.append(Para(f"Left out: {len(st.left_out)} run folder(s) that study.yaml no longer "
                        f"lists ({', '.join(r.name for r in st.left_out)}); this report covers "
                        "the study as it stands.", css="note"))
    return out


def _seed_notes(an: Analysis) -> list[Para]:
    k = an.max_seeds()
    if not k or k >= MIN_SEEDS_FOR_VARIANCE or an.cv:  # each cell trains with a seed of its own
        return []
    if k == 1:
        text = ("With 1 seed per model, seed variance is not estimated: each test compares two "
                "trained runs, not two architectures, and run-to-run variance is not in it.")
    else:
        text = ("With 2 seeds per model, seed variance is barely estimated (one degree of "
                "freedom): a difference counts as real only when both the images and the two "
                "runs bear it out, so little can be decided.")
    return [Para(text + f" Use {MIN_SEEDS_FOR_VARIANCE} or more seeds.", css="note")]


def _unlearned(an: Analysis) -> list[str]:
    """'SE-ResNet-18 (2 of 2 seeds)': each model or variant with runs that did not learn."""
    out = []
    for key in an.groups:
        bad, fin = len(an.unlearned_runs(key)), len(an.finished(key))
        if bad:
            out.append(group_label(key) + (f" ({bad} of {fin} seeds)" if fin > 1 else ""))
    return out


def _baseline_note(an: Analysis, plan: Plan) -> Para | None:
    """The majority-class baseline, the runs that did not beat it, and whether the best model
    does."""
    base = majority_baseline(an)
    if base is None:
        return Para("The majority-class baseline cannot be computed: no run recorded per-image "
                    f"targets on the {an.eval_name} split.", css="warning")
    rate, cls, k, n = base
    conf = f"{S.CONFIDENCE:.0%}"
    line = (f"Majority-class baseline (always '{cls}'): {pct(rate)} ({k}/{n}) of the "
            f"{an.eval_name} images; a run learned when the {conf} Wilson interval of its "
            "accuracy lies above it.")
    bad = _unlearned(an)
    if bad:
        line += (f" Did not learn: {', '.join(bad)}. Comparisons and claims resting on these "
                 "runs are not testable under this budget.")
    top = plan.top
    if top is None:
        return Para(line, css="warning" if bad else "")
    acc, low, high, method = an.accuracy_ci(top)
    line += (f" Best model (highest mean validation accuracy): {an.label(top)}, "
             f"{an.eval_name} accuracy {pct(acc)} ({conf} CI {ci_text(low, high)}, {method}).")
    if ok(low) and low > rate:
        return Para(line + " The best model clearly beats the baseline (its CI lies above it).",
                    css="warning" if bad else "")
    return Para(line + " The best model does NOT clearly beat the majority-class baseline on "
                f"the {an.eval_name} split: its {conf} CI reaches down to the baseline, so this "
                "study's comparisons say little about the architectures. Train longer or on "
                "more data before drawing conclusions.", css="warning")


def majority_baseline(an: Analysis):
    """(share, class name, count, total) of the most frequent class on the evaluation split (a
    cross-validated study: on a repeat's folds, every image once)."""
    for key in an.groups:
        for pool in an.pools(key):
            t = [y for r in pool for y in r.targets(an.split) or []]
            if t:
                top, count, total = S.majority(t)
                classes = an.study.classes
                name = classes[top] if top < len(classes) else str(top)
                return count / total, name, count, total
    return None


# ------------------------------------------------------------------------------------- models
def models_table(doc: Document, an: Analysis) -> None:
    """Every model and variant in one table; last-epoch columns only where they differ."""
    ev = an.eval_name
    differs = any(r.checkpoint("last").get("epoch") != r.checkpoint("best").get("epoch")
                  for r in an.study.runs if r.finished)
    header = (["model", "runs", "selected epoch", f"{ev} acc", f"{S.CONFIDENCE:.0%} CI", "balanced acc",
               "macro-F1", params_header(an), "GMACs at 224 px", "train min", "degenerate",
               "did not learn"]
              + (["last epoch", f"{ev} acc (last)"] if differs else []))
    rows = [_model_row(an, key, differs) for key in an.groups]
    doc.add(Heading("Models"), Table(
        header, rows, caption=f"Mean ± sd over {an.per} at the checkpoint validation selected; "
        f"{ev} split; CI: {acc_ci_text(an)}; did not learn: the {S.CONFIDENCE:.0%} Wilson "
        "interval of a run's accuracy does not lie above the majority-class rate"
        + ("; last-epoch columns where the last epoch is not the selected one" if differs
           else "")))


def _model_row(an: Analysis, key, differs: bool) -> list[str]:
    runs, fin = an.groups[key], an.finished(key)
    count = str(len(fin)) if len(fin) == len(runs) else f"{len(fin)} of {len(runs)}"
    gm = an.gmacs_224(key)
    head = [group_label(key), count]
    cost = [params_text(runs[0].params), f"{gm:.3g}" if gm else "–"]
    if not fin:
        return head + ["–"] * 5 + cost + ["–"] * 3 + (["–", "–"] if differs else [])
    acc, low, high, _ = an.accuracy_ci(key)
    cells = [epochs_text(fin, "best"),
             mean_sd_text([r.accuracy("best", an.split) for r in fin]), ci_text(low, high),
             mean_sd_text([(r.class_metrics("best", an.split) or {}).get("balanced_accuracy")
                           for r in fin]),
             mean_sd_text([(r.class_metrics("best", an.split) or {}).get("macro_f1")
                           for r in fin])]
    minutes = mean(r.seconds for r in fin)
    tail = [f"{minutes / 60:.1f}" if ok(minutes) else "–",
            _in_seeds(len(an.degenerate_runs(key)), len(fin)),
            _in_seeds(len(an.unlearned_runs(key)), len(fin))]
    if differs:
        same = all(r.checkpoint("last").get("epoch") == r.checkpoint("best").get("epoch")
                   for r in fin)
        tail += (["= selected", "= selected"] if same else [
            epochs_text(fin, "last"),
            mean_sd_text([r.accuracy("last", an.split) for r in fin])])
    return head + cells + cost + tail


def _in_seeds(bad: int, runs: int) -> str:
    """A flag over a model's seeds: 'no', 'yes' (every seed), or '1 of 3'."""
    return "no" if not bad else "yes" if bad == runs else f"{bad} of {runs}"


def epochs_text(runs, which: str) -> str:
    """The epochs of a checkpoint over runs: each (`2/3/2`), or their range beyond a few runs
    (a cross-validated group has dozens)."""
    epochs = [r.checkpoint(which).get("epoch") for r in runs]
    if len(epochs) <= 6 or any(not isinstance(e, int) for e in epochs):
        return "/".join(str(e if e is not None else "?") for e in epochs)
    lo, hi = min(epochs), max(epochs)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def params_header(an: Analysis) -> str:
    k = len(an.study.classes)
    return f"params ({k}-class head)" if k else "params"


# ------------------------------------------------------------------------------------- claims
def claims(doc: Document, an: Analysis, plan: Plan) -> None:
    judged = judge_claims(an, plan)
    doc.add(Heading("The source study's claims"), Table(
        ["claim", "verdict", "why"], [[c.claim, c.word, c.reason] for c in judged], wrap=(2,),
        caption="Each claim judged from the comparisons' verdicts (Holm-corrected); 'not "
                "testable (budget)': it rests on degenerate or unconverged runs, or on runs "
                "that did not beat the majority class"),
        Details([(f"{c.claim}: {c.word}", c.detail or c.reason) for c in judged]))

