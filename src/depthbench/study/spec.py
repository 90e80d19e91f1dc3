"""Study specs: one YAML file says what to train (data, split, recipe, models, variants, seeds).

A spec is validated on load with pydantic (`extra="forbid"`): an unknown key or a bad value is a
one-line `ConfigError` naming the file and the key, e.g. `study.yaml: models[2]: unknown model
'resnet19'`. Presets are specs shipped inside the package (`depthbench/configs/presets/*.yaml`).

The `overrides` mapping holds any `depthbench.engine.TrainConfig` field under the engine's own
name (`epochs`, `batch_size`, `lr`, ...): it is checked against `TrainConfig` on load, so a typo
fails before the first run starts, not an hour into the study.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from depthbench.configio import KeyedError, Recipe, config_error, read_yaml_mapping
from depthbench.errors import ConfigError

PRESETS = ("quick", "paper", "modern", "smoke")
BUNDLED_DATA = ("elpv", "synthetic")

# Which family each ablation applies to: key dropout lives in Swin's window attention; SE-ResNet
# has no key, so its "key dropout" drops SE channel gates (as the source study describes).
VARIANT_FAMILY = {"key_drop": "swin", "se_drop": "seresnet"}
# Model options a study may set per family or per model (`model_options: {swin: {window_size: 4}}`).
MODEL_OPTIONS = ("window_size", "drop_path_rate")


def _model_name(name: str) -> str:
    from depthbench.models import list_models, resolve_name

    try:
        return resolve_name(name)
    except ConfigError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(list_models())}") from None


ModelName = Annotated[str, AfterValidator(_model_name)]  # canonical name (aliases resolved)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Strict):
    """Per-class split fractions, `int(n * fraction)` images of each class (the source's rule)."""

    val: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.0, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> SplitSpec:
        from depthbench.data.split import fractions_problem

        problem = fractions_problem(self.val, self.test)
        if problem:
            raise ValueError(problem)
        return self


class VariantSpec(_Strict):
    """Ablation variants beside each model's `base` run: one variant per rate listed."""

    key_drop: list[float] = Field(default_factory=list)  # Swin: dropout on attention keys
    se_drop: list[float] = Field(default_factory=list)  # SE-ResNet: dropout on SE channel gates
    key_drop_mode: Literal["element", "dropkey"] = "dropkey"
    key_drop_schedule: Literal["constant", "linear"] = "constant"
    models: list[ModelName] | None = None  # which get variants (default: all of the family)

    @field_validator("key_drop", "se_drop")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        for r in v:
            if not 0 < r < 1:
                raise ValueError(f"rate {r!r} must be between 0 and 1 (exclusive)")
        if len(set(v)) != len(v):
            raise ValueError(f"rates {v} repeat a value")
        return v


class ReportSpec(_Strict):
    """Options of the study's report."""

    # the equivalence test's margin, a fraction: "no difference" only when |Δ| < margin is shown
    equivalence_margin: float = Field(0.02, gt=0, lt=0.5)


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    data: str | None = None  # image folder or a bundled name: elpv, synthetic[:opts]
    split: SplitSpec = Field(default_factory=SplitSpec)
    recipe: Recipe = "source"
    overrides: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields
    img_size: int = Field(224, ge=16, le=1024)
    # extra model keyword arguments per family or model name, e.g. {swin: {window_size: 4}}
    model_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    models: list[ModelName] = Field(min_length=1)
    variants: VariantSpec = Field(default_factory=VariantSpec)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    jobs: int | None = Field(None, ge=1)  # runs at once; default: one per GPU, else 1
    report: ReportSpec | None = None  # report options; None: the defaults

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, names: list[str]) -> list[str]:
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"lists {dup[0]!r} twice")
        return names

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError(f"{v} seeds: give a count of at least 1 or a list of seeds")
            return list(range(v))
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds {v} repeat a value")
        return v

    @field_validator("model_options")
    @classmethod
    def _option_targets(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from depthbench.models import family, list_models

        families = {family(m) for m in list_models()}
        out = {}
        for key, opts in v.items():
            out[key if key in families else _model_name(key)] = opts
        return out

    @model_validator(mode="after")
    def _variants_fit_models(self) -> StudySpec:
        from depthbench.models import family

        for i, m in enumerate(self.variants.models or []):
            if m not in self.models:
                raise KeyedError(("variants", "models", i),
                                 f"{m!r} is not in this study's models; add it to models")
            fams = {VARIANT_FAMILY[k] for k in VARIANT_FAMILY if getattr(self.variants, k)}
            if family(m) not in fams:
                raise KeyedError(("variants", "models", i),
                                 f"{m!r} is a {family(m)} model; no variant listed applies to it "
                                 f"(key_drop: swin, se_drop: seresnet)")
        return self


# --------------------------------------------------------------------------------------------
# loading


def preset_path(name: str) -> Path:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return Path(str(resources.files("depthbench") / "configs" / "presets" / f"{name}.yaml"))


def load_spec(
    path: str | Path | None = None,
    *,
    preset: str | None = None,
    data: str | None = None,
    seeds: int | None = None,
    jobs: int | None = None,
) -> StudySpec:
    """Read a study YAML (or a preset), apply command-line overrides, validate, check overrides.

    `seeds` is a count (`--seeds 2` → seeds [0, 1]). A relative data path in a YAML file is taken
    relative to that file's folder; one given on the command line, relative to the working folder.
    """
    if path is not None and preset is not None:
        raise ConfigError("give either --config STUDY.yaml or --preset NAME, not both")
    src = Path(path) if path is not None else preset_path(preset or "quick")
    label = src.name if path is not None else f"preset {preset or 'quick'}"
    raw = read_yaml_mapping(src, "study file", "name, data, models, ...", empty_ok=False)
    if data is not None:
        raw["data"] = _resolve_data(data, Path.cwd())
    elif isinstance(raw.get("data"), str):
        raw["data"] = _resolve_data(raw["data"], src.parent)
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: give at least 1")
        raw["seeds"] = list(range(seeds))
    if jobs is not None:
        if jobs < 1:
            raise ConfigError(f"--jobs {jobs}: give at least 1")
        raw["jobs"] = jobs
    spec = validate_spec(raw, label)
    if spec.data is None:
        hint = (" (a flowers-layout folder: one sub-folder of images per class)"
                if preset == "paper" else "")
        raise ConfigError(f"{label}: no data given; pass --data PATH{hint} or set `data:`")
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
    import torch

    from depthbench.models import create_model
    from depthbench.study.grid import check_overrides, plan_runs

    check_overrides(spec, label)
    for key, opts in spec.model_options.items():
        for opt in opts:
            if opt not in MODEL_OPTIONS:
                raise ConfigError(f"{label}: model_options.{key}.{opt}: not a per-model option; "
                                  f"choose from {', '.join(MODEL_OPTIONS)}")
    seen = set()
    for run in plan_runs(spec):
        if (run.model, run.variant) in seen:
            continue
        seen.add((run.model, run.variant))
        config = run.train_config(source=f"{label}: model_options")
        try:
            with torch.device("meta"):
                create_model(run.model, num_classes=2, **config.model_kwargs())
        except ConfigError as e:
            raise ConfigError(f"{label}: {run.model} ({run.variant}): {e}") from None
        except Exception:  # noqa: BLE001 - a model that cannot be built on meta is checked later
            pass


def spec_to_yaml(spec: StudySpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def _resolve_data(data: str, base: Path) -> str:
    if data.split(":", 1)[0] in BUNDLED_DATA:
        return data
    p = Path(data).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())
