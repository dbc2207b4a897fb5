"""CUDA arrays through ``__cuda_array_interface__`` (torch / CuPy tensors): pointer, shape, dtype and
stream of each argument, checked like host arrays, and outputs allocated by the input's own library."""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import numpy as np

from ..errors import InvalidInputError
from .checks import _check_u64, _describe, _is_cuda



class _DeviceArray(NamedTuple):
    obj: Any
    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    stream: int | None


def _c_contiguous(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> bool:
    """Whether byte strides describe a C-contiguous layout (strides of size-1 axes do not matter)."""
    step = itemsize
    for dim, stride in zip(reversed(shape), reversed(strides)):
        if dim == 0:
            return True
        if dim != 1 and stride != step:
            return False
        step *= dim
    return True


def _device_array(x: Any, fn: str, name: str, dtypes: tuple[type, ...]) -> _DeviceArray:
    if not _is_cuda(x):
        raise InvalidInputError(f"{fn}: {name} is a host array ({_describe(x)}) but the other arrays are CUDA "
                                "arrays; pass all arrays on the same device")
    cai = x.__cuda_array_interface__
    shape = tuple(int(d) for d in cai["shape"])
    dtype = np.dtype(cai["typestr"])
    if dtype not in [np.dtype(d) for d in dtypes]:
        allowed = " or ".join(np.dtype(d).name for d in dtypes)
        raise InvalidInputError(f"{fn}: {name} must have dtype {allowed}, got {dtype} (shape {shape})")
    strides = cai.get("strides")
    if strides is not None and not _c_contiguous(shape, tuple(strides), dtype.itemsize):
        raise InvalidInputError(f"{fn}: {name} must be C-contiguous (e.g. call .contiguous()), got strides "
                                f"{tuple(strides)} for shape {shape}")
    if cai.get("mask") is not None:
        raise InvalidInputError(f"{fn}: {name} must not be a masked array")
    if len(shape) < 1:
        raise InvalidInputError(f"{fn}: {name} must have shape [B, ...], got a 0-d array")
    return _DeviceArray(x, int(cai["data"][0]), shape, dtype, cai.get("stream"))


def _resolve_stream(stream: int | None, arrays: list[_DeviceArray]) -> int:
    """Explicit stream, else the producer stream of the arrays (CAI v3 'stream', torch/CuPy current), else 0."""
    if stream is not None:
        return _check_u64(stream, "stream", "stream")
    for a in arrays:
        if a.stream is not None:
            return int(a.stream)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(arrays[0].obj, torch.Tensor):
        return int(torch.cuda.current_stream(arrays[0].obj.device).cuda_stream)
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(arrays[0].obj, cupy.ndarray):
        return int(cupy.cuda.get_current_stream().ptr)
    return 0


def _device_empty(like: _DeviceArray, shape: tuple[int, ...], dtype: np.dtype, fn: str) -> Any:
    """A new CUDA array on like's device, made by like's own library (torch or CuPy, already imported)."""
    module = type(like.obj).__module__.split(".")[0]
    if module == "torch":
        torch = sys.modules["torch"]
        return torch.empty(shape, dtype=getattr(torch, dtype.name), device=like.obj.device)
    if module == "cupy":
        cupy = sys.modules["cupy"]
        with like.obj.device:
            return cupy.empty(shape, dtype=dtype)
    raise InvalidInputError(f"{fn}: cannot allocate an output like a {type(like.obj).__name__}; pass out=")


def _device_out(out: Any, like: _DeviceArray, shape: tuple[int, ...], dtype: np.dtype, fn: str) -> tuple[Any, _DeviceArray]:
    obj = _device_empty(like, shape, dtype, fn) if out is None else out
    dev = _device_array(obj, fn, "out", (dtype.type,))
    if dev.shape != tuple(shape):
        raise InvalidInputError(f"{fn}: out must have shape {tuple(shape)}, got {dev.shape}")
    return obj, dev


def _per_sample(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape[1:], dtype=np.int64))
