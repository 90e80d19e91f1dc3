"""The comparison analysis: a study's runs grouped by (model, variant), the evaluation split, every
paired comparison the report makes (each counted once), Holm's correction over all of them, the
equivalence test, the minimal detectable difference and each comparison's verdict.

A verdict is one of `a_better`, `b_better` (Holm-adjusted p < 0.05), `equivalent` (Holm-adjusted
TOST p < 0.05 within the study's margin), `no_difference` (neither), `not_testable` (a run it
rests on is degenerate, or the records cannot pair the runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depthbench.names import display_name, model_order
from depthbench.report import stats as S
from depthbench.report.fmt import fmt_p, mean, ok, pts, pts_ci
from depthbench.report.records import Run, Study

BASE = "base"
CONVERGED_TRAIN_ACC = 0.95  # "converged": last-epoch train accuracy (mean over seeds) at least this
MIN_SEEDS_FOR_VARIANCE = 3
VERDICTS = ("a_better", "b_better", "no_difference", "equivalent", "not_testable")


def group_label(key: tuple[str, str]) -> str:
    model, variant = key
    return display_name(model) + ("" if variant == BASE else f" [{variant}]")


@dataclass
class Comparison:
    """A vs B on the evaluation split, paired by seed and by image: Δ = acc(A) − acc(B)."""

    section: str  # depth | se | variant | best: the first part of the report that asked for it
    a: tuple[str, str]  # (model, variant)
    b: tuple[str, str]
    label_a: str = ""
    label_b: str = ""
    seeds: list[int] = field(default_factory=list)
    n: int = 0  # images per seed
    a_only: int = 0  # images A got right and B wrong, summed over seeds (b)
    b_only: int = 0  # the reverse (c)
    test: S.Test | None = None
    m: int = 0  # comparisons in the report (Holm's family)
    margin: float = 0.02
    p_holm: float = float("nan")
    tost_holm: float = float("nan")
    mde: float = float("nan")
    problem: str | None = None  # why the records cannot pair the runs
    degenerate: list[str] = field(default_factory=list)  # degenerate runs it rests on
    verdict: str = "not_testable"
    decide: str = ""  # what test-set size or seed count would decide an inconclusive one
    diffs: np.ndarray | None = None  # d[s, i] for several seeds

    delta = property(lambda self: self.test.delta if self.test else float("nan"))
    low = property(lambda self: self.test.low if self.test else float("nan"))
    high = property(lambda self: self.test.high if self.test else float("nan"))
    p = property(lambda self: self.test.p if self.test else float("nan"))
    method = property(lambda self: self.test.method if self.test else "")

    def winner(self) -> tuple[str, str] | None:
        return {"a_better": self.a, "b_better": self.b}.get(self.verdict)

    def stat_text(self) -> str:
        return (f"Δ = {pts(self.delta)} points, 95% CI {pts_ci(self.low, self.high)}, "
                f"{self.method}: p = {fmt_p(self.p)}, Holm-adjusted p = {fmt_p(self.p_holm)}")

    def words(self) -> str:
        """The verdict in the report's words (each carries Δ, interval, raw and adjusted p)."""
        if self.verdict == "not_testable":
            if self.degenerate:
                return (f"not testable under this budget: {', '.join(self.degenerate)} "
                        "predict(s) one class for ≥ 90% of the images (degenerate)")
            return f"not testable: {self.problem}"
        if self.verdict == "a_better":
            return f"{self.label_a} beats {self.label_b} ({self.stat_text()})"
        if self.verdict == "b_better":
            return f"{self.label_b} beats {self.label_a} ({self.stat_text()})"
        margin = f"±{100 * self.margin:g} points"
        if self.verdict == "equivalent":
            return (f"equivalent within {margin} (TOST, Holm-adjusted p = "
                    f"{fmt_p(self.tost_holm)}; {self.stat_text()})")
        return (f"no significant difference after correcting for {self.m} comparisons "
                f"({self.stat_text()}); equivalence within {margin} not shown either: "
                f"inconclusive{'; ' + self.decide if self.decide else ''}")

    def row(self) -> list[str]:
        return [f"{self.label_a} vs {self.label_b}", str(len(self.seeds)), str(self.n),
                f"{self.a_only} / {self.b_only}", pts(self.delta), pts_ci(self.low, self.high),
                self.method or "–", fmt_p(self.p), fmt_p(self.p_holm),
                f"{100 * self.mde:.1f}" if ok(self.mde) else "–", self.words()]


