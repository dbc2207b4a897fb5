"""Time-conditioned U-Net F(x, t): the raw network behind the consistency preconditioning."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000 so nearby t differ), shape [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = (1000.0 * t.float())[:, None] * freqs[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice, with the time embedding as a scale/shift on the second norm."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over pixels (used at the coarsest levels only)."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c), dim=-1)
        out = torch.einsum("bij,bcj->bci", attn, v).reshape(b, c, h, w)
        return x + self.proj(out)


class TimeConditionedUNet(nn.Module):
    """F(x, t): 1-channel image (2 channels, image and sketch, when sketch-conditioned) and time in, 1-channel image out.

    With ``patch_size`` p > 1 the stem folds each p x p patch into channels (PixelUnshuffle) and the head unfolds
    them (PixelShuffle), so the levels run at 1/p of the resolution.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        emb_dim = cfg.time_embed_dim
        self.base_channels = cfg.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        in_ch = (2 if cfg.sketch_condition else 1) * cfg.patch_size**2
        self.unpatch = nn.PixelUnshuffle(cfg.patch_size) if cfg.patch_size > 1 else nn.Identity()
        self.stem = nn.Conv2d(in_ch, chs[0], 3, padding=1)

        def block(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, emb_dim, cfg.groups, cfg.dropout)

        self.down = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_chs = [chs[0]]
        ch = chs[0]
        for level, out_ch in enumerate(chs):
            for _ in range(cfg.blocks_per_level):
                self.down.append(block(ch, out_ch))
                self.down_attn.append(SelfAttention(out_ch, cfg.groups) if level in cfg.attention_levels else nn.Identity())
                ch = out_ch
                skip_chs.append(ch)
            if level < len(chs) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_chs.append(ch)
        self.mid1 = block(ch, ch)
        self.mid_attn = SelfAttention(ch, cfg.groups)
        self.mid2 = block(ch, ch)

        self.up = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(chs))):
            for _ in range(cfg.blocks_per_level + 1):
                self.up.append(block(ch + skip_chs.pop(), chs[level]))
                ch = chs[level]
                self.up_attn.append(SelfAttention(ch, cfg.groups) if level in cfg.attention_levels else nn.Identity())
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.out_norm = nn.GroupNorm(cfg.groups, ch)
        self.out_conv = nn.Conv2d(ch, cfg.patch_size**2, 3, padding=1)
        self.repatch = nn.PixelShuffle(cfg.patch_size) if cfg.patch_size > 1 else nn.Identity()
        self.blocks_per_level = cfg.blocks_per_level
        self.levels = len(chs)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.base_channels).to(x.dtype))
        h = self.stem(self.unpatch(x))
        skips = [h]
        blocks = iter(zip(self.down, self.down_attn))
        for level in range(self.levels):
            for _ in range(self.blocks_per_level):
                res, attn = next(blocks)
                h = attn(res(h, emb))
                skips.append(h)
            if level < self.levels - 1:
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        blocks = iter(zip(self.up, self.up_attn))
        for i, level in enumerate(reversed(range(self.levels))):
            for _ in range(self.blocks_per_level + 1):
                res, attn = next(blocks)
                h = attn(res(torch.cat([h, skips.pop()], dim=1), emb))
            if level > 0:
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.repatch(self.out_conv(F.silu(self.out_norm(h))))
