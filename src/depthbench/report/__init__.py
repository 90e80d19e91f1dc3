"""The study report: results.csv, comparisons.csv, report.md, report.html and figures/, built from
run records only.

`build_report(study_dir)` is what `depthbench run` calls at the end and `depthbench report DIR`
calls alone. Its parts: `records` reads the run folders; `stats` holds the statistics;
`analysis` groups the runs, makes every comparison once and gives each its verdict; `claims`
judges the source study's claims; `sections` writes the report's text; `exports` the CSV files;
`fmt` formats numbers; `document` and `figures` render; `options` holds the report's defaults.
"""

from importlib import import_module

__all__ = ["build_report", "comparisons_csv", "load_study", "results_csv", "Run", "Study"]
_HOME = {"build_report": "build", "comparisons_csv": "exports", "results_csv": "exports",
         "load_study": "records", "Run": "records", "Study": "records"}


def __getattr__(name: str):
    # Lazy boundary: `depthbench.report.options` (the study spec's defaults) must not load scipy
    # and matplotlib, so the package imports its parts on first use.
    if name in _HOME:
        return getattr(import_module(f"depthbench.report.{_HOME[name]}"), name)
    raise AttributeError(f"module 'depthbench.report' has no attribute {name!r}")
