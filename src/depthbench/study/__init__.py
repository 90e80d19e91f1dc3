"""Studies: a validated spec (YAML or preset), its grid of runs, the executors that train them
(local: one worker process each; SLURM: one job each), and the pipeline train -> analyze ->
report (`run_study`).

Names are imported on first use, so `depthbench run` reads and checks a study file before torch
loads (a typo answers at once); the spec and the grid import no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "depthbench.errors": ["StudyInterrupted"],
    "depthbench.study.grid": ["RunPlan", "plan_runs"],
    "depthbench.study.runner": ["run_study"],
    "depthbench.study.spec": ["PRESETS", "StudySpec", "load_spec", "preset_path", "validate_spec"],
    "depthbench.study.summary": ["Summary"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'depthbench.study' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
