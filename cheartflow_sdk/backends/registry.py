"""Which backend opens a model path: the file's kind decides, or `backend=` when given."""

from __future__ import annotations

from pathlib import Path

from ..config import CONFIG_FILENAME
from ..errors import InvalidInputError, ModelNotAvailableError

BACKENDS = ("auto", "onnxruntime", "torch")
ONNX_FILENAME = "model.onnx"


def open_encoder(path: Path, backend: str, device: str):
    """An encoder for `path` (a run folder or an engine file) on `device`; it exposes .config and .name."""
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    onnx_file = path if path.is_file() else path / ONNX_FILENAME
    has_onnx = onnx_file.suffix == ".onnx" and onnx_file.is_file()
    has_torch = path.is_dir() and (path / CONFIG_FILENAME).is_file()
    if path.is_file() and path.suffix != ".onnx":
        raise InvalidInputError(f"{path}: expected a model folder or an .onnx engine file")
    if backend == "auto":
        backend = "onnxruntime" if has_onnx else "torch"
    if backend == "onnxruntime":
        if not has_onnx:
            raise ModelNotAvailableError(f"no ONNX engine at {onnx_file}; create it with `cheartflow export {path}`")
        from .onnxruntime_backend import OnnxRuntimeEncoder

        return OnnxRuntimeEncoder(onnx_file, device=device)
    if not has_torch:
        raise ModelNotAvailableError(f"backend 'torch' needs a model folder with {CONFIG_FILENAME} and model.safetensors, got {path}")
    from .torch_backend import TorchEncoder

    return TorchEncoder(path, device=device)
