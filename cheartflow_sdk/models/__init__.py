"""PyTorch networks of cHeartFlow (need the `train` extra: torch)."""

from .precond import ConsistencyEncoder, build_encoder
from .unet import TimeConditionedUNet

__all__ = ["ConsistencyEncoder", "TimeConditionedUNet", "build_encoder"]
