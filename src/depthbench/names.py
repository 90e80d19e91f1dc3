"""The one table of model names and options: the nine canonical names (timm's), their aliases,
families and the names a report prints, in one canonical order (ResNet, SE-ResNet, Swin; by
depth); the options `create_model` takes, which families take them and their defaults; the
study's ablations.

Standard library only, so the registry (torch), the option tables (`TrainConfig`, the study
spec: read by `--help`) and the report (no torch) all read it.
"""

from __future__ import annotations

from typing import Any

from depthbench.errors import ConfigError, did_you_mean

# canonical name -> (family, display name), in the canonical order
MODELS: dict[str, tuple[str, str]] = {
    "resnet18": ("resnet", "ResNet-18"),
    "resnet34": ("resnet", "ResNet-34"),
    "resnet50": ("resnet", "ResNet-50"),
    "seresnet18": ("seresnet", "SE-ResNet-18"),
    "seresnet34": ("seresnet", "SE-ResNet-34"),
    "seresnet50": ("seresnet", "SE-ResNet-50"),
    "swin_tiny_patch4_window7_224": ("swin", "Swin-T"),
    "swin_small_patch4_window7_224": ("swin", "Swin-S"),
    "swin_base_patch4_window7_224": ("swin", "Swin-B"),
}
ALIASES: dict[str, str] = {
    "swin_t": "swin_tiny_patch4_window7_224",
    "swin_s": "swin_small_patch4_window7_224",
    "swin_b": "swin_base_patch4_window7_224",
}
# family -> display name, in the canonical order
FAMILIES: dict[str, str] = {"resnet": "ResNet", "seresnet": "SE-ResNet", "swin": "Swin"}


# --- model options -----------------------------------------------------------------------------

KEY_DROP_MODES = ("element", "dropkey")
KEY_DROP_SCHEDULES = ("constant", "linear")
# The one default of how keys are dropped, for `train --key-drop` and a study's key_drop variant:
# DropKey (Li et al., CVPR 2023), the published form (layers/key_drop.py has both).
DEFAULT_KEY_DROP_MODE = "dropkey"

_ALL = tuple(FAMILIES)
# create_model's keyword arguments: option -> (the families that take it, its "off" value: what
# the option is without being set, and the only value a family without it accepts).
MODEL_OPTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "img_size": (_ALL, None),
    "window_size": (("swin",), None),
    "drop_path_rate": (_ALL, 0.0),
    "key_drop": (("swin",), 0.0),
    "key_drop_mode": (("swin",), DEFAULT_KEY_DROP_MODE),
    "key_drop_schedule": (("swin",), "constant"),
    "se_drop": (("seresnet",), 0.0),
    "fused_attn": (("swin",), True),
}
# A study's ablations: variant option -> the family it applies to. Key dropout lives in Swin's
# window attention; SE-ResNet has no key, so its "key dropout" drops SE channel gates (the source
# study's "key dropout").
ABLATIONS: dict[str, str] = {k: MODEL_OPTIONS[k][0][0] for k in ("key_drop", "se_drop")}
# The SE ablation's pairs: each SE-ResNet and the ResNet of its depth (a new depth in MODELS
# joins it by its names alone).
SE_PAIRS: dict[str, str] = {m: m.removeprefix("se") for m, (fam, _) in MODELS.items()
                            if fam == "seresnet" and m.removeprefix("se") in MODELS}
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
    fam = MODELS[name][0]
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
        return MODELS[m][0]
    for fam in sorted(FAMILIES, key=len, reverse=True):  # "seresnet" before "resnet"
        if m.startswith(fam):
            return fam
    return m


def display_name(name: str) -> str:
    """How a report prints a model: 'SE-ResNet-18', 'Swin-T'; an unknown name unchanged."""
    m = canonical(name)
    return MODELS[m][1] if m in MODELS else str(name)


def family_display(fam: str) -> str:
    return FAMILIES.get(fam, fam)


def model_order(name: str) -> tuple[int, str]:
    """Sort key: the canonical order, unknown names after the nine, alphabetically."""
    m = canonical(name)
    order = list(MODELS)
    return (order.index(m) if m in order else len(order), m)
