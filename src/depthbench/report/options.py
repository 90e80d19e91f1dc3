"""The report's options and their defaults (study.yaml's `report:` section).

No imports and no package-level work: the study spec's schema takes its default from here, and
`depthbench.report` loads its statistics and figures only when they are used.
"""

EQUIVALENCE_MARGIN = 0.02  # the equivalence test's margin, a fraction: ±2 points
MARGIN_LIMITS = (0.0, 0.5)  # a margin lies strictly between these
