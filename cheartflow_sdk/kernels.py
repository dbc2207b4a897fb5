"""Noise, re-noise and pre/post-processing kernels: numpy reference implementations and dispatch.

The ``*_reference`` functions are the specification (and the test oracle). The public functions
(``normal_noise``, ``renoise``, ``renoise_with_noise``, ``preprocess``, ``postprocess``) run the native
module ``cheartflow_sdk._C`` when it imports (CPU, multi-threaded), else the reference, and run the CUDA
kernels for arrays exposing ``__cuda_array_interface__`` (torch / CuPy CUDA tensors). The native and
reference paths give bit-identical results (the CUDA path too, except that a NaN may carry another payload).
``renoise_device_params`` is the CUDA-graph-safe variant: t and (seed, first_sample) live in device buffers
read at run time. CUDA kernels run on the GPU holding the arrays, on the arrays' current stream unless
``stream=`` is given, without synchronizing. This module imports numpy only.

Noise definition (identical on every backend, batch size and device): for sample b of a batch, global
sample index s = first_sample + b, and element p of that sample (row-major over the non-batch axes),
the Philox4x32-10 counter is (p // 4, s, offset & 0xFFFFFFFF, offset >> 32) with key
(seed & 0xFFFFFFFF, seed >> 32); output word x of lane p % 4 gives the uniform
u = (2 * (x >> 9) + 1) * 2**-24, and Box-Muller turns lanes (0, 1) and (2, 3) into
(r cos(2 pi u_b), r sin(2 pi u_b)), r = sqrt(-2 log u_a), with our own float32 log/sin/cos built from
+, -, *, / and sqrt only (see ``log_f32_reference`` and ``sincos_2pi_reference``).

Per-sample keys (the sampler's noise, ``*_keys`` functions): sample b of a batch with 64-bit key k_b gets
exactly the noise of a batch of one under seed k_b, offset and first_sample 0, i.e. counter
(p // 4, 0, offset & 0xFFFFFFFF, offset >> 32) under key (k_b & 0xFFFFFFFF, k_b >> 32); a sample's noise
then depends on its key only, not on its batch or position (see :func:`cheartflow_sdk.sampling.noise_keys`).

Re-noise (the bridge of the sampler), float32 math in this exact order, then rounding (RNE) to the
dtype of x0_hat: ``a = (1-t)*x0; b = t*x1; c = ((t*(1-t))*(sigma*sigma))*eps; out = (a+b)+c`` with
``t`` per sample and sigma rounded to float32 first.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, NamedTuple

import numpy as np

from .errors import InvalidInputError, NativeUnavailableError

__all__ = [
    "box_muller_reference",
    "cuda_available",
    "get_num_threads",
    "log_f32_reference",
    "native_available",
    "normal_noise",
    "normal_noise_keys_reference",
    "normal_noise_reference",
    "philox4x32_10_reference",
    "postprocess",
    "postprocess_reference",
    "preprocess",
    "preprocess_reference",
    "renoise",
    "renoise_device_params",
    "renoise_keys",
    "renoise_keys_reference",
    "renoise_reference",
    "renoise_with_noise",
    "renoise_with_noise_reference",
    "set_num_threads",
    "sincos_2pi_reference",
    "uniform_reference",
]

_LOG = logging.getLogger(__name__)
_F32 = np.float32
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF

# =============================================================================================
# Philox4x32-10 (Random123)
# =============================================================================================

_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = np.uint64(0x9E3779B9)
_PHILOX_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def _as_u32_words(x: Any, name: str, words: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "ui" or arr.ndim < 1 or arr.shape[-1] != words:
        raise InvalidInputError(
            f"philox4x32_10_reference: {name} must be an integer array [..., {words}] of uint32 words, "
            f"got dtype {arr.dtype} shape {arr.shape}"
        )
    if arr.size and (arr.min() < 0 or arr.max() > _U32_MAX):
        raise InvalidInputError(f"philox4x32_10_reference: {name} words must be in [0, 2**32)")
    return arr.astype(np.uint64)


def philox4x32_10_reference(counter: Any, key: Any) -> np.ndarray:
    """Philox4x32-10 of counters uint32[..., 4] under keys uint32[..., 2] (broadcast); returns uint32[..., 4]."""
    ctr = _as_u32_words(counter, "counter", 4)
    k = _as_u32_words(key, "key", 2)
    c0, c1, c2, c3 = (ctr[..., i] for i in range(4))
    k0, k1 = k[..., 0], k[..., 1]
    for rnd in range(10):
        if rnd:
            k0 = (k0 + _PHILOX_W0) & _MASK32
            k1 = (k1 + _PHILOX_W1) & _MASK32
        p0 = _PHILOX_M0 * c0  # < 2**64: the full 32x32 -> 64-bit product
        p1 = _PHILOX_M1 * c2
        c0, c1, c2, c3 = (p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32
    return np.stack(np.broadcast_arrays(c0, c1, c2, c3), axis=-1).astype(np.uint32)


# =============================================================================================
# float32 transcendentals of Box-Muller (mirrors csrc/cf_math.h operation by operation)
# =============================================================================================

_TWO_POW_M22 = _F32(2.0**-22)
_TWO_POW_M24 = _F32(2.0**-24)
_LN2_HI = np.uint32(0x3F317180).view(_F32)  # 17 significant bits: e * _LN2_HI is exact
_LN2_LO = np.uint32(0x3717F7D1).view(_F32)
_LOG_P = [_F32(2.0 / 3.0), _F32(2.0 / 5.0), _F32(2.0 / 7.0), _F32(2.0 / 9.0), _F32(2.0 / 11.0)]
_HALF_PI = _F32(np.pi / 2)
_SIN_C = [_F32(-1 / 6), _F32(1 / 120), _F32(-1 / 5040), _F32(1 / 362880)]
_COS_C = [_F32(-0.5), _F32(1 / 24), _F32(-1 / 720), _F32(1 / 40320), _F32(-1 / 3628800)]


def _uniform_numerator(bits: np.ndarray) -> np.ndarray:
    """Odd n = 2 * (x >> 9) + 1 in [1, 2**24): the uniform is n * 2**-24."""
    return np.uint32(2) * (bits >> np.uint32(9)) + np.uint32(1)


def uniform_reference(bits: Any) -> np.ndarray:
    """Uniform float32 (2k+1) * 2**-24, k = x >> 9, strictly inside (0, 1), of raw uint32 words x."""
    return _uniform_numerator(np.asarray(bits, dtype=np.uint32)).astype(_F32) * _TWO_POW_M24


def _horner(z: np.ndarray, coeffs: list[np.float32]) -> np.ndarray:
    """c0 + z*(c1 + z*(c2 + ...)) in float32, innermost first (same order as the C++ code)."""
    acc = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        acc = c + z * acc
    return acc


def log_f32_reference(u: Any) -> np.ndarray:
    """Natural log in float32 of positive normal float32 values (our uniforms), from +, -, *, / only.

    u = m * 2**e with m in [sqrt(1/2), sqrt(2)) by bit operations; log(m) = 2*atanh(s), s = (m-1)/(m+1),
    by its series to s**11; log(u) = e*ln2_hi + (e*ln2_lo + log(m)).
    """
    bits = np.asarray(u, dtype=_F32).view(np.uint32)
    e = (bits >> np.uint32(23)).astype(np.int32) - np.int32(127)
    mbits = (bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)
    big = mbits >= np.uint32(0x3FB504F3)  # m >= float32(sqrt(2)): use m / 2 and e + 1
    mbits = np.where(big, mbits - np.uint32(0x00800000), mbits)
    e = np.where(big, e + np.int32(1), e)
    f = mbits.view(_F32) - _F32(1)  # exact (Sterbenz)
    s = f / (_F32(2) + f)
    z = s * s
    r = z * _horner(z, _LOG_P)
    log_m = (s + s) + s * r
    ef = e.astype(_F32)
    return ef * _LN2_HI + (ef * _LN2_LO + log_m)


def _sincos_2pi_n(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin, cos) of 2*pi*n/2**24 for integers n in [0, 2**24), exact quadrant reduction."""
    n = np.asarray(n, dtype=np.uint32)
    q = n >> np.uint32(22)
    r = (n & np.uint32(0x003FFFFF)).astype(np.int32)
    shift = r > np.int32(0x00200000)  # 4u - floor(4u) > 1/2: next quadrant, negative remainder
    r = np.where(shift, r - np.int32(0x00400000), r)
    q = np.where(shift, q + np.uint32(1), q) & np.uint32(3)
    y = (r.astype(_F32) * _TWO_POW_M22) * _HALF_PI  # in [-pi/4, pi/4]
    z = y * y
    sn = y + y * (z * _horner(z, _SIN_C))
    cs = _F32(1) + z * _horner(z, _COS_C)
    sin = np.select([q == 0, q == 1, q == 2], [sn, cs, -sn], -cs).astype(_F32)
    cos = np.select([q == 0, q == 1, q == 2], [cs, -sn, -cs], sn).astype(_F32)
    return sin, cos


