"""TrainConfig: every option of one training run, with one name across CLI, YAML and code.

`--batch-size` on the command line is `batch_size` in a YAML file and `config.batch_size` here.
Options left at `None` are filled in by the recipe (`TrainConfig.for_recipe` / `resolved()`):

- `seed`: the source study exactly: cross-entropy, Adam lr 2e-4, batch 128, 100 epochs, constant lr,
  the `seed` transforms (no augmentation), from scratch, nothing else.
- `modern`: AdamW lr 5e-4 * batch / 512, weight decay 0.05 (none on norms, biases, position
  tables), linear warmup then cosine, label smoothing 0.1, stochastic depth for Swin, gradient
  clipping, the `modern` transforms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from depthbench.errors import ConfigError

Recipe = Literal["seed", "modern"]

# Swin-T/S/B stochastic depth under `modern` (Liu et al. 2021, ImageNet-1k settings).
_SWIN_DROP_PATH = {"swin_tiny": 0.2, "swin_small": 0.3, "swin_base": 0.5}

# Options that describe *how* a run executes, not *what* it computes: they may change on --resume.
OPERATIONAL_KEYS = frozenset({
    "out", "data", "accelerator", "devices", "precision", "compile", "workers", "cache_dir",
    "memory_budget_mb", "quiet",
})


class TrainConfig(BaseModel):
    """One training run. Unknown keys and bad values raise `ConfigError` naming key and value."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # what to train, on what, where
    model: str
    data: str
    out: str | None = None
    recipe: Recipe = "seed"
    pretrained: str | None = None
    # optimisation (None = recipe default)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    optimizer: Literal["adam", "adamw", "sgd"] | None = None
    weight_decay: float | None = Field(None, ge=0)
    scheduler: Literal["constant", "cosine"] | None = None
    warmup_epochs: float | None = Field(None, ge=0)
    min_lr: float | None = Field(None, ge=0)
    label_smoothing: float | None = Field(None, ge=0, lt=1)
    grad_clip: float | None = Field(None, ge=0)  # max global grad norm; 0 = off
    dihedral: bool = False  # random flips + 90-degree turns of each training image (square images)
    class_balanced: bool = False  # loss weights inverse to the training split's class counts
    # model options (None = model default)
    img_size: int = Field(224, ge=8)
    drop_path_rate: float | None = Field(None, ge=0, lt=1)
    window_size: int | None = Field(None, ge=1)
    key_drop: float | None = Field(None, ge=0, lt=1)
    key_drop_mode: Literal["element", "dropkey"] | None = None
    key_drop_schedule: Literal["constant", "linear"] | None = None
    se_drop: float | None = Field(None, ge=0, lt=1)
    # randomness and the split
    seed: int = Field(0, ge=0)
    split_seed: int = Field(0, ge=0)
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.0, ge=0, lt=1)
    # execution
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int = Field(1, ge=1)
    precision: Literal["auto", "32", "32-true", "16-mixed", "bf16-mixed"] = "auto"
    channels_last: bool | None = None  # None: CNNs on GPUs, or on the CPU from 128 px
    compile: bool = False
    workers: int | None = Field(None, ge=0)  # None: 0 on CPU, min(8, cores) on GPU
    cache_dir: str | None = None
    memory_budget_mb: int | None = Field(None, ge=0)
    limit_train_batches: int | None = Field(None, ge=1)  # for tests and benchmarks
    quiet: bool = False

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from depthbench.models import resolve_name

        return resolve_name(v)

    @classmethod
    def for_recipe(cls, recipe: Recipe = "seed", **overrides: Any) -> TrainConfig:
        """A validated, fully resolved config: recipe defaults with `overrides` on top."""
        return make_config({"recipe": recipe, **overrides}).resolved()

    def resolved(self) -> TrainConfig:
        """Fill every `None` hyperparameter from the recipe; explicit values always win."""
        d = self.model_dump()
        batch = d["batch_size"] or 128
        if self.recipe == "seed":
            defaults = dict(epochs=100, batch_size=128, lr=2e-4, optimizer="adam", weight_decay=0.0,
                            scheduler="constant", warmup_epochs=0.0, min_lr=0.0,
                            label_smoothing=0.0, grad_clip=0.0, drop_path_rate=0.0)
        else:
            swin = next((r for k, r in _SWIN_DROP_PATH.items() if self.model.startswith(k)), 0.0)
            defaults = dict(epochs=100, batch_size=128, lr=5e-4 * batch / 512, optimizer="adamw",
                            weight_decay=0.05, scheduler="cosine", warmup_epochs=5.0, min_lr=1e-6,
                            label_smoothing=0.1, grad_clip=5.0, drop_path_rate=swin)
        for k, v in defaults.items():
            if d[k] is None:
                d[k] = v
        return TrainConfig(**d)

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `create_model`: only the options set, so a family never gets an
        option it does not have (the model layer rejects those)."""
        kw: dict[str, Any] = {"img_size": self.img_size}
        for k in ("window_size", "key_drop", "key_drop_mode", "key_drop_schedule", "se_drop"):
            if getattr(self, k) is not None:
                kw[k] = getattr(self, k)
        if self.drop_path_rate is not None:  # 0.0 too: Swin's own default is 0.1, as in timm
            kw["drop_path_rate"] = self.drop_path_rate
        return kw

    def semantic_diff(self, other: TrainConfig) -> dict[str, tuple[Any, Any]]:
        """Keys (outside OPERATIONAL_KEYS) whose values differ: a resumed run must match these."""
        a, b = self.model_dump(), other.model_dump()
        return {k: (a[k], b[k]) for k in a if k not in OPERATIONAL_KEYS and a[k] != b[k]}


def make_config(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a dict into a TrainConfig; errors become one-line `ConfigError`s."""
    try:
        return TrainConfig(**values)
    except ValidationError as e:
        # a misspelt key explains a "missing" one: report unknown keys first
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        key = ".".join(str(p) for p in err["loc"]) or "?"
        if err["type"] == "extra_forbidden":
            valid = ", ".join(TrainConfig.model_fields)
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {valid}") from None
        if err["type"] == "missing":
            raise ConfigError(f"{source}: {key!r} is required (e.g. --{key.replace('_', '-')} "
                              f"or `{key}:` in the YAML file)") from None
        raise ConfigError(f"{source}: bad value {err.get('input')!r} for {key!r}: {err['msg']}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (keys validated later by `make_config`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(values).__name__}")
    return values


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.model_dump(), sort_keys=False)
