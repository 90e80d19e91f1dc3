"""The model registry: canonical names (timm's), aliases, families, and `create_model`.

A variant is one function decorated with `@register_model(family)` that only states its arguments
(`resnet.py`, `swin.py`); `create_model` checks the keyword arguments against the family before
calling it (`names.model_options`, torch-free: the command line checks them before torch loads),
so a misspelt or inapplicable option is a `ConfigError`, never a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from depthbench import names
from depthbench.errors import ConfigError
from depthbench.names import KEY_DROP_MODES, KEY_DROP_SCHEDULES

FAMILIES = tuple(names.FAMILIES)  # ("resnet", "seresnet", "swin"): the one table in names.py
ALIASES = dict(names.ALIASES)

_REGISTRY: dict[str, tuple[str, Callable[..., nn.Module]]] = {}


def register_model(family: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register `fn` under its own name as a member of `family`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if names.MODELS.get(fn.__name__, (None,))[0] != family:
            raise ValueError(f"{fn.__name__} ({family}) is not in depthbench.names.MODELS")
        _REGISTRY[fn.__name__] = (family, fn)
        return fn

    return deco


def list_models() -> list[str]:
    """The canonical model names in the canonical order (ResNet, SE-ResNet, Swin; by depth)."""
    return [m for m in names.MODELS if m in _REGISTRY]


def resolve_name(name: str) -> str:
    """Canonical name for `name` (an alias like `swin_t` or a canonical name); ConfigError if unknown."""
    key = names.resolve_name(name)
    if key not in _REGISTRY:  # in the table but no function registered under it
        raise ConfigError(f"model {key!r} is not registered; valid names: "
                          f"{', '.join(list_models())}")
    return key


def family(name: str) -> str:
    """'resnet' | 'seresnet' | 'swin' for a model name or alias."""
    return _REGISTRY[resolve_name(name)][0]


def create_model(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """Build model `name` (canonical or alias) with `num_classes` outputs.

    Keyword arguments: `img_size`, `drop_path_rate` (all); `se_drop` (SE-ResNet); `window_size`,
    `key_drop`, `key_drop_mode`, `key_drop_schedule`, `fused_attn` (Swin). An option that does not
    apply to the family is a ConfigError unless it has its "off" value (0, None or the default).
    """
    canonical = resolve_name(name)
    fam, fn = _REGISTRY[canonical]
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    args = names.model_options(canonical, kwargs)
    _check_values(canonical, args)
    model = fn(num_classes=num_classes, **args)
    model.model_name = canonical
    model.family = fam
    return model


def _check_values(name: str, args: dict) -> None:
    for key in ("drop_path_rate", "key_drop", "se_drop"):
        if key in args:
            v = args[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v < 1.0:
                raise ConfigError(f"{key} for {name} must be a number in [0, 1), got {v!r}")
    for key, valid in (("key_drop_mode", KEY_DROP_MODES), ("key_drop_schedule", KEY_DROP_SCHEDULES)):
        if key in args and args[key] not in valid:
            raise ConfigError(f"{key} for {name} must be one of {', '.join(valid)}, got {args[key]!r}")
    for key in ("img_size", "window_size"):
        v = args.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{key} for {name} must be a positive integer, got {v!r}")
    if "fused_attn" in args and not isinstance(args["fused_attn"], bool):
        raise ConfigError(f"fused_attn for {name} must be true or false, got {args['fused_attn']!r}")
