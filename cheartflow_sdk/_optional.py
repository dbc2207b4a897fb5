"""Import optional dependencies lazily, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

_EXTRA_OF = {
    "torch": "train",
    "onnx": "train",
    "onnxscript": "train",
    "tensorrt": "tensorrt",
    "pydicom": "dicom",
    "openvino": "openvino",
    "nncf": "openvino",
    "ray": "ray",
    "onnxruntime": None,  # part of the base install (package onnxruntime-gpu)
}


def require(module: str) -> ModuleType:
    """Import `module` or raise MissingDependencyError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_OF.get(top)
        hint = (
            f"pip install 'cheartflow-sdk[{extra}]'" if extra else "pip install cheartflow-sdk (base install)"
        )
        if top == "torch":
            hint = "pip install torch==2.13.0 (or a CUDA build of torch) and then " + hint
        raise MissingDependencyError(f"'{module}' is required for this feature but is not importable ({exc}); install it with: {hint}") from exc
