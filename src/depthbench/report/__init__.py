"""The study report: results.csv, comparisons.csv, report.md, report.html and figures/, built from
run records only.

`build_report(study_dir)` is what `depthbench run` calls at the end and `depthbench report DIR`
calls alone. Parts: `records` reads the run folders; `stats` holds the statistics; `analysis`
groups runs and makes every comparison; `claims` judges the source study's claims; `sections`
writes the report's sections; `exports` the CSV files; `fmt` the number formatting;
`document`/`figures` render.
"""


def build_report(*args, **kwargs):
    from depthbench.report.build import build_report as build

    return build(*args, **kwargs)


def load_study(*args, **kwargs):
    from depthbench.report.records import load_study as load

    return load(*args, **kwargs)


__all__ = ["build_report", "load_study"]
