"""Reading user-supplied weight files (torch ``.pth``/``.pt`` state dicts or ``.safetensors``) with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import InvalidInputError, ModelNotAvailableError


def read_state_dict(path: str | os.PathLike | None, what: str, expected: str) -> dict[str, Any]:
    """The tensors of a weight file as ``{key: torch.Tensor}``.

    ``what`` names the weights (``"Inception-v3 FID weights"``) and ``expected`` says what the file
    must contain; both go into the error of a missing, unreadable or empty file. ``.safetensors``
    files are read with safetensors, anything else with ``torch.load(weights_only=True)`` (no code
    is unpickled); a checkpoint that nests its tensors under ``"state_dict"`` is unwrapped.
    """
    import torch

    if path is None:
        raise ModelNotAvailableError(f"no {what} file given; expected {expected}")
    p = Path(path)
    if not p.is_file():
        raise ModelNotAvailableError(f"{what} file not found: {p}; expected {expected}")
    try:
        if p.name.lower().endswith(".safetensors"):
            from safetensors.torch import load_file

            state: Any = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for corrupt files
        raise InvalidInputError(
            f"cannot read {what} file {p} ({type(exc).__name__}: {exc}); expected {expected}"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise InvalidInputError(f"{what} file {p} does not hold a state dict of tensors; expected {expected}")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def check_keys(state: dict[str, Any], expected_shapes: dict[str, tuple[int, ...]], path: str | os.PathLike,
               what: str, expected: str) -> None:
    """Raise InvalidInputError naming the file and the first missing or mis-shaped keys."""
    missing = [k for k in expected_shapes if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {v})" for k, v in expected_shapes.items()
             if k in state and tuple(state[k].shape) != tuple(v)]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys, e.g. {', '.join(missing[:4])}")
        if wrong:
            parts.append(f"{len(wrong)} keys with another shape, e.g. {'; '.join(wrong[:3])}")
        raise InvalidInputError(f"{what} file {path} does not match: {'; '.join(parts)}; expected {expected}")
