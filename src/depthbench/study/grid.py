"""The grid of a study: one `RunPlan` per (seed, model, variant), each a run folder
`<model>__<variant>__s<seed>` with its own fully resolved `TrainConfig`; in a cross-validated
study one per (repeat, seed, fold, model, variant), `<model>__<variant>__s<seed>__r<repeat>__f<fold>`,
trained with the cell's seed (`data.folds.cell_seed`: every model of a cell alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from depthbench.data.folds import cell_seed
from depthbench.engine.config import TrainConfig, make_config
from depthbench.errors import ConfigError
from depthbench.names import ABLATIONS, VARIANT_OPTIONS, family_of
from depthbench.runrecord import BASE_VARIANT, run_dir_name, variant_name
from depthbench.study.schema import StudySpec

# TrainConfig fields the study sets itself; an override of one would silently fight the spec.
_STUDY_KEYS = {
    "model": "models", "data": "data", "recipe": "recipe", "img_size": "img_size",
    "seed": "seeds", "split_seed": "split.seed", "val": "split.val", "test": "split.test",
    "out": "--out", **{k: f"variants.{k}" for k in VARIANT_OPTIONS},
    "folds": "split.folds",
    "window_size": "model_options (per family: {swin: {window_size: N}})",
}


@dataclass(frozen=True)
class RunPlan:
    spec: StudySpec = field(repr=False)
    model: str
    variant: str  # "base", "keydrop0.1", "sedrop0.1", ...
    seed: int
    variant_options: dict[str, Any] = field(default_factory=dict)
    repeat: int | None = None  # the cross-validation cell (None: the single split)
    fold: int | None = None

    @property
    def name(self) -> str:
        return run_dir_name(self.model, self.variant, self.seed, self.repeat, self.fold)

    @property
    def block(self) -> tuple[int, int]:
        """The runs that belong together in the order of the grid, (repeat, seed): a scheduler
        keeps a block's runs before the next block's, so a study cut short has whole blocks."""
        return (self.repeat or 0, self.seed)

    @property
    def train_seed(self) -> int:
        """The seed the run trains with: the study's seed, or its cross-validation cell's."""
        return self.seed if self.fold is None else cell_seed(self.seed, self.repeat, self.fold)

    def model_options(self) -> dict[str, Any]:
        opts = self.spec.model_options
        return {**opts.get(family_of(self.model), {}), **opts.get(self.model, {}),
                **self.variant_options}

    def train_config(self, source: str = "study") -> TrainConfig:
        """The run's resolved TrainConfig (recipe defaults, then overrides, then the grid point)."""
        s = self.spec
        # a cell's split is its own split.json; no fraction of the config makes it (test 0)
        values = {**s.overrides, "recipe": s.recipe, "model": self.model, "data": s.data,
                  "img_size": s.img_size, "seed": self.train_seed, "split_seed": s.split.seed,
                  "val": s.split.val, "test": s.split.test or 0.0, **self.model_options()}
        return make_config(values, source=f"{source} ({self.name})").resolved()


def variants_for(spec: StudySpec, model: str) -> list[tuple[str, dict[str, Any]]]:
    """[(variant name, model options)] for one model: `base` first, then one per ablation rate."""
    out: list[tuple[str, dict[str, Any]]] = [(BASE_VARIANT, {})]
    v = spec.variants
    if v.models is not None and model not in v.models:
        return out
    for key, fam in ABLATIONS.items():
        if family_of(model) != fam:
            continue
        for rate in getattr(v, key):
            opts: dict[str, Any] = {key: rate}
            if key == "key_drop":
                opts.update(key_drop_mode=v.key_drop_mode, key_drop_schedule=v.key_drop_schedule)
            out.append((variant_name(key, rate), opts))
    return out


def plan_runs(spec: StudySpec) -> list[RunPlan]:
    """Every grid point, seed by seed (so a study cut short still has whole seeds to compare);
    cross-validated, repeat by repeat, then seed by seed, then fold by fold (so a study cut
    short has whole repeats: every image tested once per seed)."""
    models = [(model, variant, opts) for model in spec.models
              for variant, opts in variants_for(spec, model)]
    if spec.split.folds is None:
        return [RunPlan(spec, model, variant, seed, opts)
                for seed in spec.seeds for model, variant, opts in models]
    return [RunPlan(spec, model, variant, seed, opts, repeat, fold)
            for repeat in range(spec.split.repeats)
            for seed in spec.seeds
            for fold in range(spec.split.folds)
            for model, variant, opts in models]


def check_overrides(spec: StudySpec, label: str) -> None:
    """Reject overrides the study owns, then let TrainConfig judge the rest, naming the key."""
    for key in spec.overrides:
        if key in _STUDY_KEYS:
            raise ConfigError(f"{label}: overrides.{key}: set by the study itself; "
                              f"use `{_STUDY_KEYS[key]}` instead")
        if key not in TrainConfig.model_fields:
            raise ConfigError(f"{label}: overrides.{key}: unknown training option; valid: "
                              f"{', '.join(k for k in TrainConfig.model_fields if k not in _STUDY_KEYS)}")
    probe = {**spec.overrides, "recipe": spec.recipe, "model": spec.models[0], "data": "probe"}
    make_config(probe, source=f"{label}: overrides").resolved()
