"""A trained encoder on disk: fp16 `model.safetensors` plus `config.json`, written by training, read by the runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_text
from ..config import CONFIG_FILENAME, TrainConfig, config_to_json, read_config
from ..contract import MODEL_FILENAME
from ..errors import InvalidInputError
from ..weights_file import load_weights, save_weights
from .precond import ConsistencyEncoder, build_encoder

__all__ = ["MODEL_FILENAME", "load_encoder", "save_model"]


def save_model(encoder: ConsistencyEncoder, out_dir: str | Path, train_cfg: TrainConfig | None = None,
               **provenance: Any) -> Path:
    """Write the encoder's weights as fp16 safetensors plus config.json into out_dir; returns the weights path."""
    out_dir = Path(out_dir)
    save_weights(encoder, out_dir / MODEL_FILENAME, fmt="cheartflow")
    atomic_write_text(out_dir / CONFIG_FILENAME, config_to_json(encoder.config, train_cfg, **provenance))
    return out_dir / MODEL_FILENAME


def load_encoder(model_dir: str | Path, device: str | torch.device = "cpu") -> ConsistencyEncoder:
    """Load an fp32 encoder from a folder with model.safetensors and config.json (eval mode)."""
    model_dir = Path(model_dir)
    cfg, _, _ = read_config(model_dir)
    weights = model_dir / MODEL_FILENAME
    if not weights.is_file():
        raise InvalidInputError(f"expected weights at {weights} (written by `cheartflow train`)")
    encoder = load_weights(build_encoder(cfg), weights, model_dir / CONFIG_FILENAME)
    return encoder.to(device).eval()
