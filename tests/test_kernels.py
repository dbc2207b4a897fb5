"""Re-noise and pre/post-processing kernels: native CPU path vs the numpy reference, determinism across
thread counts, dispatch (native, numpy fallback, CUDA arrays) and input validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cheartflow_sdk import kernels
from cheartflow_sdk.errors import InvalidInputError, NativeUnavailableError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def C():
    """The native module; a missing build fails here unless CHEARTFLOW_NATIVE=0 asks to skip."""
    if os.environ.get("CHEARTFLOW_NATIVE") == "0":
        pytest.skip("native module disabled by CHEARTFLOW_NATIVE=0")
    from cheartflow_sdk import _C

    return _C


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def batch(rng, shape=(4, 1, 9, 11), dtype=np.float32):
    x0 = rng.uniform(-1.2, 1.2, shape).astype(dtype)
    x1 = rng.uniform(-1, 1, shape).astype(dtype)
    return x0, x1


def native_renoise(C, x0, x1, t, sigma, seed, offset, first=0):
    out = np.empty_like(x0)
    C.renoise(x0, x1, np.asarray(t, np.float32), sigma, seed, offset, first, out)
    return out


# ------------------------------------------------------------------------------- renoise


@pytest.mark.parametrize("shape", [(4, 1, 9, 11), (3, 5), (2, 1, 8, 8), (1, 1), (2, 1, 33, 31), (2, 1100)])
def test_renoise_fp32_equals_reference_exactly(C, rng, shape):
    x0, x1 = batch(rng, shape)
    t = rng.uniform(0, 1, shape[0]).astype(np.float32)
    got = native_renoise(C, x0, x1, t, 0.7, 42, 3, 6)
    assert bits_equal(got, kernels.renoise_reference(x0, x1, t, 0.7, 42, 3, 6))


def test_renoise_fp16_within_one_fp16_ulp_of_reference(C, rng):
    x0, x1 = batch(rng, (3, 1, 17, 13), np.float16)
    t = np.array([0.1, 0.5, 0.97], np.float32)
    got = native_renoise(C, x0, x1, t, 1.3, 5, 2)
    ref = kernels.renoise_reference(x0, x1, t, 1.3, 5, 2)
    # Both round the same float32 value to nearest-even fp16, so the bound |diff| <= spacing(fp16 result)
    # (one fp16 ulp) is met with equality to spare: the results are in fact bit-identical.
    assert np.all(np.abs(got.astype(np.float64) - ref) <= np.spacing(np.abs(ref)).astype(np.float64))
    assert bits_equal(got, ref)


def test_renoise_with_noise_matches_float64_formula(C, rng):
    x0, x1 = batch(rng)
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    t = np.array([0.0, 0.25, 0.6, 1.0], np.float32)
    sigma = 0.9
    out = np.empty_like(x0)
    C.renoise_with_noise(x0, x1, t, sigma, eps, out)
    assert bits_equal(out, kernels.renoise_with_noise_reference(x0, x1, t, sigma, eps))
    tb = t.astype(np.float64)[:, None, None, None]
    s2 = np.float64(np.float32(sigma)) ** 2
    terms = [(1 - tb) * x0, tb * x1, tb * (1 - tb) * s2 * eps]
    want = sum(terms)
    # Float32 evaluation: ~8 roundings (products, sums, coefficient), each <= 2**-24 relative to the
    # magnitude it touches, all bounded by sum(|terms|): |err| <= 8 * 2**-24 * sum|terms|.
    bound = 8 * 2.0**-24 * sum(np.abs(term) for term in terms) + 1e-30
    assert np.all(np.abs(out - want) <= bound)


def test_renoise_endpoints_and_per_sample_schedule(C, rng):
    """t = 0 gives x0_hat, t = 1 gives x1, and each sample uses its own t within one batch."""
    x0, x1 = batch(rng, (3, 1, 5, 5))
    t = np.array([0.0, 1.0, 0.5], np.float32)
    out = native_renoise(C, x0, x1, t, 2.0, 1, 1)
    np.testing.assert_array_equal(out[0], x0[0])
    np.testing.assert_array_equal(out[1], x1[1])
    for b in range(3):
        alone = native_renoise(C, x0[b:b + 1], x1[b:b + 1], t[b:b + 1], 2.0, 1, 1, first=b)
        assert bits_equal(out[b:b + 1], alone)


def test_renoise_is_batch_invariant_through_first_sample(C, rng):
    x0, x1 = batch(rng, (6, 1, 7, 7))
    t = rng.uniform(0, 1, 6).astype(np.float32)
    full = native_renoise(C, x0, x1, t, 0.5, 77, 4, first=10)
    for lo, hi in [(0, 2), (2, 5), (5, 6)]:
        part = native_renoise(C, x0[lo:hi], x1[lo:hi], t[lo:hi], 0.5, 77, 4, first=10 + lo)
        assert bits_equal(full[lo:hi], part)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", [(5, 1, 9, 11), (3, 1, 8, 8), (2, 1100)])
def test_renoise_keys_native_equals_reference_and_is_position_free(C, rng, shape, dtype):
    x0, x1 = batch(rng, shape, dtype)
    t = rng.uniform(0, 1, shape[0]).astype(np.float32)
    keys = np.array([0, 2**64 - 1, 12345678901234567890, 7, 7][:shape[0]], dtype=np.uint64)
    got = kernels.renoise_keys(x0, x1, t, 0.6, keys, 3)
    ref = kernels.renoise_keys_reference(x0, x1, t, 0.6, keys, 3)
    if dtype == np.float32:
        assert bits_equal(got, ref)
    else:  # fp16: the native and reference kernels may differ by one fp16 ulp (as for renoise)
        np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), rtol=2e-3, atol=2e-3)
    for b in range(shape[0]):  # row b = a batch of one under its own key, sample counter 0
        alone = native_renoise(C, x0[b:b + 1], x1[b:b + 1], t[b:b + 1], 0.6, int(keys[b]), 3, 0)
        assert bits_equal(got[b:b + 1], alone)
    order = np.arange(shape[0])[::-1].copy()  # any order or position: the same rows
    assert bits_equal(kernels.renoise_keys(x0[order], x1[order], t[order], 0.6, keys[order], 3), got[order])
    eps = kernels.normal_noise_keys_reference(x0.shape, keys, 3)
    assert bits_equal(kernels.renoise_with_noise_reference(x0, x1, t, 0.6, eps), ref)


def test_renoise_keys_in_place_fallback_and_bad_keys(C, rng, monkeypatch):
    x0, x1 = batch(rng)
    keys = np.array([3, 1, 4, 1], np.uint64)
    want = kernels.renoise_keys_reference(x0, x1, np.full(4, 0.4, np.float32), 0.5, keys, 2)
    inplace = x0.copy()
    assert kernels.renoise_keys(inplace, x1, 0.4, 0.5, keys, 2, out=inplace) is inplace and bits_equal(inplace, want)
    for bad in ([1, 2, 3], np.array([1, 2, 3, -4]), np.zeros((4, 1), np.uint64), [0.5] * 4):
        with pytest.raises(InvalidInputError, match="keys must be"):
            kernels.renoise_keys(x0, x1, 0.4, 0.5, bad, 2)
    monkeypatch.setattr(kernels, "_native", lambda: None)  # numpy reference path
    assert bits_equal(kernels.renoise_keys(x0, x1, 0.4, 0.5, keys, 2), want)


def test_renoise_in_place(C, rng):
    x0, x1 = batch(rng)
    t = np.full(4, 0.3, np.float32)
    want = kernels.renoise_reference(x0, x1, t, 0.5, 9, 1)
    C.renoise(x0, x1, t, 0.5, 9, 1, 0, x0)
    assert bits_equal(x0, want)


def test_public_renoise_scalar_t_in_place_and_fallback(C, rng, monkeypatch):
    x0, x1 = batch(rng)
    want = kernels.renoise_reference(x0, x1, np.full(4, 0.4, np.float32), 0.5, 9, 2, 3)
    assert bits_equal(kernels.renoise(x0, x1, 0.4, 0.5, 9, 2, 3), want)
    eps = kernels.normal_noise(x0.shape, 9, 2, 3)
    assert bits_equal(kernels.renoise_with_noise(x0, x1, 0.4, 0.5, eps), want)
    x0_nc = np.asfortranarray(x0)  # non-contiguous inputs are copied by the public API
    assert bits_equal(kernels.renoise(x0_nc, x1, 0.4, 0.5, 9, 2, 3), want)
    inplace = x0.copy()
    assert kernels.renoise(inplace, x1, 0.4, 0.5, 9, 2, 3, out=inplace) is inplace and bits_equal(inplace, want)
    monkeypatch.setattr(kernels, "_native", lambda: None)  # numpy reference path
    assert not kernels.native_available()
    assert bits_equal(kernels.renoise(x0, x1, 0.4, 0.5, 9, 2, 3), want)
    assert bits_equal(kernels.renoise_with_noise(x0, x1, 0.4, 0.5, eps), want)
    assert bits_equal(kernels.normal_noise(x0.shape, 9, 2, 3), eps)


# ----------------------------------------------------------------------- fp16 conversions


@pytest.fixture(params=[True, False], ids=["f16c", "portable"])
def f16_path(request, C):
    """Runs a test with the F16C float16 conversions (where the CPU has them) and with the portable code."""
    previous = C._use_f16c()
    active = C._use_f16c(request.param)
    if request.param and not active:
        pytest.skip("this CPU has no F16C instructions")
    yield active
    C._use_f16c(previous)


def test_f16c_switch_reports_and_restores(C):
    previous = C._use_f16c()
    try:
        assert C._use_f16c(False) is False and C._use_f16c() is False
        assert isinstance(C._use_f16c(True), bool)
    finally:
        C._use_f16c(previous)
    assert C._use_f16c() == previous


def test_renoise_fp16_same_bits_with_and_without_f16c(C, rng, f16_path):
    x0, x1 = batch(rng, (3, 1, 17, 13), np.float16)  # 221 px: SIMD steps of 4 and a scalar tail
    t = np.array([0.1, 0.5, 0.97], np.float32)
    assert bits_equal(native_renoise(C, x0, x1, t, 1.3, 5, 2), kernels.renoise_reference(x0, x1, t, 1.3, 5, 2))


def test_fp16_rounding_matches_numpy_on_edge_and_random_values(C, rng, f16_path):
    """eps passes through unchanged (coefficient (0.5*0.5)*2**2 = 1, x0 = x1 = 0), so out = fp16(eps)."""
    edges = np.array([0, -0.0, 1, -1, 65504, 65519.996, 65520, -65520, 1e6, np.inf, -np.inf,
                      2.0**-14, 2.0**-24, 2.0**-25, np.nextafter(np.float32(2.0**-25), 1), 3 * 2.0**-25,
                      5 * 2.0**-26, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 2.0**-15 + 2.0**-25, 1e-30], np.float32)
    randoms = rng.integers(0, 2**32, 400_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    small = (rng.uniform(-1, 1, 200_000) * np.exp2(rng.integers(-30, 17, 200_000))).astype(np.float32)
    eps = np.concatenate([edges, randoms[np.isfinite(randoms)], small]).reshape(1, -1)
    zeros = np.zeros(eps.shape, np.float16)
    out = np.empty(eps.shape, np.float16)
    C.renoise_with_noise(zeros, zeros, np.array([0.5], np.float32), 2.0, eps, out)
    with np.errstate(over="ignore"):
        want = eps.astype(np.float16)
    want[eps == 0] = 0  # (0 + 0) + -0.0 is +0.0
    assert bits_equal(out, want)


def test_fp16_decoding_matches_numpy_on_every_value(C, f16_path):
    x0 = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    x0 = x0[~np.isnan(x0)].reshape(1, -1)
    zeros = np.zeros_like(x0)
    out = np.empty_like(x0)
    t = np.array([0.5], np.float32)  # out = fp16(0.5 * float32(x0)): every decoded value is visible
    C.renoise_with_noise(x0, zeros, t, 0.0, np.zeros(x0.shape, np.float32), out)
    assert bits_equal(out, kernels.renoise_with_noise_reference(x0, zeros, t, 0.0, np.zeros(x0.shape, np.float32)))


# ------------------------------------------------------------------ preprocess / postprocess


@pytest.mark.parametrize("out_dtype", [np.float32, np.float16])
def test_preprocess_uint8_all_values_exact(C, out_dtype):
    src = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    out = np.empty((1, 1, 16, 16), out_dtype)
    C.preprocess(src, out)
    ref = kernels.preprocess_reference(src, out_dtype)
    assert bits_equal(out, ref)
    assert out.flat[0] == -1 and out.flat[255] == 1
    np.testing.assert_array_equal(out.flat[::-1], -out.ravel())  # odd symmetry around 127.5
    np.testing.assert_allclose(out.astype(np.float64).ravel(), np.arange(256) / 255 * 2 - 1,
                               atol=2.0**-24 if out_dtype == np.float32 else 2.0**-11)


@pytest.mark.parametrize("out_dtype", [np.float32, np.float16])
def test_preprocess_float_exact(C, rng, out_dtype):
    src = rng.uniform(0, 1, (3, 1, 10, 12)).astype(np.float32)
    out = np.empty(src.shape, out_dtype)
    C.preprocess(src, out)
    assert bits_equal(out, kernels.preprocess_reference(src, out_dtype))
    assert bits_equal(kernels.preprocess(src, out_dtype), out)
    assert bits_equal(kernels.preprocess(src[:, 0], out_dtype), out)  # [B,H,W] accepted too


@pytest.mark.parametrize("src_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("out_dtype", [np.float32, np.uint8])
def test_postprocess_exact(C, rng, src_dtype, out_dtype):
    x = rng.uniform(-1.3, 1.3, (3, 1, 16, 16)).astype(src_dtype)
    x.flat[:6] = [np.nan, np.inf, -np.inf, -1, 1, 0]
    out = np.empty(x.shape, out_dtype)
    C.postprocess(x, out)
    ref = kernels.postprocess_reference(x, out_dtype)
    assert bits_equal(out, ref)
    # nan, inf, -inf, -1, 1, 0 -> 0, 1, 0, 0, 1, 0.5 (uint8: 127.5 rounds to the even 128)
    want = [0, 255, 0, 0, 255, 128] if out_dtype == np.uint8 else [0, 1, 0, 0, 1, 0.5]
    np.testing.assert_array_equal(out.flat[:6], want)
    assert bits_equal(kernels.postprocess(x, out_dtype), out)


def test_postprocess_uint8_rounds_half_to_even(C):
    """uint8 = round-half-to-even of the float32 value ((x + 1) * 0.5) * 255, like numpy.rint."""
    x = np.linspace(-1, 1, 200_001, dtype=np.float32).reshape(1, 1, 1, -1)
    out = np.empty(x.shape, np.uint8)
    C.postprocess(x, out)
    v = ((x + np.float32(1)) * np.float32(0.5)) * np.float32(255)
    np.testing.assert_array_equal(out, np.rint(v).astype(np.uint8))
    ties = (v % 1) == 0.5  # exact ties occur on this grid; they must go to the even neighbour
    assert ties.any() and np.all(out[ties] % 2 == 0)


# ----------------------------------------------------------------------- determinism / threads


def test_results_do_not_depend_on_thread_count_or_repetition(C, rng):
    x0, x1 = batch(rng, (3, 1, 150, 151))  # 22650 px per sample: thread chunks split samples
    x0h, x1h = x0.astype(np.float16), x1.astype(np.float16)
    t = np.array([0.2, 0.5, 0.8], np.float32)
    img = rng.uniform(-1.1, 1.1, (3, 1, 300, 301)).astype(np.float32)
    sk = rng.integers(0, 256, (3, 300, 301), dtype=np.uint8)
    previous = C.get_num_threads()
    results = []
    try:
        for n in (1, 2, 4, 4):
            C.set_num_threads(n)
            assert C.get_num_threads() == n
            noise = np.empty(x0.shape, np.float32)
            C.normal_fill(noise, 5, 6, 7)
            pre, post = np.empty((3, 1, 300, 301), np.float16), np.empty(img.shape, np.uint8)
            C.preprocess(sk, pre)
            C.postprocess(img, post)
            results.append([noise, native_renoise(C, x0, x1, t, 0.5, 1, 2, 3),
                            native_renoise(C, x0h, x1h, t, 0.5, 1, 2, 3), pre, post])
    finally:
        C.set_num_threads(previous)
    for other in results[1:]:
        assert all(bits_equal(a, b) for a, b in zip(results[0], other))
    assert bits_equal(results[0][0], kernels.normal_noise_reference(x0.shape, 5, 6, 7))


# ------------------------------------------------------------------------------ bad inputs

F32 = np.zeros((2, 1, 4, 4), np.float32)
T2 = np.array([0.5, 0.5], np.float32)


def _renoise_args(**over):
    args = {"x0_hat": F32, "x1": F32.copy(), "t": T2, "sigma": 0.5, "seed": 1, "offset": 2, "first_sample": 0,
                "out": np.empty_like(F32)}
    args.update(over)
    return args


@pytest.mark.parametrize("over,exc,match", [
    ({"x0_hat": F32.astype(np.float64)}, TypeError, r"x0_hat must have dtype float32 or float16, got float64"),
    ({"x0_hat": [[1.0]]}, TypeError, r"x0_hat must be a numpy.ndarray"),
    ({"x1": F32.astype(np.float16)}, TypeError, r"x1 must have the same dtype as x0_hat \(float32\)"),
    ({"x1": np.zeros((2, 1, 4, 5), np.float32)}, ValueError, r"x1 must have the same shape as x0_hat \(2, 1, 4, 4\)"),
    ({"x1": np.zeros((2, 1, 4, 8), np.float32)[..., ::2]}, ValueError, r"x1 must be C-contiguous"),
    ({"out": np.empty((2, 1, 4, 4), np.float16)}, TypeError, r"out must have the same dtype"),
    ({"t": np.array([0.5], np.float32)}, ValueError, r"t must have shape \(B,\) = \(2,\)"),
    ({"t": np.array([0.5, 0.5])}, TypeError, r"t must have dtype float32, got float64"),
    ({"sigma": 1e39}, ValueError, r"sigma must be representable in float32"),
    ({"sigma": "a"}, TypeError, r"sigma must be a real number"),
    ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*64\)"),
    ({"seed": 2**64}, ValueError, r"seed must be in"),
    ({"offset": 1.5}, TypeError, r"offset must be an int"),
    ({"first_sample": 2**32 - 1}, ValueError, r"first_sample \+ B must be <= 2\*\*32"),
])
def test_native_renoise_rejects_bad_input(C, over, exc, match):
    a = _renoise_args(**over)
    with pytest.raises(exc, match=match):
        C.renoise(a["x0_hat"], a["x1"], a["t"], a["sigma"], a["seed"], a["offset"], a["first_sample"], a["out"])


def test_value_ranges_are_checked_at_the_python_boundary_not_in_the_native_module(C):
    """t in [0, 1] and sigma >= 0 are what the values mean: cheartflow_sdk.kernels checks them once, _C trusts them."""
    t_bad = np.array([0.5, 1.5], np.float32)
    out = np.empty_like(F32)
    C.renoise(F32, F32, t_bad, -0.5, 1, 2, 0, out)  # memory-safe: the kernel computes, no error
    with pytest.raises(InvalidInputError, match=r"t must be in \[0, 1\], got t\[1\] = 1.5"):
        kernels.renoise(F32, F32, t_bad, 0.5, 1, 2)
    with pytest.raises(InvalidInputError, match=r"sigma must be finite, >= 0"):
        kernels.renoise(F32, F32, T2, -0.5, 1, 2)


def test_native_rejects_read_only_and_overlapping_outputs(C):
    ro = np.empty_like(F32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        C.renoise(F32, F32, T2, 0.5, 1, 2, 0, ro)
    buf = np.zeros(2 * 16 + 4, np.float32)
    x0, out = buf[:32].reshape(2, 1, 4, 4), buf[4:36].reshape(2, 1, 4, 4)
    with pytest.raises(ValueError, match="out overlaps the memory of x0_hat"):
        C.renoise(x0, F32, T2, 0.5, 1, 2, 0, out)
    with pytest.raises(ValueError, match="eps must have the same shape"):
        C.renoise_with_noise(F32, F32, T2, 0.5, np.zeros((2, 16), np.float32), np.empty_like(F32))


@pytest.mark.parametrize("call,exc,match", [
    (lambda C: C.normal_fill(np.empty((2, 3)), 0, 0), TypeError, r"out must have dtype float32"),
    (lambda C: C.normal_fill(np.empty((3, 2), np.float32).T, 0, 0), ValueError, r"out must be C-contiguous"),
    (lambda C: C.normal_fill(np.empty((), np.float32), 0, 0), ValueError, r"at least 1 dimension"),
    (lambda C: C.preprocess(np.zeros((1, 4, 4), np.int16), np.empty((1, 1, 4, 4), np.float32)), TypeError,
     r"src must have dtype uint8 or float32, got int16"),
    (lambda C: C.preprocess(np.zeros((1, 4, 4), np.uint8), np.empty((1, 1, 4, 5), np.float32)), ValueError,
     r"out must have shape \[B, 1, H, W\] matching src"),
    (lambda C: C.postprocess(np.zeros((1, 2, 4, 4), np.float32), np.empty((1, 2, 4, 4), np.uint8)), ValueError,
     r"src must have shape \[B, 1, H, W\]"),
    (lambda C: C.postprocess(np.zeros((1, 1, 4, 4), np.float32), np.empty((1, 1, 4, 4), np.int8)), TypeError,
     r"out must have dtype float32 or uint8"),
    (lambda C: C.philox4x32_10((0, 0, 0), (0, 0)), TypeError, r"counter must be a sequence of 4 ints"),
    (lambda C: C.philox4x32_10((0, 0, 0, 2**32), (0, 0)), ValueError, r"counter must be in \[0, 4294967295\]"),
    (lambda C: C.set_num_threads(0), ValueError, r"n must be >= 1"),
])
def test_native_other_functions_reject_bad_input(C, call, exc, match):
    with pytest.raises(exc, match=match):
        call(C)


@pytest.mark.parametrize("call,match", [
    (lambda: kernels.renoise(F32.astype(np.float64), F32, 0.5, 0.5, 1, 2), r"x0_hat must have dtype float32 or float16"),
    (lambda: kernels.renoise(F32, F32[:1], 0.5, 0.5, 1, 2), r"x1 must have the same shape as x0_hat"),
    (lambda: kernels.renoise(F32, F32, [0.5, 0.5, 0.5], 0.5, 1, 2), r"t must be a float or have shape \(B,\) = \(2,\)"),
    (lambda: kernels.renoise(F32, F32, -0.1, 0.5, 1, 2), r"t must be in \[0, 1\]"),
    (lambda: kernels.renoise(F32, F32, 0.5, float("inf"), 1, 2), r"sigma must be finite"),
    (lambda: kernels.renoise(F32, F32, 0.5, 0.5, -3, 2), r"seed must be in"),
    (lambda: kernels.renoise(F32, F32, 0.5, 0.5, 1, 2, out=np.empty((2, 1, 4, 8), np.float32)[..., ::2]),
     r"out must be a writeable C-contiguous array"),
    (lambda: kernels.renoise_with_noise(F32, F32, 0.5, 0.5, F32.astype(np.float16)), r"eps must have dtype float32"),
    (lambda: kernels.normal_noise((2, -1), 0, 0), r"non-negative sizes"),
    (lambda: kernels.normal_noise((2, 3), 0, 0, out=np.empty((2, 4), np.float32)), r"out must have dtype float32 and shape \(2, 3\)"),
    (lambda: kernels.preprocess(np.zeros((1, 3, 4, 4), np.uint8)), r"sketches must have shape \[B,H,W\] or \[B,1,H,W\]"),
    (lambda: kernels.preprocess(np.zeros((1, 4, 4), np.uint8), dtype=np.int32), r"dtype must be float32 or float16"),
    (lambda: kernels.postprocess(np.zeros((1, 4, 4), np.float32)), r"x must have shape \[B,1,H,W\]"),
    (lambda: kernels.postprocess(np.zeros((1, 1, 4, 4), np.float32), dtype=np.float16), r"dtype must be float32 or uint8"),
])
def test_public_api_raises_invalid_input_error(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


class FakeCudaArray:
    """Looks like a CUDA tensor to the dispatcher (the pointer is never dereferenced)."""

    def __init__(self, shape, typestr="<f4"):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (0xDEAD000, False),
                                         "strides": None, "version": 3}


@pytest.mark.parametrize("call", [
    lambda: kernels.renoise(FakeCudaArray((2, 1, 4, 4)), FakeCudaArray((2, 1, 4, 4)), 0.5, 0.5, 1, 2),
    lambda: kernels.renoise_with_noise(F32, F32, 0.5, 0.5, FakeCudaArray((2, 1, 4, 4))),
    lambda: kernels.normal_noise((2, 3), 1, 2, out=FakeCudaArray((2, 3))),
    lambda: kernels.preprocess(FakeCudaArray((2, 4, 4), "|u1")),
    lambda: kernels.postprocess(FakeCudaArray((2, 1, 4, 4), "<f2")),
    lambda: kernels.renoise_device_params(FakeCudaArray((2, 1, 4, 4)), FakeCudaArray((2, 1, 4, 4)), FakeCudaArray((2,)),
                                          0.5, FakeCudaArray((2,), "<u8"), 3),
])
def test_cuda_arrays_without_usable_gpu_raise_native_unavailable(call):
    if kernels.cuda_available():
        pytest.skip("a GPU is usable here")
    with pytest.raises(NativeUnavailableError, match="CUDA"):
        call()


def test_native_cuda_entry_points_raise_cleanly_without_gpu(C):
    assert isinstance(C.cuda_compiled(), bool)
    if C.cuda_device_count() > 0:
        pytest.skip("a GPU is usable here")
    assert not kernels.cuda_available()
    with pytest.raises(NativeUnavailableError, match="renoise_cuda"):
        C.renoise_cuda(1, 2, T2, 3, 2, 16, "float32", 0.5, 1, 2, 0, 0)
    with pytest.raises(NativeUnavailableError, match="normal_fill_cuda"):
        C.normal_fill_cuda(1, 2, 16, 0, 0, 0, 0)
    with pytest.raises(NativeUnavailableError, match="preprocess_cuda"):
        C.preprocess_cuda(1, "uint8", 2, "float32", 16, 0)
    with pytest.raises(NativeUnavailableError, match="postprocess_cuda"):
        C.postprocess_cuda(1, "float32", 2, "uint8", 16, 0)
    with pytest.raises(RuntimeError):  # NativeUnavailableError is a RuntimeError
        C.renoise_with_noise_cuda(1, 2, T2, 3, 4, 2, 16, "float16", 0.5, 0)
    with pytest.raises(NativeUnavailableError, match="renoise_cuda_params"):
        C.renoise_cuda_params(1, 2, 3, 4, 5, 2, 16, "float32", 0.5, 7)


@pytest.mark.parametrize("call,match", [
    (lambda: kernels.renoise_device_params(F32, F32, T2, 0.5, np.array([1, 0], np.uint64), 3),
     r"renoise_device_params: x0_hat must be a CUDA array .*got numpy array dtype=float32"),
    (lambda: kernels.renoise_device_params(FakeCudaArray((2, 1, 4, 4)), FakeCudaArray((2, 1, 4, 4)), T2, 0.5,
                                           FakeCudaArray((2,), "<u8"), 3), r"t must be a CUDA array"),
    (lambda: kernels.renoise_device_params(FakeCudaArray((2, 1, 4, 4)), FakeCudaArray((2, 1, 4, 4)), FakeCudaArray((2,)),
                                           0.5, (1, 0), 3), r"params must be a CUDA array"),
    (lambda: kernels.renoise_device_params(F32, F32, T2, -1.0, None, 3), r"sigma must be finite, >= 0"),
    (lambda: kernels.renoise_device_params(F32, F32, T2, 0.5, None, -3), r"offset must be in"),
])
def test_renoise_device_params_rejects_host_arrays_and_bad_values_anywhere(call, match):
    """Host arrays are input errors whatever the machine (the values must live on the GPU)."""
    with pytest.raises(InvalidInputError, match=match):
        call()


# ------------------------------------------------------------------------------------ imports


def test_importing_kernels_does_not_import_torch():
    code = ("import sys, cheartflow_sdk.kernels as k; k.native_available(); "
            "print('torch' in sys.modules)")
    env = dict(os.environ)  # the subprocess imports the same cheartflow_sdk as this test session
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert res.stdout.strip() == "False", res.stderr
