"""The torch device a request names: shared by the torch backend, training and the research harness."""

from __future__ import annotations

import torch

from .errors import InvalidInputError


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda if available, else cpu; a CUDA request without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} requested but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return torch.device(device)
