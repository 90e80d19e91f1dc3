"""Build a study's report from its run records: results.csv, report.md, report.html, figures/.

Reads run folders only (records.py), never the engine. Selection is by validation; the paired
tests and intervals run on the evaluation split (test when the study has one, else validation,
flagged as optimistic). See shared/STATS.md for the methods and the exact words.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depthbench._io import atomic_write_text
from depthbench.report import figures as F
from depthbench.report import stats as S
from depthbench.report.document import (
    Bullets,
    Document,
    Figure,
    Heading,
    Para,
    Table,
    to_html,
    to_markdown,
)
from depthbench.report.records import FAMILIES, Run, Study, display_name, load_study, model_order
from depthbench.report.source import SOURCE_VAL_IMAGES, load_source

BASE = "base"
CONVERGED_TRAIN_ACC = 0.95  # "converged": last-epoch train accuracy (mean over seeds) at least this
MIN_SEEDS_FOR_VARIANCE = 3

RESULT_COLUMNS = [
    "model", "family", "variant", "seed", "status", "failure_epoch", "failure_reason", "params",
    "macs", "epochs_completed", "best_epoch",
    "best_train_loss", "best_train_acc", "best_val_acc", "best_val_correct", "best_val_total",
    "best_test_acc", "best_test_correct", "best_test_total",
    "last_epoch", "last_train_loss", "last_train_acc", "last_val_acc", "last_val_correct",
    "last_val_total", "last_test_acc", "last_test_correct", "last_test_total", "seconds", "run_dir",
]


# ----------------------------------------------------------------------------------- formatting
def _ok(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def pct(x, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%" if _ok(x) else "–"


def pts(x) -> str:
    return f"{100 * x:+.1f}" if _ok(x) else "–"


def fmt_p(p) -> str:
    if not _ok(p):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def mean_sd_text(values, kind: str = "acc") -> str:
    vals = [v for v in values if _ok(v)]
    if not vals:
        return "–"
    m, sd = S.mean_sd(vals)
    if _ok(sd) and sd < 1e-9 * max(1.0, abs(m)):  # equal values up to float rounding
        sd = 0.0
    if kind == "acc":
        return f"{100 * m:.1f}%" + (f" ± {100 * sd:.1f}" if len(vals) > 1 else "")
    if kind == "pts":
        return f"{100 * m:+.1f}" + (f" ± {100 * sd:.1f}" if len(vals) > 1 else "")
    return f"{m:.4g}" + (f" ± {sd:.2g}" if len(vals) > 1 else "")


def ci_text(low, high) -> str:
    return f"[{100 * low:.1f}, {100 * high:.1f}]" if _ok(low) and _ok(high) else "–"


def params_text(p) -> str:
    return f"{p / 1e6:.2f} M" if _ok(p) else "–"


def gmacs_text(m) -> str:
    return f"{m / 1e9:.3g}" if _ok(m) else "–"


def _mean(values):
    vals = [v for v in values if _ok(v)]
    return float(np.mean(vals)) if vals else float("nan")


# ---------------------------------------------------------------------------------- comparisons
@dataclass
class Comparison:
    """A vs B on the evaluation split, paired by seed and by image: Δ = acc(A) - acc(B)."""

    kind: str  # depth | se | variant | best
    a: tuple[str, str]  # (model, variant)
    b: tuple[str, str]
    seeds: list[int] = field(default_factory=list)
    delta: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    p: float = float("nan")
    p_holm: float = float("nan")
    ci_method: str = ""
    problem: str | None = None

    @property
    def testable(self) -> bool:
        return self.problem is None

    @property
    def label_a(self) -> str:
        return group_label(self.a)

    @property
    def label_b(self) -> str:
        return group_label(self.b)

    @property
    def significant(self) -> bool:
        return self.testable and (self.low > 0 or self.high < 0)

    def stat_text(self) -> str:
        return (f"Δ = {pts(self.delta)} points, 95% CI [{pts(self.low)}, {pts(self.high)}], "
                f"p = {fmt_p(self.p)}")

    def words(self) -> str:
        """STATS.md's words: "A beats B" only when the CI excludes 0."""
        if not self.testable:
            return f"not testable: {self.problem}"
        if self.low > 0:
            return f"{self.label_a} beats {self.label_b} ({self.stat_text()})"
        if self.high < 0:
            return f"{self.label_b} beats {self.label_a} ({self.stat_text()})"
        return f"no significant difference ({self.stat_text()})"

    def row(self) -> list[str]:
        return [f"{self.label_a} vs {self.label_b}", str(len(self.seeds)) if self.seeds else "0",
                pts(self.delta),
                f"[{pts(self.low)}, {pts(self.high)}]" if self.testable else "–",
                fmt_p(self.p), fmt_p(self.p_holm), self.words()]


