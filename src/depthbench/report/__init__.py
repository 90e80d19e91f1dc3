"""The study report: results.csv, report.md, report.html and figures/, built from run records only.

`build_report(study_dir)` is what `depthbench run` calls at the end and `depthbench report DIR`
calls alone; `load_study` reads the records; `stats` holds the statistics.
"""

from depthbench.report.build import build_report, results_csv
from depthbench.report.records import Run, Study, load_study

__all__ = ["build_report", "load_study", "results_csv", "Run", "Study"]
