"""Training of the cHeartFlow encoder (needs the `train` extra: torch)."""

from .checkpoint import load_encoder, save_model
from .trainer import StepResult, Trainer, amp_dtype, data_scales, train

__all__ = ["StepResult", "Trainer", "amp_dtype", "data_scales", "load_encoder", "save_model", "train"]
