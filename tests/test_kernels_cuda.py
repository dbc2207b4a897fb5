"""CUDA kernels on a GPU: noise bit-identical to the numpy reference and the CPU kernel, renoise / pre /
post-processing equal to the CPU path, streams, unaligned and odd sizes (scalar tail of the vectorized
path), the graph-safe renoise_device_params and CUDA graph capture/replay with new per-request values.

Skipped without torch, without a GPU visible to torch, or when cheartflow_sdk._C has no usable CUDA kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cheartflow_sdk import kernels
from cheartflow_sdk.errors import InvalidInputError

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and kernels.cuda_available()),
    reason="needs a GPU visible to torch and cheartflow_sdk._C built with its CUDA kernels",
)

SHAPES = [(1, 1), (3, 4), (2, 5), (3, 6), (2, 1, 5, 7), (4, 1, 16, 16), (2, 3, 3, 3), (5, 1, 33, 31), (0, 4), (3, 0)]
SEEDS = [(0, 0, 0), (7, 1, 0), (2**64 - 1, 2**64 - 1, 2**32 - 5), (0x1_0000_0001, 0x2_0000_0003, 12345)]


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def dev(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).cuda()


def host(x: torch.Tensor) -> np.ndarray:
    torch.cuda.synchronize()
    return x.cpu().numpy()


def within_one_fp16_ulp(got: np.ndarray, ref: np.ndarray) -> bool:
    spacing = np.spacing(np.abs(ref)).astype(np.float64)  # ref is float16: its own ulp
    return bool(np.all(np.abs(got.astype(np.float64) - ref.astype(np.float64)) <= spacing))


def params_tensor(seed: int, first: int, dtype=None) -> torch.Tensor:
    p = torch.empty(2, dtype=dtype or torch.uint64, device="cuda")
    set_params(p, seed, first)
    return p


def set_params(p: torch.Tensor, seed: int, first: int) -> None:
    """Write (seed, first_sample) into a device uint64/int64 [2] buffer (copied through an int64 view)."""
    src = torch.from_numpy(np.array([seed, first], np.uint64).view(np.int64))
    p.view(torch.int64).copy_(src)


def inputs(rng, shape, dtype=np.float32):
    x0 = rng.uniform(-1.2, 1.2, shape).astype(dtype)
    x1 = rng.uniform(-1, 1, shape).astype(dtype)
    t = rng.uniform(0, 1, shape[0]).astype(np.float32)
    return x0, x1, t


# ----------------------------------------------------------------------------------- noise


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed,offset,first", SEEDS)
def test_cuda_noise_bit_identical_to_reference_and_cpu(shape, seed, offset, first):
    out = torch.full(shape, float("nan"), dtype=torch.float32, device="cuda")
    assert kernels.normal_noise(shape, seed, offset, first, out=out) is out
    got = host(out)
    assert bits_equal(got, kernels.normal_noise_reference(shape, seed, offset, first))
    assert bits_equal(got, kernels.normal_noise(shape, seed, offset, first))  # CPU kernel


def test_cuda_noise_large_batch_uses_the_sample_grid_stride():
    """B = 70000 > 65535 (the grid's y limit): samples beyond the first grid row are covered too."""
    shape = (70_000, 3)
    out = torch.empty(shape, dtype=torch.float32, device="cuda")
    kernels.normal_noise(shape, 11, 4, 100, out=out)
    assert bits_equal(host(out), kernels.normal_noise(shape, 11, 4, 100))


def test_cuda_noise_into_unaligned_view():
    """A 4-byte-offset view of a buffer: every 16-byte store falls back to scalar stores, same values."""
    shape = (3, 1, 9, 12)
    n = int(np.prod(shape))
    buf = torch.zeros(n + 8, dtype=torch.float32, device="cuda")
    for start in (1, 2, 4):
        view = buf[start:start + n].view(shape)
        kernels.normal_noise(shape, 5, 6, 7, out=view)
        got = host(buf)
        assert bits_equal(got[start:start + n].reshape(shape), kernels.normal_noise(shape, 5, 6, 7))
        assert not got[:start].any() and not got[start + n:].any()  # nothing written outside the view
        buf.zero_()


# --------------------------------------------------------------------------------- renoise


RENOISE_SHAPES = [(4, 1, 9, 11), (3, 5), (2, 1, 8, 8), (1, 1), (3, 12), (2, 1, 16, 16), (6, 1, 7, 13)]


@pytest.mark.parametrize("shape", RENOISE_SHAPES)
def test_cuda_renoise_fp32_equals_cpu_exactly(rng, shape):
    x0, x1, t = inputs(rng, shape)
    want = kernels.renoise(x0, x1, t, 0.7, 42, 3, 6)
    assert bits_equal(want, kernels.renoise_reference(x0, x1, t, 0.7, 42, 3, 6))
    got = kernels.renoise(dev(x0), dev(x1), dev(t), 0.7, 42, 3, 6)
    assert isinstance(got, torch.Tensor) and got.is_cuda and got.dtype == torch.float32
    assert bits_equal(host(got), want)


@pytest.mark.parametrize("shape", RENOISE_SHAPES)
def test_cuda_renoise_fp16_within_one_ulp_of_cpu(rng, shape):
    x0, x1, t = inputs(rng, shape, np.float16)
    want = kernels.renoise(x0, x1, t, 1.3, 5, 2, 1)
    got = host(kernels.renoise(dev(x0), dev(x1), dev(t), 1.3, 5, 2, 1))
    assert got.dtype == np.float16 and within_one_fp16_ulp(got, want)


def test_cuda_renoise_per_sample_t_host_device_and_scalar(rng):
    shape = (5, 1, 12, 10)
    x0, x1, _ = inputs(rng, shape)
    t = np.array([0.0, 1.0, 0.25, 0.5, 0.9], np.float32)
    want = kernels.renoise(x0, x1, t, 0.8, 3, 9, 2)
    np.testing.assert_array_equal(want[0], x0[0])  # t = 0 gives x0_hat, t = 1 gives x1
    np.testing.assert_array_equal(want[1], x1[1])
    X0, X1 = dev(x0), dev(x1)
    assert bits_equal(host(kernels.renoise(X0, X1, dev(t), 0.8, 3, 9, 2)), want)  # device t
    assert bits_equal(host(kernels.renoise(X0, X1, t, 0.8, 3, 9, 2)), want)  # host t (uploaded)
    for b in range(shape[0]):  # each sample uses its own t and its own global sample index
        alone = kernels.renoise(X0[b:b + 1], X1[b:b + 1], float(t[b]), 0.8, 3, 9, 2 + b)
        assert bits_equal(host(alone), want[b:b + 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_cuda_renoise_with_noise_equals_cpu(rng, dtype):
    shape = (3, 1, 10, 14)
    x0, x1, t = inputs(rng, shape, dtype)
    eps = rng.standard_normal(shape).astype(np.float32)
    want = kernels.renoise_with_noise(x0, x1, t, 0.9, eps)
    got = host(kernels.renoise_with_noise(dev(x0), dev(x1), dev(t), 0.9, dev(eps)))
    if dtype == np.float32:
        assert bits_equal(got, want)
    else:
        assert within_one_fp16_ulp(got, want)
    # With eps = the generated noise it is renoise itself.
    noise = torch.empty(shape, dtype=torch.float32, device="cuda")
    kernels.normal_noise(shape, 4, 5, 6, out=noise)
    a = kernels.renoise_with_noise(dev(x0), dev(x1), dev(t), 0.9, noise)
    b = kernels.renoise(dev(x0), dev(x1), dev(t), 0.9, 4, 5, 6)
    assert bits_equal(host(a), host(b))


def test_cuda_renoise_in_place_and_into_out(rng):
    shape = (4, 1, 9, 11)
    x0, x1, t = inputs(rng, shape)
    want = kernels.renoise(x0, x1, t, 0.5, 9, 1)
    X0, X1, T = dev(x0), dev(x1), dev(t)
    out = torch.empty_like(X0)
    assert kernels.renoise(X0, X1, T, 0.5, 9, 1, out=out) is out and bits_equal(host(out), want)
    assert kernels.renoise(X0, X1, T, 0.5, 9, 1, out=X0) is X0 and bits_equal(host(X0), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("per_sample", [1, 3, 4, 6, 8, 12, 13, 37, 64])
@pytest.mark.parametrize("shift", [0, 1, 2, 4, 8])
def test_cuda_renoise_unaligned_and_odd_sizes(rng, dtype, per_sample, shift):
    """Views starting `shift` elements into a buffer (misaligned for 16-byte access unless shift * itemsize
    is a multiple of 16) and sizes not multiple of the vector width: the scalar path gives the same values."""
    shape = (3, per_sample)
    x0, x1, t = inputs(rng, shape, dtype)
    want = kernels.renoise(x0, x1, t, 0.6, 21, 2, 5)
    n = x0.size
    tdt = torch.float32 if dtype == np.float32 else torch.float16
    views = []
    for src in (x0, x1):
        buf = torch.zeros(n + 16, dtype=tdt, device="cuda")
        buf[shift:shift + n] = dev(src.ravel())
        views.append(buf[shift:shift + n].view(shape))
    out_buf = torch.zeros(n + 16, dtype=tdt, device="cuda")
    out = out_buf[shift:shift + n].view(shape)
    kernels.renoise(views[0], views[1], dev(t), 0.6, 21, 2, 5, out=out)
    got = host(out_buf)
    if dtype == np.float32:
        assert bits_equal(got[shift:shift + n].reshape(shape), want)
    else:
        assert within_one_fp16_ulp(got[shift:shift + n].reshape(shape), want)
    assert not got[:shift].any() and not got[shift + n:].any()


def test_cuda_renoise_large_batch_uses_the_sample_grid_stride(rng):
    x0, x1, t = inputs(rng, (70_000, 5))
    want = kernels.renoise(x0, x1, t, 0.5, 1, 2, 3)
    assert bits_equal(host(kernels.renoise(dev(x0), dev(x1), dev(t), 0.5, 1, 2, 3)), want)


# ------------------------------------------------------------------------ pre/post-processing


@pytest.mark.parametrize("out_dtype", [np.float32, np.float16])
def test_cuda_preprocess_equals_cpu(rng, out_dtype):
    sk = rng.integers(0, 256, (3, 17, 19), dtype=np.uint8)
    sk.flat[:256] = np.arange(256)
    assert bits_equal(host(kernels.preprocess(dev(sk), out_dtype)), kernels.preprocess(sk, out_dtype))
    fl = rng.uniform(-0.1, 1.1, (3, 1, 17, 19)).astype(np.float32)
    assert bits_equal(host(kernels.preprocess(dev(fl), out_dtype)), kernels.preprocess(fl, out_dtype))


@pytest.mark.parametrize("src_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("out_dtype", [np.float32, np.uint8])
def test_cuda_postprocess_equals_cpu(rng, src_dtype, out_dtype):
    x = rng.uniform(-1.3, 1.3, (3, 1, 32, 33)).astype(src_dtype)
    x.flat[:6] = [np.nan, np.inf, -np.inf, -1, 1, 0]
    x.flat[6:6 + 2001] = np.linspace(-1, 1, 2001).astype(src_dtype)  # uint8 ties round half to even
    got = host(kernels.postprocess(dev(x), out_dtype))
    assert bits_equal(got, kernels.postprocess(x, out_dtype))


# ----------------------------------------------------------------------------------- streams


def test_cuda_kernels_run_on_the_current_torch_stream(rng):
    """On a side stream, a copy delayed by a GPU sleep precedes the kernels: they must see its data."""
    shape = (4, 1, 32, 32)
    x0, x1, t = inputs(rng, shape)
    want_renoise = kernels.renoise(x0, x1, t, 0.5, 8, 3, 1)
    X0_src, X1, T = dev(x0), dev(x1), dev(t)
    X0 = torch.zeros_like(X0_src)
    sketches = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    SK_src = dev(sketches)
    SK = torch.zeros_like(SK_src)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        if hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(20_000_000)  # ~10 ms of GPU time before the copies on this stream
        X0.copy_(X0_src)
        SK.copy_(SK_src)
        out = kernels.renoise(X0, X1, T, 0.5, 8, 3, 1)
        pre = kernels.preprocess(SK, np.float16)
        post = kernels.postprocess(out, np.uint8)
        noise = torch.empty(shape, dtype=torch.float32, device="cuda")
        kernels.normal_noise(shape, 8, 3, 1, out=noise)
    side.synchronize()
    assert bits_equal(host(out), want_renoise)
    assert bits_equal(host(pre), kernels.preprocess(sketches, np.float16))
    assert bits_equal(host(post), kernels.postprocess(want_renoise, np.uint8))
    assert bits_equal(host(noise), kernels.normal_noise(shape, 8, 3, 1))


def test_cuda_explicit_stream_argument(rng):
    shape = (2, 1, 16, 16)
    x0, x1, t = inputs(rng, shape)
    side = torch.cuda.Stream()
    X0, X1, T = dev(x0), dev(x1), dev(t)
    side.wait_stream(torch.cuda.current_stream())
    out = torch.empty_like(X0)
    kernels.renoise(X0, X1, T, 0.5, 1, 2, out=out, stream=side.cuda_stream)
    side.synchronize()
    assert bits_equal(host(out), kernels.renoise(x0, x1, t, 0.5, 1, 2))


# ------------------------------------------------------------------- renoise_device_params


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("seed,offset,first", SEEDS)
def test_renoise_device_params_equals_renoise(rng, dtype, seed, offset, first):
    shape = (3, 1, 9, 13)
    x0, x1, t = inputs(rng, shape, dtype)
    X0, X1, T = dev(x0), dev(x1), dev(t)
    want = host(kernels.renoise(X0, X1, T, 0.75, seed, offset, first))
    for pdtype in (torch.uint64, torch.int64):
        got = kernels.renoise_device_params(X0, X1, T, 0.75, params_tensor(seed, first, pdtype), offset)
        assert bits_equal(host(got), want)
    out = torch.empty_like(X0)
    assert kernels.renoise_device_params(X0, X1, T, 0.75, params_tensor(seed, first), offset, out=out) is out
    assert bits_equal(host(out), want)
    if dtype == np.float32:
        assert bits_equal(want, kernels.renoise(x0, x1, t, 0.75, seed, offset, first))


def test_renoise_device_params_rejects_bad_input(rng):
    x0, x1, t = inputs(rng, (2, 1, 4, 4))
    X0, X1, T = dev(x0), dev(x1), dev(t)
    P = params_tensor(1, 0)
    with pytest.raises(InvalidInputError, match="t must be a CUDA array"):
        kernels.renoise_device_params(X0, X1, t, 0.5, P, 0)
    with pytest.raises(InvalidInputError, match="params must be a CUDA array"):
        kernels.renoise_device_params(X0, X1, T, 0.5, np.array([1, 0], np.uint64), 0)
    with pytest.raises(InvalidInputError, match="params must have dtype uint64 or int64"):
        kernels.renoise_device_params(X0, X1, T, 0.5, torch.zeros(2, dtype=torch.int32, device="cuda"), 0)
    with pytest.raises(InvalidInputError, match=r"params must have shape \(2,\)"):
        kernels.renoise_device_params(X0, X1, T, 0.5, torch.empty(3, dtype=torch.uint64, device="cuda"), 0)
    with pytest.raises(InvalidInputError, match=r"t must have shape \(B,\)"):
        kernels.renoise_device_params(X0, X1, T[:1], 0.5, P, 0)
    with pytest.raises(InvalidInputError, match="x1 must have dtype float32"):
        kernels.renoise_device_params(X0, X1.half(), T, 0.5, P, 0)


# ---------------------------------------------------------------------------- CUDA graphs


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_cuda_graph_replays_with_new_params_and_t(rng, dtype):
    """Capture once; change the device buffers of t and (seed, first_sample); each replay gives exactly the
    noise of the new values (offset and sigma are fixed per graph node)."""
    shape, sigma, offset = (4, 1, 16, 20), 0.8, 5
    x0, x1, _ = inputs(rng, shape, dtype)
    X0, X1 = dev(x0), dev(x1)
    T = torch.empty(shape[0], dtype=torch.float32, device="cuda")
    P = torch.empty(2, dtype=torch.uint64, device="cuda")
    out = torch.empty_like(X0)
    T.copy_(torch.full((shape[0],), 0.5))
    set_params(P, 1, 0)
    side = torch.cuda.Stream()  # warm-up on a side stream, as torch recommends before capture
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        kernels.renoise_device_params(X0, X1, T, sigma, P, offset, out=out)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        with pytest.raises(ValueError, match="cannot be captured"):  # host t: not graph-safe, refused
            kernels.renoise(X0, X1, 0.5, sigma, 1, offset, out=out)
        kernels.renoise_device_params(X0, X1, T, sigma, P, offset, out=out)

    cases = [(rng.uniform(0, 1, shape[0]).astype(np.float32), 1, 0),
             (rng.uniform(0, 1, shape[0]).astype(np.float32), 2**64 - 3, 17),
             (np.array([0.0, 1.0, 0.3, 0.6], np.float32), 12345, 2**32 - 4)]
    results = []
    for t_new, seed, first in cases:
        out.zero_()
        T.copy_(torch.from_numpy(t_new))
        set_params(P, seed, first)
        graph.replay()
        got = host(out)
        want = kernels.renoise(x0, x1, t_new, sigma, seed, offset, first)
        if dtype == np.float32:
            assert bits_equal(got, want)
        else:
            assert within_one_fp16_ulp(got, want)
        results.append(got)
    assert not bits_equal(results[0], results[1])


def test_cuda_graph_captures_renoise_with_device_t(rng):
    """renoise with a device t is graph-safe as well: t is read at replay, (seed, offset, first) are frozen."""
    shape = (3, 1, 8, 8)
    x0, x1, _ = inputs(rng, shape)
    X0, X1 = dev(x0), dev(x1)
    T = dev(np.full(3, 0.5, np.float32))
    out = torch.empty_like(X0)
    kernels.renoise(X0, X1, T, 0.5, 7, 1, 2, out=out)  # warm-up
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        kernels.renoise(X0, X1, T, 0.5, 7, 1, 2, out=out)
    t_new = np.array([0.1, 0.7, 0.9], np.float32)
    T.copy_(torch.from_numpy(t_new))
    graph.replay()
    assert bits_equal(host(out), kernels.renoise(x0, x1, t_new, 0.5, 7, 1, 2))


# ------------------------------------------------------------------------ pointers / devices


def test_cuda_native_rejects_bad_pointers():
    from cheartflow_sdk import _C

    buf = torch.zeros(64, dtype=torch.float32, device="cuda")
    ptr = buf.data_ptr()
    with pytest.raises(ValueError, match="not aligned to 4 bytes"):
        _C.normal_fill_cuda(ptr + 2, 2, 4, 0, 0)
    host_arr = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match="not CUDA device memory|not a valid CUDA pointer"):
        _C.normal_fill_cuda(host_arr.ctypes.data, 2, 4, 0, 0)
    with pytest.raises(ValueError, match="params_ptr = 0x0 is a null pointer"):  # x0, x1, t, out: 2 x 4 floats
        _C.renoise_cuda_params(ptr, ptr + 32, ptr + 64, 0, ptr + 96, 2, 4, "float32", 0.5, 0)
    with pytest.raises(ValueError, match="out_ptr overlaps t_ptr"):
        _C.renoise_cuda_params(ptr, ptr + 32, ptr + 96, ptr + 128, ptr + 96, 2, 4, "float32", 0.5, 0)
    with pytest.raises(ValueError, match="out_ptr overlaps x0_ptr"):  # out shifted by one element from x0
        _C.renoise_cuda(ptr, ptr, ptr + 128, ptr + 4, 2, 4, "float32", 0.5, 1, 2)
    torch.cuda.synchronize()  # nothing was launched; the context is healthy
    assert torch.isfinite(buf).all()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_cuda_arrays_on_another_device_run_there_and_keep_the_current_device(rng):
    shape = (2, 1, 8, 8)
    x0, x1, t = inputs(rng, shape)
    torch.cuda.set_device(0)
    X0, X1, T = (torch.from_numpy(a).to("cuda:1") for a in (x0, x1, t))
    got = kernels.renoise(X0, X1, T, 0.5, 1, 2)  # runs on device 1, on torch's current stream of device 1
    assert torch.cuda.current_device() == 0 and got.device.index == 1
    assert bits_equal(got.cpu().numpy(), kernels.renoise(x0, x1, t, 0.5, 1, 2))
    other = torch.cuda.Stream(device=0)
    with pytest.raises(ValueError, match="belongs to device 0"):
        kernels.renoise(X0, X1, T, 0.5, 1, 2, stream=other.cuda_stream)
