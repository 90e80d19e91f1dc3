"""The model table and the model options: every model's canonical name (timm's), aliases,
family and the name a report prints, in one canonical order (ResNet, SE-ResNet, Swin; within a
family, the order its functions stand in their file); the options `create_model` takes, which
families take them and their defaults; the study's ablations.

A model variant is declared once, by its registered function in `depthbench/models/`
(`@register_model("resnet", "ResNet-18")`). This module reads those declarations from the source
text (nothing imported), so the option tables that `--help` prints, the checks that run
before torch loads and the report (no torch) know every model the registry builds; a variant
registered outside `depthbench/models/` (a test's) joins the table when its module is imported
(`add_model`, called by `register_model`). Standard library only.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthbench.errors import ConfigError, did_you_mean

# family -> display name, in the canonical order
FAMILIES: dict[str, str] = {"resnet": "ResNet", "seresnet": "SE-ResNet", "swin": "Swin"}


@dataclass(frozen=True)
class ModelInfo:
    """What a registered function declares besides building the model (`register_model`'s
    arguments)."""

    family: str
    display: str  # how a report prints it: "SE-ResNet-18", "Swin-T"
    aliases: tuple[str, ...] = ()
    # the modern recipe's stochastic depth for this model; None: its family's (engine.config)
    modern_drop_path: float | None = None
    # the modern recipe's lr for this model at its reference batch; None: its family's
    modern_lr: float | None = None


_MODELS_DIR = Path(__file__).parent / "models"
# A module-level function's `@register_model(...)`, up to its `def NAME` (the arguments are parsed
# by `ast` below; only these lines are read, not the whole module)
_DECLARATION = re.compile(r"^@register_model(\(.*?\))\s*\n(?:@.*\n)*def (\w+)", re.M | re.S)


def _declared(folder: Path = _MODELS_DIR) -> list[tuple[str, ModelInfo]]:
    """(name, info) of every function decorated `@register_model(...)` in `folder`'s modules, in
    file order; the decorator's arguments must be literals (a ValueError names the function)."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for m in _DECLARATION.finditer(path.read_text(encoding="utf-8")):
            args, name = m.groups()
            try:
                call = ast.parse(f"register_model{args}", mode="eval").body
                found.append((name, ModelInfo(*map(ast.literal_eval, call.args), **{
                    k.arg: ast.literal_eval(k.value) for k in call.keywords})))
            except (SyntaxError, ValueError, TypeError) as e:
                raise ValueError(f"{path.name}: @register_model of {name}: give literal "
                                 f"arguments (family, display name, aliases=...): {e}") from None
    return found


# canonical name -> ModelInfo, in the canonical order; alias -> canonical name
MODELS: dict[str, ModelInfo] = {}
ALIASES: dict[str, str] = {}


def add_model(name: str, info: ModelInfo) -> None:
    """Put model `name` into the table (a name declared already must be declared alike), keeping
    the canonical order: families in FAMILIES' order, each in the order its models were added."""
    if info.family not in FAMILIES:
        raise ValueError(f"{name}: unknown family {info.family!r}; families: {', '.join(FAMILIES)}")
    if MODELS.get(name, info) != info:
        raise ValueError(f"{name} is declared twice, differently: {MODELS[name]} and {info}")
    taken = [a for a in (name, *info.aliases) if ALIASES.get(a, name) != name
             or (a != name and a in MODELS)]
    if taken:
        raise ValueError(f"{name}: the name {taken[0]!r} belongs to another model")
    entries = {**MODELS, name: info}
    MODELS.clear()
    MODELS.update(sorted(entries.items(), key=lambda kv: list(FAMILIES).index(kv[1].family)))
    ALIASES.update(dict.fromkeys(info.aliases, name))


for _name, _info in _declared():
    add_model(_name, _info)


# --- model options -----------------------------------------------------------------------------

KEY_DROP_MODES = ("element", "dropkey")
KEY_DROP_SCHEDULES = ("constant", "linear")
# The one default of how keys are dropped, for `train --key-drop` and a study's key_drop variant:
# DropKey (Li et al., CVPR 2023), the published form (layers/key_drop.py has both).
DEFAULT_KEY_DROP_MODE = "dropkey"
# ... and of its rate over depth, for both: the same rate in every block.
DEFAULT_KEY_DROP_SCHEDULE = "constant"

_ALL = tuple(FAMILIES)
# create_model's keyword arguments: option -> (the families that take it, its "off" value: what
# the option is without being set, and the only value a family without it accepts).
MODEL_OPTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "img_size": (_ALL, None),
    "window_size": (("swin",), None),
    "drop_path_rate": (_ALL, 0.0),
    "key_drop": (("swin",), 0.0),
    "key_drop_mode": (("swin",), DEFAULT_KEY_DROP_MODE),
    "key_drop_schedule": (("swin",), DEFAULT_KEY_DROP_SCHEDULE),
    "se_drop": (("seresnet",), 0.0),
    "fused_attn": (("swin",), True),
}
# A study's ablations: variant option -> the family it applies to. Key dropout lives in Swin's
# window attention; SE-ResNet has no key, so its "key dropout" drops SE channel gates (the source
# study's "key dropout").
ABLATIONS: dict[str, str] = {k: MODEL_OPTIONS[k][0][0] for k in ("key_drop", "se_drop")}
# The options a study's variant sets (an ablation's rate, and how keys are dropped).
VARIANT_OPTIONS = ("key_drop", "key_drop_mode", "key_drop_schedule", "se_drop")
# The options a study may set per family or per model (`model_options: {swin: {window_size: 4}}`).
STUDY_MODEL_OPTIONS = ("window_size", "drop_path_rate")


