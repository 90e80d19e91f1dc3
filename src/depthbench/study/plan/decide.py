"""What each comparison of a planned study can decide: the comparisons the report would make
between the grid's (model, variant) points (`report.pairs`, the report's own list, with its Holm
family), and for each, at each design, the minimal detectable difference at `stats.POWER` power
and the Holm level (`report.stats.detectable`, the function behind the report's "what would
decide it"), from variance components that come from one of two sources, said in the output:

- a finished or partial study (`--from STUDY_DIR`): each comparison's own components as its
  report's test measured them (`report.analysis.components_of`); at that study's design and Holm
  family the plan gives its report's detectable difference exactly. A comparison measured on one
  seed measures only its discordance: the plan splits it into image, run and residual terms by the
  defaults' shares below. A comparison the study did not make takes the defaults at the
  median discordance of those it made.
- stated defaults, measured on this project's ELPV studies (the constants below, each with its
  study; BENCHMARKS.md, "depthbench plan", shows how they were measured).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from depthbench.report import stats as S
from depthbench.report.analysis import Analysis, components_of, plan_comparisons
from depthbench.report.analysis import group_label as _label
from depthbench.report.pairs import BASE, RUNNER_UP, Key, Pair, comparison_pairs
from depthbench.report.records import load_study
from depthbench.study.plan.design import Design, Sizes

# The defaults (fractions; the per-image terms of `stats.Components`), measured on this project's
# ELPV studies (BENCHMARKS.md, "depthbench plan"). The quick study (`depthbench run --preset
# quick`: eleven runs, one seed, 392 test images; `python -m benchmarks.bench_plan
# --defaults-from STUDY` measures these two on any finished study): the median over its
# comparisons of the share of test images on which A and B disagree, and its runs' mean test
# accuracy (stated beside it: the binomial the discordance belongs to). One seed cannot split
# the disagreement between images and runs; ResNet-18 against SE-ResNet-18 on the quick split
# over ten seeds does (`benchmarks/bench_cv_gain.py`; BENCHMARKS.md, "What cross-validation buys
# on ELPV", its components row): the share of the disagreement that stays with the image (the
# image term over image + residual), and the run-to-run variance of a seed's mean difference
# beyond its images' (the seed term).
DEFAULT_DISCORDANCE = 0.0485
DEFAULT_ACCURACY = 0.695
IMAGE_SHARE = 0.0195
RUN_TERM = 1.0e-5


@dataclass(frozen=True)
class Variance:
    """The variance source of a plan, in words and as numbers."""

    source: str  # "defaults" or the study folder
    text: str
    numbers: dict = field(default_factory=dict)


@dataclass
class Planned:
    """One comparison of the plan: its pair, the Holm family it is corrected in, its components
    and where they come from."""

    pair: Pair
    m: int
    components: S.Components | S.CVComponents
    source: str  # measured | measured on one seed, split by the defaults | defaults

    @property
    def name(self) -> str:
        b = self.pair.b
        return f"{_label(self.pair.a)} vs {b[0] if b == RUNNER_UP else _label(b)}"


@dataclass(frozen=True)
class Detectable:
    """What a design can decide: each comparison's minimal detectable difference (accuracy
    points, in the plan's order), and their median and worst."""

    each: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.each)

    @property
    def worst(self) -> float:
        return max(self.each)


def default_components(discordance: float = DEFAULT_DISCORDANCE) -> S.Components:
    """The stated defaults as components: the discordance split into an image term
    (`IMAGE_SHARE`), a run term (`RUN_TERM`) and the residual; at one seed their sum is the
    discordance, so the exact McNemar sees just that."""
    img = IMAGE_SHARE * discordance
    run = min(RUN_TERM, discordance - img)
    return S.Components(img, run, discordance - img - run)


def split_one_seed(c: S.Components) -> S.Components:
    """A one-seed comparison's components (`components_of`: its discordance as the image term),
    split as the defaults split theirs."""
    return default_components(c.img + c.seed + c.res)


def defaults() -> Variance:
    return Variance("defaults", (
        f"stated defaults: two models near {DEFAULT_ACCURACY:.1%} accuracy disagreeing on "
        f"{DEFAULT_DISCORDANCE:.2%} of the test images (binomial per image; the median of the "
        f"quick study's comparisons on ELPV, one seed), {IMAGE_SHARE:.2%} of that disagreement "
        f"staying with the image and a run-to-run variance of {RUN_TERM:.1e} in a seed's mean "
        "difference (ResNet-18 against SE-ResNet-18 over ten seeds on ELPV); `--from STUDY_DIR` "
        "measures them instead"),
        {"accuracy": DEFAULT_ACCURACY, "discordance": DEFAULT_DISCORDANCE,
         "image_share": IMAGE_SHARE, "run_term": RUN_TERM})


