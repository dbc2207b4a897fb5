"""Training of the cHeartFlow encoder (needs the `train` extra: torch)."""

from .checkpoint import load_encoder, save_model
from .trainer import StepResult, Trainer, train

__all__ = ["StepResult", "Trainer", "load_encoder", "save_model", "train"]
