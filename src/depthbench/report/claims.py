"""The source study's claims, each judged from the comparisons' verdicts.

A claim's outcome is one of `OUTCOMES`: supported, not supported, equivalent (a "does not help"
claim shown by the equivalence test), inconclusive (with what would decide it), not testable (it
rests on a degenerate run, on a run that did not beat the majority class, on runs that did not
finish, or on convergence when no model converged). Each claim carries a one-line `reason` for the report's table and the full `detail`.
"""

from __future__ import annotations

from dataclasses import dataclass

from depthbench.names import display_name
from depthbench.report.analysis import (
    BASE,
    CONVERGED_TRAIN_ACC,
    Analysis,
    Comparison,
    Plan,
    group_label,
)
from depthbench.report.fmt import fmt_p, pct, pts
from depthbench.report.pairs import SOURCE_BEST

OUTCOMES = ("supported", "not supported", "equivalent", "inconclusive", "not testable")


@dataclass
class Claim:
    claim: str  # the source study's words
    outcome: str  # one of OUTCOMES
    reason: str  # one line
    detail: str = ""  # the comparisons it rests on, in full
    budget: bool = True  # not testable because of the runs (degenerate, unconverged, did not
    # learn), not because a model was not run

    @property
    def word(self) -> str:
        if self.outcome == "not testable":
            return "not testable (budget)" if self.budget else "not testable (not run)"
        return self.outcome


def judge_claims(an: Analysis, plan: Plan) -> list[Claim]:
    return [_se_helps(plan), _deeper_resnet(plan), _swin_converges(an),
            _se50_best(an, plan), _swin_vs_cnns(plan)]


def _details(comps: list[Comparison]) -> str:
    """Each comparison by name, verdict, Δ and adjusted p (its full sentence is the report's
    'Comparisons in detail', once)."""
    return "; ".join(_brief(c) for c in comps)


def _brief(c: Comparison) -> str:
    if not c.test:
        return f"{c.name}: {c.word} ({c.problem})"
    return (f"{c.name}: {c.word} (Δ = {pts(c.delta)} points, Holm-adjusted p = "
            f"{fmt_p(c.p_holm)}" + (", degenerate runs" if c.degenerate else "")
            + (", runs that did not learn" if c.unlearned else "") + ")")


def _depth(model: str) -> str:
    """'SE-ResNet-50' -> '50', 'Swin-T' -> 'T': a model's depth within its family."""
    return display_name(model).rsplit("-", 1)[-1]


def _tally(comps: list[Comparison], name) -> str:
    """'18: better; 34: inconclusive': each comparison's verdict in one word."""
    return "; ".join(f"{name(c)}: {c.word}" for c in comps)


def _counts(comps: list[Comparison]) -> str:
    """'2 worse, 4 inconclusive': how many comparisons got each verdict."""
    words = [c.word for c in comps]
    return ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words))


def _se_helps(plan: Plan) -> Claim:
    claim = "SE helps at every depth"
    if not plan.se:
        return Claim(claim, "not testable", "no ResNet / SE-ResNet pair finished at one depth",
                     budget=False)
    reason = _tally(plan.se, lambda c: _depth(c.a[0]))
    if plan.se_not_run:
        reason += "; not run: " + ", ".join(display_name(m) for m in plan.se_not_run)
    detail = _details(plan.se)
    if any(c.verdict in ("b_better", "equivalent") for c in plan.se):
        return Claim(claim, "not supported", reason, detail)
    if any(c.verdict == "not_testable" for c in plan.se):
        return Claim(claim, "not testable", reason, detail)
    if all(c.verdict == "a_better" for c in plan.se) and not plan.se_not_run:
        return Claim(claim, "supported", reason, detail)
    return Claim(claim, "inconclusive", reason, detail)


def _deeper_resnet(plan: Plan) -> Claim:
    claim = "Deeper plain ResNet does not help"
    comps = plan.depth.get("resnet", [])
    if not comps:
        return Claim(claim, "not testable", "fewer than two ResNet depths finished",
                     budget=False)
    reason = "deeper vs shallower: " + _tally(comps, lambda c: f"{_depth(c.a[0])} vs "
                                                                f"{_depth(c.b[0])}")
    return _no_better(claim, comps, reason)  # a is the deeper model


