"""Rebuild a study's results.csv, comparisons.csv, report.md, report.html and figures from its
run records alone."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("dir", metavar="DIR", help="a study folder (runs/<study name>)")


def run(args) -> int:
    from depthbench.report.build import build_report  # on use: `--help` stays free of matplotlib

    md = build_report(args.dir)
    folder = md.parent
    for name in ("results.csv", "comparisons.csv", "report.md", "report.html", "figures/"):
        print(folder / name)
    return 0
