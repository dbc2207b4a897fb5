"""Random small rotations, scalings and shifts of training pairs, with the sketch made again from the moved image.

An edge sketch is remade by Canny from the warped image (warping a thin binary edge map would break and
blur its lines, a sketch no user ever gives); a label sketch is warped with nearest-neighbour sampling,
which keeps its levels exact. Flips are not offered here: CMR slices have a fixed orientation (RV left of
LV), and `augment_flip` (vertical flips only) measured worse on val.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..sketch import canny


def enabled(cfg: TrainConfig) -> bool:
    """Whether `cfg` asks for any geometric augmentation."""
    return cfg.augment_prob > 0 and (cfg.augment_rotate_deg > 0 or cfg.augment_scale > 0 or cfg.augment_shift > 0)


def random_affine(n: int, cfg: TrainConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(theta, moved): n affine matrices [n, 2, 3] for `F.affine_grid` (normalized coordinates), the identity
    for the pairs left as they are, and the bool mask [n] of the pairs that move.

    Each pair is moved with probability `augment_prob`: rotation uniform in +-augment_rotate_deg, isotropic
    scale uniform in 1 +- augment_scale, shift uniform in +-augment_shift of the side along each axis.
    """
    u = torch.rand(n, 5, generator=gen) * 2 - 1  # rotation, scale, shift x, shift y in [-1, 1]; last: the coin
    moved = (u[:, 4] + 1) / 2 < cfg.augment_prob
    angle = torch.where(moved, u[:, 0] * math.radians(cfg.augment_rotate_deg), torch.zeros(n))
    scale = torch.where(moved, 1 + u[:, 1] * cfg.augment_scale, torch.ones(n))
    shift = torch.where(moved[:, None], u[:, 2:4] * 2 * cfg.augment_shift, torch.zeros(n, 2))  # normalized side = 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale  # the grid maps output to input pixels
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    return theta, moved


def warp(x: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    """x [B,C,H,W] resampled by the affine matrices theta [B,2,3]; the border is mirrored, not filled."""
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="reflection", align_corners=False)


def augment_pairs(x0: torch.Tensor, x1: torch.Tensor, sketch_kind: str, cfg: TrainConfig,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, sketch) batches in [-1, 1] moved by one random affine map per pair (see `random_affine`)."""
    theta, moved = random_affine(len(x0), cfg, gen)
    if not bool(moved.any()):
        return x0, x1
    idx = moved.nonzero()[:, 0].to(x0.device)
    x0, x1 = x0.clone(), x1.clone()
    new_x0 = warp(x0[idx], theta[moved], "bilinear").clamp_(-1, 1)
    if sketch_kind == "edges":
        edges = canny(new_x0.detach().float().cpu().numpy())  # float32 {0, 1}
        new_x1 = torch.from_numpy(edges * 2 - 1).to(x1)
    else:
        new_x1 = warp(x1[idx], theta[moved], "nearest")
    x0[idx], x1[idx] = new_x0, new_x1
    return x0, x1