def family_options(family: str) -> tuple[str, ...]:
    """The options `create_model` takes for models of `family`."""
    return tuple(k for k, (fams, _) in MODEL_OPTIONS.items() if family in fams)


def model_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options of `options` that model `name` (canonical) takes. An unknown option, or one
    that does not apply to its family at a value other than its "off" value, is a ConfigError:
    never a silent no-op (a config carrying every option at its default fits any family)."""
    fam = MODELS[name].family
    allowed = family_options(fam)
    taken = {}
    for key, value in options.items():
        if key not in MODEL_OPTIONS:
            raise ConfigError(f"unknown model option {key!r} for {name}"
                              f"{did_you_mean(key, MODEL_OPTIONS)}; valid options: "
                              f"{', '.join(allowed)}")
        if key in allowed:
            taken[key] = value
        elif value != MODEL_OPTIONS[key][1]:
            owners = [f for f in FAMILIES if key in family_options(f)]
            raise ConfigError(f"option {key}={value!r} does not apply to {name} ({fam}); it is "
                              f"for {'/'.join(owners)} models. Options for {name}: "
                              f"{', '.join(allowed)}")
    return taken


# --- names --------------------------------------------------------------------------------------

def se_pairs() -> dict[str, str]:
    """The SE ablation's pairs: each SE-ResNet and the ResNet of its depth (`seresnet50` ->
    `resnet50`; a new depth joins by its names alone)."""
    return {m: m.removeprefix("se") for m, info in MODELS.items()
            if info.family == "seresnet" and m.removeprefix("se") in MODELS}


def family_models(family: str) -> list[str]:
    """The models of `family`, in the canonical order."""
    return [m for m, info in MODELS.items() if info.family == family]


# What a study's `models:` may name besides models: every model, or a family's.
ALL_MODELS = "all"


def expand_models(entries: str | list[str]) -> list[str]:
    """Canonical model names for a study's `models:` (`all`, a family name standing for its
    models, or model names and aliases, alone or in a list), in the order given; an unknown
    entry is a `ConfigError` naming the closest valid one."""
    out: list[str] = []
    for entry in [entries] if isinstance(entries, str) else entries:
        key = str(entry).strip().lower()
        if key == ALL_MODELS:
            out += list(MODELS)
        elif key in FAMILIES:
            out += family_models(key)
        elif _lookup(key) is None:
            valid = [ALL_MODELS, *FAMILIES, *MODELS, *ALIASES]
            raise ConfigError(f"unknown model or family {entry!r}{did_you_mean(entry, valid)}; "
                              f"give {ALL_MODELS}, a family ({', '.join(FAMILIES)}) or model "
                              f"names ({', '.join(MODELS)})")
        else:
            out.append(_lookup(key))
    return out


def _lookup(name: str) -> str | None:
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    return key if key in MODELS else None


def resolve_name(name: str) -> str:
    """The canonical name of model `name` (canonical or alias, any case, spaces around); a
    `ConfigError` naming the closest valid name and all of them when it is none."""
    key = _lookup(name)
    if key is None:
        valid = list(MODELS) + list(ALIASES)
        raise ConfigError(f"unknown model {name!r}{did_you_mean(name, valid)}; valid names: "
                          f"{', '.join(valid)}")
    return key


def canonical(name: str) -> str:
    """The canonical name of `name` (an alias or a canonical name); an unknown name unchanged."""
    return _lookup(name) or str(name)


def family_of(name: str) -> str:
    """'resnet' | 'seresnet' | 'swin' for a known model, else the name's own prefix family or
    the name itself."""
    m = canonical(name)
    if m in MODELS:
        return MODELS[m].family
    for fam in sorted(FAMILIES, key=len, reverse=True):  # "seresnet" before "resnet"
        if m.startswith(fam):
            return fam
    return m


def display_name(name: str) -> str:
    """How a report prints a model: 'SE-ResNet-18', 'Swin-T'; an unknown name unchanged."""
    m = canonical(name)
    return MODELS[m].display if m in MODELS else str(name)


def family_display(fam: str) -> str:
    return FAMILIES.get(fam, fam)


def model_order(name: str) -> tuple[int, str]:
    """Sort key: the canonical order, unknown names after the known ones, alphabetically."""
    m = canonical(name)
    order = list(MODELS)
    return (order.index(m) if m in order else len(order), m)
