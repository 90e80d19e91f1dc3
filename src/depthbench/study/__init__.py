"""Studies: a validated spec (YAML or preset), its grid of runs, the executors that train them
(local: one worker process each; SLURM: one job each), and the pipeline train -> analyze ->
report (`run_study`)."""

from depthbench.errors import StudyInterrupted
from depthbench.study.grid import RunPlan, plan_runs
from depthbench.study.runner import run_study
from depthbench.study.spec import PRESETS, StudySpec, load_spec, preset_path, validate_spec
from depthbench.study.summary import Summary

__all__ = ["PRESETS", "RunPlan", "StudyInterrupted", "StudySpec", "Summary", "load_spec",
           "plan_runs", "preset_path", "run_study", "validate_spec"]
