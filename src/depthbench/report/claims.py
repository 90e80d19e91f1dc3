"""The source study's four claims, each judged from the comparisons' verdicts.

A claim's outcome is one of: supported, not supported, equivalent (a "does not help" claim shown
by the equivalence test), inconclusive (with what would decide it), not testable (it rests on a
degenerate run, on runs that did not finish, or on convergence when no model converged).
"""

from __future__ import annotations

from dataclasses import dataclass

from depthbench.report.analysis import (
    BASE,
    CONVERGED_TRAIN_ACC,
    Analysis,
    Comparison,
    Plan,
    group_label,
)
from depthbench.report.fmt import pct

OUTCOMES = ("supported", "not supported", "equivalent", "inconclusive", "not testable")


@dataclass
class Claim:
    claim: str  # the source study's words
    outcome: str  # one of OUTCOMES
    detail: str
    budget: bool = True  # not testable because of the runs (degenerate, unconverged), not a gap

    def text(self) -> str:
        words = {"equivalent": "supported: equivalent within the margin (TOST)",
                 "not testable": "not testable under this budget" if self.budget else
                 "not testable here"}.get(self.outcome, self.outcome)
        return f"'{self.claim}': {words} — {self.detail}"


def judge_claims(an: Analysis, plan: Plan) -> list[Claim]:
    return [_se_helps(an, plan), _deeper_resnet(an, plan), _swin_converges(an),
            _se50_best(an, plan)]


def _details(comps: list[Comparison]) -> str:
    return "; ".join(f"{c.label_a} vs {c.label_b}: {c.words()}" for c in comps)


def _se_helps(an: Analysis, plan: Plan) -> Claim:
    claim = "SE helps at every depth"
    if not plan.se:
        return Claim(claim, "not testable", "no ResNet/SE-ResNet pair finished at the same depth.",
                     budget=False)
    detail = _details(plan.se)
    missing = [d for d in ("18", "34", "50") if d not in
               [c.a[0].removeprefix("seresnet") for c in plan.se]]
    if missing:
        detail += f"; depths not run: {', '.join(missing)}"
    if any(c.verdict in ("b_better", "equivalent") for c in plan.se):
        return Claim(claim, "not supported", detail + ".")
    if any(c.verdict == "not_testable" for c in plan.se):
        return Claim(claim, "not testable", detail + ".")
    if all(c.verdict == "a_better" for c in plan.se) and not missing:
        return Claim(claim, "supported", detail + ".")
    return Claim(claim, "inconclusive", detail + ".")


def _deeper_resnet(an: Analysis, plan: Plan) -> Claim:
    claim = "Deeper plain ResNet does not help"
    comps = plan.depth.get("resnet", [])
    if not comps:
        return Claim(claim, "not testable", "fewer than two ResNet depths finished.", budget=False)
    detail = _details(comps) + "."
    if any(c.verdict == "a_better" for c in comps):  # a is the deeper model
        return Claim(claim, "not supported", detail)
    if any(c.verdict == "not_testable" for c in comps):
        return Claim(claim, "not testable", detail)
    if all(c.verdict in ("equivalent", "b_better") for c in comps):
        worse = any(c.verdict == "b_better" for c in comps)
        return Claim(claim, "supported" if worse else "equivalent",
                     ("deeper is worse or equivalent: " if worse else "") + detail)
    return Claim(claim, "inconclusive", "a non-significant difference is not evidence of no "
                 "difference; " + detail)


def _swin_converges(an: Analysis) -> Claim:
    claim = "Swin does not converge"
    definition = (f"'converged' means a last-epoch train accuracy of at least "
                  f"{100 * CONVERGED_TRAIN_ACC:.0f}% (mean over seeds; eval-mode train subset "
                  "when recorded)")
    swins = [k for k in an.models_in("swin") if an.finished(k)]
    if not swins:
        return Claim(claim, "not testable", f"no Swin run finished; {definition}.", budget=False)
    others = [k for k in an.groups if k[1] == BASE and an.groups[k][0].family != "swin"
              and an.finished(k)]
    accs = ", ".join(f"{group_label(k)} {pct(an.last_train_acc(k))}" for k in swins + others)
    conv = [k for k in swins if an.converged(k)]
    conv_other = [k for k in others if an.converged(k)]
    detail = (f"{definition}. Last-epoch train accuracy: {accs}; converged: {len(conv)} of "
              f"{len(swins)} Swin, {len(conv_other)} of {len(others)} CNNs")
    if not conv and not conv_other:
        return Claim(claim, "not testable", detail + ". No model of any family converged, so "
                     "non-convergence here says nothing specific about Swin; train longer.")
    if conv:
        return Claim(claim, "not supported", detail + ".")
    return Claim(claim, "supported", detail + ".")


def _se50_best(an: Analysis, plan: Plan) -> Claim:
    claim = "SE-ResNet-50 is best"
    se50 = ("seresnet50", BASE)
    c = plan.best
    if c is None:
        why = ("SE-ResNet-50 was not run" if se50 not in an.groups else
               "SE-ResNet-50 did not finish" if not an.finished(se50) else
               "no other model finished")
        return Claim(claim, "not testable", why + ".", budget=False)
    if c.verdict == "not_testable":
        return Claim(claim, "not testable", c.words() + ".")
    top = plan.top == se50
    where = ("it has the highest mean validation accuracy; against the runner-up on "
             f"{an.eval_name}" if top else f"{group_label(plan.top)} has the highest mean "
             f"validation accuracy; SE-ResNet-50 against it on {an.eval_name}")
    detail = f"{where}: {c.words()}."
    if c.winner() == se50:
        return Claim(claim, "supported" if top else "inconclusive", detail)
    if c.verdict in ("a_better", "b_better", "equivalent"):
        return Claim(claim, "not supported", detail)
    return Claim(claim, "inconclusive", detail)
