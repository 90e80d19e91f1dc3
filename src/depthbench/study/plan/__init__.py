"""Planning a study before it trains: its design, its costs and the alternatives
(`plan_study`, behind `depthbench plan`), and what `run` says before it starts (`announce`)."""

from depthbench.study.plan.design import Design, Detectable, Sizes, detectable
from depthbench.study.plan.estimate import (
    Announcement,
    StudyPlan,
    announce,
    free_bytes,
    plan_study,
)

__all__ = ["Announcement", "Design", "Detectable", "Sizes", "StudyPlan", "announce",
           "detectable", "free_bytes", "plan_study"]
