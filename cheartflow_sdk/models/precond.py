"""Consistency preconditioning around the raw U-Net (EDMPrecond-style thin wrapper)."""

from __future__ import annotations

import torch
from torch import nn

from .. import bridge
from ..config import ModelConfig
from .unet import TimeConditionedUNet


class ConsistencyEncoder(nn.Module):
    """E(x, t) = c_skip(t) x + c_out(t) F(x, t); the combination runs in fp32 even when F runs in fp16."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.net = TimeConditionedUNet(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        net_dtype = next(self.net.parameters()).dtype
        raw = self.net(x.to(net_dtype), t)
        return bridge.precondition(x.float(), t.float(), raw.float(), self.config.sigma_data)


def build_encoder(cfg: ModelConfig) -> ConsistencyEncoder:
    """A freshly initialized encoder; the output conv starts at zero so E starts as c_skip(t) x."""
    enc = ConsistencyEncoder(cfg)
    nn.init.zeros_(enc.net.out_conv.weight)
    nn.init.zeros_(enc.net.out_conv.bias)
    return enc
