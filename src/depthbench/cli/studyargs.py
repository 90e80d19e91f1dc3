"""The options that name a study, shared by the commands that take one (`run`, `plan`)."""

from __future__ import annotations

from depthbench.configio import BUNDLED_DATA, DEFAULT_PRESET, preset_names


def add_study_arguments(p) -> None:
    """`--preset`, `--config` and `--data`: which study, and on what data."""
    p.add_argument("--preset", choices=preset_names(),
                   help=f"a study shipped with depthbench (default: {DEFAULT_PRESET})")
    p.add_argument("--config", metavar="STUDY.yaml", help="your own study file (instead of --preset)")
    p.add_argument("--data", metavar="DATA", help="image folder (one sub-folder per class) or a "
                   f"bundled name: {', '.join(BUNDLED_DATA)}; overrides the study's")
