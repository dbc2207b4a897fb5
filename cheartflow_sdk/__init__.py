"""cheartflow-sdk: sketch-to-cardiac-MR synthesis with cHeartFlow (one- and few-step sampling).

`import cheartflow_sdk` imports numpy only; torch, onnxruntime and opencv load when a feature needs them.
The tree and its seams: ARCHITECTURE.md.
"""

from __future__ import annotations

import importlib
import importlib.util
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

# The advertised surface (DESIGN.md): load_pipeline, Pipeline, sketch, data and the errors. Every other
# submodule (cf.io, cf.sampling, cf.backends, cf.export, cf.training, cf.research, ...) stays reachable as
# an attribute, imported on first use, but is not advertised.
__all__ = [
    "load_pipeline", "Pipeline", "sketch", "data",
    "CheartflowError", "InvalidInputError", "MissingDependencyError", "ModelMismatchError",
    "ModelNotAvailableError", "NativeUnavailableError", "__version__",
]

_LAZY_ATTRS = {"load_pipeline": "pipeline", "Pipeline": "pipeline", "ModelConfig": "config", "TrainConfig": "config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(f".{_LAZY_ATTRS[name]}", __name__), name)
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cheartflow_sdk' has no attribute {name!r}")
