"""Distances d(., .) of the training objective (paper Eq. 1)."""

from __future__ import annotations

import math

import torch


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c_per_sqrt_dim: float) -> torch.Tensor:
    """Per-sample pseudo-Huber distance sqrt(||a-b||^2 + c^2) - c, with c = c_per_sqrt_dim * sqrt(dim) (iCT)."""
    dim = a[0].numel()
    c = c_per_sqrt_dim * math.sqrt(dim)
    sq = (a.float() - b.float()).pow(2).flatten(1).sum(dim=1)
    return torch.sqrt(sq + c * c) - c


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)
