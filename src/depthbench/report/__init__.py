"""The study report: results.csv, comparisons.csv, report.md, report.html and figures/, built from
run records only.

`build.build_report(study_dir)` is what `depthbench run` calls at the end and `depthbench report
DIR` calls alone. Its parts: `records` reads the run folders; `stats` holds the statistics;
`analysis` groups the runs, makes every comparison once and gives each its verdict; `claims`
judges the source study's claims; `sections` writes the report's text; `exports` the CSV files;
`fmt` formats numbers; `document` and `figures` render; `options` holds the report's defaults.

Import names from their modules: this file imports nothing, so the study spec reads
`report.options` without scipy and matplotlib.
"""