COMPARISON_HEADER = ["A vs B", "seeds", "Δ = A − B (points)", "95% CI (points)",
                     "p (McNemar, Fisher-combined)", "p (Holm)", "result"]


def group_label(key: tuple[str, str]) -> str:
    model, variant = key
    return display_name(model) + ("" if variant == BASE else f" [{variant}]")


class Analysis:
    """The study's runs grouped by (model, variant), the evaluation split and every comparison."""

    def __init__(self, study: Study, n_boot: int = S.N_BOOT):
        self.study = study
        self.n_boot = n_boot
        self.groups: dict[tuple[str, str], list[Run]] = {}
        for r in sorted(study.runs, key=lambda r: (model_order(r.model), r.variant != BASE,
                                                   r.variant, r.seed)):
            self.groups.setdefault((r.model, r.variant), []).append(r)
        finished = [r for r in study.runs if r.finished]
        self.split = "test" if any(r.split("best", "test") for r in finished) else "val"
        self.comparisons: list[Comparison] = []

    # -- runs and values
    def finished(self, key) -> list[Run]:
        return [r for r in self.groups.get(key, []) if r.finished]

    def models_in(self, family: str, variant: str = BASE) -> list[tuple[str, str]]:
        return [k for k in self.groups if k[1] == variant and self.groups[k][0].family == family]

    def families(self) -> list[str]:
        seen = []
        for runs in self.groups.values():
            if runs[0].family not in seen:
                seen.append(runs[0].family)
        return seen

    def max_seeds(self) -> int:
        return max((len(self.finished(k)) for k in self.groups), default=0)

    def eval_acc(self, run: Run, which: str = "best"):
        return run.accuracy(which, self.split)

    def accuracy_ci(self, key, which: str = "best") -> tuple[float, float, float, str]:
        """Mean accuracy on the evaluation split with its 95% CI: Wilson for one seed, the
        hierarchical bootstrap (seeds, then images) for several."""
        runs = self.finished(key)
        if len(runs) == 1:
            s = runs[0].split(which, self.split) or {}
            if s.get("total"):
                low, high = S.wilson_ci(s["correct"], s["total"])
                return s["correct"] / s["total"], low, high, "Wilson"
            return float("nan"), float("nan"), float("nan"), ""
        outcomes = [r.outcomes(which, self.split) for r in runs]
        if not runs or any(o is None or o.size == 0 for o in outcomes):
            return _mean(self.eval_acc(r, which) for r in runs), float("nan"), float("nan"), ""
        est, low, high = S.hierarchical_bootstrap_ci(outcomes, n_boot=self.n_boot)
        return est, low, high, "hierarchical bootstrap"

    def selected(self, keys) -> tuple[str, str] | None:
        """The key with the highest mean validation accuracy at the selected checkpoint."""
        scored = [(_mean(r.accuracy("best", "val") for r in self.finished(k)), k) for k in keys]
        scored = [(s, k) for s, k in scored if _ok(s)]
        return max(scored, key=lambda t: t[0])[1] if scored else None

    def ranked(self, keys) -> list[tuple[str, str]]:
        scored = [(_mean(r.accuracy("best", "val") for r in self.finished(k)), k) for k in keys]
        return [k for s, k in sorted(((s, k) for s, k in scored if _ok(s)),
                                     key=lambda t: -t[0])]

    # -- paired comparisons
    def compare(self, kind: str, a, b) -> Comparison:
        c = Comparison(kind, a, b)
        self.comparisons.append(c)
        runs_a = {r.seed: r for r in self.finished(a)}
        runs_b = {r.seed: r for r in self.finished(b)}
        common = sorted(set(runs_a) & set(runs_b))
        if not common:
            c.problem = f"no seed where both {c.label_a} and {c.label_b} finished"
            return c
        oa, ob = [], []
        for s in common:
            x, y = runs_a[s].outcomes("best", self.split), runs_b[s].outcomes("best", self.split)
            if x is None or y is None:
                c.problem = f"seed {s} has no per-image predictions on {self.split}"
                return c
            if runs_a[s].targets(self.split) != runs_b[s].targets(self.split):
                c.problem = (f"seed {s}: the two runs were evaluated on different {self.split} "
                             "images (their split manifests differ)")
                return c
            oa.append(x)
            ob.append(y)
        c.seeds = common
        c.p = S.fisher_combine([S.mcnemar_exact(x, y)[2] for x, y in zip(oa, ob)])
        if len(common) == 1:
            c.delta, c.low, c.high = S.paired_bootstrap_ci(oa[0], ob[0], n_boot=self.n_boot)
            c.ci_method = "paired bootstrap over images"
        else:
            c.delta, c.low, c.high = S.hierarchical_bootstrap_ci(oa, ob, n_boot=self.n_boot)
            c.ci_method = "hierarchical bootstrap"
        return c

    def adjust(self) -> None:
        tested = [c for c in self.comparisons if c.testable]
        for c, p in zip(tested, S.holm([c.p for c in tested])):
            c.p_holm = p


