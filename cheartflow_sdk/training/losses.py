"""Distances d(., .) of the training objective (paper Eq. 1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..research.metrics.image import SSIM_K1, SSIM_K2, gaussian_window, ssim_map_with_filter


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c_per_sqrt_dim: float) -> torch.Tensor:
    """Per-sample pseudo-Huber distance sqrt(||a-b||^2 + c^2) - c, with c = c_per_sqrt_dim * sqrt(dim) (iCT)."""
    dim = a[0].numel()
    c = c_per_sqrt_dim * math.sqrt(dim)
    sq = (a.float() - b.float()).pow(2).flatten(1).sum(dim=1)
    return torch.sqrt(sq + c * c) - c


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)


def ssim_dissimilarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``1 - SSIM`` of encoder outputs in [-1, 1], differentiable (fp32).

    The same SSIM as the validation metric (`research.metrics.image.ssim`: 11x11 Gaussian window,
    sigma 1.5, population moments, valid pixels only) on images mapped to [0, 1] without clipping,
    so the loss and the checkpoint choice measure one thing.
    """
    x, y = (a.float() + 1.0) * 0.5, (b.float() + 1.0) * 0.5
    w = torch.as_tensor(gaussian_window(), dtype=torch.float32, device=x.device)
    channels = x.shape[1]
    rows = w.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = w.view(1, 1, 1, -1).expand(channels, 1, 1, -1)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(z, rows, groups=channels), cols, groups=channels)

    ssim_map = ssim_map_with_filter(x, y, blur, SSIM_K1**2, SSIM_K2**2)
    return 1.0 - ssim_map.flatten(1).mean(dim=1)
