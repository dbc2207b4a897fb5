"""PyTorch eager backend: the fp32 reference encoder, loaded from a trained model folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require
from ..config import ModelConfig


class TorchEncoder:
    """Runs the checkpoint's encoder in PyTorch; numpy float32 in and out."""

    name = "torch"

    def __init__(self, model_dir: str | Path, device: str = "auto"):
        torch = require("torch")
        from ..models.files import load_encoder
        from ..torch_device import resolve_device

        self._torch = torch
        self.device = resolve_device(device)
        self.module = load_encoder(model_dir, self.device)
        self.config: ModelConfig = self.module.config

    def __call__(self, x: np.ndarray, t: np.ndarray, sketch: np.ndarray | None = None) -> np.ndarray:
        """E(x, t), or E(x, t, sketch) for a sketch-conditioned model (sketch: x1 in [-1, 1], shaped like x)."""
        torch = self._torch
        with torch.inference_mode():
            out = self.module(self._tensor(x), self._tensor(t), None if sketch is None else self._tensor(sketch))
        return out.float().cpu().numpy()

    def _tensor(self, a: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)
