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


def gap_stage(step: int, cfg: TrainConfig) -> int:
    """The "gap" schedule's stage at `step`: a new stage every `gap_stage_steps` steps (ECT)."""
    return step // cfg.gap_stage_steps


def pair_gap(t2: torch.Tensor, stage: int, cfg: TrainConfig) -> torch.Tensor:
    """gap(t2, stage) = max(gap_min, t2 * gap_shrink**stage): t2 itself at stage 0, never growing after."""
    return torch.clamp(t2 * cfg.gap_shrink**stage, min=cfg.gap_min)


def sample_t2(batch: int, cfg: TrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """t2 in (0, 1]: the first round(t2_one_fraction * batch) at exactly 1, the rest u**t2_power (denser near 1)."""
    u = 1.0 - torch.rand(batch, generator=generator)  # (0, 1]
    t2 = u.pow(cfg.t2_power)
    t2[: round(cfg.t2_one_fraction * batch)] = 1.0
    return t2


def sample_gap_pairs(batch: int, stage: int, cfg: TrainConfig, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs t1 = max(0, t2 - gap(t2, stage)) < t2 <= 1 of the "gap" schedule, and each pair's loss weight."""
    t2 = sample_t2(batch, cfg, generator)
    t1 = torch.clamp(t2 - pair_gap(t2, stage, cfg), min=0.0)
    weight = 1.0 / (t2 - t1) if cfg.pair_weighting == "inverse_gap" else torch.ones_like(t1)
    return t1.to(device), t2.to(device), (weight / weight.mean()).to(device)
