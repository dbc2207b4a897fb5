"""Baselines of the paper's Table 1 (need the `train` extra: torch), trained on the same data as cHeartFlow.

- pix2pix (Isola et al., 2017): U-Net generator + 70x70 PatchGAN, L1 + adversarial loss.
- iDDPM (Nichol & Dhariwal, 2021): cosine schedule, hybrid loss with learned variance, the sketch
  concatenated to the noisy input, sampled with a respaced schedule (200 or 1000 steps).

    results = train_baseline("iddpm", images, sketches, "runs/iddpm", IDDPMConfig(), time_limit_s=540)
    fn = load_baseline("runs/iddpm")
    out = fn(sketches01, steps=200, seed=0)   # float32 [B,1,H,W] in [0,1]
"""

from ..._optional import require

require("torch")  # a clear error naming the `train` extra when torch is missing

from .api import (
    KINDS,
    BaselineSynthesizer,
    config_fields,
    default_config,
    load_baseline,
    make_trainer,
    train_baseline,
)
from .iddpm import IDDPMConfig, IDDPMStep, IDDPMTrainer
from .pix2pix import Pix2PixConfig, Pix2PixStep, Pix2PixTrainer

__all__ = [
    "KINDS", "BaselineSynthesizer", "IDDPMConfig", "IDDPMStep", "IDDPMTrainer", "Pix2PixConfig", "Pix2PixStep",
    "Pix2PixTrainer", "config_fields", "default_config", "load_baseline", "make_trainer", "train_baseline",
]
