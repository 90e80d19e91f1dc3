"""Planning a study before it trains: its design, its costs, what each comparison can decide and
the alternatives (`plan_study`, behind `depthbench plan`), and what `run` says before it starts
(`announce`)."""

from depthbench.study.plan.decide import Detectable, Planned, Variance
from depthbench.study.plan.design import Design, Sizes
from depthbench.study.plan.estimate import (
    Announcement,
    StudyPlan,
    announce,
    free_bytes,
    plan_study,
)

__all__ = ["Announcement", "Design", "Detectable", "Planned", "Sizes", "StudyPlan", "Variance",
           "announce", "free_bytes", "plan_study"]
