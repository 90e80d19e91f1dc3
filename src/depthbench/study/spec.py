"""Study specs: one YAML file says what to train (data, split, recipe, models, variants, seeds).

A spec is validated on load with pydantic (`extra="forbid"`): an unknown key or a bad value is a
one-line `ConfigError` naming the file and the key, e.g. `study.yaml: models[2]: unknown model
'resnet19'`. Presets are specs shipped inside the package (`depthbench/configs/presets/*.yaml`).

The `overrides` mapping holds any `depthbench.engine.config.TrainConfig` field under the engine's own
name (`epochs`, `batch_size`, `lr`, ...): it is checked against `TrainConfig` on load, so a typo
fails before the first run starts, not an hour into the study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from depthbench.configio import (
    BUNDLED_DATA,
    DEFAULT_PRESET,
    config_error,
    fold_options_problem,
    preset_names,
    preset_path,
    read_yaml_mapping,
)
from depthbench.data import sources
from depthbench.engine.config import TrainConfig
from depthbench.errors import ConfigError, did_you_mean
from depthbench.names import STUDY_MODEL_OPTIONS
from depthbench.study.grid import check_overrides, plan_runs
from depthbench.study.schema import ExecutorSpec, ReportSpec, SplitSpec, StudySpec, VariantSpec

PRESETS = tuple(preset_names())  # one YAML file each in depthbench/configs/presets/

__all__ = ["PRESETS", "ExecutorSpec", "ReportSpec", "SplitSpec", "StudySpec", "VariantSpec",
           "load_spec", "preset_path", "validate_spec"]


# --------------------------------------------------------------------------------------------
# loading


def load_spec(
    path: str | Path | None = None,
    *,
    preset: str | None = None,
    data: str | None = None,
    seeds: int | None = None,
    jobs: int | str | None = None,
    executor: str | None = None,
    folds: int | None = None,
    repeats: int | None = None,
    check_data: bool = False,
) -> StudySpec:
    """Read a study YAML (or a preset), apply command-line overrides, validate, check overrides.

    `seeds` is a count (`--seeds 2` → seeds [0, 1]); `jobs` `auto` or a count; `executor` the
    kind (`--executor slurm`); `folds` and `repeats` make the study cross-validated (`--folds 5`
    replaces the file's test fraction, which folds do not use). A relative data or groups path
    in a YAML file is taken relative to that file's folder; one given on the command line,
    relative to the working folder.
    `check_data`: also check that the data is there (`data.sources.check_data`: no scan), before the
    models are built, which loads torch (`depthbench run` does; a spec reads without its data).
    """
    if path is not None and preset is not None:
        raise ConfigError("give either --config STUDY.yaml or --preset NAME, not both")
    preset = preset or (DEFAULT_PRESET if path is None else None)
    src = Path(path) if path is not None else preset_path(preset)
    label = src.name if path is not None else f"preset {preset}"
    raw = read_yaml_mapping(src, "study file", "name, data, models, ...", empty_ok=False)
    if data is not None:
        raw["data"] = _resolve_data(data, Path.cwd())
    elif isinstance(raw.get("data"), str):
        raw["data"] = _resolve_data(raw["data"], src.parent)
    if isinstance(raw.get("split"), dict) and isinstance(raw["split"].get("groups"), str):
        raw["split"] = {**raw["split"], "groups": _resolve_path(raw["split"]["groups"],
                                                                 src.parent)}
    if folds is not None or repeats is not None:
        raw["split"] = _fold_overrides(raw.get("split"), folds, repeats, label)
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: give at least 1")
        raw["seeds"] = list(range(seeds))
    if jobs is not None:  # --jobs auto|N
        if not (jobs == "auto" or str(jobs).isdigit() and int(jobs) >= 1):
            raise ConfigError(f"--jobs {jobs}: give auto or a number of runs at once (at least 1)")
        raw["jobs"] = jobs if jobs == "auto" else int(jobs)
    if executor is not None:  # --executor local|slurm: the kind; the other options stay the file's
        if not isinstance(raw.get("executor") or {}, dict):
            raise ConfigError(f"{label}: executor: expected a mapping (kind: slurm, partition: ...)")
        raw["executor"] = {**(raw.get("executor") or {}), "kind": executor}
    spec = validate_spec(raw, label)
    if spec.data is None:
        hint = (" (a flowers-layout folder: one sub-folder of images per class)"
                if preset == "paper" else "")
        raise ConfigError(f"{label}: no data given; pass --data PATH{hint} or set `data:`")
    if check_data:
        sources.check_data(spec.data)
    check_train_options(spec, label)
    return spec


def validate_spec(raw: Any, label: str = "study.yaml") -> StudySpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a mapping of keys (name, data, models, ...), "
                          f"got {type(raw).__name__}")
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as e:
        raise config_error(e, label, StudySpec) from None


def check_train_options(spec: StudySpec, label: str = "study.yaml") -> None:
    """Build every run's TrainConfig and model once (on the meta device: no memory, no time), so
    a bad override or model option fails now, not an hour into the study."""
    options = TrainConfig.model_fields
    for key in spec.overrides:  # a misspelt option: its likely spelling, as a study key gets
        if key not in options and (hint := did_you_mean(key, options)):
            raise ConfigError(f"{label}: overrides.{key}: unknown training option{hint}")
    check_overrides(spec, label)
    gpus, devices = spec.executor.gpus_per_run, int(spec.overrides.get("devices") or 1)
    if spec.executor.kind == "slurm" and gpus > 1 and devices != gpus:
        raise ConfigError(f"{label}: executor.gpus_per_run: {gpus} GPUs per run need "
                          f"overrides.devices: {gpus} (one process per GPU); or ask for 1 GPU")
    if spec.executor.kind == "slurm" and gpus and spec.overrides.get("accelerator") == "cpu":
        raise ConfigError(f"{label}: executor.gpus_per_run: {gpus} with overrides.accelerator: "
                          "cpu: the runs would not use the GPUs they ask for; drop one of them")
    for key, opts in spec.model_options.items():
        for opt in opts:
            if opt not in STUDY_MODEL_OPTIONS:
                raise ConfigError(f"{label}: model_options.{key}.{opt}: not a per-model option; "
                                  f"choose from {', '.join(STUDY_MODEL_OPTIONS)}")
    # imported on use: everything above answers before torch loads
    from depthbench.models.complexity import meta_model

    seen = set()
    for run in plan_runs(spec):
        if (run.model, run.variant) in seen:
            continue
        seen.add((run.model, run.variant))
        config = run.train_config(source=f"{label}: model_options")
        try:
            meta_model(run.model, 2, **config.model_kwargs())
        except ConfigError as e:
            raise ConfigError(f"{label}: {run.model} ({run.variant}): {e}") from None
        except Exception:  # noqa: BLE001 - a model that cannot be built on meta is checked later
            pass


def spec_to_yaml(spec: StudySpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def _resolve_data(data: str, base: Path) -> str:
    if data.split(":", 1)[0] in BUNDLED_DATA:
        return data
    return _resolve_path(data, base)


def _resolve_path(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _fold_overrides(split: Any, folds: int | None, repeats: int | None, label: str) -> dict:
    """The study's `split:` with `--folds`/`--repeats` applied. `--folds` turns a single split
    into cross-validation, so the file's test fraction (a preset's, say) no longer applies and
    is dropped; `--repeats` alone needs folds from the file."""
    if split is not None and not isinstance(split, dict):
        raise ConfigError(f"{label}: split: expected a mapping (val, test, seed, folds, ...)")
    split = dict(split or {})
    problem = fold_options_problem(folds if folds is not None else split.get("folds"),
                                   repeats, "--folds", "--repeats")
    if problem:
        raise ConfigError(problem[1] + (" (or split.folds in the study file)"
                                        if problem[0] == "repeats" and folds is None else ""))
    if folds is not None:
        split["folds"] = folds
        split.pop("test", None)
    if repeats is not None:
        split["repeats"] = repeats
    return split

