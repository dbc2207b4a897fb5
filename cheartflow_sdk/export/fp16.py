"""The fp16 encoder that fp16 engines are exported from: fp16 weights and compute, fp32 where fp16 overflows.

* Inputs and outputs stay float32: ConsistencyEncoder.forward casts x to the network's dtype and computes
  the preconditioning combination c_skip x + c_out F in fp32 (the DESIGN's rule); the sinusoidal time
  embedding is computed in fp32 before the cast.
* GroupNorm layers run in fp32 (their variance is a sum of squares, which overflows fp16 past |x| ~ 256),
  and so do the self-attention blocks (the q.k logits are sums over channels and feed a softmax).
* Everything else (convolutions, linear layers, SiLU, resampling) runs in fp16.
"""

from __future__ import annotations

import copy

from .._optional import require

torch = require("torch")
from torch import nn  # noqa: E402

from ..models.unet import SelfAttention  # noqa: E402

FP32_MODULES: tuple[type[nn.Module], ...] = (nn.GroupNorm, SelfAttention)


class Fp32Island(nn.Module):
    """Runs the wrapped module in fp32 and returns its output in the input's dtype."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float()).to(x.dtype)


def half_encoder(encoder: nn.Module) -> nn.Module:
    """A copy of `encoder` in fp16 with FP32_MODULES kept in fp32 (their weights are the fp32 originals,
    not fp16-rounded); `encoder` itself is not modified."""
    enc = copy.deepcopy(encoder).eval()
    islands: list[tuple[Fp32Island, dict[str, torch.Tensor]]] = []

    def wrap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, FP32_MODULES):
                island = Fp32Island(child)
                setattr(parent, name, island)
                islands.append((island, {k: v.detach().clone() for k, v in child.state_dict().items()}))
            else:
                wrap(child)

    wrap(enc)
    enc.half()
    for island, state in islands:
        island.inner.float()
        island.inner.load_state_dict(state)
    return enc
