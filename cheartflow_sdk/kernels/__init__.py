"""Noise, re-noise and pre/post-processing kernels: the public functions, each dispatching to the native module,
its numpy reference or the CUDA kernels.

The ``*_reference`` functions are the specification (and the test oracle). The public functions
(``normal_noise``, ``renoise``, ``renoise_with_noise``, ``preprocess``, ``postprocess``) run the native
module ``cheartflow_sdk._C`` when it imports (CPU, multi-threaded), else the reference, and run the CUDA
kernels for arrays exposing ``__cuda_array_interface__`` (torch / CuPy CUDA tensors). The native and
reference paths give bit-identical results (the CUDA path too, except that a NaN may carry another payload).
``renoise_device_params`` is the CUDA-graph-safe variant: t and (seed, first_sample) live in device buffers
read at run time. CUDA kernels run on the GPU holding the arrays, on the arrays' current stream unless
``stream=`` is given, without synchronizing. This package imports numpy only.

Modules: ``reference`` (the oracle), ``checks`` (argument checks), ``device_arrays`` (CUDA array
interface), ``native`` (loading ``_C``); this one dispatches.

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

from typing import Any

import numpy as np

from ..errors import InvalidInputError, NativeUnavailableError
from ..validation import OUTPUT_DTYPES
from . import native as _loader
from .checks import (_check_dtype, _check_first_sample, _check_keys, _check_same_shape, _check_shape, _check_sigma,
                     _check_t, _check_u64, _describe, _host_array, _host_out, _host_pair, _image_shape, _is_cuda)
from .device_arrays import _device_array, _device_out, _per_sample, _resolve_stream
from .reference import (box_muller_reference, log_f32_reference, normal_noise_keys_reference, normal_noise_reference,
                        philox4x32_10_reference, postprocess_reference, preprocess_reference, renoise_keys_reference,
                        renoise_reference, renoise_with_noise_reference, sincos_2pi_reference, uniform_reference)

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


def _native() -> Any:
    """The _C module, or None (set CHEARTFLOW_NATIVE=0 to force the numpy reference); every dispatch asks here."""
    return _loader.load()


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
    out_dtype = _check_dtype(dtype, fn, OUTPUT_DTYPES)
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
