"""Building blocks shared by the models: SE, key dropout, window attention, drop path, 1x1 conv."""

from depthbench.layers.drop import DropPath, drop_path, linear_rates
from depthbench.layers.key_drop import (
    KEY_DROP_MODES,
    KEY_DROP_SCHEDULES,
    KeyDrop,
    dropkey_logit_mask,
    key_drop_rates,
)
from depthbench.layers.pointwise import PointwiseConv2d
from depthbench.layers.squeeze_excite import SEModule, make_divisible
from depthbench.layers.window_attention import (
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

__all__ = [
    "KEY_DROP_MODES", "KEY_DROP_SCHEDULES", "DropPath", "KeyDrop", "PointwiseConv2d", "SEModule",
    "WindowAttention", "drop_path", "dropkey_logit_mask", "key_drop_rates", "linear_rates",
    "make_divisible", "relative_position_index", "shifted_window_mask", "window_partition",
    "window_reverse",
]
