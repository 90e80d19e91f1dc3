"""What the trained networks do inside: SE excitation, Swin attention distance and entropy,
block-output CKA, Grad-CAM. `depthbench analyze` writes `analysis.json` into each run folder
(its schema: `depthbench.analysisrecord`).

Layering: the study pipeline and the command line call this package; it uses engine (the
checkpoint), models and data. The report reads only the `analysis.json` files and never imports
this package.
"""

from depthbench.analysis.run import analyze_path, analyze_run, check_run_dir, study_runs
from depthbench.analysisrecord import FORMAT

__all__ = ["FORMAT", "analyze_path", "analyze_run", "check_run_dir", "study_runs"]
