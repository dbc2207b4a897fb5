"""A default-size model with random weights, for timings that do not depend on training."""

from __future__ import annotations

from pathlib import Path


def random_init_model(out_dir: Path, **model_kw) -> Path:
    """A model (default: ModelConfig(), 128x128; `model_kw` are ModelConfig fields) with random weights, saved
    like a trained one; its zero-initialized output conv is re-drawn so the network's output matters."""
    import torch

    from cheartflow_sdk.config import ModelConfig
    from cheartflow_sdk.models import build_encoder
    from cheartflow_sdk.models.files import save_model

    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(**model_kw))
    enc.net.out_conv.reset_parameters()
    save_model(enc, out_dir, fresh_random_init=True)
    return out_dir