COMPARISON_HEADER = ["A vs B", "seeds", "images", "A only / B only right", "Δ = A − B (points)",
                     "95% CI (points)", "method", "p", "p (Holm)",
                     "detectable Δ (points, 80% power)", "result"]


class Analysis:
    """The study's runs grouped by (model, variant), the evaluation split and every comparison."""

    def __init__(self, study: Study):
        self.study = study
        self.margin = study.margin
        self.groups: dict[tuple[str, str], list[Run]] = {}
        for r in sorted(study.runs, key=lambda r: (model_order(r.model), r.variant != BASE,
                                                   r.variant, r.seed)):
            self.groups.setdefault((r.model, r.variant), []).append(r)
        finished = [r for r in study.runs if r.finished]
        self.split = "test" if any(r.split("best", "test") for r in finished) else "val"
        self.comparisons: list[Comparison] = []

    @property
    def eval_name(self) -> str:
        return "test" if self.split == "test" else "validation"

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

    def degenerate_runs(self, key) -> list[Run]:
        return [r for r in self.finished(key) if r.degenerate(self.split)]

    def label(self, key, name: str | None = None) -> str:
        """The group's name (or `name`), marked when any of its runs is degenerate."""
        name = name or group_label(key)
        bad, fin = len(self.degenerate_runs(key)), len(self.finished(key))
        if not bad:
            return name
        return name + (" (degenerate)" if bad == fin else
                                   f" (degenerate in {bad} of {fin} seeds)")

    def accuracy_ci(self, key, which: str = "best") -> tuple[float, float, float, str]:
        """Mean accuracy on the evaluation split with its 95% CI: Wilson for one seed, the crossed
        random-effects t (images × seeds) for several."""
        runs = self.finished(key)
        outcomes = [r.outcomes(which, self.split) for r in runs]
        if runs and all(o is not None and o.size for o in outcomes) and len(
                {o.size for o in outcomes}) == 1:
            return S.mean_ci(outcomes)
        if len(runs) == 1:
            s = runs[0].split(which, self.split) or {}
            if s.get("total"):
                return (s["correct"] / s["total"], *S.wilson_ci(s["correct"], s["total"]),
                        "Wilson")
        return mean(r.accuracy(which, self.split) for r in runs), float("nan"), float("nan"), ""

    def ranked(self, keys) -> list[tuple[str, str]]:
        """`keys` by mean validation accuracy at the selected checkpoint, highest first."""
        scored = [(mean(r.accuracy("best", "val") for r in self.finished(k)), k) for k in keys]
        return [k for s, k in sorted(((s, k) for s, k in scored if ok(s)), key=lambda t: -t[0])]

    def selected(self, keys) -> tuple[str, str] | None:
        ranked = self.ranked(keys)
        return ranked[0] if ranked else None

    def last_train_acc(self, key) -> float:
        """Mean over seeds of the last checkpoint's train accuracy (eval-mode train subset when
        recorded, else the epoch's running train accuracy)."""
        vals = []
        for r in self.finished(key):
            te = r.train_eval("last")
            vals.append(te if te is not None else r.checkpoint("last").get("train_acc"))
        return mean(vals)

    def converged(self, key) -> bool:
        acc = self.last_train_acc(key)
        return ok(acc) and acc >= CONVERGED_TRAIN_ACC

    # -- paired comparisons
    def compare(self, section: str, a, b) -> Comparison:
        """The comparison of a and b, made once: asking again (in either order) returns it."""
        for c in self.comparisons:
            if {c.a, c.b} == {a, b}:
                return c
        c = Comparison(section, a, b, self.label(a), self.label(b), margin=self.margin)
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
        c.test, c.a_only, c.b_only, c.n = S.compare_outcomes(oa, ob)
        if len(common) > 1:
            c.diffs = np.stack([x.astype(float) - y for x, y in zip(oa, ob)])
        c.degenerate = [r.name for r in [runs_a[s] for s in common] + [runs_b[s] for s in common]
                        if r.degenerate(self.split)]
        return c

    def finish(self) -> None:
        """Holm over every comparison made (p and TOST p), power, and the verdicts."""
        tested = [c for c in self.comparisons if c.test is not None]
        m = len(tested)
        p_holm = S.holm([c.p for c in tested])
        tost_holm = S.holm([c.test.tost_p(self.margin) for c in tested])
        for c, p, q in zip(tested, p_holm, tost_holm):
            c.m, c.p_holm, c.tost_holm = m, p, q
            discordance = (c.a_only + c.b_only) / (c.n * len(c.seeds)) if c.n else 0.0
            c.mde = S.mde(c.test, c.n, len(c.seeds), discordance, m)
            if c.degenerate:
                c.verdict = "not_testable"
            elif p < S.ALPHA:
                c.verdict = "a_better" if c.delta > 0 else "b_better"
            elif q < S.ALPHA:
                c.verdict = "equivalent"
            else:
                c.verdict = "no_difference"
                c.decide = self._what_decides(c, discordance, m)

    def _what_decides(self, c: Comparison, discordance: float, m: int) -> str:
        margin = f"±{100 * self.margin:g} points"
        if c.diffs is None:
            n_diff, n_eq = S.images_needed(c.delta, self.margin, discordance, m)
            parts = ([f"about {n_diff} test images to detect a difference this large"]
                     if n_diff else []) + ([f"about {n_eq} test images to show equivalence within {margin}"]
                                           if n_eq else [])
            unit = "at this disagreement rate, 80% power"
        else:
            k_diff, k_eq = S.seeds_needed(c.diffs, c.delta, self.margin, m)
            parts = ([f"about {k_diff} seeds to detect a difference this large"] if k_diff
                     else []) + ([f"about {k_eq} seeds to show equivalence within {margin}"]
                                 if k_eq else [])
            unit = f"at {c.n} test images, 80% power"
            if not parts:
                return ("more seeds alone would not decide it at this test-set size: the "
                        "image-to-image spread dominates; a larger test set would")
        if not parts:
            return ""
        return "what would decide it (" + unit + "): " + ", or ".join(parts)