# ------------------------------------------------------------------------------------ the build
def build_report(study_dir: str | Path, n_boot: int = S.N_BOOT) -> Path:
    """Write results.csv, report.md, report.html and figures/ into `study_dir`; return report.md.

    Reads the run records alone; raises `DepthbenchError` when the folder holds no run records.
    """
    study = load_study(study_dir)
    out = study.path
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.csv", results_csv(study))

    an = Analysis(study, n_boot=n_boot)
    plan = _plan_comparisons(an)
    an.adjust()

    doc = Document(f"depthbench report: {study.name}")
    written: set[str] = set()
    _summary(doc, an, plan)
    _depth_section(doc, an, plan, fig_dir, written)
    _se_section(doc, an, plan)
    _variant_section(doc, an, plan)
    _curves_section(doc, an, fig_dir, written)
    _confusion_section(doc, an, fig_dir, written)
    _cost_section(doc, an)
    _claims_section(doc, an, plan)
    if study.is_flowers:
        _source_section(doc, an)
    _runs_section(doc, an)
    _methods_section(doc, an)

    for stale in fig_dir.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    atomic_write_text(out / "report.md", to_markdown(doc))
    atomic_write_text(out / "report.html", to_html(doc))
    return out / "report.md"


def results_csv(study: Study) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in sorted(study.runs, key=lambda r: (model_order(r.model), r.variant != BASE,
                                               r.variant, r.seed)):
        row = {"model": r.model, "family": r.family, "variant": r.variant, "seed": r.seed,
               "status": r.status, "failure_epoch": r.failure_epoch,
               "failure_reason": r.reason if not r.finished else None,
               "params": r.params, "macs": r.macs,
               "epochs_completed": r.result.get("epochs_completed", len(r.metrics) or None),
               "best_epoch": r.result.get("best_epoch"), "seconds": r.seconds,
               "run_dir": r.name}
        for which in ("best", "last"):
            ck = r.checkpoint(which)
            if which == "last":
                row["last_epoch"] = ck.get("epoch")
            row[f"{which}_train_loss"] = ck.get("train_loss")
            row[f"{which}_train_acc"] = ck.get("train_acc")
            for split in ("val", "test"):
                s = ck.get(split) or {}
                row[f"{which}_{split}_acc"] = r.accuracy(which, split)
                row[f"{which}_{split}_correct"] = s.get("correct")
                row[f"{which}_{split}_total"] = s.get("total")
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


@dataclass
class _Plan:
    depth: dict[str, list[Comparison]] = field(default_factory=dict)
    se: list[Comparison] = field(default_factory=list)
    variants: list[Comparison] = field(default_factory=list)
    best: Comparison | None = None
    top: tuple[str, str] | None = None


