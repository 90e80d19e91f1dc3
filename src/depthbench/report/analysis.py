"""The comparison analysis: a study's runs grouped by (model, variant), every paired comparison the
report makes (each counted once), Holm's correction over all of them, the equivalence test, the
minimal detectable difference, each comparison's verdict and what would decide an open one.

A verdict is one of `VERDICTS`: `a_better`, `b_better` (Holm-adjusted p < `stats.ALPHA`),
`equivalent` (Holm-adjusted TOST p < `stats.ALPHA` within the study's margin), `inconclusive` (neither: not shown
different, not shown equal), `not_testable` (a run it rests on is degenerate or did not learn, or
the records cannot pair the runs). Tables print them in one word (`WORDS`).

A run "did not learn" when the Wilson interval of its accuracy on the evaluation split does not lie
above that split's majority-class rate (`Run.learned`): it decides nothing, whatever its p-value.

The questions (`QUESTIONS`), in the report's order, and which pairs each compares: `pairs.asks`
(the planner counts the same pairs from a study's grid before it runs).

A cross-validated study pairs A and B on the (repeat, fold, seed) cells both finished (the same
training and test images, the same training seed) through `stats.compare_cells`, and gives each
model's accuracy through `stats.accuracy_cells`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depthbench.names import display_name, se_pairs
from depthbench.report import stats as S
from depthbench.report.fmt import about, fmt_p, mean, ok, pct, pts, pts_ci
from depthbench.report.options import EQUIVALENCE_MARGIN
from depthbench.report.pairs import asks
from depthbench.report.records import BASE, Run, Study

CONVERGED_TRAIN_ACC = 0.95  # "converged": last-epoch train accuracy (mean over seeds) at least this
MIN_SEEDS_FOR_VARIANCE = 3
VERDICTS = ("a_better", "b_better", "equivalent", "inconclusive", "not_testable")
WORDS = {"a_better": "better", "b_better": "worse", "equivalent": "equivalent",
         "inconclusive": "inconclusive", "not_testable": "not testable"}  # A's verdict against B
QUESTIONS = {"depth": "Depth, per family", "se": "SE, per depth", "variant": "Key dropout",
             "across": "Across families at matched cost", "best": "Best model"}
# Cross-validated: confusion matrices, per-class recall and the majority baseline pool the test
# predictions of this repeat's folds (every image once per seed)
POOLED_REPEAT = 0


def group_label(key: tuple[str, str]) -> str:
    model, variant = key
    return display_name(model) + ("" if variant == BASE else f" [{variant}]")


@dataclass
class Comparison:
    """A vs B on the evaluation split, paired by seed and by image: Δ = acc(A) − acc(B)."""

    section: str  # a key of QUESTIONS: the first question that asked for it
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
    margin: float = EQUIVALENCE_MARGIN
    p_holm: float = float("nan")
    tost_holm: float = float("nan")
    mde: float = float("nan")
    problem: str | None = None  # why the records cannot pair the runs
    degenerate: list[str] = field(default_factory=list)  # degenerate runs it rests on
    unlearned: list[str] = field(default_factory=list)  # runs it rests on that did not learn
    majority: float = float("nan")  # the evaluation split's majority-class rate
    verdict: str = "not_testable"
    decide: Decision | CVDecision | None = None  # what would decide an inconclusive one
    diffs: np.ndarray | None = None  # d[s, i] for several seeds
    cells: list[S.Cell] | None = None  # a cross-validated study's (repeat, fold, seed) cells
    # ... the cells of the complete grid the test used, as comparisons.csv carries them, and
    # the sum over images of each image's total difference squared (`stats.cell_counts`)
    counts: list[S.CellCounts] | None = None
    image_sq: int = 0

    delta = property(lambda self: self.test.delta if self.test else float("nan"))
    low = property(lambda self: self.test.low if self.test else float("nan"))
    high = property(lambda self: self.test.high if self.test else float("nan"))
    p = property(lambda self: self.test.p if self.test else float("nan"))
    method = property(lambda self: self.test.method if self.test else "")

    @property
    def name(self) -> str:
        return f"{self.label_a} vs {self.label_b}"

    @property
    def word(self) -> str:
        """The verdict in one word, A's against B's."""
        return WORDS[self.verdict]

    def winner(self) -> tuple[str, str] | None:
        return {"a_better": self.a, "b_better": self.b}.get(self.verdict)

    def stat_text(self, sign: int = 1, named: str = "") -> str:
        """Δ (`named` says what it is), its interval, the raw and the adjusted p; `sign=-1`
        gives Δ as B − A. A cross-validated comparison adds what its test left out (the cells
        outside the complete grid of repeats x folds x seeds)."""
        low, high = sorted((sign * self.low, sign * self.high))
        left = f"; {self.test.note}" if self.cells is not None and self.test.note else ""
        return (f"Δ = {named}{pts(sign * self.delta)} points, {S.CONFIDENCE:.0%} CI "
                f"{pts_ci(low, high)}, {self.method}: p = {fmt_p(self.p)}, Holm-adjusted p = "
                f"{fmt_p(self.p_holm)}{left}")

    def beats(self) -> str | None:
        """'ResNet-50 beats Swin-T by 6.1 points': a real difference from the winner's side (None
        without one)."""
        if not self.winner():
            return None
        win, lose = ((group_label(self.a), group_label(self.b)) if self.verdict == "a_better"
                     else (group_label(self.b), group_label(self.a)))
        return f"{win} beats {lose} by {abs(100 * self.delta):.1f} points"

    def budget_text(self) -> str:
        """Why the runs it rests on decide nothing: degenerate, or no better than the majority
        class ('' when neither)."""
        parts = []
        if self.degenerate:
            parts.append(f"{', '.join(self.degenerate)} predict(s) one class for "
                         f"≥ {S.DEGENERATE_SHARE:.0%} of the images (degenerate)")
        if self.unlearned:
            each = "for each, " if len(self.unlearned) > 1 else ""
            parts.append(f"{', '.join(self.unlearned)} did not beat the majority class ({each}the "
                         f"{S.CONFIDENCE:.0%} Wilson interval of its accuracy reaches down to the "
                         f"majority-class rate, {pct(self.majority)})")
        return "; ".join(parts)

    def sentence(self) -> str:
        """The verdict in the report's words (each carries Δ, interval, raw and adjusted p)."""
        if self.verdict == "not_testable":
            if self.degenerate or self.unlearned:
                return f"not testable under this budget: {self.budget_text()}"
            return f"not testable: {self.problem}"
        if self.verdict in ("a_better", "b_better"):
            # from the winner's side: Δ and its interval as winner − loser
            win, lose, sign = ((self.label_a, self.label_b, 1) if self.verdict == "a_better"
                               else (self.label_b, self.label_a, -1))
            return (f"{win} beats {lose} by {abs(100 * self.delta):.1f} points "
                    f"({self.stat_text(sign, f'{win} − {lose} = ')})")
        margin = f"±{100 * self.margin:g} points"
        if self.verdict == "equivalent":
            return (f"equivalent within {margin} (TOST, Holm-adjusted p = "
                    f"{fmt_p(self.tost_holm)}; {self.stat_text()})")
        return (f"no significant difference after correcting for {self.m} comparisons "
                f"({self.stat_text()}); equivalence within {margin} not shown either: "
                "inconclusive" + (f"; {self.decide.text()}" if self.decide else ""))

    def row(self) -> list[str]:
        return [self.name, str(len(self.seeds)), str(self.n) if self.n else "–",
                f"{self.a_only} / {self.b_only}" if self.test else "–", pts(self.delta),
                pts_ci(self.low, self.high), self.method or "–", fmt_p(self.p),
                fmt_p(self.p_holm), f"{100 * self.mde:.1f}" if ok(self.mde) else "–", self.word,
                self.decide.short() if self.decide else "–"]


