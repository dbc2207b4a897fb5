"""The CUDA-graph runtime on a GPU (skipped without one): graph replays equal the same requests run eagerly.

Exactness is checked three ways for every case: the runner's graph replay, the runner without graphs
(same launches, no capture), and an independent composition of the public kernels with host-side per-sample
noise keys (kernels.renoise_keys, not the device-params kernel). All three must agree bit for bit.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cheartflow_sdk import kernels, sampling

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and kernels.cuda_available()),
    reason="needs a CUDA GPU and cheartflow_sdk._C built with CUDA",
)

from cheartflow_sdk.runtime import CudaGraphRunner  # noqa: E402

from conftest import RES  # noqa: E402

SIGMA = 0.5


def toy_encoder(x, t):
    """A cheap deterministic torch callable (elementwise + a per-sample mean: rows must stay independent)."""
    tt = t.float()[:, None, None, None]
    return torch.tanh(1.7 * x) * (1 - tt) + tt * x - 0.1 * x.mean(dim=(1, 2, 3), keepdim=True)


def reference(fn, x, steps, t_cols, seed, bucket, out_dtype):
    """The loop written directly with the public kernels on the default stream, padded like the runner."""
    n = len(x)
    with torch.no_grad():
        if x.dtype == np.uint8:
            xs = torch.zeros(bucket, RES, RES, dtype=torch.uint8, device="cuda")
            xs[:n] = torch.from_numpy(x.reshape(n, RES, RES)).cuda()
        else:
            xs = torch.zeros(bucket, 1, RES, RES, dtype=torch.float32, device="cuda")
            xs[:n] = torch.from_numpy(x.reshape(n, 1, RES, RES)).cuda()
        x1 = kernels.preprocess(xs, np.float32)
        x0 = fn(x1, torch.ones(bucket, device="cuda")).float().contiguous()
        keys = np.zeros(bucket, np.uint64)
        keys[:n] = sampling.noise_keys(x, seed)
        for k in range(1, steps):
            t = torch.full((bucket,), 0.5, device="cuda")
            t[:n] = torch.from_numpy(np.ascontiguousarray(t_cols[k - 1])).cuda()
            x_t = kernels.renoise_keys(x0, x1, t.cpu().numpy(), SIGMA, keys, k)
            x0 = fn(x_t, t).float().contiguous()
        out = kernels.postprocess(x0, out_dtype)
        torch.cuda.synchronize()
    return out[:n].cpu().numpy()


def sketches(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    u8 = (rng.random((n, RES, RES)) < 0.15).astype(np.uint8) * 255
    return u8 if dtype == np.uint8 else (u8[:, None] / np.float32(255)).astype(np.float32)


def columns(steps, n, seed=0):
    rng = np.random.default_rng(100 + seed)
    return rng.uniform(0.05, 0.95, (steps - 1, n)).astype(np.float32)


@pytest.fixture(scope="module")
def modules(trained_model_dir):
    from cheartflow_sdk.training.checkpoint import load_encoder

    m32 = load_encoder(trained_model_dir, "cuda")
    import copy

    return {"fp32": m32, "fp16": copy.deepcopy(m32).half()}


def _check_case(runner, eager_runner, fn, n, steps, seed, in_dtype, out_dtype):
    x = sketches(n, in_dtype, seed)
    cols = columns(steps, n, seed)
    sched = cols.T  # per-sample (n, steps - 1)
    got = runner.run(x, steps, sched if steps > 1 else (), seed=seed, dtype=out_dtype)
    eager = eager_runner.run(x, steps, sched if steps > 1 else (), seed=seed, dtype=out_dtype)
    bucket = min(b for b in runner.buckets if b >= n)
    ref = reference(fn, x, steps, cols, seed, bucket, out_dtype)
    assert got.shape == (n, 1, RES, RES) and got.dtype == np.dtype(out_dtype)
    np.testing.assert_array_equal(got, eager, err_msg=f"graph != eager (n={n}, steps={steps}, seed={seed})")
    np.testing.assert_array_equal(got, ref, err_msg=f"graph != kernels reference (n={n}, steps={steps}, seed={seed})")
    return got


@pytest.mark.parametrize("encoder", ["toy", "fp32", "fp16"])
def test_graph_replays_equal_eager_runs_for_many_requests(encoder, modules):
    assert hasattr(kernels, "renoise_device_params"), "multi-step graphs need kernels.renoise_device_params"
    fn = toy_encoder if encoder == "toy" else modules[encoder]
    runner = CudaGraphRunner(fn, RES, SIGMA, buckets=(1, 4, 8), capture_after=0)
    eager = CudaGraphRunner(fn, RES, SIGMA, buckets=(1, 4, 8), use_graphs=False)
    seen = {}
    for i, (n, steps, seed, in_dt, out_dt) in enumerate([
        (1, 1, 0, np.uint8, np.uint8), (3, 2, 11, np.uint8, np.uint8), (3, 2, 12, np.uint8, np.uint8),
        (3, 2, [11, 12, 13], np.uint8, np.uint8), (8, 3, 5, np.float32, np.float32), (4, 2, 2**64 - 1, np.uint8, np.float32),
        (1, 2, 11, np.float32, np.uint8), (3, 2, 11, np.uint8, np.uint8),
    ]):
        seen[i] = _check_case(runner, eager, fn, n, steps, seed, in_dt, out_dt)
    assert runner.graph_count >= 5 and eager.graph_count == 0
    np.testing.assert_array_equal(seen[1], seen[7])  # the same request again: the same images
    assert not np.array_equal(seen[1], seen[2])  # another seed replays the same graph with other noise
    assert not np.array_equal(seen[1][1:], seen[3][1:])  # per-sample seeds too (row 0 has seed 11 in both)


def test_first_use_of_a_key_runs_eagerly_then_it_is_captured(modules):
    runner = CudaGraphRunner(modules["fp32"], RES, SIGMA, buckets=(4,))  # capture_after=1 (the default)
    x = sketches(4, np.uint8, 6)
    a = runner.run(x, 2, (0.5,), seed=4)  # slot 0, first use: eager
    b = runner.run(x, 2, (0.5,), seed=4)  # slot 1, first use: eager
    assert runner.graph_count == 0
    c = runner.run(x, 2, (0.5,), seed=4)  # slot 0, second use: captured and replayed
    d = runner.run(x, 2, (0.5,), seed=4)  # slot 1, second use
    assert runner.graph_count == 2
    for other in (b, c, d):
        np.testing.assert_array_equal(a, other)


def test_noise_is_keyed_by_the_sketch_not_its_position(modules):
    fn = modules["fp32"]
    runner = CudaGraphRunner(fn, RES, SIGMA, buckets=(8,), capture_after=0)
    x = sketches(8, np.uint8, 3)
    whole = runner.run(x, 2, (0.4,), seed=9)
    part = runner.run(x[3:6], 2, (0.4,), seed=9)  # same bucket (8): same kernels
    np.testing.assert_array_equal(whole[3:6], part)
    np.testing.assert_array_equal(whole[5:6], runner.run(x[5:6][::-1].copy(), 2, (0.4,), seed=9))


def test_large_requests_are_chunked_and_stream_keeps_order(modules):
    fn = modules["fp16"]
    runner = CudaGraphRunner(fn, RES, SIGMA, buckets=(1, 4), capture_after=0)
    eager = CudaGraphRunner(fn, RES, SIGMA, buckets=(1, 4), use_graphs=False)
    x = sketches(11, np.uint8, 4)
    got = runner.run(x, 2, (0.5,), seed=1)  # chunks 4 + 4 + 3
    np.testing.assert_array_equal(got, eager.run(x, 2, (0.5,), seed=1))
    sizes = [1, 3, 4, 1, 2]
    bounds = np.cumsum([0] + sizes)
    batches = [x[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    streamed = list(runner.stream(iter(batches), 2, (0.5,), seed=1))
    assert [len(s) for s in streamed] == sizes
    # each sketch's noise is its own; chunks of the same bucket give the same images
    for out, a, b in zip(streamed, bounds[:-1], bounds[1:]):
        np.testing.assert_array_equal(out, eager.run(x[a:b], 2, (0.5,), seed=1))


def test_stream_error_and_early_close_leave_the_runner_usable(modules):
    runner = CudaGraphRunner(modules["fp16"], RES, SIGMA, buckets=(1, 4), capture_after=0)
    x = sketches(4, np.uint8, 5)

    def source():
        yield x[:2]
        yield x[2:3]
        raise RuntimeError("source failed")

    gen = runner.stream(source(), 1)
    assert len(next(gen)) == 2 and len(next(gen)) == 1
    with pytest.raises(RuntimeError, match="source failed"):
        next(gen)
    gen = runner.stream(iter([x] * 100), 2, (0.5,))
    next(gen)
    gen.close()
    np.testing.assert_array_equal(runner.run(x, 1), runner.run(x, 1))


def test_pipeline_on_gpu_uses_the_runner(trained_model_dir, phantom_set):
    import cheartflow_sdk as cf

    pipe = cf.load_pipeline(trained_model_dir, backend="torch", device="cuda")
    assert pipe.runner is not None, "a torch CUDA encoder must get the CUDA-graph runtime"
    seconds = pipe.warmup(steps=(1, 2), batch_sizes=(1, 8), sketch_dtype=np.float32)
    captured = pipe.runner.graph_count
    assert seconds > 0 and captured == 2 * 2 * 2  # (buckets 1, 8) x (steps 1, 2) x 2 slots
    sk = phantom_set[2][:8]
    out = pipe.synthesize(sk, steps=2, seed=3, batch_size=8)
    assert pipe.runner.graph_count == captured, "a warmed-up request must not capture"
    cpu = cf.load_pipeline(trained_model_dir, backend="torch", device="cpu").synthesize(sk, steps=2, seed=3)
    np.testing.assert_allclose(out, cpu, atol=2e-2)  # GPU vs CPU: same noise, float rounding (TF32) apart
    assert np.abs(out - cpu).mean() < 2e-3
    streamed = list(pipe.stream([sk[:8], sk[:8]], steps=2, seed=3))
    np.testing.assert_array_equal(streamed[0], out)  # same bucket, same sketches
    np.testing.assert_array_equal(streamed[1], out)  # one sketch, one image: position in the stream does not matter
    u8 = list(pipe.stream([(sk[:, 0] * 255).astype(np.uint8)], steps=1, dtype=np.uint8))[0]
    assert u8.dtype == np.uint8 and u8.shape == (8, 1, RES, RES)
    with pytest.raises(cf.InvalidInputError, match="stream batch 1"):
        list(pipe.stream([sk[:1], sk[:1] * 5], steps=1))
    assert not [t for t in threading.enumerate() if t.name == "cheartflow-prefetch" and t.is_alive()]
