"""Studies: a validated spec (YAML or preset), its grid of runs, the executors that train them
(local: one worker process each; SLURM: one job each), and the pipeline train -> analyze ->
report (`runner.run_study`).

Import names from their modules (`study.spec.load_spec`, `study.grid.plan_runs`, ...): this file
imports nothing, so `depthbench run` reads and checks a study file before torch loads (the spec
and the grid import no torch).
"""
