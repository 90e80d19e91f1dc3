"""Build a study's report from its run records: results.csv, comparisons.csv, report.md,
report.html and figures/.

Reads run folders only (records.py), never the engine. Selection is by validation; the paired
tests and intervals run on the evaluation split (test when the study has one, else validation,
flagged as optimistic). The parts: analysis.py (comparisons and verdicts), claims.py (the source
study's claims), sections.py (the text), exports.py (the CSV files).
"""

from __future__ import annotations

from pathlib import Path

from depthbench._io import atomic_write_text
from depthbench.report import sections
from depthbench.report.analysis import Analysis, plan_comparisons
from depthbench.report.document import Document, to_html, to_markdown
from depthbench.report.exports import comparisons_csv, results_csv
from depthbench.report.inside import inside_section
from depthbench.report.records import load_study


def build_report(study_dir: str | Path) -> Path:
    """Write the report files into `study_dir`; return report.md's path.

    Reads the run records alone; raises `DepthbenchError` when the folder holds no run records.
    """
    study = load_study(study_dir)
    out = study.path
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    an = Analysis(study)
    plan = plan_comparisons(an)
    atomic_write_text(out / "results.csv", results_csv(study))
    atomic_write_text(out / "comparisons.csv", comparisons_csv(an))

    doc = Document(f"depthbench report: {study.name}")
    written: set[str] = set()
    sections.summary(doc, an, plan)
    sections.depth(doc, an, plan, fig_dir, written)
    sections.se(doc, an, plan)
    sections.variants(doc, an, plan)
    sections.curves(doc, an, fig_dir, written)
    sections.confusion(doc, an, fig_dir, written)
    doc.add(*inside_section([r.path for r in study.runs], fig_dir, written))
    sections.cost(doc, an)
    sections.claims(doc, an, plan)
    if study.is_flowers:
        sections.source(doc, an)
    sections.run_tables(doc, an)
    sections.methods(doc, an)

    for stale in fig_dir.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    atomic_write_text(out / "report.md", to_markdown(doc))
    atomic_write_text(out / "report.html", to_html(doc))
    return out / "report.md"
