"""The model zoo: ResNet, SE-ResNet and Swin variants under timm's names (`list_models()`).

`create_model(name, num_classes=1000, **kwargs)`, `list_models()`, `resolve_name(name)`,
`family(name)`, `default_window_size(img_size)` (Swin); costs in `depthbench.models.complexity`.
"""

from depthbench.models import resnet, swin  # noqa: F401  (registers the variants)
from depthbench.models.registry import (
    create_model,
    family,
    list_models,
    model_module,
    register_model,
    resolve_name,
)
from depthbench.models.swin import default_window_size, tiling_problem, valid_img_sizes

__all__ = [
    "create_model", "default_window_size", "family", "list_models", "model_module",
    "register_model", "resolve_name", "tiling_problem", "valid_img_sizes",
]
