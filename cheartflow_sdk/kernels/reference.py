"""The numpy reference kernels: the specification of the noise, re-noise and pre/post-processing (see the
package docstring) and the test oracle of the native and CUDA kernels."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..validation import OUTPUT_DTYPES
from .checks import (_F32, _U32_MAX, _check_dtype, _check_first_sample, _check_keys, _check_same_shape, _check_shape,
                     _check_sigma, _check_t, _check_u64, _host_array, _host_pair, _image_shape)

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
    out_dtype = _check_dtype(dtype, fn, OUTPUT_DTYPES)
    y = _postprocess_unit(src)
    if out_dtype == np.uint8:
        return np.rint(y * _F32(255)).astype(np.uint8)
    return y