def sincos_2pi_reference(u: Any) -> tuple[np.ndarray, np.ndarray]:
    """(sin(2*pi*u), cos(2*pi*u)) in float32 for u a float32 multiple of 2**-24 in [0, 1)."""
    u = np.asarray(u, dtype=_F32)
    n = u.astype(np.float64) * 2.0**24
    if not np.array_equal(n, np.floor(n)) or (u.size and (u.min() < 0 or u.max() >= 1)):
        raise InvalidInputError("sincos_2pi_reference: u must be multiples of 2**-24 in [0, 1)")
    return _sincos_2pi_n(n.astype(np.uint32))


def box_muller_reference(bits: Any) -> np.ndarray:
    """Standard normals float32[..., 4] from Philox output words uint32[..., 4] (pairs (0,1) and (2,3))."""
    bits = np.asarray(bits, dtype=np.uint32)
    out = np.empty(bits.shape, dtype=_F32)
    for a, b in ((0, 1), (2, 3)):
        r = np.sqrt(_F32(-2) * log_f32_reference(uniform_reference(bits[..., a])))
        sin, cos = _sincos_2pi_n(_uniform_numerator(bits[..., b]))
        out[..., a] = r * cos
        out[..., b] = r * sin
    return out


# =============================================================================================
# Reference kernels
# =============================================================================================


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


