"""The study report: results.csv, comparisons.csv, report.md, report.html and figures/, built from
run records only.

`build_report(study_dir)` is what `depthbench run` calls at the end and `depthbench report DIR`
calls alone. Its parts: `records` reads the run folders; `stats` holds the statistics;
`analysis` groups the runs, makes every comparison once and gives each its verdict; `claims`
judges the source study's claims; `sections` writes the report's text; `exports` the CSV files;
`fmt` formats numbers; `document` and `figures` render.
"""

from depthbench.report.build import build_report
from depthbench.report.exports import comparisons_csv, results_csv
from depthbench.report.records import Run, Study, load_study

__all__ = ["build_report", "comparisons_csv", "load_study", "results_csv", "Run", "Study"]
