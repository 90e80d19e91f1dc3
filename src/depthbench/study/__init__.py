"""Studies: a validated spec (YAML or preset), its grid of runs, and the runner that trains them
one process each (resumable, locked, with one progress display) and then builds the report."""

from depthbench.study.grid import RunPlan, plan_runs
from depthbench.study.runner import Summary, run_study
from depthbench.study.spec import PRESETS, StudySpec, load_spec, preset_path, validate_spec

__all__ = ["PRESETS", "RunPlan", "StudySpec", "Summary", "load_spec", "plan_runs", "preset_path",
           "run_study", "validate_spec"]
