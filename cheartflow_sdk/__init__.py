"""cheartflow-sdk: sketch-to-cardiac-MR synthesis with cHeartFlow (one- and few-step sampling).

`import cheartflow_sdk` imports numpy only; torch, onnxruntime and opencv load when a feature needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .errors import (
    CheartflowError,
    InvalidInputError,
    MissingDependencyError,
    ModelMismatchError,
    ModelNotAvailableError,
    NativeUnavailableError,
)

_LAZY_MODULES = {"sketch", "data", "examples", "io", "sampling", "kernels", "bridge", "config", "research",
                 "medical_io", "resize", "validation"}
_LAZY_ATTRS = {"load_pipeline": "pipeline", "Pipeline": "pipeline", "ModelConfig": "config", "TrainConfig": "config"}

__all__ = [
    "CheartflowError", "InvalidInputError", "MissingDependencyError", "ModelMismatchError",
    "ModelNotAvailableError", "NativeUnavailableError", "Pipeline", "ModelConfig", "TrainConfig",
    "load_pipeline", "__version__", *sorted(_LAZY_MODULES),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(f".{_LAZY_ATTRS[name]}", __name__), name)
    raise AttributeError(f"module 'cheartflow_sdk' has no attribute {name!r}")
