"""The one table of model names: the nine canonical names (timm's), their aliases, families and the
names a report prints, in one canonical order (ResNet, SE-ResNet, Swin; by depth).

Standard library only, so the registry (torch) and the report (no torch) both read it.
"""

from __future__ import annotations

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


def canonical(name: str) -> str:
    """The canonical name of `name` (an alias or a canonical name); an unknown name unchanged."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    return key if key in MODELS else str(name)


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