def _plan_comparisons(an: Analysis) -> _Plan:
    plan = _Plan()
    for fam in an.families():
        keys = [k for k in an.models_in(fam) if an.finished(k)]
        pairs = list(zip(keys[1:], keys[:-1]))  # each depth against the next shallower one
        if len(keys) >= 3:
            pairs.append((keys[-1], keys[0]))  # deepest against shallowest
        plan.depth[fam] = [an.compare("depth", a, b) for a, b in pairs]
    for depth in ("18", "34", "50"):
        a, b = (f"seresnet{depth}", BASE), (f"resnet{depth}", BASE)
        if a in an.groups and b in an.groups:
            plan.se.append(an.compare("se", a, b))
    for (model, variant) in an.groups:
        if variant != BASE and (model, BASE) in an.groups:
            plan.variants.append(an.compare("variant", (model, variant), (model, BASE)))
    bases = [k for k in an.groups if k[1] == BASE]
    ranked = an.ranked(bases)
    plan.top = ranked[0] if ranked else None
    se50 = ("seresnet50", BASE)
    if se50 in an.groups and an.finished(se50) and len(ranked) >= 2:
        other = ranked[1] if ranked[0] == se50 else ranked[0]
        plan.best = an.compare("best", se50, other)
    return plan


# ------------------------------------------------------------------------------------- sections
def _eval_name(an: Analysis) -> str:
    return "test" if an.split == "test" else "validation"


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
                                        "optimizer", "img_size", "val", "test")
             if cfg.get(k) is not None]
    return "Recipe (first run's resolved config): " + ", ".join(shown) + "."


def _summary(doc: Document, an: Analysis, plan: _Plan) -> None:
    st = an.study
    runs = st.runs
    n_fin = sum(r.finished for r in runs)
    bad = [r for r in runs if not r.finished]
    doc.add(Heading("Summary"))
    seeds = sorted({r.seed for r in runs})
    doc.add(Bullets([
        f"Study folder: {st.path.name}; {len(runs)} runs ({n_fin} finished, {len(bad)} not "
        f"finished: see 'Failed and unfinished runs'); seeds: {', '.join(map(str, seeds))}.",
        f"Classes ({len(st.classes)}): {', '.join(st.classes) or 'unknown'}.",
        _recipe_line(an),
        f"Checkpoints are selected by validation accuracy (the 'best' epoch); accuracies, tests "
        f"and intervals below are on the {_eval_name(an)} split unless labeled otherwise.",
        f"Paired comparisons made: {sum(c.testable for c in an.comparisons)} (Holm-adjusted "
        "p-values are given beside the raw ones).",
    ]))
    if n_fin == 0:
        doc.add(Para("No run finished: there is nothing to compare. The reasons are listed under "
                     "'Failed and unfinished runs'.", css="warning"))
        return
    if an.split == "val":
        doc.add(Para("This study has no test split: the evaluation split is the validation split "
                     "that also selected the checkpoints, so its accuracies are optimistic.",
                     css="warning"))
    if an.max_seeds() < MIN_SEEDS_FOR_VARIANCE:
        doc.add(Para(f"With {an.max_seeds()} seed(s) per model, seed variance is not estimated: "
                     "intervals reflect test-set sampling (and the few seeds there are), not the "
                     f"spread of training runs. Use {MIN_SEEDS_FOR_VARIANCE} or more seeds for it.",
                     css="note"))
    base = _majority_baseline(an)
    top = plan.top
    if base is None:
        doc.add(Para("The majority-class baseline cannot be computed: no run recorded per-image "
                     f"targets on the {_eval_name(an)} split.", css="warning"))
    elif top is not None:
        rate, cls, k, n = base
        acc, low, high, method = an.accuracy_ci(top)
        line = (f"Best model (highest mean validation accuracy): {group_label(top)}, "
                f"{_eval_name(an)} accuracy {pct(acc)} (95% CI {ci_text(low, high)}, {method}); "
                f"majority-class baseline (always '{cls}'): {pct(rate)} ({k}/{n}).")
        if _ok(low) and low > rate:
            doc.add(Para(line + " The best model clearly beats the baseline (its CI lies above "
                         "it)."))
        else:
            doc.add(Para(line + " The best model does NOT clearly beat the majority-class "
                         f"baseline on the {_eval_name(an)} split: its 95% CI reaches down to "
                         "the baseline, so this study's comparisons say little about the "
                         "architectures. Train longer or on more data before drawing conclusions.",
                         css="warning"))


