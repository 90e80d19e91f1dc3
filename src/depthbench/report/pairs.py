"""Which (model, variant) pairs the report compares, from the pairs' names alone: the report
makes these comparisons from a study's finished runs (`analysis.plan_comparisons`), and the
planner from the grid before any run exists (`study.plan.decide`), so both count the same pairs
and the same Holm family. Pure: names and numbers in, no records read (the planner sits above
the report, so it imports this module directly).

The questions, in the report's order (`analysis.QUESTIONS`): depth per family (each depth against
the next shallower one, and the deepest against the shallowest), SE per depth (every SE-ResNet
against the ResNet of its depth), key dropout (each variant against its base), across families
at matched cost (each Swin against the ResNet and the SE-ResNet nearest to it in GMACs at 224 px),
and the source's "SE-ResNet-50 is best" (against the runner-up by validation accuracy, when no
other question made that pair). A pair asked twice is one comparison, kept under the first
question that asked for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from depthbench.names import canonical, model_order, se_pairs
from depthbench.runrecord import BASE_VARIANT as BASE

SOURCE_BEST = "seresnet50"  # the source study's claim "SE-ResNet-50 is best"
CONTROL_FAMILIES = ("resnet", "seresnet")  # the source's controls for Swin, across families
RUNNER_UP = ("the runner-up", "")  # the best claim's B before any run has ranked the models

Key = tuple[str, str]  # (model, variant)


@dataclass(frozen=True)
class Pair:
    """One comparison the report makes: `a` against `b` under `section` (a key of
    `analysis.QUESTIONS`). `b` is `RUNNER_UP` for the best claim when no ranking is known."""

    section: str
    a: Key
    b: Key


def report_order(points: Sequence[Key]) -> list[Key]:
    """The points in the report's order: models in the canonical order, base before variants."""
    return sorted(dict.fromkeys(points), key=lambda k: (model_order(k[0]), k[1] != BASE, k[1]))


def asks(points: Sequence[Key], family: Callable[[Key], str],
         gmacs_224: Callable[[Key], float | None],
         ranked: Sequence[Key] | None = None) -> list[Pair]:
    """Every comparison each question asks for between `points` (the (model, variant) pairs
    with results, or the grid's before any run), in the report's order; a pair two questions
    ask for appears twice (`comparison_pairs` counts it once). `family(key)` and
    `gmacs_224(key)` (None: unknown) describe a point; `ranked`: the base points by validation
    accuracy, best first (None before any run: the best claim is asked against `RUNNER_UP`)."""
    points = report_order(points)
    base = [k for k in points if k[1] == BASE]
    out: list[Pair] = []
    for fam in dict.fromkeys(family(k) for k in points):
        keys = [k for k in base if family(k) == fam]
        pairs = list(zip(keys[1:], keys[:-1]))  # each depth against the next shallower one
        if len(keys) >= 3:
            pairs.append((keys[-1], keys[0]))  # deepest against shallowest
        out += [Pair("depth", a, b) for a, b in pairs]
    plain_of = se_pairs()
    for key in (k for k in base if family(k) == "seresnet"):
        plain = (plain_of.get(canonical(key[0]), ""), BASE)
        if plain in base:
            out.append(Pair("se", key, plain))
    out += [Pair("variant", (model, variant), (model, BASE)) for model, variant in points
            if variant != BASE and (model, BASE) in base]
    for swin in (k for k in base if family(k) == "swin"):
        for fam in CONTROL_FAMILIES:
            near = nearest(swin, [k for k in base if family(k) == fam], gmacs_224)
            if near is not None:
                out.append(Pair("across", swin, near))
    best = (SOURCE_BEST, BASE)
    if ranked is None:
        if best in base and len(base) >= 2:
            out.append(Pair("best", best, RUNNER_UP))
        return out
    ranked = [k for k in ranked if k in base]
    if best in ranked and len(ranked) >= 2:
        out.append(Pair("best", best, ranked[1] if ranked[0] == best else ranked[0]))
    return out


def comparison_pairs(points: Sequence[Key], family: Callable[[Key], str],
                     gmacs_224: Callable[[Key], float | None],
                     ranked: Sequence[Key] | None = None) -> list[Pair]:
    """The distinct comparisons of `asks` (Holm's family), each under the first question that
    asked for it. Without a ranking the best claim counts as one more comparison unless every
    base point is already compared with SE-ResNet-50 (then its runner-up, whichever it is, is
    one of them): the larger of the two families it can give."""
    out: list[Pair] = []
    for p in asks(points, family, gmacs_224, ranked):
        if p.b == RUNNER_UP:
            others = {k for k in report_order(points) if k[1] == BASE and k != p.a}
            if all(any({q.a, q.b} == {p.a, k} for q in out) for k in others):
                continue
        if not any({q.a, q.b} == {p.a, p.b} for q in out):
            out.append(p)
    return out


def nearest(key: Key, candidates: Sequence[Key], gmacs_224: Callable[[Key], float | None]
            ) -> Key | None:
    """The candidate nearest to `key` in GMACs at 224 px (by ratio; the cheaper one on a tie)."""
    g = gmacs_224(key)
    costed = [(c, gmacs_224(c)) for c in candidates if gmacs_224(c)]
    if not g or not costed:
        return None
    return min(costed, key=lambda cg: (abs(math.log(cg[1] / g)), cg[1]))[0]
