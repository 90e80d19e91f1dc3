"""A model variant registered outside depthbench, as docs/internals.md adds one: a tiny ResNet-10
(one BasicBlock a stage). This function is all there is of it; tests/test_new_model.py runs it
through `models`, `train` and a study."""

from depthbench.models.registry import register_model
from depthbench.models.resnet import BasicBlock, ResNet


@register_model("resnet", "ResNet-10")
def resnet10(**kwargs) -> ResNet:
    return ResNet(BasicBlock, (1, 1, 1, 1), **kwargs)