def measured(study_dir: Path) -> tuple[Variance, dict[frozenset, tuple], list[Key]]:
    """A study's comparisons as its report makes them: (the source in words, each tested pair's
    components and the design they were measured at, the base points by validation accuracy,
    best first)."""
    an = Analysis(load_study(study_dir))
    plan_comparisons(an)
    comps = {frozenset((c.a, c.b)): components_of(c) for c in an.comparisons
             if c.test is not None}
    ranked = an.ranked([k for k in an.groups if k[1] == BASE])
    runs = sum(r.finished for r in an.study.runs)
    text = (f"measured: {an.study.path} ({runs} finished runs, {len(comps)} tested "
            f"comparisons), each comparison's image, run-to-run and residual terms as its "
            "report measured them")
    return Variance(str(an.study.path), text, {"finished_runs": runs}), comps, ranked


def planned(points: list[Key], family, gmacs_224, study_dir: Path | None = None
            ) -> tuple[Variance, list[Planned]]:
    """The report's comparisons between the grid's `points` (`family(key)`, `gmacs_224(key)`
    describe them) with their components: from `study_dir`'s measurements where it made the
    comparison; where it did not, the defaults at its comparisons' median discordance (a study
    on the same data knows it better than the defaults do); without a study, the defaults."""
    measured_comps: dict = {}
    ranked = None
    variance = defaults()
    fallback, fallback_source = default_components(), "defaults"
    if study_dir is not None:
        variance, measured_comps, ranked = measured(study_dir)
        base = {k for k in points if k[1] == BASE}
        if not base <= set(ranked):
            ranked = None  # the study ranks only some of the grid's models: the runner-up unknown
        if measured_comps:
            rates = [sum(c.as_array()) if isinstance(c, S.CVComponents) else c.img + c.seed + c.res
                     for c, _ in measured_comps.values()]
            fallback = default_components(statistics.median(rates))
            fallback_source = "defaults at the study's median discordance"
            variance = Variance(variance.source, (
                f"{variance.text}; a comparison it did not make: the defaults' split (below) "
                f"of its median discordance, {statistics.median(rates):.2%}; one it made on one "
                f"seed: the same split of its own; defaults: {defaults().text}"),
                {**variance.numbers, "median_discordance": statistics.median(rates)})
    pairs = comparison_pairs(points, family, gmacs_224, ranked)
    out = []
    for p in pairs:
        comp, at = measured_comps.get(frozenset((p.a, p.b)), (None, None))
        if comp is None:
            out.append(Planned(p, len(pairs), fallback, fallback_source))
        elif not at.folds and at.seeds == 1:
            out.append(Planned(p, len(pairs), split_one_seed(comp),
                               "measured on one seed, split by the defaults"))
        else:
            out.append(Planned(p, len(pairs), comp, "measured"))
    return variance, out


def stats_design(design: Design, sizes: Sizes, images: int) -> S.Design:
    """A design as the statistics count it: the single split's test images per run (its
    validation images where it has no test split, as the report then tests on them) and seeds;
    cross-validation's `images` in all, its folds, repeats and seeds."""
    if design.folds:
        return S.Design(images, design.seeds, design.folds, design.repeats)
    return S.Design(sizes.test or sizes.val, design.seeds)


def detectable(comparisons: list[Planned], design: Design, sizes: Sizes, images: int
               ) -> Detectable | None:
    """Each comparison's minimal detectable difference at `design` (accuracy points): the
    report's `stats.detectable` at its Holm family; None without comparisons or test images."""
    d = stats_design(design, sizes, images)
    if not comparisons or not d.images:
        return None
    return Detectable(tuple(100 * S.detectable(c.components, d, c.m) for c in comparisons))


def cheapest_reaching(rows: list[tuple[Design, Detectable | None, float]],
                      target: float) -> Design | None:
    """The cheapest design (by its cost, the third item) whose worst detectable difference is
    within `target` points; None when none is known to reach it."""
    reaching = [(cost, d) for d, det, cost in rows if det is not None and det.worst <= target]
    return min(reaching, key=lambda r: r[0])[1] if reaching else None
