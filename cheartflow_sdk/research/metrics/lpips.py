"""LPIPS (Zhang et al., 2018), AlexNet variant v0.1, in plain torch, from a user-supplied weight file.

No weights ship with the SDK and none are downloaded. The weight file is the state dict of the
``lpips`` package's ``LPIPS(net="alex", version="0.1")`` module, i.e. what
``torch.save(lpips.LPIPS(net="alex").state_dict(), "lpips_alex.pth")`` writes:

- backbone (torchvision AlexNet ``features``, split in five slices as in ``lpips``):
  ``net.slice1.0.{weight,bias}`` ``[64, 3, 11, 11]``, ``net.slice2.3.*`` ``[192, 64, 5, 5]``,
  ``net.slice3.6.*`` ``[384, 192, 3, 3]``, ``net.slice4.8.*`` ``[256, 384, 3, 3]``,
  ``net.slice5.10.*`` ``[256, 256, 3, 3]``;
- linear calibration layers: ``lin0.model.1.weight`` ``[1, 64, 1, 1]`` ... ``lin4.model.1.weight``
  ``[1, 256, 1, 1]`` (the contents of ``lpips/weights/v0.1/alex.pth``);
- optional ``scaling_layer.shift`` / ``scaling_layer.scale`` (constants, checked when present).

A backbone given as torchvision's AlexNet keys (``features.0.weight`` ...) is accepted too, e.g.
``{**torchvision_alexnet_state_dict, **lpips_alex_linear_weights}`` in one file.

Distance: inputs ``[B, 1|3, H, W]`` in ``[0, 1]`` (one channel repeated to three) are scaled to
``[-1, 1]``, shifted/scaled per channel, and passed through the five AlexNet stages; each stage's
features are unit-normalized over channels, their squared difference is weighted by the linear
layer, averaged over space, and the five values are summed: ``[B]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import InvalidInputError
from ._weights import check_keys, read_state_dict

WHAT = "LPIPS (AlexNet, v0.1) weights"
EXPECTED = (
    "a torch state dict of lpips.LPIPS(net='alex', version='0.1') with backbone keys net.slice1.0.weight "
    "[64, 3, 11, 11] ... net.slice5.10.bias [256] (or torchvision AlexNet features.0.weight ...) and linear "
    "layers lin0.model.1.weight [1, 64, 1, 1] ... lin4.model.1.weight [1, 256, 1, 1]; e.g. "
    "torch.save(lpips.LPIPS(net='alex').state_dict(), 'lpips_alex.pth')"
)
CHANNELS = (64, 192, 384, 256, 256)  # AlexNet stage widths
_SLICE_CONV = (0, 3, 6, 8, 10)  # index of each slice's convolution in AlexNet.features
SHIFT = (-0.030, -0.088, -0.188)  # ScalingLayer of lpips v0.1
SCALE = (0.458, 0.448, 0.450)


class _Lin(nn.Module):
    """A 1x1 convolution without bias, stored as ``model.1`` like lpips' NetLinLayer (dropout at ``model.0``)."""

    def __init__(self, ch: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(ch, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _AlexSlices(nn.Module):
    """AlexNet ``features`` split into the five lpips slices; returns the five ReLU outputs."""

    def __init__(self):
        super().__init__()
        relu, pool = (lambda: nn.ReLU()), (lambda: nn.MaxPool2d(3, 2))
        self.slice1 = nn.Sequential()
        self.slice1.add_module("0", nn.Conv2d(3, 64, 11, stride=4, padding=2))
        self.slice1.add_module("1", relu())
        self.slice2 = nn.Sequential()
        self.slice2.add_module("2", pool())
        self.slice2.add_module("3", nn.Conv2d(64, 192, 5, padding=2))
        self.slice2.add_module("4", relu())
        self.slice3 = nn.Sequential()
        self.slice3.add_module("5", pool())
        self.slice3.add_module("6", nn.Conv2d(192, 384, 3, padding=1))
        self.slice3.add_module("7", relu())
        self.slice4 = nn.Sequential()
        self.slice4.add_module("8", nn.Conv2d(384, 256, 3, padding=1))
        self.slice4.add_module("9", relu())
        self.slice5 = nn.Sequential()
        self.slice5.add_module("10", nn.Conv2d(256, 256, 3, padding=1))
        self.slice5.add_module("11", relu())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for s in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = s(x)
            outs.append(x)
        return outs


def _unit_normalize(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    """``LPIPS()(a, b)`` -> ``[B]`` distances of images in ``[0, 1]``; load weights with :func:`load_lpips`."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.net = _AlexSlices()
        self.lin0, self.lin1, self.lin2, self.lin3, self.lin4 = (_Lin(c) for c in CHANNELS)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return ((2.0 * x - 1.0) - self.shift) / self.scale

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] not in (1, 3):
            raise InvalidInputError(f"LPIPS expects two image batches [B, 1|3, H, W] of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        fa, fb = self.net(self._prep(a)), self.net(self._prep(b))
        total = torch.zeros(a.shape[0], device=a.device)
        for lin, xa, xb in zip((self.lin0, self.lin1, self.lin2, self.lin3, self.lin4), fa, fb):
            diff = (_unit_normalize(xa) - _unit_normalize(xb)) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total


def _from_torchvision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchvision AlexNet ``features.I.*`` keys to the lpips ``net.sliceK.I.*`` layout."""
    out = dict(state)
    for k, idx in enumerate(_SLICE_CONV, start=1):
        for p in ("weight", "bias"):
            src, dst = f"features.{idx}.{p}", f"net.slice{k}.{idx}.{p}"
            if src in state and dst not in state:
                out[dst] = state[src]
    return out


def load_lpips(weights: str | os.PathLike | None, device: str | torch.device = "cpu") -> LPIPS:
    """Build LPIPS and load ``weights`` (see the module doc); eval mode, no gradients.

    Raises ModelNotAvailableError naming the file when it is missing, InvalidInputError when it
    cannot be read or does not match.
    """
    state = _from_torchvision(read_state_dict(weights, WHAT, EXPECTED))
    path = Path(str(weights))
    model = LPIPS()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_keys(state, expected, path, WHAT, EXPECTED)
    for name, ref in (("scaling_layer.shift", SHIFT), ("scaling_layer.scale", SCALE)):
        if name in state and not torch.allclose(state[name].float().flatten(), torch.tensor(ref), atol=1e-4):
            raise InvalidInputError(f"{WHAT} file {path}: {name} is {state[name].flatten().tolist()}, expected {list(ref)} (lpips v0.1)")
    model.load_state_dict({k: state[k].float() for k in expected})
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def lpips_distance(model: LPIPS, a: np.ndarray, b: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """LPIPS of each image pair, float64 ``[N]``; images ``[N, 1|3, H, W]`` (or ``[N, H, W]``) in ``[0, 1]``."""
    x, y = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if x.ndim == 3:
        x, y = x[:, None], (y[:, None] if y.ndim == 3 else y)
    if x.shape != y.shape or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise InvalidInputError(f"lpips_distance expects two image arrays [N, 1|3, H, W] of one shape, got {np.shape(a)} and {np.shape(b)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidInputError("lpips_distance: images contain NaN or infinite values")
    device = next(model.parameters()).device
    out = [model(torch.from_numpy(x[i:i + batch_size]).to(device), torch.from_numpy(y[i:i + batch_size]).to(device))
           .double().cpu().numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)
