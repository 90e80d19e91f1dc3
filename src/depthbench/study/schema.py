"""The study spec's schema: what a study YAML may say, as pydantic models (`extra="forbid"`).

Loading a file, applying command-line overrides and turning validation errors into one-line
messages live in `depthbench.study.spec`; the grid (`depthbench.study.grid`) reads these models.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from depthbench.configio import (
    DEFAULT_TEST,
    DEFAULT_VAL,
    IMG_SIZE_RANGE,
    KeyedError,
    Recipe,
    fold_options_problem,
    fractions_problem,
)
from depthbench.errors import ConfigError
from depthbench.names import (
    ABLATIONS,
    DEFAULT_KEY_DROP_MODE,
    DEFAULT_KEY_DROP_SCHEDULE,
    FAMILIES,
    KEY_DROP_MODES,
    KEY_DROP_SCHEDULES,
    expand_models,
    family_of,
    resolve_name,
)
from depthbench.report.options import EQUIVALENCE_MARGIN


def _model_name(name: str) -> str:
    try:
        return resolve_name(name)
    except ConfigError as e:
        raise ValueError(str(e)) from None


ModelName = Annotated[str, AfterValidator(_model_name)]  # canonical name (aliases resolved)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Strict):
    """How the images are split. Without `folds`, one split by per-class fractions,
    `int(n * fraction)` images of each class (the source's rule). With `folds: K`, repeated
    stratified K-fold cross-validation: each of `repeats` partitions tests every image once, and
    each (repeat, fold) cell validates on `val` of each class of the other images; there is no
    test fraction then (`test` is null). `groups`: a CSV file `path,group` naming a group per
    image (a patient, a module, a session) that never straddles train and test."""

    val: float = DEFAULT_VAL
    test: float | None = DEFAULT_TEST  # the single split's; None with folds
    seed: int = 0
    folds: int | None = None  # K >= 2: cross-validation; None: the single split
    repeats: int = 1  # R >= 1 partitions, each with its own shuffle (folds only)
    groups: str | None = None  # CSV `path,group`; a relative path is taken from the study file

    @model_validator(mode="before")
    @classmethod
    def _test_only_without_folds(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        if raw.get("folds") is None:
            return {"test": DEFAULT_TEST, **raw}
        if raw.get("test") is not None:
            raise KeyedError(("split", "test"), f"{raw['test']} with folds: {raw['folds']}: in "
                             "cross-validation every image is tested in its fold, so there is no "
                             "test fraction; drop test (or folds)")
        return {**raw, "test": None}

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> SplitSpec:
        problem = fractions_problem(self.val, self.test or 0.0)
        if problem:
            raise ValueError(problem[1])
        problem = fold_options_problem(self.folds, self.repeats)
        if problem:
            raise KeyedError(("split", problem[0]), problem[1])
        return self

    @model_serializer(mode="wrap")
    def _single_split_keys_only(self, handler) -> dict[str, Any]:
        """The cross-validation keys are left out at their defaults, so a study without them
        records (and compares with a study folder written without them) exactly its keys."""
        out = handler(self)
        for key, default in (("folds", None), ("repeats", 1), ("groups", None)):
            if out.get(key) == default:
                out.pop(key, None)
        return out


class VariantSpec(_Strict):
    """Ablation variants beside each model's `base` run: one variant per rate listed."""

    key_drop: list[float] = Field(default_factory=list)  # Swin: dropout on attention keys
    se_drop: list[float] = Field(default_factory=list)  # SE-ResNet: dropout on SE channel gates
    key_drop_mode: Literal[KEY_DROP_MODES] = DEFAULT_KEY_DROP_MODE
    key_drop_schedule: Literal[KEY_DROP_SCHEDULES] = DEFAULT_KEY_DROP_SCHEDULE
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


class ExecutorSpec(_Strict):
    """Where the runs train: `local` (this machine, `jobs` at a time) or `slurm` (one submitit job
    per run, submitted as one job array; the study folder must be on a filesystem the nodes
    share). The SLURM options are ignored by `local`, so one file can serve both."""

    kind: Literal["local", "slurm"] = "local"
    partition: str | None = None
    gpus_per_run: int = Field(0, ge=0)  # GPUs of one run (more than 1: one task per GPU)
    cpus_per_run: int | None = Field(None, ge=1)  # CPU cores of one run (its torch threads)
    mem_gb: float | None = Field(None, gt=0)
    time: int = Field(60, ge=1)  # minutes per job; "HH:MM:SS" or "D-HH:MM:SS" also accepted
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra: dict[str, str | int | float | bool] = Field(default_factory=dict)  # more sbatch options
    max_parallel: int | None = Field(None, ge=1)  # runs at once (the job array's throttle)
    max_requeues: int = Field(3, ge=0)  # time-limit requeues of one job before it fails

    @field_validator("time", mode="before")
    @classmethod
    def _minutes(cls, v: Any) -> Any:
        if not isinstance(v, str) or v.strip().isdigit():
            return v
        m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?", v.strip())
        if not m:
            raise ValueError(f"{v!r}: give minutes (90), \"HH:MM:SS\" or \"D-HH:MM:SS\"")
        days, a, b, c = (int(x) if x else 0 for x in m.groups())
        hours, mins, secs = (a, b, c) if m.group(4) else (0, a, b)
        return max(1, math.ceil(days * 1440 + hours * 60 + mins + secs / 60))

    @field_validator("extra")
    @classmethod
    def _sbatch_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
                raise ValueError(f"{key!r}: give sbatch's long option name without dashes, "
                                 "e.g. mail-type")
        return v


class ReportSpec(_Strict):
    """Options of the study's report."""

    # the equivalence test's margin, a fraction: "no difference" only when |Δ| < margin is shown
    equivalence_margin: float = Field(EQUIVALENCE_MARGIN, gt=0, lt=0.5)


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    data: str | None = None  # image folder or a bundled name: elpv, synthetic[:opts]
    split: SplitSpec = Field(default_factory=SplitSpec)
    recipe: Recipe = "source"
    overrides: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields
    img_size: int = Field(224, ge=IMG_SIZE_RANGE[0], le=IMG_SIZE_RANGE[1])
    # extra model keyword arguments per family or model name, e.g. {swin: {window_size: 4}}
    model_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # `all`, a family (its models), or model names; each entry resolved to canonical names
    models: list[ModelName] = Field(min_length=1)
    variants: VariantSpec = Field(default_factory=VariantSpec)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    # runs at once: auto (on a GPU machine as many as each GPU's memory and the cores allow,
    # study.packing; on the CPU one), or a number
    jobs: int | Literal["auto"] = "auto"
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)  # local (default) or slurm
    report: ReportSpec | None = None  # report options; None: the defaults

    @field_validator("models", mode="before")
    @classmethod
    def _expand_models(cls, v: Any) -> Any:
        if isinstance(v, str):
            v, loc = [v], ("models",)
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            loc = None
        else:
            return v  # pydantic names what is not a list of names
        out = []
        for i, entry in enumerate(v):
            try:
                out += expand_models(entry)
            except ConfigError as e:
                raise KeyedError(loc or ("models", i), str(e)) from None
        return out

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, names: list[str]) -> list[str]:
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"lists {dup[0]!r} twice")
        return names

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs(cls, v: Any) -> Any:
        if v is None or v == "auto":  # None: a study.yaml that leaves it null
            return "auto"
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{v!r}: give auto or a number of runs at once (at least 1)")
        return v

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
        return {key if key in FAMILIES else _model_name(key): opts for key, opts in v.items()}

    @model_validator(mode="after")
    def _variants_fit_models(self) -> StudySpec:
        for i, m in enumerate(self.variants.models or []):
            if m not in self.models:
                raise KeyedError(("variants", "models", i),
                                 f"{m!r} is not in this study's models; add it to models")
            fams = {fam for k, fam in ABLATIONS.items() if getattr(self.variants, k)}
            if family_of(m) not in fams:
                applies = ", ".join(f"{k}: {fam}" for k, fam in ABLATIONS.items())
                raise KeyedError(("variants", "models", i),
                                 f"{m!r} is a {family_of(m)} model; no variant listed applies to "
                                 f"it ({applies})")
        return self