def _seeds_cell(an: Analysis, key) -> str:
    runs = an.groups.get(key, [])
    fin = [r for r in runs if r.finished]
    if len(fin) == len(runs):
        return str(len(fin))
    return f"{len(fin)} of {len(runs)} ({len(runs) - len(fin)} not finished)"


def _depth_section(doc, an: Analysis, plan: _Plan, fig_dir: Path, written: set) -> None:
    doc.add(Heading("Depth comparison per family"))
    doc.add(Para("Each family at its depths under one recipe. 'Selected checkpoint' is the epoch "
                 "with the best validation accuracy; 'last epoch' is the end of training. Values "
                 "are mean ± sample sd over seeds (no sd with one seed); train loss is the epoch "
                 "mean over samples. The CI column is the 95% interval of the "
                 f"{_eval_name(an)} accuracy: Wilson with one seed, hierarchical bootstrap with "
                 "several."))
    ev = _eval_name(an)
    for fam in an.families():
        keys = an.models_in(fam)
        if not keys:
            continue
        doc.add(Heading(FAMILIES.get(fam, fam), level=3))
        for which, label in (("best", "selected checkpoint (best validation epoch)"),
                             ("last", "last epoch")):
            rows = []
            for key in keys:
                runs = an.finished(key)
                any_run = an.groups[key][0]
                head = [display_name(key[0]), params_text(any_run.params),
                        gmacs_text(any_run.macs), _seeds_cell(an, key)]
                if not runs:
                    reasons = "; ".join(sorted({r.reason or r.status for r in an.groups[key]}))
                    rows.append(head + [f"no finished run: {reasons}"])
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
                cells.append(ci_text(low, high))
                rows.append(head + cells)
            header = ["model", "params", "GMACs", "seeds", "epoch", "train loss", "train acc",
                      "val acc"] + (["test acc"] if an.split == "test" else []) + \
                     [f"{ev} acc 95% CI"]
            rows = [r + ["–"] * (len(header) - len(r)) if len(r) < len(header) else r[:len(header)]
                    for r in rows]
            doc.add(Table(header, rows, caption=f"{FAMILIES.get(fam, fam)}: {label}"))
        comps = plan.depth.get(fam, [])
        if comps:
            doc.add(Table(COMPARISON_HEADER, [c.row() for c in comps],
                          caption=f"{FAMILIES.get(fam, fam)}: deeper vs shallower, {ev} accuracy "
                                  "at the selected checkpoint"))
    points = []
    for key in an.groups:
        if key[1] != BASE or not an.finished(key):
            continue
        acc, low, high, _ = an.accuracy_ci(key)
        macs = an.groups[key][0].macs
        if _ok(acc) and _ok(macs) and macs > 0:
            points.append((display_name(key[0]), macs / 1e9, 100 * acc, 100 * low, 100 * high))
    if points:
        name = "accuracy_vs_gmacs.png"
        F.accuracy_vs_cost(points, fig_dir / name, ylabel=f"{ev} accuracy (%)")
        written.add(name)
        doc.add(Figure(f"figures/{name}", f"{ev.capitalize()} accuracy at the selected checkpoint "
                                          "against GMACs per image, with 95% CIs."))


def _se_section(doc, an: Analysis, plan: _Plan) -> None:
    doc.add(Heading("SE ablation (SE-ResNet vs ResNet at the same depth)"))
    if not plan.se:
        doc.add(Para("Not run in this study: it needs resnetN and seresnetN at the same depth."))
        return
    rows = []
    for c in plan.se:
        acc_b = an.accuracy_ci(c.b)[0]
        acc_a = an.accuracy_ci(c.a)[0]
        rows.append([c.label_b.split("-")[-1], pct(acc_b), pct(acc_a)] + c.row()[1:])
    doc.add(Table(["depth", f"ResNet {_eval_name(an)} acc", f"SE-ResNet {_eval_name(an)} acc"]
                  + COMPARISON_HEADER[1:], rows,
                  caption="Δ = SE-ResNet − ResNet, selected checkpoints, paired by seed and image"))


def _overfit(an: Analysis, run: Run):
    tr, te = run.checkpoint("best").get("train_acc"), an.eval_acc(run)
    return tr - te if _ok(tr) and _ok(te) else None


