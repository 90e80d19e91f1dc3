"""Build a study's report from its run records: results.csv, comparisons.csv, report.md,
report.html and figures/.

Reads run folders only (records.py), never the engine. Selection is by validation; the paired
tests and intervals run on the evaluation split (test when the study has one, else validation,
flagged as optimistic). The parts: analysis.py (comparisons and verdicts), claims.py (the source
study's claims), overview.py (the first screen, the models and the claims), sections.py (the
rest), inside.py (what the networks do inside), exports.py (the CSV files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from depthbench._io import atomic_write_text
from depthbench.report import overview, sections
from depthbench.report.analysis import Analysis, Plan, plan_comparisons
from depthbench.report.document import Document, Para, to_html, to_markdown
from depthbench.report.exports import comparisons_csv, results_csv
from depthbench.report.inside import inside_section
from depthbench.report.records import load_study


@dataclass
class Built:
    """What `build` made: the analysis, its plan, the document, and report.md's path."""

    analysis: Analysis
    plan: Plan
    doc: Document
    path: Path


def build_report(study_dir: str | Path) -> Path:
    """Write the report files into `study_dir`; return report.md's path.

    Reads the run records alone; raises `DepthbenchError` when the folder holds no run records.
    """
    return build(study_dir).path


def build(study_dir: str | Path) -> Built:
    """`build_report`, returning what it made as well (tests read the blocks)."""
    study = load_study(study_dir)
    out = study.path
    fig_dir = out / "figures"
    an = Analysis(study)
    plan = plan_comparisons(an)
    atomic_write_text(out / "results.csv", results_csv(study))
    atomic_write_text(out / "comparisons.csv", comparisons_csv(an))
    doc, written = compose(an, plan, fig_dir)
    for stale in fig_dir.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    atomic_write_text(out / "report.md", to_markdown(doc))
    atomic_write_text(out / "report.html", to_html(doc))
    return Built(an, plan, doc, out / "report.md")


def compose(an: Analysis, plan: Plan, fig_dir: Path) -> tuple[Document, set[str]]:
    """The report's blocks, in order, drawing its figures into `fig_dir`: (the document, the
    names of the figures written)."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    doc = Document(f"depthbench report: {an.study.name}")
    written: set[str] = set()
    overview.at_a_glance(doc, an, plan, fig_dir, written)
    overview.models_table(doc, an)
    overview.claims(doc, an, plan)
    sections.comparisons(doc, an, plan)
    sections.training(doc, an, fig_dir, written)
    sections.confusion(doc, an, fig_dir, written)
    doc.add(*_inside(an, fig_dir, written))
    sections.cost(doc, an)
    if an.study.is_flowers:
        sections.source(doc, an)
    sections.runs(doc, an)
    sections.methods(doc, an)
    return doc, written


def _inside(an: Analysis, fig_dir: Path, written: set[str]) -> list:
    """The "Inside the networks" section; of a cross-validated study, from one cell's runs (the
    ones `depthbench run` analyzes), which it names."""
    if not an.cv:
        return inside_section([r.path for r in an.study.runs], fig_dir, written)
    blocks = inside_section([r.path for r in an.study.runs if r.repeat == 0 and r.fold == 0],
                            fig_dir, written)
    return blocks[:1] + [Para("Cross-validated study: measured on the runs of repeat 0, fold 0 "
                              "(one cell, tested on that fold's images); the other cells' "
                              "networks are not analysed.", css="note")] + blocks[1:]
