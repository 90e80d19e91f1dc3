"""Reading option files and explaining their errors, and the values options share: one YAML
reader, one pydantic-error formatter, the recipe names, the split fractions' defaults and rule,
the bundled datasets' names and the presets, for the training config (engine.config), the study
spec (study.spec) and the command line.

No torch here: the command line builds its `--help` from these without loading the engine.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError

from depthbench.errors import ConfigError, did_you_mean

# The training recipes. `source` reproduces the source study. `seed` is read as `source`, with a
# notice: as a recipe's name it is ambiguous beside the random `seed`.
RecipeName = Literal["source", "modern"]
RECIPE_NAMES: tuple[str, ...] = get_args(RecipeName)
RENAMED_RECIPES = {"seed": "source"}
_NOTICED: set[str] = set()


def recipe_name(name: Any) -> Any:
    """The current name of recipe `name` (an old name is renamed, with a one-line notice once per
    process); anything else is returned unchanged for the caller to judge."""
    new = RENAMED_RECIPES.get(name) if isinstance(name, str) else None
    if new is None:
        return name
    if name not in _NOTICED:
        _NOTICED.add(name)
        print(f"depthbench: recipe {name!r} is now called {new!r}; the old name still works but "
              "will be removed", file=sys.stderr)
    return new


Recipe = Annotated[RecipeName, BeforeValidator(recipe_name)]  # a field that accepts old names

# The modern recipe's augmentation at full strength, as it has always run at the published
# budgets: RandomResizedCrop's own lower bound of the area kept (torchvision's and timm's), and
# TrivialAugmentWide on.
FULL_CROP_SCALE = 0.08
FULL_TRIVIAL_AUGMENT = True
FULL_AUGMENTATION = {"crop_scale": FULL_CROP_SCALE, "trivial_augment": FULL_TRIVIAL_AUGMENT}
# The modern recipe's evaluation view as published (timm's `crop_pct`): resize, then a centre crop
# that keeps this share of the shorter side (224 of 256).
FULL_EVAL_CROP = 0.875

# The split of each class: `int(n * val)` images to validation, `int(n * test)` to test, the rest
# to training; by default the source study's 10% to validation and no test split.
DEFAULT_VAL = 0.1
DEFAULT_TEST = 0.0


def fractions_problem(val: float, test: float) -> tuple[str, str] | None:
    """(the key at fault, what is wrong) with the split fractions `val`, `test`, or None: the one
    rule of `train` (TrainConfig), a study (its `split:`), `data check` and `make_split`."""
    for name, v in (("val", val), ("test", test)):
        if not 0.0 <= v < 1.0:
            return name, f"{name} = {v:g}: a fraction per class must be in [0, 1)"
    if val + test >= 1.0:
        return "val", f"val + test = {val + test:g} leaves no training images; keep their sum below 1"
    return None


def fold_options_problem(folds: int | None, repeats: int | None, folds_name: str = "folds",
                         repeats_name: str = "repeats") -> tuple[str, str] | None:
    """(the option at fault, what is wrong) with a cross-validation design, or None: the one rule
    of a study's `split:`, `run --folds/--repeats` and `data check --folds/--repeats` (K >= 2,
    R >= 1, repeats only with folds). The names say how the caller spells the two options."""
    if folds is not None and folds < 2:
        return "folds", f"{folds_name} {folds}: cross-validation needs at least 2 folds"
    if repeats is not None and repeats < 1:
        return "repeats", f"{repeats_name} {repeats}: give at least 1 repeat"
    if folds is None and repeats is not None and repeats != 1:
        return "repeats", (f"{repeats_name} {repeats} without {folds_name}: repeats are of a "
                           f"k-fold partition; give {folds_name} K as well")
    return None


# The input sizes a run may train at, in pixels: one rule for `train` and a study's `img_size`
# (8 px still leaves ResNet a 1x1 map after its stride-32 stem and stages; Swin needs multiples
# of 32, which the model itself checks).
IMG_SIZE_RANGE = (8, 1024)


# The datasets shipped with depthbench, by the name a data argument gives (`data/sources.py`
# opens them; anything else is a folder path).
BUNDLED_DATA = ("elpv", "synthetic")


DEFAULT_PRESET = "quick"  # what `depthbench run` and `make run` run without --preset/--config


def preset_names() -> list[str]:
    """The studies shipped with depthbench: one YAML file each in `depthbench/configs/presets/`."""
    return sorted(p.name.removesuffix(".yaml") for p in _presets_dir().iterdir()
                  if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(preset_names())}")
    return Path(str(_presets_dir() / f"{name}.yaml"))


def _presets_dir():
    return resources.files("depthbench") / "configs" / "presets"


def read_yaml_mapping(path: str | Path, what: str, example: str,
                      empty_ok: bool = True) -> dict[str, Any]:
    """A YAML file holding a mapping. `what` names the file in errors ("study file"), `example`
    says what the mapping holds ("name, data, models, ..."). An empty file is an empty mapping,
    or an error unless `empty_ok`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path.name}:{where} not valid YAML "
                          f"({getattr(e, 'problem', None) or str(e).splitlines()[0]})") from None
    if raw is None and not empty_ok:
        raise ConfigError(f"{path.name}: the file is empty; see the presets for an example")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: expected a mapping of keys ({example}), "
                          f"got {type(raw).__name__}")
    return raw


class KeyedError(ValueError):
    """Raise from a model validator to blame a key other than the one being validated."""

    def __init__(self, loc: tuple, msg: str):
        super().__init__(msg)
        self.loc = loc


def config_error(e: ValidationError, label: str, model: type[BaseModel],
                 missing_hint: Callable[[str], str] | None = None) -> ConfigError:
    """One line for a pydantic `ValidationError`: `<label>: <key path>: <what is wrong>`.

    An unknown key is reported first (a misspelt key explains a "missing" one) with the valid keys
    at its level; `missing_hint(key)` may add how to give a missing key."""
    err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
    loc, msg = tuple(err["loc"]), err["msg"]
    exc = (err.get("ctx") or {}).get("error")
    if isinstance(exc, KeyedError):
        loc, msg = exc.loc, str(exc)
    elif err["type"] == "extra_forbidden":
        valid = _keys_at(model, loc[:-1])
        msg = f"unknown key{did_you_mean(loc[-1], valid)}; valid keys here: {', '.join(valid)}"
    elif err["type"] == "missing":
        msg = "missing; this key is required" + (missing_hint(str(loc[-1])) if missing_hint else "")
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    value = err.get("input")
    shown = (err["type"] not in ("extra_forbidden", "missing", "value_error")
             and value is not None and len(repr(value)) <= 60)
    return ConfigError(f"{label}: {_loc(loc)}: {msg}" + (f" (got {value!r})" if shown else ""))


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        ann = model.model_fields[part].annotation if part in model.model_fields else None
        # an optional section (`report: ReportSpec | None`) lists the keys of its model
        ann = next((a for a in (ann, *get_args(ann)) if isinstance(a, type)
                    and issubclass(a, BaseModel)), None)
        if ann is None:
            return []
        model = ann
    return list(model.model_fields)
