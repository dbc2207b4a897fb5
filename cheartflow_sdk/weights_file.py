"""One network's weights as a single safetensors file: written atomically, read back with clear errors.

The shipped models and the baselines store fp16 (half the size, no loss that the parity gates see);
the evaluation segmenter stores fp32. Reading always gives fp32 tensors in the module.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_output
from .errors import InvalidInputError


def save_weights(module: nn.Module, path: str | Path, fmt: str, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``module``'s state dict to ``path``: floating tensors as ``dtype``, integer buffers as they are;
    ``fmt`` goes into the file's metadata (``format``). Returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous()
               for k, v in module.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": fmt, "dtype": str(dtype).removeprefix("torch.")})
    return path


def load_weights(module: nn.Module, path: str | Path, config_path: str | Path) -> nn.Module:
    """Load ``path`` into ``module`` as fp32; InvalidInputError when the file is unreadable or does not fit
    the architecture described by ``config_path``. The caller checks that the file exists (its error
    says how to make one)."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise InvalidInputError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        raise InvalidInputError(f"{path} does not match the architecture in {config_path}: {exc}") from exc
    return module