def _variant_desc(an: Analysis, key) -> str:
    runs = an.groups.get(key, [])
    cfg = (runs[0].result.get("config") or {}) if runs else {}
    opts = cfg.get("model_kwargs") if isinstance(cfg.get("model_kwargs"), dict) else cfg
    shown = {k: opts[k] for k in ("key_drop", "key_drop_mode", "key_drop_schedule", "se_drop")
             if isinstance(opts, dict) and opts.get(k) not in (None, 0, 0.0)}
    return key[1] + (f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else "")


def _variant_section(doc, an: Analysis, plan: _Plan) -> None:
    doc.add(Heading("Key-dropout ablation (variant vs base of the same model)"))
    if not plan.variants:
        doc.add(Para("Not run in this study: no model has a variant beside its base run."))
        return
    doc.add(Para("Key dropout targets overfitting, measured two ways at the selected checkpoint: "
                 f"overfitting = train accuracy − {_eval_name(an)} accuracy (lower is less "
                 f"overfitting), and the {_eval_name(an)} accuracy itself (Δ with its test). "
                 "For SE-ResNet the 'key' is the SE channel gate (se_drop)."))
    rows = []
    for c in plan.variants:
        ra = {r.seed: r for r in an.finished(c.a)}
        rb = {r.seed: r for r in an.finished(c.b)}
        common = sorted(set(ra) & set(rb))
        ov_a = [_overfit(an, ra[s]) for s in common]
        ov_b = [_overfit(an, rb[s]) for s in common]
        d_ov = [x - y for x, y in zip(ov_a, ov_b) if _ok(x) and _ok(y)]
        rows.append([display_name(c.a[0]), _variant_desc(an, c.a), str(len(c.seeds)),
                     pct(an.accuracy_ci(c.b)[0]), pct(an.accuracy_ci(c.a)[0]), pts(c.delta),
                     f"[{pts(c.low)}, {pts(c.high)}]" if c.testable else "–", fmt_p(c.p),
                     fmt_p(c.p_holm),
                     mean_sd_text(ov_b, "pts"), mean_sd_text(ov_a, "pts"),
                     mean_sd_text(d_ov, "pts"), c.words()])
    ev = _eval_name(an)
    doc.add(Table(["model", "variant", "seeds", f"base {ev} acc", f"variant {ev} acc",
                   "Δ acc (points)", "95% CI", "p (McNemar, Fisher)", "p (Holm)",
                   "overfit base (points)", "overfit variant (points)",
                   "Δ overfit (points)", "result (accuracy)"], rows,
                  caption="Δ = variant − base, paired by seed and image; overfit = train acc − "
                          f"{ev} acc at the selected checkpoint, mean ± sd over seeds"))