def _no_better(claim: str, comps: list[Comparison], reason: str) -> Claim:
    """A claim that each comparison's A does not beat its B: refuted by one A better, supported
    only by B better or shown equivalent everywhere (a non-significant difference is no evidence
    of no difference)."""
    detail = _details(comps)
    if any(c.verdict == "a_better" for c in comps):
        return Claim(claim, "not supported", reason, detail)
    if any(c.verdict == "not_testable" for c in comps):
        return Claim(claim, "not testable", reason, detail)
    if all(c.verdict in ("equivalent", "b_better") for c in comps):
        worse = any(c.verdict == "b_better" for c in comps)
        return Claim(claim, "supported" if worse else "equivalent", reason, detail)
    return Claim(claim, "inconclusive", reason,
                 "a non-significant difference is not evidence of no difference; " + detail)


def _swin_converges(an: Analysis) -> Claim:
    claim = "Swin does not converge"
    definition = (f"'converged' means a last-epoch train accuracy of at least "
                  f"{100 * CONVERGED_TRAIN_ACC:.0f}% (mean over seeds; eval-mode train subset "
                  "when recorded)")
    swins = [k for k in an.models_in("swin") if an.finished(k)]
    if not swins:
        return Claim(claim, "not testable", "no Swin run finished", definition, budget=False)
    others = [k for k in an.groups if k[1] == BASE and an.groups[k][0].family != "swin"
              and an.finished(k)]
    accs = ", ".join(f"{group_label(k)} {pct(an.last_train_acc(k))}" for k in swins + others)
    conv = [k for k in swins if an.converged(k)]
    conv_other = [k for k in others if an.converged(k)]
    reason = (f"train acc ≥ {100 * CONVERGED_TRAIN_ACC:.0f}% at the last epoch: {len(conv)} of "
              f"{len(swins)} Swin, {len(conv_other)} of {len(others)} CNNs")
    detail = f"{definition}. Last-epoch train accuracy: {accs}"
    if not conv and not conv_other:
        return Claim(claim, "not testable", reason + " (nothing converged: train longer)",
                     detail + ". No model of any family converged, so non-convergence here says "
                     "nothing specific about Swin.")
    return Claim(claim, "not supported" if conv else "supported", reason, detail + ".")


def _se50_best(an: Analysis, plan: Plan) -> Claim:
    claim = "SE-ResNet-50 is best"
    se50 = (SOURCE_BEST, BASE)
    c = plan.best
    if c is None:
        why = ("SE-ResNet-50 was not run" if se50 not in an.groups else
               "SE-ResNet-50 did not finish" if not an.finished(se50) else
               "no other model finished")
        return Claim(claim, "not testable", why, budget=False)
    if c.verdict == "not_testable":
        return Claim(claim, "not testable", f"{c.name}: {c.word}", _brief(c))
    top = plan.top == se50
    other = c.b if c.a == se50 else c.a
    reason = (f"highest validation accuracy; against the runner-up {group_label(other)}: "
              if top else f"{group_label(plan.top)} has the highest validation accuracy; "
              f"against it: ") + ("better" if c.winner() == se50 else "worse" if c.winner()
                                  else c.word)
    detail = f"on {an.eval_name}: {_brief(c)}"
    if c.winner() == se50:
        return Claim(claim, "supported" if top else "inconclusive", reason, detail)
    if c.verdict in ("a_better", "b_better", "equivalent"):
        return Claim(claim, "not supported", reason, detail)
    return Claim(claim, "inconclusive", reason, detail)


def _swin_vs_cnns(plan: Plan) -> Claim:
    """The source's horizontal control: Swin against the CNNs at matched cost. Its table has Swin
    below the CNNs, and it reads Swin as no better."""
    claim = "Swin is no better than the CNNs at matched cost"
    comps = plan.across
    if not comps:
        return Claim(claim, "not testable", "no Swin and no ResNet / SE-ResNet both finished",
                     budget=False)
    reason = (f"Swin vs the CNN nearest in GMACs at 224 px ({len(comps)} pairs): "
              + _counts(comps))
    return _no_better(claim, comps, reason)  # a is the Swin