COMPARISON_HEADER = ["A vs B", "seeds", "images", "A only / B only right", "Δ = A − B (points)",
                     f"{S.CONFIDENCE:.0%} CI (points)", "method", "p", "p (Holm)",
                     f"detectable Δ (points, {S.POWER:.0%} power)", "verdict (A)",
                     "what would decide it"]


class _Advice:
    """The words of what would decide an inconclusive comparison, from its two routes: to detect
    its difference, and to show equivalence within the margin, each (short, long)."""

    delta: float
    margin: float

    def _routes(self) -> tuple[tuple[str, str], tuple[str, str]]:
        raise NotImplementedError

    def _note(self) -> str:
        return ""

    def short(self) -> str:
        detect, equiv = self._routes()
        diff = detect[0] if self.delta else "–"
        eq = equiv[0] if abs(self.delta) < self.margin else "outside the margin"
        return f"difference: {diff}; equivalence: {eq}"

    def text(self) -> str:
        detect, equiv = self._routes()
        margin = f"±{100 * self.margin:g} points"
        parts = []
        if self.delta:
            parts.append(f"to detect a difference of {abs(100 * self.delta):.1f} points: "
                         + detect[1])
        if abs(self.delta) < self.margin:
            parts.append(f"to show equivalence within {margin}: " + equiv[1])
        else:
            parts.append(f"equivalence within {margin} cannot be shown while the observed "
                         "difference lies outside the margin")
        return (f"what would decide it ({S.POWER:.0%} power at the Holm level): " + "; ".join(parts)
                + self._note())