@dataclass
class Plan:
    """The comparisons each part of the report uses (a comparison asked twice is one object)."""

    depth: dict[str, list[Comparison]] = field(default_factory=dict)
    se: list[Comparison] = field(default_factory=list)
    variants: list[Comparison] = field(default_factory=list)
    best: Comparison | None = None
    top: tuple[str, str] | None = None


def plan_comparisons(an: Analysis) -> Plan:
    """Make every comparison the report needs, then correct them together (`Analysis.finish`)."""
    plan = Plan()
    for fam in an.families():
        keys = [k for k in an.models_in(fam) if an.finished(k)]
        pairs = list(zip(keys[1:], keys[:-1]))  # each depth against the next shallower one
        if len(keys) >= 3:
            pairs.append((keys[-1], keys[0]))  # deepest against shallowest
        plan.depth[fam] = [an.compare("depth", a, b) for a, b in pairs]
    for depth in ("18", "34", "50"):
        a, b = (f"seresnet{depth}", BASE), (f"resnet{depth}", BASE)
        if an.finished(a) and an.finished(b):
            plan.se.append(an.compare("se", a, b))
    for (model, variant) in an.groups:
        if variant != BASE and an.finished((model, variant)) and an.finished((model, BASE)):
            plan.variants.append(an.compare("variant", (model, variant), (model, BASE)))
    ranked = an.ranked([k for k in an.groups if k[1] == BASE])
    plan.top = ranked[0] if ranked else None
    se50 = ("seresnet50", BASE)
    if se50 in ranked and len(ranked) >= 2:
        other = ranked[1] if ranked[0] == se50 else ranked[0]
        plan.best = an.compare("best", se50, other)
    an.finish()
    return plan