def normal_noise_reference(shape: Any, seed: int, offset: int, first_sample: int = 0) -> np.ndarray:
    """Counter-based standard normal noise float32 of `shape` [B, ...] (see the module docstring)."""
    fn = "normal_noise_reference"
    shape = _check_shape(shape, fn)
    seed = _check_u64(seed, fn, "seed")
    offset = _check_u64(offset, fn, "offset")
    batch, per_sample = shape[0], int(np.prod(shape[1:], dtype=np.int64))
    first = _check_first_sample(first_sample, batch, fn)
    nblk = (per_sample + 3) // 4
    ctr = np.empty((batch, nblk, 4), dtype=np.uint64)
    ctr[..., 0] = np.arange(nblk, dtype=np.uint64)[None, :]
    ctr[..., 1] = (first + np.arange(batch, dtype=np.uint64))[:, None]
    ctr[..., 2] = offset & _U32_MAX
    ctr[..., 3] = offset >> 32
    key = np.array([seed & _U32_MAX, seed >> 32], dtype=np.uint64)
    z = box_muller_reference(philox4x32_10_reference(ctr, key))
    return np.ascontiguousarray(z.reshape(batch, nblk * 4)[:, :per_sample]).reshape(shape)


def _t_column(t: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(t, dtype=_F32).reshape((-1,) + (1,) * (ndim - 1))


def renoise_with_noise_reference(x0_hat: Any, x1: Any, t: Any, sigma: float, eps: Any) -> np.ndarray:
    """(1-t)*x0_hat + t*x1 + t*(1-t)*sigma^2*eps in float32 (exact operation order), in x0_hat's dtype."""
    fn = "renoise_with_noise_reference"
    x0, x1_ = _host_pair(x0_hat, x1, fn)
    t = _check_t(t, x0.shape[0], fn)
    sig = _F32(_check_sigma(sigma, fn))
    eps = _host_array(eps, fn, "eps", (np.float32,))
    _check_same_shape(eps, x0, fn, "eps")
    tt = _t_column(t, x0.ndim)
    omt = _F32(1) - tt
    coef = (tt * omt) * (sig * sig)
    a = omt * x0.astype(_F32)
    b = tt * x1_.astype(_F32)
    c = coef * eps
    return ((a + b) + c).astype(x0.dtype)


def renoise_reference(x0_hat: Any, x1: Any, t: Any, sigma: float, seed: int, offset: int,
                      first_sample: int = 0) -> np.ndarray:
    """renoise_with_noise_reference with eps = normal_noise_reference(x0_hat.shape, seed, offset, first_sample)."""
    shape = np.shape(x0_hat)
    if not shape:
        raise InvalidInputError("renoise_reference: x0_hat must have shape [B, ...], got a scalar")
    eps = normal_noise_reference(shape, seed, offset, first_sample)
    return renoise_with_noise_reference(x0_hat, x1, t, sigma, eps)


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


def normal_noise_keys_reference(shape: Any, keys: Any, offset: int) -> np.ndarray:
    """Noise float32 of `shape` [B, ...] with per-sample keys: row b is
    ``normal_noise_reference((1, ...), keys[b], offset, 0)`` (see the module docstring)."""
    fn = "normal_noise_keys_reference"
    shape = _check_shape(shape, fn)
    offset = _check_u64(offset, fn, "offset")
    k = _check_keys(keys, shape[0], fn)
    out = np.empty(shape, dtype=_F32)
    for b in range(shape[0]):
        out[b] = normal_noise_reference((1,) + shape[1:], int(k[b]), offset, 0)[0]
    return out


def renoise_keys_reference(x0_hat: Any, x1: Any, t: Any, sigma: float, keys: Any, offset: int) -> np.ndarray:
    """renoise_with_noise_reference with eps = normal_noise_keys_reference(x0_hat.shape, keys, offset)."""
    shape = np.shape(x0_hat)
    if not shape:
        raise InvalidInputError("renoise_keys_reference: x0_hat must have shape [B, ...], got a scalar")
    eps = normal_noise_keys_reference(shape, keys, offset)
    return renoise_with_noise_reference(x0_hat, x1, t, sigma, eps)


def _preprocess_values(src: np.ndarray) -> np.ndarray:
    if src.dtype == np.uint8:
        return (src.astype(_F32) - _F32(127.5)) / _F32(127.5)  # exactly -1 at 0 and +1 at 255
    return src * _F32(2) - _F32(1)


def preprocess_reference(sketches: Any, dtype: Any = np.float32) -> np.ndarray:
    """Sketches uint8 [B,H,W] ((v - 127.5) / 127.5) or float32 [B,1,H,W] in [0, 1] (2x - 1, not clamped)
    -> model input [B,1,H,W] float32 or float16 (round-to-nearest-even). [B,H,W] / [B,1,H,W] both accepted."""
    fn = "preprocess_reference"
    src = _host_array(sketches, fn, "sketches", (np.uint8, np.float32))
    out_dtype = _check_dtype(dtype, fn, (np.float32, np.float16))
    return _preprocess_values(src).astype(out_dtype).reshape(_image_shape(src, fn, "sketches"))


def _postprocess_unit(x: np.ndarray) -> np.ndarray:
    y = (x.astype(_F32) + _F32(1)) * _F32(0.5)
    y = np.where(y > _F32(0), y, _F32(0))  # NaN -> 0
    return np.where(y < _F32(1), y, _F32(1))


def postprocess_reference(x: Any, dtype: Any = np.float32) -> np.ndarray:
    """Model output float32/float16 [B,1,H,W] -> clamp((x+1)*0.5, 0, 1) float32 (NaN -> 0), or uint8
    round-half-to-even(255 * that)."""
    fn = "postprocess_reference"
    src = _host_array(x, fn, "x", (np.float32, np.float16))
    _image_shape(src, fn, "x", allow_3d=False)
    out_dtype = _check_dtype(dtype, fn, (np.float32, np.uint8))
    y = _postprocess_unit(src)
    if out_dtype == np.uint8:
        return np.rint(y * _F32(255)).astype(np.uint8)
    return y


# =============================================================================================
# Validation helpers (InvalidInputError, a ValueError, with the expected and received values)
# =============================================================================================


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


# =============================================================================================
# Native module
# =============================================================================================

_native_module: Any = None
_native_checked = False


def _native() -> Any:
    """The _C module, or None (set CHEARTFLOW_NATIVE=0 to force the numpy reference)."""
    global _native_module, _native_checked
    if not _native_checked:
        _native_checked = True
        if os.environ.get("CHEARTFLOW_NATIVE", "1") != "0":
            try:
                from . import _C  # type: ignore[attr-defined]

                _native_module = _C
            except ImportError as exc:
                _LOG.warning("cheartflow_sdk._C is not importable (%s); using the slower numpy reference kernels", exc)
    return _native_module


def native_available() -> bool:
    """Whether the compiled module cheartflow_sdk._C is importable (and not disabled by CHEARTFLOW_NATIVE=0)."""
    return _native() is not None


def native_cuda_compiled() -> bool:
    """Whether _C is importable and was built with its CUDA kernels."""
    native = _native()
    return bool(native is not None and native.cuda_compiled())


def cuda_available() -> bool:
    """Whether _C has its CUDA kernels compiled in and sees at least one usable GPU."""
    native = _native()
    return bool(native is not None and native.cuda_compiled() and native.cuda_device_count() > 0)


def set_num_threads(n: int) -> None:
    """Threads of the native CPU kernels (results do not depend on it). No-op without _C."""
    n = _check_u64(n, "set_num_threads", "n", 4096)
    if n < 1:
        raise InvalidInputError("set_num_threads: n must be >= 1, got 0")
    native = _native()
    if native is not None:
        native.set_num_threads(n)


def get_num_threads() -> int:
    """Threads of the native CPU kernels (1 without _C)."""
    native = _native()
    return int(native.get_num_threads()) if native is not None else 1


# =============================================================================================
# CUDA arrays (__cuda_array_interface__)
# =============================================================================================


class _DeviceArray(NamedTuple):
    obj: Any
    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    stream: int | None


def _is_cuda(x: Any) -> bool:
    return x is not None and hasattr(x, "__cuda_array_interface__")


def _require_cuda(fn: str) -> Any:
    native = _native()
    if native is None:
        raise NativeUnavailableError(f"{fn}: got a CUDA array but the native module cheartflow_sdk._C is not importable")
    if not native.cuda_compiled():
        raise NativeUnavailableError(f"{fn}: got a CUDA array but cheartflow_sdk._C was built without CUDA "
                                     "(rebuild with CUDA, or pass host numpy arrays)")
    if native.cuda_device_count() == 0:
        raise NativeUnavailableError(f"{fn}: got a CUDA array but no usable CUDA GPU or driver was found")
    return native


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


# =============================================================================================
# Public dispatching functions
# =============================================================================================


def normal_noise(shape: Any, seed: int, offset: int, first_sample: int = 0, *, out: Any = None,
                 stream: int | None = None) -> Any:
    """Standard normal float32 noise of `shape` [B, ...] (see the module docstring); fills `out` if given
    (a numpy array, or a CUDA array: then computed on its GPU on `stream`)."""
    fn = "normal_noise"
    shape = _check_shape(shape, fn)
    seed = _check_u64(seed, fn, "seed")
    offset = _check_u64(offset, fn, "offset")
    first = _check_first_sample(first_sample, shape[0], fn)
    if _is_cuda(out):
        native = _require_cuda(fn)
        dev = _device_array(out, fn, "out", (np.float32,))
        if dev.shape != shape:
            raise InvalidInputError(f"{fn}: out must have shape {shape}, got {dev.shape}")
        native.normal_fill_cuda(dev.ptr, shape[0], _per_sample(shape), seed, offset, first, _resolve_stream(stream, [dev]))
        return out
    out = _host_out(out, shape, np.dtype(np.float32), fn)
    native = _native()
    if native is not None:
        native.normal_fill(out, seed, offset, first)
    else:
        out[...] = normal_noise_reference(shape, seed, offset, first)
    return out


def _renoise_cuda(fn: str, x0_hat: Any, x1: Any, t: Any, sigma: float, eps: Any, seed: int, offset: int,
                  first: Any, out: Any, stream: int | None) -> Any:
    native = _require_cuda(fn)
    x0 = _device_array(x0_hat, fn, "x0_hat", (np.float32, np.float16))
    x1_ = _device_array(x1, fn, "x1", (x0.dtype.type,))
    _check_same_shape(x1_, x0, fn, "x1")
    batch, per_sample = x0.shape[0], _per_sample(x0.shape)
    arrays = [x0, x1_]
    if _is_cuda(t):
        t_dev = _device_array(t, fn, "t", (np.float32,))
        if t_dev.shape != (batch,):
            raise InvalidInputError(f"{fn}: t must have shape (B,) = ({batch},), got {t_dev.shape}")
        t_arg: Any = t_dev.ptr
    else:
        t_arg = _check_t(t, batch, fn)
    out_obj, out_dev = _device_out(out, x0, x0.shape, x0.dtype, fn)
    s = _resolve_stream(stream, arrays)
    if eps is None:
        first = _check_first_sample(first, batch, fn)
        native.renoise_cuda(x0.ptr, x1_.ptr, t_arg, out_dev.ptr, batch, per_sample, x0.dtype.name, sigma,
                            seed, offset, first, s)
    else:
        e = _device_array(eps, fn, "eps", (np.float32,))
        _check_same_shape(e, x0, fn, "eps")
        native.renoise_with_noise_cuda(x0.ptr, x1_.ptr, t_arg, e.ptr, out_dev.ptr, batch, per_sample,
                                       x0.dtype.name, sigma, s)
    return out_obj


def renoise(x0_hat: Any, x1: Any, t: Any, sigma: float, seed: int, offset: int, first_sample: int = 0,
            out: Any = None, *, stream: int | None = None) -> Any:
    """Bridge re-noise (1-t)*x0_hat + t*x1 + t*(1-t)*sigma^2*eps with counter-based eps (seed, offset =
    step, first_sample = global index of sample 0). x0_hat, x1: same dtype float32/float16 and shape [B, ...];
    t: float or [B]; out may be x0_hat (in-place). CUDA arrays run on their GPU on `stream`; there t may be a
    CUDA float32 [B] array (read at run time, values not checked, graph-safe) or host values (uploaded per
    call; refused under CUDA graph capture). For per-request seeds under graph replay use
    ``renoise_device_params``."""
    fn = "renoise"
    sigma = _check_sigma(sigma, fn)
    seed = _check_u64(seed, fn, "seed")
    offset = _check_u64(offset, fn, "offset")
    if _is_cuda(x0_hat) or _is_cuda(x1) or _is_cuda(out):
        return _renoise_cuda(fn, x0_hat, x1, t, sigma, None, seed, offset, first_sample, out, stream)
    x0, x1_ = _host_pair(x0_hat, x1, fn)
    t = _check_t(t, x0.shape[0], fn)
    first = _check_first_sample(first_sample, x0.shape[0], fn)
    out = _host_out(out, x0.shape, x0.dtype, fn)
    native = _native()
    if native is not None:
        native.renoise(x0, x1_, t, sigma, seed, offset, first, out)
    else:
        out[...] = renoise_reference(x0, x1_, t, sigma, seed, offset, first)
    return out


def renoise_device_params(x0_hat: Any, x1: Any, t: Any, sigma: float, params: Any, offset: int, out: Any = None, *,
                          stream: int | None = None) -> Any:
    """CUDA-graph-safe renoise of CUDA arrays: per-request values are read from device memory when the kernel
    runs, so a captured graph replays with whatever the buffers hold at replay time.

    x0_hat, x1 (and out): CUDA float32/float16 [B, ...] of one dtype and shape (out may be x0_hat);
    t: CUDA float32 [B]; params: CUDA uint64 (or int64, same bits) array of 2 values (seed, first_sample).
    sigma and offset (the step number) are launch arguments, frozen into a captured graph node. Values on the
    device are not checked (that would need a synchronization): t must be in [0, 1].
    The noise is bit-identical to ``renoise(x0_hat, x1, t, sigma, seed, offset, first_sample)`` for the values
    in the buffers; first_sample + B <= 2**32 is the caller's contract (the device cannot raise: the 32-bit
    sample counter would wrap). Runs on `stream` (default: the arrays' current stream, e.g. torch's current
    stream of their device, which is the capturing stream inside ``torch.cuda.graph``).
    Raises InvalidInputError for host arrays or a wrong dtype/shape, NativeUnavailableError without CUDA.
    """
    fn = "renoise_device_params"
    sigma = _check_sigma(sigma, fn)
    offset = _check_u64(offset, fn, "offset")
    named = [("x0_hat", x0_hat), ("x1", x1), ("t", t), ("params", params)] + ([("out", out)] if out is not None else [])
    for name, value in named:
        if not _is_cuda(value):
            raise InvalidInputError(f"{fn}: {name} must be a CUDA array (e.g. a torch CUDA tensor): it is read on "
                                    f"the GPU when the kernel runs; got {_describe(value)}")
    native = _require_cuda(fn)
    x0 = _device_array(x0_hat, fn, "x0_hat", (np.float32, np.float16))
    x1_ = _device_array(x1, fn, "x1", (x0.dtype.type,))
    _check_same_shape(x1_, x0, fn, "x1")
    batch = x0.shape[0]
    if batch > 2**32:
        raise InvalidInputError(f"{fn}: B must be <= 2**32 (32-bit sample counter), got {batch}")
    t_dev = _device_array(t, fn, "t", (np.float32,))
    if t_dev.shape != (batch,):
        raise InvalidInputError(f"{fn}: t must have shape (B,) = ({batch},), got {t_dev.shape}")
    p = _device_array(params, fn, "params", (np.uint64, np.int64))
    if p.shape != (2,):
        raise InvalidInputError(f"{fn}: params must have shape (2,) = (seed, first_sample), got {p.shape}")
    out_obj, out_dev = _device_out(out, x0, x0.shape, x0.dtype, fn)
    s = _resolve_stream(stream, [x0, x1_])
    native.renoise_cuda_params(x0.ptr, x1_.ptr, t_dev.ptr, p.ptr, out_dev.ptr, batch, _per_sample(x0.shape),
                               x0.dtype.name, sigma, offset, s)
    return out_obj


def renoise_keys(x0_hat: Any, x1: Any, t: Any, sigma: float, keys: Any, offset: int, out: Any = None, *,
                 stream: int | None = None) -> Any:
    """Bridge re-noise with one noise key per sample (keys: B ints in [0, 2**64), offset = step): row b equals
    ``renoise(x0_hat[b:b+1], x1[b:b+1], t[b], sigma, keys[b], offset, 0)``, bit for bit, so a sample's noise
    does not depend on its batch or position. Native (or reference) kernels on host arrays, the CUDA kernels
    (one launch per sample, host t) on CUDA arrays; out may be x0_hat."""
    fn = "renoise_keys"
    sigma = _check_sigma(sigma, fn)
    offset = _check_u64(offset, fn, "offset")
    if _is_cuda(x0_hat) or _is_cuda(x1) or _is_cuda(out):
        x0 = _device_array(x0_hat, fn, "x0_hat", (np.float32, np.float16))
        k = _check_keys(keys, x0.shape[0], fn)
        tt = _check_t(t, x0.shape[0], fn)
        out_obj, _ = _device_out(out, x0, x0.shape, x0.dtype, fn)
        for b in range(x0.shape[0]):
            _renoise_cuda(fn, x0_hat[b:b + 1], x1[b:b + 1], tt[b:b + 1], sigma, None, int(k[b]), offset, 0,
                          out_obj[b:b + 1], stream)
        return out_obj
    x0, x1_ = _host_pair(x0_hat, x1, fn)
    tt = _check_t(t, x0.shape[0], fn)
    k = _check_keys(keys, x0.shape[0], fn)
    out = _host_out(out, x0.shape, x0.dtype, fn)
    native = _native()
    if native is None:
        out[...] = renoise_keys_reference(x0, x1_, tt, sigma, k, offset)
        return out
    for b in range(x0.shape[0]):
        native.renoise(x0[b:b + 1], x1_[b:b + 1], tt[b:b + 1], sigma, int(k[b]), offset, 0, out[b:b + 1])
    return out


def renoise_with_noise(x0_hat: Any, x1: Any, t: Any, sigma: float, eps: Any, out: Any = None, *,
                       stream: int | None = None) -> Any:
    """renoise with explicit float32 noise `eps` of x0_hat's shape (for tests and custom noise)."""
    fn = "renoise_with_noise"
    sigma = _check_sigma(sigma, fn)
    if _is_cuda(x0_hat) or _is_cuda(x1) or _is_cuda(out) or _is_cuda(eps):
        return _renoise_cuda(fn, x0_hat, x1, t, sigma, eps, 0, 0, 0, out, stream)
    x0, x1_ = _host_pair(x0_hat, x1, fn)
    t = _check_t(t, x0.shape[0], fn)
    e = _host_array(eps, fn, "eps", (np.float32,))
    _check_same_shape(e, x0, fn, "eps")
    out = _host_out(out, x0.shape, x0.dtype, fn)
    native = _native()
    if native is not None:
        native.renoise_with_noise(x0, x1_, t, sigma, e, out)
    else:
        out[...] = renoise_with_noise_reference(x0, x1_, t, sigma, e)
    return out


def preprocess(sketches: Any, dtype: Any = np.float32, *, out: Any = None, stream: int | None = None) -> Any:
    """Sketches uint8 [B,H,W] ((v - 127.5) / 127.5) or float32 [B,1,H,W] in [0, 1] (2x - 1) -> model
    input [B,1,H,W] of `dtype` float32 or float16. CUDA arrays run on their GPU on `stream`."""
    fn = "preprocess"
    out_dtype = _check_dtype(dtype, fn, (np.float32, np.float16))
    if _is_cuda(sketches) or _is_cuda(out):
        native = _require_cuda(fn)
        src = _device_array(sketches, fn, "sketches", (np.uint8, np.float32))
        shape = _image_shape(src, fn, "sketches")
        out_obj, out_dev = _device_out(out, src, shape, out_dtype, fn)
        native.preprocess_cuda(src.ptr, src.dtype.name, out_dev.ptr, out_dtype.name, int(np.prod(shape)),
                               _resolve_stream(stream, [src]))
        return out_obj
    src_arr = _host_array(sketches, fn, "sketches", (np.uint8, np.float32))
    shape = _image_shape(src_arr, fn, "sketches")
    out = _host_out(out, shape, out_dtype, fn)
    native = _native()
    if native is not None:
        native.preprocess(src_arr, out)
    else:
        out[...] = preprocess_reference(src_arr, out_dtype)
    return out


def postprocess(x: Any, dtype: Any = np.float32, *, out: Any = None, stream: int | None = None) -> Any:
    """Model output float32/float16 [B,1,H,W] -> clamp((x+1)*0.5, 0, 1) as float32 (NaN -> 0), or as uint8
    round-half-to-even(255 * that). CUDA arrays run on their GPU on `stream`."""
    fn = "postprocess"
    out_dtype = _check_dtype(dtype, fn, (np.float32, np.uint8))
    if _is_cuda(x) or _is_cuda(out):
        native = _require_cuda(fn)
        src = _device_array(x, fn, "x", (np.float32, np.float16))
        shape = _image_shape(src, fn, "x", allow_3d=False)
        out_obj, out_dev = _device_out(out, src, shape, out_dtype, fn)
        native.postprocess_cuda(src.ptr, src.dtype.name, out_dev.ptr, out_dtype.name, int(np.prod(shape)),
                                _resolve_stream(stream, [src]))
        return out_obj
    src_arr = _host_array(x, fn, "x", (np.float32, np.float16))
    shape = _image_shape(src_arr, fn, "x", allow_3d=False)
    out = _host_out(out, shape, out_dtype, fn)
    native = _native()
    if native is not None:
        native.postprocess(src_arr, out)
    else:
        out[...] = postprocess_reference(src_arr, out_dtype)
    return out