def _curves_section(doc, an: Analysis, fig_dir: Path, written: set) -> None:
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
        F.learning_curves(series, f"{FAMILIES.get(fam, fam)}: per-epoch records", fig_dir / name)
        written.add(name)
        any_fig = True
        doc.add(Figure(f"figures/{name}",
                       f"{FAMILIES.get(fam, fam)}: train loss (epoch mean) and validation "
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


def _confusion_section(doc, an: Analysis, fig_dir: Path, written: set) -> None:
    doc.add(Heading("Confusion matrices (best model per family)"))
    classes = an.study.classes
    any_fig = False
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
        title = f"{group_label(key)} ({_eval_name(an)}, {len(mats)} seed(s) summed)"
        F.confusion_matrix(total, labels, title, fig_dir / name)
        written.add(name)
        any_fig = True
        doc.add(Figure(f"figures/{name}",
                       f"{FAMILIES.get(fam, fam)}: {group_label(key)}, the family's highest mean "
                       f"validation accuracy; {_eval_name(an)} images, selected checkpoint, "
                       f"counts summed over {len(mats)} seed(s), colour = fraction of true class."))
    if not any_fig:
        doc.add(Para(f"No finished run recorded a confusion matrix on the {_eval_name(an)} split."))


def _cost_section(doc, an: Analysis) -> None:
    doc.add(Heading("Cost"))
    rows = []
    devices = set()
    for key, runs in an.groups.items():
        fin = an.finished(key)
        if not fin:
            rows.append([group_label(key), params_text(runs[0].params), gmacs_text(runs[0].macs)]
                        + ["–"] * 4 + ["0 (no finished run)"])
            continue
        costs = [r.costs for r in fin]
        devices |= {str((r.result.get("provenance") or {}).get("device")) for r in fin
                    if (r.result.get("provenance") or {}).get("device")}

        def m(k, costs=costs):
            return _mean(c.get(k) for c in costs)

        def num(x, fmt):
            return format(x, fmt) if _ok(x) else "–"

        rows.append([group_label(key), params_text(runs[0].params), gmacs_text(runs[0].macs),
                     num(m("train_images_per_s"), ".1f"), num(m("infer_images_per_s"), ".1f"),
                     num(m("peak_memory_mb"), ".0f"),
                     num(_mean(r.seconds for r in fin), ".0f"), str(len(fin))])
    doc.add(Table(["model", "params", "GMACs / image", "train images/s", "inference images/s",
                   "peak memory (MB)", "run time (s)", "runs averaged"], rows,
                  caption="Measured during each run (result.json costs), mean over finished runs; "
                          f"device: {', '.join(sorted(devices)) or 'not recorded'}"))


def _claims_section(doc, an: Analysis, plan: _Plan) -> None:
    doc.add(Heading("What holds of the source study's claims"))
    items = []
    ev = _eval_name(an)

    # 1. SE helps at every depth.
    se = [c for c in plan.se if c.testable]
    if not se:
        items.append("'SE helps at every depth': not testable here (no ResNet/SE-ResNet pair "
                     "finished at the same depth).")
    else:
        depths = [c.a[0].removeprefix("seresnet") for c in se]
        ok = all(c.low > 0 for c in se)
        missing = [d for d in ("18", "34", "50") if d not in depths]
        verdict = "supported" if ok and not missing else (
            "supported at the depths run" if ok else "not supported")
        detail = "; ".join(f"depth {c.a[0].removeprefix('seresnet')}: {c.words()}" for c in se)
        items.append(f"'SE helps at every depth': {verdict} ({ev} accuracy, selected "
                     f"checkpoints) — {detail}"
                     + (f"; depths not run: {', '.join(missing)}" if missing else "") + ".")

    # 2. Deeper plain ResNet does not help.
    rc = [c for c in plan.depth.get("resnet", []) if c.testable]
    if not rc:
        items.append("'Deeper plain ResNet does not help': not testable here (fewer than two "
                     "ResNet depths finished).")
    else:
        gains = [c for c in rc if c.low > 0]
        if gains:
            items.append("'Deeper plain ResNet does not help': not supported — "
                         + "; ".join(c.words() for c in gains) + ".")
        else:
            items.append("'Deeper plain ResNet does not help': supported — no deeper ResNet "
                         "beats a shallower one (" + "; ".join(
                             f"{c.label_a} vs {c.label_b}: {c.words()}" for c in rc)
                         + "). This is the absence of a significant gain, not proof of equality.")

    # 3. Swin does not converge.
    def last_train_acc(key):
        return _mean(r.checkpoint("last").get("train_acc") for r in an.finished(key))

    swins = [k for k in an.models_in("swin") if an.finished(k)]
    definition = (f"'converged' here means a last-epoch train accuracy of at least "
                  f"{100 * CONVERGED_TRAIN_ACC:.0f}% (mean over seeds)")
    if not swins:
        items.append(f"'Swin does not converge': not testable here (no Swin run finished); "
                     f"{definition}.")
    else:
        vals = {k: last_train_acc(k) for k in swins}
        conv = [k for k, v in vals.items() if _ok(v) and v >= CONVERGED_TRAIN_ACC]
        cnns = [k for k in an.groups if k[1] == BASE and an.groups[k][0].family != "swin"
                and an.finished(k)]
        cnn_conv = [k for k in cnns if _ok(last_train_acc(k))
                    and last_train_acc(k) >= CONVERGED_TRAIN_ACC]
        verdict = ("supported" if not conv else
                   "not supported" if len(conv) == len(swins) else "partly supported")
        items.append(f"'Swin does not converge': {verdict}; {definition}. Last-epoch train "
                     "accuracy: " + ", ".join(f"{display_name(k[0])} {pct(v)}"
                                              for k, v in vals.items())
                     + f". By the same measure {len(cnn_conv)} of {len(cnns)} CNNs converged"
                     + (", so non-convergence here is not specific to Swin." if
                        cnns and not cnn_conv and not conv else "."))

    # 4. SE-ResNet-50 is best.
    se50 = ("seresnet50", BASE)
    if plan.best is None or not plan.best.testable:
        why = plan.best.problem if plan.best is not None else (
            "SE-ResNet-50 did not finish" if se50 in an.groups else "SE-ResNet-50 was not run")
        items.append(f"'SE-ResNet-50 is best': not testable here ({why}).")
    elif plan.top == se50:
        c = plan.best
        verdict = "supported" if c.low > 0 else "not supported"
        items.append(f"'SE-ResNet-50 is best': {verdict} — it has the highest mean validation "
                     f"accuracy; against the runner-up on {ev}: {c.words()}.")
    else:
        c = plan.best
        items.append(f"'SE-ResNet-50 is best': not supported — {group_label(plan.top)} has the "
                     f"highest mean validation accuracy; SE-ResNet-50 against it on {ev}: "
                     f"{c.words()}.")
    doc.add(Bullets(items))


def _source_section(doc, an: Analysis) -> None:
    doc.add(Heading("Beside the source study (flowers)"))
    src = load_source()
    rows = []
    for model, sm in src.items():
        key = (model, BASE)
        runs = an.finished(key)
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
                   "ours: val acc (last)", "ours: test acc (selected)", "our seeds"], rows,
                  caption="The source's published table (per-column best over 100 epochs, one run "
                          "each), what its records give at one epoch, and this study"))
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