@dataclass
class Decision(_Advice):
    """What would decide an inconclusive comparison, in what a user can change: seeds (up to
    `S.MAX_SEEDS`) at this test-set size, else the test images it would take ("beyond this data").
    A count of 0 means that route does not get there."""

    n: int  # test images per seed now
    seeds_now: int
    delta: float
    margin: float
    seeds: int = 0  # seeds that would detect the difference
    images: int = 0  # ... else test images, at `images_at` seeds
    seeds_eq: int = 0  # seeds that would show equivalence
    images_eq: int = 0
    images_at: int = 1  # the seed count the image counts assume

    def _route(self, seeds: int, images: int) -> tuple[str, str]:
        """(short, long) for one goal."""
        if seeds:
            return f"≈ {seeds} seeds", f"about {seeds} seeds at these {self.n} test images"
        at = (f"with {self.images_at} seeds" if self.images_at > self.seeds_now else
              "with one seed, at this disagreement rate" if self.seeds_now == 1 else
              f"at {self.images_at} seeds")
        if images:
            short = ("beyond this data" if images > self.n else "a larger test split") + (
                f" (≈ {about(images)} images)")
            return short, (f"beyond this data: the test split holds {self.n} images, and it "
                           f"needs about {about(images)} ({at})")
        if self.seeds_now == 1:
            return "beyond this data", "beyond this data at one seed"
        return "beyond this data", (f"beyond this data: not with up to {S.MAX_SEEDS} seeds at "
                                    "any test-set size (the run-to-run spread dominates)")

    def _routes(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return self._route(self.seeds, self.images), self._route(self.seeds_eq, self.images_eq)

    def _note(self) -> str:
        return ("; one seed measures no run-to-run variance, so the seeds it would take cannot "
                f"be estimated (use {MIN_SEEDS_FOR_VARIANCE} or more)" if self.seeds_now == 1
                else "")


@dataclass
class CVDecision(_Advice):
    """What would decide an inconclusive cross-validated comparison: the cheapest design with
    more seeds, repeats or folds (`stats.CVComponents.smallest`, up to `S.MAX_RUNS` runs of each
    model), else "beyond this data". None means that route does not get there."""

    delta: float
    margin: float
    detect: S.Design | None = None  # the design that would detect the difference
    equiv: S.Design | None = None  # ... that would show equivalence

    @staticmethod
    def _route(design: S.Design | None) -> tuple[str, str]:
        if design is None:
            return "beyond this data", (f"beyond this data: not with up to {S.MAX_RUNS} runs "
                                        "of each model (more folds, repeats or seeds)")
        return f"≈ {design.name}", f"about {design.name} ({design.runs} runs of each model)"

    def _routes(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return self._route(self.detect), self._route(self.equiv)


def decide(c: Comparison) -> Decision | CVDecision:
    """The seeds or test images that would decide `c` (one seed: images only, at its
    disagreement rate; several: from the crossed model's variance components); cross-validated,
    the folds, repeats or seeds (from the crossed CV t's components)."""
    comp, design = components_of(c)
    if isinstance(comp, S.CVComponents):
        return CVDecision(c.delta, c.margin, *comp.smallest(c.delta, c.margin, c.m, design))
    k = len(c.seeds)
    out = Decision(c.n, k, c.delta, c.margin)
    if c.diffs is None:
        out.images, out.images_eq = S.images_needed(c.delta, c.margin, comp.img, c.m)
        return out
    out.seeds, out.seeds_eq = comp.seeds(c.delta, c.margin, c.m, c.n, start=k + 1)
    for at in (k, S.MAX_SEEDS):  # the seeds there are, else as many as advice goes
        out.images_at = at
        out.images, out.images_eq = comp.images(c.delta, c.margin, c.m, at)
        if (out.images or not c.delta) and (out.images_eq or abs(c.delta) >= c.margin):
            break
    return out


def components_of(c: Comparison) -> tuple[S.Components | S.CVComponents, S.Design]:
    """A tested comparison's variance components and the design they were measured at, as its
    test sees them: the crossed CV model's (cross-validated), the crossed model's (several
    seeds), or one seed's discordance rate, which measures no split between images and runs and
    is held as the image term (more seeds would not shrink it: errs towards asking for more).
    At that design `stats.detectable` gives the comparison's `mde`; elsewhere it projects it
    (the planner's `--from`)."""
    if c.counts is not None:
        _, comp, design = S.cv_components(c.counts, c.image_sq)
        return comp, design
    if c.diffs is not None:
        return S.Components.of(c.diffs), S.Design(c.n, len(c.seeds))
    rate = (c.a_only + c.b_only) / c.n if c.n else 0.0
    return S.Components(rate, 0.0, 0.0), S.Design(c.n, 1)


class Analysis:
    """The study's runs grouped by (model, variant), the evaluation split and every comparison."""

    def __init__(self, study: Study):
        self.study = study
        self.margin = study.margin
        self.groups: dict[tuple[str, str], list[Run]] = {}
        for r in study.runs:  # already in the report's order
            self.groups.setdefault((r.model, r.variant), []).append(r)
        self.split = study.eval_split
        self.design = study.design  # (folds, repeats) when cross-validated, else None
        self.comparisons: list[Comparison] = []
        self._ids: dict[str, int] | None = None
        self._accuracy: dict[tuple, tuple[float, float, float, str]] = {}

    @property
    def eval_name(self) -> str:
        return "test" if self.split == "test" else "validation"

    @property
    def cv(self) -> bool:
        return self.design is not None

    def design_text(self) -> str:
        """The design in the words "what would decide it" uses (`stats.Design.describe`), e.g.
        `3-fold x 2 repeats: every image tested twice`; "" for a single split."""
        if not self.cv:
            return ""
        k, r = self.design
        return S.Design(self.images(), max(self.max_seeds(), 1), k, r).describe()

    def pools(self, key) -> list[list[Run]]:
        """The finished runs of `key` whose test predictions are pooled, one list per seed: the
        run itself, or the folds of repeat `POOLED_REPEAT` when cross-validated."""
        if not self.cv:
            return [[r] for r in self.finished(key)]
        by_seed: dict[int, list[Run]] = {}
        for r in self.finished(key):
            if r.repeat == POOLED_REPEAT:
                by_seed.setdefault(r.seed, []).append(r)
        return list(by_seed.values())

    @property
    def per(self) -> str:
        """What a group's values vary over: its seeds, or its runs (cells) when cross-validated."""
        return "runs" if self.cv else "seeds"

    def image_ids(self) -> dict[str, int]:
        """A cross-validated study's images by id: every image some finished run tested, sorted
        by path (all of them, once a repeat of any model finished)."""
        if self._ids is None:
            paths = {p for r in self.study.runs if r.finished and r.cell_split
                     for p in r.cell_split.test}
            self._ids = {p: i for i, p in enumerate(sorted(paths))}
        return self._ids

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
        return max((len({r.seed for r in self.finished(k)}) for k in self.groups), default=0)

    def images(self) -> int:
        """Images of the evaluation split (0 when no finished run recorded them); of a
        cross-validated study, the images its folds test."""
        if self.cv:
            return len(self.image_ids())
        for runs in self.groups.values():
            for r in runs:
                s = r.split("best", self.split) if r.finished else None
                if s and s.get("total"):
                    return int(s["total"])
        return 0

    def degenerate_runs(self, key) -> list[Run]:
        return [r for r in self.finished(key) if r.degenerate(self.split)]

    def unlearned_runs(self, key) -> list[Run]:
        """The group's finished runs that did not beat the majority class (`Run.learned`)."""
        return [r for r in self.finished(key) if r.learned(self.split) is False]

    def label(self, key, name: str | None = None) -> str:
        """The group's name (or `name`), marked when any of its runs is degenerate or did not
        learn ('degenerate in 1 of 3 seeds')."""
        fin = len(self.finished(key))
        marks = [word + ("" if bad == fin else f" in {bad} of {fin} {self.per}")
                 for word, bad in (("degenerate", len(self.degenerate_runs(key))),
                                   ("did not learn", len(self.unlearned_runs(key)))) if bad]
        return (name or group_label(key)) + (f" ({'; '.join(marks)})" if marks else "")

    def gmacs_224(self, key) -> float | None:
        """GMACs per image at 224 px (the runs' own size when the records lack it)."""
        run = self.groups[key][0]
        macs = run.macs_224 if run.macs_224 is not None else run.macs
        return macs / 1e9 if ok(macs) and macs > 0 else None

    def accuracy_ci(self, key, which: str = "best") -> tuple[float, float, float, str]:
        """Mean accuracy on the evaluation split with its `stats.CONFIDENCE` interval: Wilson for
        one seed, the tests
        of several seeds (`stats.mean_ci`) for several; cross-validated, `stats.accuracy_cells`
        over the group's cells."""
        if (key, which) not in self._accuracy:
            self._accuracy[key, which] = self._accuracy_ci(key, which)
        return self._accuracy[key, which]

    def _accuracy_ci(self, key, which: str) -> tuple[float, float, float, str]:
        runs = self.finished(key)
        if self.cv:
            cells, _ = self._cells({r.cell: r for r in runs}, None, which)
            try:
                return S.accuracy_cells(cells)
            except ValueError:  # no two cells, or none forming a complete grid: no interval
                pass
            return mean(r.accuracy(which, self.split) for r in runs), float("nan"), float(
                "nan"), ""
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
        if self.cv:
            self._compare_cells(c)
            return c
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
        paired = [runs_a[s] for s in common] + [runs_b[s] for s in common]
        c.degenerate = [r.name for r in paired if r.degenerate(self.split)]
        self._mark_unlearned(c, paired)
        return c

    def _mark_unlearned(self, c: Comparison, paired: list[Run]) -> None:
        """The runs `c` rests on that did not learn, and the majority-class rate they missed."""
        c.unlearned = [r.name for r in paired if r.learned(self.split) is False]
        _, top, n = S.majority(paired[0].targets(self.split))
        c.majority = top / n

    def _compare_cells(self, c: Comparison) -> None:
        """A vs B over the (repeat, fold, seed) cells where both finished."""
        runs_a = {r.cell: r for r in self.finished(c.a)}
        runs_b = {r.cell: r for r in self.finished(c.b)}
        cells, c.problem = self._cells(runs_a, runs_b)
        if c.problem:
            return
        if len(cells) < 2:
            c.problem = (f"fewer than two (repeat, fold, seed) cells where both {c.label_a} and "
                         f"{c.label_b} finished")
            return
        kept, _ = S.cell_grid(cells)
        if not kept:
            c.problem = (f"no (repeat, seed) where both {c.label_a} and {c.label_b} finished "
                         "every fold")
            return
        try:
            c.counts, c.image_sq = S.cell_counts(kept)
            c.test = S.compare_cells(cells)
        except ValueError as e:  # the records' cells do not partition the same images
            c.problem, c.counts = str(e), None
            return
        c.cells = cells
        c.a_only, c.b_only, _ = c.test.counts  # summed over the cells the test used
        c.seeds = sorted({x.seed for x in kept})
        c.n = len({int(i) for x in kept for i in x.images})
        common = sorted(set(runs_a) & set(runs_b))
        paired = [runs_a[k] for k in common] + [runs_b[k] for k in common]
        c.degenerate = [r.name for r in paired if r.degenerate(self.split)]
        self._mark_unlearned(c, paired)

    def _cells(self, runs_a: dict, runs_b: dict | None, which: str = "best"
               ) -> tuple[list[S.Cell], str | None]:
        """The cells both run maps hold (one map: a model's accuracy, `b` None), with each
        cell's test images by id; or the reason the records cannot pair them."""
        ids = self.image_ids()
        out = []
        for key in sorted(set(runs_a) & set(runs_b if runs_b is not None else runs_a)):
            ra, rb = runs_a[key], (runs_b or {}).get(key)
            x = ra.outcomes(which, self.split)
            y = rb.outcomes(which, self.split) if rb is not None else None
            split = ra.cell_split
            if x is None or (rb is not None and y is None):
                return [], f"{ra.name}: no per-image predictions on {self.split}"
            if split is None or len(split.test) != x.size:
                return [], f"{ra.name}: its split.json does not list the cell's test images"
            if rb is not None and (rb.cell_split is None or rb.cell_split.partition
                                   != split.partition or rb.targets(self.split)
                                   != ra.targets(self.split)):
                return [], (f"{ra.name} and {rb.name} were tested on different images (their "
                            "split manifests differ)")
            out.append(S.Cell(split.repeat, split.fold, key[0],
                              np.array([ids[p] for p in split.test]), x, y, split.n_train))
        return out, None

    def finish(self) -> None:
        """Holm over every comparison made (p and TOST p), power, and the verdicts."""
        tested = [c for c in self.comparisons if c.test is not None]
        m = len(tested)
        p_holm = S.holm([c.p for c in tested])
        tost_holm = S.holm([c.test.tost_p(self.margin) for c in tested])
        for c, p, q in zip(tested, p_holm, tost_holm):
            c.m, c.p_holm, c.tost_holm = m, p, q
            c.mde = S.mde(c.test, m)
            if c.degenerate or c.unlearned:
                c.verdict = "not_testable"
            elif p < S.ALPHA:
                c.verdict = "a_better" if c.delta > 0 else "b_better"
            elif q < S.ALPHA:
                c.verdict = "equivalent"
            else:
                c.verdict = "inconclusive"
                c.decide = decide(c)

    def tally(self) -> dict[str, int]:
        return {v: sum(c.verdict == v for c in self.comparisons) for v in VERDICTS}


@dataclass
class Plan:
    """The comparisons each question of the report uses (a comparison asked twice is one object)."""

    depth: dict[str, list[Comparison]] = field(default_factory=dict)
    se: list[Comparison] = field(default_factory=list)
    se_not_run: list[str] = field(default_factory=list)  # SE-ResNets of the registry not compared
    variants: list[Comparison] = field(default_factory=list)
    across: list[Comparison] = field(default_factory=list)
    best: Comparison | None = None
    top: tuple[str, str] | None = None

    def by_question(self) -> list[tuple[str, list[Comparison]]]:
        """[(question, its comparisons)] in the report's order, each comparison once."""
        seen: set[int] = set()
        out = []
        for q, comps in (("depth", [c for cs in self.depth.values() for c in cs]),
                         ("se", self.se), ("variant", self.variants), ("across", self.across),
                         ("best", [self.best] if self.best else [])):
            mine = [c for c in comps if id(c) not in seen]
            seen |= {id(c) for c in mine}
            if mine:
                out.append((q, mine))
        return out


def plan_comparisons(an: Analysis) -> Plan:
    """Make every comparison the report needs between the groups with a finished run (which
    pairs: `pairs.asks`, the planner's list too), then correct them together
    (`Analysis.finish`)."""
    plan = Plan(depth={fam: [] for fam in an.families()})
    done = [k for k in an.groups if an.finished(k)]
    ranked = an.ranked([k for k in an.groups if k[1] == BASE])
    plan.top = ranked[0] if ranked else None
    lists = {"se": plan.se, "variant": plan.variants, "across": plan.across}
    for ask in asks(done, lambda k: an.groups[k][0].family, an.gmacs_224, ranked):
        c = an.compare(ask.section, ask.a, ask.b)
        if ask.section == "depth":
            plan.depth[an.groups[ask.a][0].family].append(c)
        elif ask.section == "best":
            plan.best = c
        else:
            lists[ask.section].append(c)
    compared = {c.a[0] for c in plan.se}
    plan.se_not_run = [m for m in se_pairs() if m not in compared]
    an.finish()
    return plan
