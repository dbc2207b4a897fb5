"""Argument checks of the kernels: the checks that keep the native module's raw-pointer calls in bounds
(dtype, shape, contiguity, same device), plus the value ranges of the noise definition. Each raises
InvalidInputError (a ValueError) naming the function, the argument, what was expected and what was received."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError

_F32 = np.float32
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF


def _is_cuda(x: Any) -> bool:
    return x is not None and hasattr(x, "__cuda_array_interface__")


def _check_u64(value: Any, fn: str, name: str, limit: int = _U64_MAX) -> int:
    if isinstance(value, (bool, float)) or not hasattr(value, "__index__"):
        raise InvalidInputError(f"{fn}: {name} must be an int in [0, {limit}], got {type(value).__name__} {value!r}")
    v = int(value)
    if not 0 <= v <= limit:
        raise InvalidInputError(f"{fn}: {name} must be in [0, {limit}], got {v}")
    return v


def _check_shape(shape: Any, fn: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise InvalidInputError(f"{fn}: shape must be a sequence of ints [B, ...], got {shape!r}") from None
    if not dims or min(dims) < 0:
        raise InvalidInputError(f"{fn}: shape must be [B, ...] with non-negative sizes, got {shape!r}")
    return dims


def _check_first_sample(first_sample: Any, batch: int, fn: str) -> int:
    first = _check_u64(first_sample, fn, "first_sample", _U32_MAX)
    if first + batch > 2**32:
        raise InvalidInputError(
            f"{fn}: first_sample + B must be <= 2**32 (32-bit sample counter), got first_sample={first}, B={batch}"
        )
    return first


def _check_keys(keys: Any, batch: int, fn: str) -> np.ndarray:
    """Per-sample noise keys as uint64 [B]: B ints in [0, 2**64)."""
    if _is_cuda(keys):
        raise InvalidInputError(f"{fn}: keys must be host values (numpy uint64 [B]), got a CUDA array")
    arr = np.asarray(keys)
    if arr.ndim != 1 or arr.shape[0] != batch or (arr.size and arr.dtype.kind not in "ui"):
        raise InvalidInputError(f"{fn}: keys must be {batch} integers in [0, 2**64) (one per sample), "
                                f"got {_describe(keys) if isinstance(keys, np.ndarray) else keys!r}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise InvalidInputError(f"{fn}: keys must be in [0, 2**64), got {int(arr.min())}")
    return np.ascontiguousarray(arr.astype(np.uint64))



def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"numpy array dtype={x.dtype} shape={x.shape}"
    return type(x).__name__


def _host_array(x: Any, fn: str, name: str, dtypes: tuple[type, ...]) -> np.ndarray:
    """x as a C-contiguous ndarray (copied if needed) of one of `dtypes`."""
    if _is_cuda(x):
        raise InvalidInputError(f"{fn}: {name} is a CUDA array but the other arrays are host arrays; "
                                "pass all arrays on the same device")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is an input error
        raise InvalidInputError(f"{fn}: {name} must be an array, got {_describe(x)} ({exc})") from None
    if arr.dtype not in [np.dtype(d) for d in dtypes]:
        allowed = " or ".join(np.dtype(d).name for d in dtypes)
        raise InvalidInputError(f"{fn}: {name} must have dtype {allowed}, got {arr.dtype} (shape {arr.shape})")
    if arr.ndim < 1:
        raise InvalidInputError(f"{fn}: {name} must have shape [B, ...], got a 0-d array")
    return np.ascontiguousarray(arr)


def _check_same_shape(x: Any, ref: Any, fn: str, name: str, ref_name: str = "x0_hat") -> None:
    if tuple(x.shape) != tuple(ref.shape):
        raise InvalidInputError(f"{fn}: {name} must have the same shape as {ref_name} {tuple(ref.shape)}, "
                                f"got {tuple(x.shape)}")


def _host_pair(x0_hat: Any, x1: Any, fn: str) -> tuple[np.ndarray, np.ndarray]:
    x0 = _host_array(x0_hat, fn, "x0_hat", (np.float32, np.float16))
    x1_ = _host_array(x1, fn, "x1", (np.float32, np.float16))
    if x1_.dtype != x0.dtype:
        raise InvalidInputError(f"{fn}: x1 must have the same dtype as x0_hat ({x0.dtype}), got {x1_.dtype}")
    _check_same_shape(x1_, x0, fn, "x1")
    return x0, x1_


def _check_t(t: Any, batch: int, fn: str) -> np.ndarray:
    """t as float32 [B]: a number (broadcast) or B values, each finite in [0, 1]."""
    try:
        arr = np.asarray(t, dtype=_F32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{fn}: t must be a float or a float array of shape (B,), got {_describe(t)}") from None
    if arr.ndim == 0:
        arr = np.full(batch, arr, dtype=_F32)
    if arr.shape != (batch,):
        raise InvalidInputError(f"{fn}: t must be a float or have shape (B,) = ({batch},), got shape {arr.shape}")
    bad = ~((arr >= 0) & (arr <= 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInputError(f"{fn}: t must be in [0, 1], got t[{i}] = {arr[i]}")
    return np.ascontiguousarray(arr)


def _check_sigma(sigma: Any, fn: str) -> float:
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{fn}: sigma must be a real number, got {_describe(sigma)}") from None
    if not (np.isfinite(value) and value >= 0 and np.isfinite(_F32(value))):
        raise InvalidInputError(f"{fn}: sigma must be finite, >= 0 and fit in float32, got {sigma!r}")
    return value


def _check_dtype(dtype: Any, fn: str, allowed: tuple[type, ...]) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in [np.dtype(d) for d in allowed]:
        names = " or ".join(np.dtype(d).name for d in allowed)
        raise InvalidInputError(f"{fn}: dtype must be {names}, got {dtype!r}")
    return dt


def _image_shape(src: Any, fn: str, name: str, allow_3d: bool = True) -> tuple[int, int, int, int]:
    """[B,1,H,W] for a [B,1,H,W] (or, if allow_3d, [B,H,W]) shape."""
    shape = tuple(src.shape)
    if len(shape) == 4 and shape[1] == 1:
        return shape  # type: ignore[return-value]
    if allow_3d and len(shape) == 3:
        return (shape[0], 1, shape[1], shape[2])
    expected = "[B,H,W] or [B,1,H,W]" if allow_3d else "[B,1,H,W]"
    raise InvalidInputError(f"{fn}: {name} must have shape {expected}, got {shape}")


def _host_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, fn: str) -> np.ndarray:
    """A new array, or the caller's `out` checked to be a writeable C-contiguous ndarray of shape/dtype."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise InvalidInputError(f"{fn}: out must be a numpy.ndarray, got {_describe(out)}")
    if out.dtype != dtype or out.shape != tuple(shape):
        raise InvalidInputError(f"{fn}: out must have dtype {dtype} and shape {tuple(shape)}, "
                                f"got dtype {out.dtype} shape {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InvalidInputError(f"{fn}: out must be a writeable C-contiguous array "
                                f"(c_contiguous={out.flags.c_contiguous}, writeable={out.flags.writeable})")
    return out