def _runs_section(doc, an: Analysis) -> None:
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
    for runs in an.groups.values():
        for r in runs:
            cells = [r.name, r.status]
            for which in ("best", "last"):
                for split in ("val", "test"):
                    s = r.split(which, split) or {}
                    if s.get("total"):
                        low, high = S.wilson_ci(s["correct"], s["total"])
                        cells.append(f"{pct(s['correct'] / s['total'])} ({s['correct']}/"
                                     f"{s['total']}) {ci_text(low, high)}")
                    else:
                        cells.append("–")
            cells.insert(2, str(r.checkpoint("best").get("epoch", "–")))
            cells.append(f"{r.seconds:.0f}" if _ok(r.seconds) else "–")
            rows.append(cells)
    doc.add(Table(["run", "status", "best epoch", "val acc (selected)", "test acc (selected)",
                   "val acc (last)", "test acc (last)", "seconds"], rows,
                  caption="Every run: accuracy with correct/total and its 95% Wilson interval; "
                          "also in results.csv"))


def _methods_section(doc, an: Analysis) -> None:
    n = sum(c.testable for c in an.comparisons)
    doc.add(Heading("Methods"))
    doc.add(Bullets([
        "Selection: the checkpoint is the epoch with the best validation accuracy; the test split "
        "is evaluated once per checkpoint (selected and last). No per-column maxima.",
        "Single accuracies: Wilson score 95% interval on correct/total "
        "(scipy.stats.binomtest(...).proportion_ci(method='wilson')).",
        "Paired comparisons (A vs B, same seed, same images): p-value = per-seed exact McNemar "
        "test on the discordant images (scipy.stats.binomtest(b, b + c, 0.5)), combined over "
        "seeds with Fisher's method (scipy.stats.combine_pvalues); this p-value is the one in "
        "the tables.",
        f"95% CI of Δ: hierarchical bootstrap (resample seeds, then {_eval_name(an)} images "
        "within each seed) with two or more seeds; paired bootstrap over images with one seed; "
        f"{an.n_boot} resamples, percentile intervals, fixed random seed 0.",
        "Words: 'A beats B' only when the 95% CI of Δ excludes 0; otherwise 'no significant "
        "difference' with Δ, CI and p.",
        f"Multiple comparisons: {n} paired comparisons in this report; raw p-values are shown "
        "with Holm-adjusted ones beside them.",
        f"Converged: last-epoch train accuracy ≥ {100 * CONVERGED_TRAIN_ACC:.0f}% (mean over "
        "seeds). Overfitting: train accuracy − evaluation accuracy at the selected checkpoint.",
        "The CI (bootstrap) and the p-value (McNemar) come from different methods and can "
        "disagree near the 5% boundary; the words follow the CI, as STATS.md asks.",
        "Majority-class baseline: the share of the most frequent class among the evaluation "
        "images (from the recorded targets).",
    ]))
