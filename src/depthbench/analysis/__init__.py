"""What the trained networks do inside: SE excitation, Swin attention distance and entropy,
block-output CKA, Grad-CAM. `depthbench analyze` writes `analysis.json` into each run folder.

Layering: cli -> study -> analysis -> engine / models / data; the report reads only the
`analysis.json` files and never imports this package.
"""

from depthbench.analysis.run import FORMAT, analyze_path, analyze_run, check_run_dir, study_runs

__all__ = ["FORMAT", "analyze_path", "analyze_run", "check_run_dir", "study_runs"]
