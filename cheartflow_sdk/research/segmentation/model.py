"""A small 2-D U-Net segmenter for the four ACDC classes, used to score synthesized images.

- :meth:`Segmenter.segment`: label maps of images (anatomical faithfulness: Dice against the
  labels the sketch came from);
- :meth:`Segmenter.bottleneck_features`: the global average of the bottleneck activations
  (``[N, base_channels * channel_mult[-1]]``), the feature space of the weight-free Frechet
  distance (realism), the way FID uses Inception's pool features. The features are centered and
  scaled with constants measured on the training images at the end of training (buffers
  ``feature_mean`` ``[D]`` and ``feature_scale`` ``[]``: one scale for all dimensions, so the mean
  per-dimension variance of training features is 1 and the geometry is unchanged); without it
  the pooled GroupNorm activations vary by ~1e-3 and Frechet distances come out ~1e-4.

Files: ``segmenter.safetensors`` (fp32) + ``config.json`` (``{"segmenter": {...}, "train": ...}``).
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...atomic import atomic_write_text
from ...errors import InvalidInputError, ModelNotAvailableError
from ...torch_device import resolve_device
from ...weights_file import load_weights, save_weights
from .config import (
    CONFIG_FILENAME,
    WEIGHTS_FILENAME,
    SegmenterConfig,
    SegTrainConfig,
    config_json,
    read_segmenter_config,
)

log = logging.getLogger(__name__)


class ConvBlock(nn.Module):
    """(Conv3x3 - GroupNorm - SiLU) twice."""

    def __init__(self, in_ch: int, out_ch: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.GroupNorm(groups, out_ch), nn.SiLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.GroupNorm(groups, out_ch), nn.SiLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SegUNet(nn.Module):
    """U-Net: images ``[B,1,R,R]`` in [-1,1] -> class logits ``[B,C,R,R]`` (and the bottleneck map)."""

    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        self.config = cfg
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        self.down = nn.ModuleList()
        prev = 1
        for ch in chs:
            self.down.append(ConvBlock(prev, ch, cfg.groups))
            prev = ch
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for ch in reversed(chs[:-1]):
            self.up.append(nn.ConvTranspose2d(prev, ch, 2, stride=2))
            self.up_conv.append(ConvBlock(2 * ch, ch, cfg.groups))
            prev = ch
        self.head = nn.Conv2d(prev, cfg.num_classes, 1)
        # Feature normalization (set by calibrate_features after training; identity before).
        self.register_buffer("feature_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("feature_scale", torch.ones(()))

    def forward(self, x: torch.Tensor, return_bottleneck: bool = False) -> Any:
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        bottleneck = x
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips[:-1])):
            x = conv(torch.cat([up(x), skip], dim=1))
        logits = self.head(x)
        return (logits, bottleneck) if return_bottleneck else logits

    def pooled_features(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """Normalized global-average-pooled bottleneck features ``[B, D]`` (float32)."""
        return (bottleneck.float().mean(dim=(2, 3)) - self.feature_mean) / self.feature_scale

    @torch.no_grad()
    def calibrate_features(self, images: torch.Tensor, batch_size: int = 256) -> None:
        """Set feature_mean / feature_scale from ``images`` ``[N,1,R,R]`` (N >= 2): raw pooled features are
        centered, and one scale makes their mean per-dimension variance 1. Leaves the net in eval mode."""
        self.eval()
        raw = torch.cat([self(images[i:i + batch_size], return_bottleneck=True)[1].float().mean(dim=(2, 3))
                         for i in range(0, len(images), batch_size)]).double()
        mean = raw.mean(dim=0)
        var = raw.var(dim=0).mean() if len(raw) > 1 else torch.ones((), dtype=torch.float64)
        self.feature_mean.copy_(mean.float())
        self.feature_scale.copy_(var.clamp_min(1e-20).sqrt().float())


class Segmenter:
    """A trained :class:`SegUNet` behind numpy in/out: images float ``[N,1,R,R]`` in ``[-1, 1]``."""

    def __init__(self, net: SegUNet, device: str | torch.device = "cpu", source: Path | None = None):
        self.config: SegmenterConfig = net.config
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()  # inference runs under no_grad; gradients stay as they are
        self.source = source

    def __repr__(self) -> str:
        c = self.config
        return f"Segmenter(resolution={c.resolution}, classes={c.num_classes}, features={c.feature_dim}, device='{self.device}', source='{self.source}')"

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def _check(self, images: np.ndarray) -> np.ndarray:
        arr = np.asarray(images)
        r = self.config.resolution
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4 or arr.shape[1:] != (1, r, r) or not np.issubdtype(arr.dtype, np.floating):
            raise InvalidInputError(f"segmenter expects float images [N, 1, {r}, {r}] in [-1, 1], got {arr.dtype} {np.shape(images)}")
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError("segmenter: images contain NaN or infinite values")
        if arr.size and (arr.min() < -1.001 or arr.max() > 1.001):
            raise InvalidInputError(
                f"segmenter expects images in [-1, 1] (convert [0, 1] images with x * 2 - 1), got {arr.min():.3g}..{arr.max():.3g}"
            )
        return np.ascontiguousarray(arr, dtype=np.float32)

    @torch.no_grad()
    def run(self, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(labels uint8 ``[N,R,R]``, bottleneck features float64 ``[N,D]``) in one pass."""
        x = self._check(images)
        labels, feats = [], []
        for i in range(0, len(x), batch_size):
            logits, bottleneck = self.net(torch.from_numpy(x[i:i + batch_size]).to(self.device), return_bottleneck=True)
            labels.append(logits.argmax(dim=1).to(torch.uint8).cpu().numpy())
            feats.append(self.net.pooled_features(bottleneck).double().cpu().numpy())
        r = self.config.resolution
        if not labels:
            return np.zeros((0, r, r), np.uint8), np.zeros((0, self.feature_dim))
        return np.concatenate(labels), np.concatenate(feats)

    def segment(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Label maps uint8 ``[N, R, R]`` (0 bg, 1 RV, 2 MYO, 3 LV) of images ``[N,1,R,R]`` in [-1, 1]."""
        return self.run(images, batch_size)[0]

    def bottleneck_features(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Global-average-pooled bottleneck activations float64 ``[N, D]`` (D = :attr:`feature_dim`), normalized
        with the training-set constants (see the module doc)."""
        return self.run(images, batch_size)[1]


def save_segmenter(net: SegUNet, out_dir: str | os.PathLike, train_cfg: SegTrainConfig | None = None, **provenance: Any) -> Path:
    """Write ``segmenter.safetensors`` (fp32) and ``config.json`` into ``out_dir`` atomically; returns the weights path."""
    out = Path(out_dir)
    save_weights(net, out / WEIGHTS_FILENAME, fmt="cheartflow-segmenter", dtype=torch.float32)
    atomic_write_text(out / CONFIG_FILENAME, config_json(net.config, train_cfg, **provenance))
    return out / WEIGHTS_FILENAME


def default_segmenter_dir() -> Path:
    """Folder of the bundled segmenter (``cheartflow_sdk/default_models/segmenter``; may not exist)."""
    return Path(str(resources.files("cheartflow_sdk") / "default_models" / "segmenter"))


def load_segmenter(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Segmenter:
    """Load a segmenter folder (``segmenter.safetensors`` + ``config.json``); None: the bundled one."""
    if path is None:
        folder = default_segmenter_dir()
        if not (folder / WEIGHTS_FILENAME).is_file():
            raise ModelNotAvailableError(
                f"no bundled evaluation segmenter is installed (expected {folder}); train one with "
                "`cheartflow train-seg --data ../shared/data/acdc --out runs/segmenter` and pass its folder"
            )
    else:
        folder = Path(path)
        if not folder.is_dir():
            raise ModelNotAvailableError(f"segmenter folder not found: {folder} (expected {WEIGHTS_FILENAME} and {CONFIG_FILENAME})")
    cfg, _ = read_segmenter_config(folder)
    weights = folder / WEIGHTS_FILENAME
    if not weights.is_file():
        raise ModelNotAvailableError(f"segmenter weights not found: {weights} (written by train_segmenter)")
    net = load_weights(SegUNet(cfg), weights, folder / CONFIG_FILENAME)
    return Segmenter(net.requires_grad_(False), device, source=folder)
