"""The discretization grid of t, its curriculum, and the sampling of contrastive pairs t1 < t2."""

from __future__ import annotations

import math

import torch

from ..config import TrainConfig


def intervals_at(step: int, cfg: TrainConfig) -> int:
    """Curriculum: N doubles from curriculum_start to curriculum_end in equal stages over training (iCT)."""
    doublings = int(math.floor(math.log2(cfg.curriculum_end / cfg.curriculum_start)))
    stage_len = max(1, cfg.steps // (doublings + 1))
    stage = min(step // stage_len, doublings)
    return min(cfg.curriculum_start * 2**stage, cfg.curriculum_end)


def grid(n_intervals: int, cfg: TrainConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """t_0 = 0 < t_1 < ... < t_N = 1; the "power" grid is denser near t = 0 where targets are sharp."""
    u = torch.linspace(0.0, 1.0, n_intervals + 1, device=device)
    return u if cfg.grid == "uniform" else u.pow(cfg.grid_rho)


def sample_pairs(batch: int, n_intervals: int, cfg: TrainConfig, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adjacent grid points (t1, t2) per sample, uniformly over intervals, and each pair's loss weight."""
    ts = grid(n_intervals, cfg, device)
    idx = torch.randint(0, n_intervals, (batch,), generator=generator, device="cpu").to(device)
    t1, t2 = ts[idx], ts[idx + 1]
    weight = 1.0 / (t2 - t1) if cfg.pair_weighting == "inverse_gap" else torch.ones_like(t1)
    return t1, t2, weight / weight.mean()
