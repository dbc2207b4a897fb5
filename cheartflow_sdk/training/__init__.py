"""Training of the cHeartFlow encoder (needs the `train` extra: torch)."""

from .base import TrainerBase, amp_dtype
from .checkpoint import load_encoder, save_model
from .trainer import StepResult, Trainer, data_scales, train

__all__ = ["StepResult", "Trainer", "TrainerBase", "amp_dtype", "data_scales", "load_encoder", "save_model", "train"]
