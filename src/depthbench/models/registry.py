"""The model registry: `register_model`, `create_model`, `list_models`.

A variant is one function decorated with `@register_model(family, display name)` that only
states its arguments (`resnet.py`, `swin.py`). The decorator's arguments are the model's entry in
`depthbench.names.MODELS`, which reads them from the source text, so the checks before torch
loads and the report know the model without importing this module. `create_model` checks the
keyword arguments against the family before calling it (`names.model_options`, torch-free: the
command line checks them before torch loads), so a misspelt or inapplicable option is a
`ConfigError`, never a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from depthbench import names
from depthbench.errors import ConfigError
from depthbench.names import KEY_DROP_MODES, KEY_DROP_SCHEDULES

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

ModelFn = Callable[..., nn.Module]


def register_model(family: str, display: str, *, aliases: tuple[str, ...] = (),
                   modern_drop_path: float | None = None,
                   modern_lr: float | None = None) -> Callable[[ModelFn], ModelFn]:
    """Decorator: register `fn` under its own name as a model of `family` that a report prints
    as `display`, also reachable as each of `aliases`; `modern_drop_path`, `modern_lr`: the
    stochastic depth and the lr (at the reference batch of the recipe's rule) the modern recipe
    trains it with (None: its family's). Literal arguments only: they are read from the source
    text too (`depthbench.names`)."""
    info = names.ModelInfo(family, display, tuple(aliases), modern_drop_path, modern_lr)

    def deco(fn: ModelFn) -> ModelFn:
        names.add_model(fn.__name__, info)
        _REGISTRY[fn.__name__] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """The canonical model names in the canonical order (ResNet, SE-ResNet, Swin; by depth)."""
    return [m for m in names.MODELS if m in _REGISTRY]


def resolve_name(name: str) -> str:
    """Canonical name for `name` (an alias like `swin_t` or a canonical name); ConfigError if unknown."""
    key = names.resolve_name(name)
    if key not in _REGISTRY:  # declared in a file that depthbench.models does not import
        raise ConfigError(f"model {key!r} is not registered; valid names: "
                          f"{', '.join(list_models())}")
    return key


def family(name: str) -> str:
    """'resnet' | 'seresnet' | 'swin' for a model name or alias."""
    return names.MODELS[resolve_name(name)].family


def model_module(name: str) -> str:
    """The module that registered model `name`: what a fresh process imports to build it."""
    return _REGISTRY[resolve_name(name)].__module__


def create_model(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """Build model `name` (canonical or alias) with `num_classes` outputs.

    Keyword arguments: `img_size`, `drop_path_rate` (all); `se_drop` (SE-ResNet); `window_size`,
    `key_drop`, `key_drop_mode`, `key_drop_schedule`, `fused_attn` (Swin). An option that does not
    apply to the family is a ConfigError unless it has its "off" value (0, None or the default).
    """
    canonical = resolve_name(name)
    fn = _REGISTRY[canonical]
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    args = names.model_options(canonical, kwargs)
    _check_values(canonical, args)
    model = fn(num_classes=num_classes, **args)
    model.model_name = canonical
    model.family = names.MODELS[canonical].family
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
