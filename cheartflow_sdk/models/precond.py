"""Preconditioning around the raw U-Net (EDMPrecond-style thin wrapper): E(x, t) = c_skip x + c_out F(c_in x, t)."""

from __future__ import annotations

import torch
from torch import nn

from .. import bridge
from ..config import ModelConfig
from ..errors import InvalidInputError
from .unet import TimeConditionedUNet


def scalings(cfg: ModelConfig, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_in, c_skip, c_out) at times t [B] for the model's preconditioning, each shaped [B, 1, 1, 1].

    "bridge" derives them from the variances of x0, x1 and the bridge noise (c_skip(0) = 1, c_out(0) = 0,
    c_skip(1) = 0); "consistency" is the legacy form (no input scaling, c_skip(1) = sd^2 / (1 + sd^2)).
    """
    tb = t.reshape(-1, 1, 1, 1)
    if cfg.preconditioning == "bridge":
        args = (cfg.sigma, cfg.sigma_x0, cfg.sigma_x1)
        return bridge.bridge_c_in(tb, *args), bridge.bridge_c_skip(tb, *args), bridge.bridge_c_out(tb, *args)
    return torch.ones_like(tb), bridge.c_skip(tb, cfg.sigma_data), bridge.c_out(tb, cfg.sigma_data)


class ConsistencyEncoder(nn.Module):
    """E(x, t) = c_skip(t) x + c_out(t) F(c_in(t) x, t); scalings and combination run in fp32 even when F runs in fp16/bf16.

    A sketch-conditioned model (``ModelConfig.sketch_condition``) is E(x, t, x1): F also sees the sketch x1.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.net = TimeConditionedUNet(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor, sketch: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B,1,R,R] in model range, t: [B]; sketch: the sketches x1 [B,1,R,R] in [-1, 1], needed when the
        model is sketch-conditioned and ignored otherwise."""
        x, t = x.float(), t.float()
        c_in, c_skip, c_out = scalings(self.config, t)
        net_in = c_in * x
        if self.config.sketch_condition:
            if sketch is None or sketch.shape != x.shape:
                raise InvalidInputError(f"this encoder is sketch-conditioned (ModelConfig.sketch_condition): call it as "
                                        f"E(x, t, sketch) with sketches shaped like x {tuple(x.shape)}, got "
                                        f"{None if sketch is None else tuple(sketch.shape)}")
            net_in = torch.cat([net_in, sketch.float() / self.config.sigma_x1], dim=1)  # unit scale, as c_in(1) x1
        net_dtype = next(self.net.parameters()).dtype
        raw = self.net(net_in.to(net_dtype), t)
        return c_skip * x + c_out * raw.float()


def build_encoder(cfg: ModelConfig) -> ConsistencyEncoder:
    """A freshly initialized encoder; the output conv starts at zero so E starts as c_skip(t) x."""
    enc = ConsistencyEncoder(cfg)
    nn.init.zeros_(enc.net.out_conv.weight)
    nn.init.zeros_(enc.net.out_conv.bias)
    return enc
