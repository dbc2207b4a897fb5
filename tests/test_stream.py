"""Pipeline.stream on the numpy path (any machine) and the runtime's pure parts: prefetch queue, buckets, staging."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import cheartflow_sdk as cf
from cheartflow_sdk.errors import InvalidInputError, ModelMismatchError
from cheartflow_sdk.runtime import Prefetcher, prefetch, torch_callable
from cheartflow_sdk.runtime.cuda_graph_runner import (StageLayout, bucket_for, check_buckets, chunk_bounds,
                                                      write_stage)
from cheartflow_sdk.runtime.prefetch import THREAD_NAME

from conftest import RES


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]


def _no_workers_left(timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _workers()


@pytest.fixture(scope="module")
def pipe(onnx_model):
    return cf.load_pipeline(onnx_model, device="cpu")


@pytest.fixture(scope="module")
def sketches(phantom_set):
    return phantom_set[2][:24]


# ---------------------------------------------------------------------------------------- stream == synthesize


def test_stream_equals_synthesize_exactly_when_batching_matches(pipe, sketches):
    batches = [sketches[i:i + 4] for i in range(0, 12, 4)]
    streamed = list(pipe.stream(batches, steps=2, seed=7))
    np.testing.assert_array_equal(np.concatenate(streamed), pipe.synthesize(sketches[:12], steps=2, seed=7, batch_size=4))


@pytest.mark.parametrize("steps", [1, 3])
def test_stream_ragged_batches_keep_order_and_match_synthesize(pipe, sketches, steps):
    sizes = [5, 1, 7, 2, 1]
    bounds = np.cumsum([0] + sizes)
    batches = [sketches[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    streamed = list(pipe.stream(iter(batches), steps=steps, seed=3))
    assert [len(s) for s in streamed] == sizes
    whole = pipe.synthesize(sketches[:bounds[-1]], steps=steps, seed=3)
    for out, a, b in zip(streamed, bounds[:-1], bounds[1:]):
        np.testing.assert_allclose(out, whole[a:b], atol=1e-6)  # ORT may round differently per batch size


def test_stream_accepts_uint8_lists_and_single_images(pipe, sketches):
    u8 = (sketches[:3, 0] * 255).astype(np.uint8)
    batches = [u8[:2], [u8[2]], u8[0]]  # [B,H,W] uint8, a list of [H,W], one [H,W] image
    streamed = list(pipe.stream(batches, steps=1, seed=0))
    assert [s.shape for s in streamed] == [(2, 1, RES, RES), (1, 1, RES, RES), (1, 1, RES, RES)]
    np.testing.assert_allclose(np.concatenate(streamed), pipe.synthesize(np.concatenate([u8, u8[:1]]), seed=0), atol=1e-6)


def test_stream_uint8_output_is_rounded_float_output(pipe, sketches):
    f32 = np.concatenate(list(pipe.stream([sketches[:3], sketches[3:5]], steps=2, seed=1)))
    u8 = np.concatenate(list(pipe.stream([sketches[:3], sketches[3:5]], steps=2, seed=1, dtype=np.uint8)))
    assert u8.dtype == np.uint8 and u8.shape == f32.shape
    np.testing.assert_array_equal(u8, np.rint(f32 * np.float32(255)).astype(np.uint8))
    np.testing.assert_array_equal(pipe.synthesize(sketches[:3], steps=2, seed=1, dtype=np.uint8), u8[:3])


def test_torch_backend_streams_like_it_synthesizes(trained_model_dir, sketches):
    torch_pipe = cf.load_pipeline(trained_model_dir, backend="torch", device="cpu")
    assert torch_pipe.runner is None  # no GPU: the numpy path
    streamed = list(torch_pipe.stream([sketches[:3], sketches[3:4], sketches[4:8]], steps=2, seed=2))
    np.testing.assert_allclose(np.concatenate(streamed), torch_pipe.synthesize(sketches[:8], steps=2, seed=2), atol=1e-5)


def test_empty_input_yields_nothing(pipe):
    assert list(pipe.stream([], steps=2)) == []
    assert _no_workers_left()


# ---------------------------------------------------------------------------------------- errors and shutdown


def test_exception_from_the_input_iterator_propagates_after_earlier_batches(pipe, sketches):
    def source():
        yield sketches[:2]
        yield sketches[2:3]
        raise RuntimeError("camera unplugged")

    gen = pipe.stream(source(), steps=1)
    got = [next(gen), next(gen)]
    assert [len(g) for g in got] == [2, 1]
    with pytest.raises(RuntimeError, match="camera unplugged"):
        next(gen)
    with pytest.raises(StopIteration):
        next(gen)
    assert _no_workers_left()


def test_consumer_stopping_early_stops_the_worker(pipe, sketches):
    pulled = []

    def endless():
        i = 0
        while True:
            pulled.append(i)
            yield sketches[i % 8:i % 8 + 1]
            i += 1

    for i, _ in enumerate(pipe.stream(endless(), steps=1)):
        if i == 2:
            break
    assert _no_workers_left(), "prefetch worker still running after the consumer stopped"
    assert len(pulled) <= 3 + 2 + 1  # consumed + queue depth + the one being prepared

    gen = pipe.stream(endless(), steps=1)
    next(gen)
    gen.close()
    assert _no_workers_left()


def test_unstarted_stream_starts_no_thread(pipe, sketches):
    before = len(_workers())
    gen = pipe.stream([sketches[:1]] * 3)
    assert len(_workers()) == before
    del gen
    assert _no_workers_left()


@pytest.mark.parametrize("bad, err, match", [
    ("nan", InvalidInputError, r"stream batch 3: .*NaN"),
    ("range", InvalidInputError, r"stream batch 3: .*\[0, 1\]"),
    ("resolution", ModelMismatchError, rf"stream batch 3: the model expects {RES}x{RES}"),
    ("type", InvalidInputError, r"stream batch 3: .*str"),
])
def test_bad_batch_is_named_after_the_good_ones(pipe, sketches, bad, err, match):
    b = sketches[:2].copy()
    if bad == "nan":
        b[1, 0, 3, 3] = np.nan
    elif bad == "range":
        b = b * 4
    elif bad == "resolution":
        b = np.zeros((1, 1, RES * 2, RES * 2), np.float32)
    else:
        b = "not a sketch"
    gen = pipe.stream([sketches[:1], sketches[1:3], sketches[3:4], b, sketches[:1]], steps=1)
    assert [len(next(gen)) for _ in range(3)] == [1, 2, 1]
    with pytest.raises(err, match=match):
        next(gen)
    assert _no_workers_left()


def test_arguments_are_checked_at_the_call(pipe, sketches):
    batches = [sketches[:1]]
    with pytest.raises(InvalidInputError, match="steps"):
        pipe.stream(batches, steps=0)
    with pytest.raises(InvalidInputError, match="seed"):
        pipe.stream(batches, seed=-1)
    with pytest.raises(InvalidInputError, match="schedule"):
        pipe.stream(batches, steps=2, schedule=[1.5])
    with pytest.raises(InvalidInputError, match="shared"):
        pipe.stream(batches, steps=2, schedule=[[0.5], [0.3]])
    with pytest.raises(InvalidInputError, match="iterable"):
        pipe.stream(42)
    with pytest.raises(InvalidInputError, match="prefetch"):
        pipe.stream(batches, prefetch=0)
    with pytest.raises(InvalidInputError, match="dtype"):
        pipe.stream(batches, dtype=np.int16)
    with pytest.raises(ModelMismatchError, match="labels"):
        pipe.stream(batches, sketch_kind="labels")
    with pytest.raises(InvalidInputError, match="dtype"):
        pipe.synthesize(sketches[:1], dtype="float64")
    assert _no_workers_left()


def test_warmup_runs_on_cpu(pipe):
    assert pipe.warmup(steps=(1, 2)) >= 0
    with pytest.raises(InvalidInputError, match="steps"):
        pipe.warmup(steps=(0,))


def test_no_cuda_runner_without_gpu(pipe, trained_model_dir):
    assert pipe.runner is None and torch_callable(pipe.encoder) is None
    torch_pipe = cf.load_pipeline(trained_model_dir, backend="torch", device="cpu")
    assert torch_callable(torch_pipe.encoder) is None  # a CPU module is not a CUDA callable


# ---------------------------------------------------------------------------------------- the prefetch queue


def test_prefetcher_prepares_on_a_worker_in_order():
    seen_threads = set()

    def prepare(i, item):
        seen_threads.add(threading.current_thread().name)
        return i, item * 10

    with Prefetcher(range(6), prepare, depth=2) as items:
        assert list(items) == [(i, i * 10) for i in range(6)]
    assert seen_threads == {THREAD_NAME}
    assert _no_workers_left()


def test_prefetcher_stays_at_most_depth_ahead():
    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield i

    with Prefetcher(source(), lambda i, x: x, depth=2) as items:
        assert next(items) == 0
        time.sleep(0.2)
        assert len(pulled) <= 1 + 2 + 1  # consumed, queued, held by the blocked worker
    assert _no_workers_left()


def test_prefetcher_error_in_prepare_and_next_nowait():
    def prepare(i, x):
        if i == 2:
            raise ValueError("bad item 2")
        return x

    items = Prefetcher(iter([10, 11, 12, 13]), prepare, depth=1)
    try:
        assert next(items) == 10
        sentinel = object()
        deadline = time.monotonic() + 2
        got = sentinel
        while got is sentinel and time.monotonic() < deadline:
            got = items.next_nowait(sentinel)
        assert got == 11
        with pytest.raises(ValueError, match="bad item 2"):
            while True:
                if items.next_nowait(sentinel) is sentinel:
                    time.sleep(0.01)
        with pytest.raises(StopIteration):
            next(items)
    finally:
        items.close()
    assert _no_workers_left()


def test_prefetch_generator_close_joins_a_blocked_worker():
    gen = prefetch(iter(range(1000)), lambda i, x: x, depth=1)
    assert next(gen) == 0
    time.sleep(0.05)  # the worker is now blocked on the full queue
    gen.close()
    assert _no_workers_left(timeout=1.0)
    with pytest.raises(ValueError, match="depth"):
        Prefetcher([], lambda i, x: x, depth=0)


# ---------------------------------------------------------------------------------------- runner helpers (no GPU)


def test_buckets_and_chunks():
    assert check_buckets([64, 1, 8, 8]) == (1, 8, 64)
    with pytest.raises(InvalidInputError):
        check_buckets([0, 4])
    assert [bucket_for(n, (1, 8, 64)) for n in (1, 2, 8, 9, 64)] == [1, 8, 8, 64, 64]
    with pytest.raises(InvalidInputError, match="largest bucket"):
        bucket_for(65, (1, 8, 64))
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(4, 4) == [(0, 4)]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_write_stage_layout(dtype):
    r, bucket, steps, n = 4, 8, 3, 5
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (n, r, r)) if dtype == np.uint8 else rng.random((n, 1, r, r))).astype(dtype)
    t = rng.random((steps - 1, n)).astype(np.float32)
    layout = StageLayout.make(bucket, steps, r * r * np.dtype(dtype).itemsize)
    assert layout.input_offset % 256 == 0 and layout.input_offset >= 16 + 4 * (steps - 1) * bucket
    stage = np.full(layout.total_bytes, 0xAB, np.uint8)
    keys = np.array([2**64 - 1, 1, 2, 3, 123], dtype=np.uint64)
    nbytes = write_stage(stage, layout, x, t, keys)
    assert nbytes == layout.input_offset + n * layout.row_bytes
    assert layout.t_offset == 16 * bucket
    params = stage[:16 * bucket].view(np.uint64).reshape(bucket, 2)
    assert params[:, 0].tolist() == keys.tolist() + [0] * (bucket - n) and (params[:, 1] == 0).all()
    tt = stage[layout.t_offset:layout.t_offset + layout.t_bytes].view(np.float32).reshape(steps - 1, bucket)
    np.testing.assert_array_equal(tt[:, :n], t)
    assert (tt[:, n:] == 0.5).all()
    got = stage[layout.input_offset:nbytes].view(dtype).reshape(x.shape)
    np.testing.assert_array_equal(got, x)


# ---------------------------------------------------------------------------------------- runner on a CPU stand-in
# The CudaGraphRunner's bookkeeping (staging layout vs device views, slots, buckets, padding, chunking, order,
# per-request seed / first_sample / t through device memory, capture policy, stream polling and shutdown) run
# on CPU tensors: torch.cuda's streams, events and graphs are replaced by no-op stand-ins, the kernels by the
# host kernels on CPU tensors, and a "graph" replays the loop it recorded. tests/test_runtime_cuda.py checks
# the real thing on a GPU.


class _FakeStream:
    cuda_stream = 0

    def __init__(self, *args, **kwargs):
        pass

    def wait_event(self, event):
        pass

    def wait_stream(self, stream):
        pass

    def synchronize(self):
        pass


class _FakeEvent:
    def __init__(self, *args, **kwargs):
        self.recorded = 0

    def record(self, stream=None):
        self.recorded += 1

    def synchronize(self):
        pass


class _FakeGraph:
    def __init__(self, loop):
        self.loop = loop
        self.replays = 0

    def replay(self):
        self.replays += 1
        self.loop()


def _fake_kernels(torch, device_params: bool):
    import types

    from cheartflow_sdk import kernels as real

    def back(arr, out):
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if out is None:
            return t
        out.copy_(t.reshape(out.shape))
        return out

    def preprocess(src, dtype=np.float32, *, out=None, stream=None):
        return back(real.preprocess(src.numpy(), dtype), out)

    def postprocess(x, dtype=np.float32, *, out=None, stream=None):
        return back(real.postprocess(x.numpy(), dtype), out)

    def renoise(x0, x1, t, sigma, seed, offset, first_sample=0, out=None, *, stream=None):
        return back(real.renoise(x0.numpy(), x1.numpy(), t.numpy(), sigma, seed, offset, first_sample), out)

    def renoise_device_params(x0, x1, t, sigma, params, offset, out=None, *, stream=None):
        seed, first = (int(v) for v in params.view(torch.int64).numpy().view(np.uint64))
        return renoise(x0, x1, t, sigma, seed, offset, first, out)

    def renoise_keys(x0, x1, t, sigma, keys, offset, out=None, *, stream=None):
        return back(real.renoise_keys(x0.numpy(), x1.numpy(), np.asarray(t), sigma, keys, offset), out)

    ns = types.SimpleNamespace(preprocess=preprocess, postprocess=postprocess, renoise=renoise,
                               renoise_keys=renoise_keys, cuda_available=lambda: True)
    if device_params:
        ns.renoise_device_params = renoise_device_params
    return ns


def _toy(torch):
    def fn(x, t):  # elementwise, so any batching gives the same bits
        tt = t.float()[:, None, None, None]
        return torch.tanh(1.7 * x) * (1 - tt) + tt * x
    return fn


@pytest.fixture()
def cpu_runner(monkeypatch):
    """make(fn, device_params=True, **kwargs) -> a CudaGraphRunner on CPU tensors."""
    torch = pytest.importorskip("torch")
    import contextlib

    from cheartflow_sdk.runtime import cuda_graph_runner as cgr

    for name, value in {"is_available": lambda: True, "current_device": lambda: 0,
                        "device": lambda *a, **k: contextlib.nullcontext(), "stream": lambda *a, **k: contextlib.nullcontext(),
                        "Stream": _FakeStream, "Event": _FakeEvent, "current_stream": lambda *a, **k: _FakeStream(),
                        "synchronize": lambda *a, **k: None}.items():
        monkeypatch.setattr(torch.cuda, name, value)

    class CpuRunner(cgr.CudaGraphRunner):
        def _device_zeros(self, n, dtype):
            return torch.zeros(n, dtype=dtype)

        def _pinned_zeros(self, n):
            return torch.zeros(n, dtype=torch.uint8)

        def _capture(self, key, v, steps, out_dtype):
            for _ in range(self.capture_warmup):
                self._loop(v, steps, out_dtype, eager=True)
            graph = _FakeGraph(lambda: self._loop(v, steps, out_dtype, eager=False))
            self._graphs[key] = graph
            return graph

    def make(fn=None, device_params=True, **kwargs):
        monkeypatch.setattr(cgr, "kernels", _fake_kernels(torch, device_params))
        return CpuRunner(fn or _toy(torch), RES, 0.5, **kwargs)

    return make


def _numpy_reference(fn, x, steps, schedule, seed, dtype):
    """The numpy sampler (the synthesize path) over the same torch callable."""
    import torch

    from cheartflow_sdk import kernels, sampling

    def encoder(xx, tt):
        with torch.no_grad():
            return fn(torch.from_numpy(xx), torch.from_numpy(np.asarray(tt, np.float32))).numpy()

    noise = sampling.PhiloxNoise(keys=sampling.noise_keys(x, seed), sigma=0.5)
    return kernels.postprocess(sampling.sample(encoder, kernels.preprocess(x), steps, schedule, noise), dtype)


def _u8(n, seed=0):
    return ((np.random.default_rng(seed).random((n, RES, RES)) < 0.2) * 255).astype(np.uint8)


@pytest.mark.parametrize("device_params", [True, False])
@pytest.mark.parametrize("use_graphs", [True, False])
def test_runner_bookkeeping_matches_the_numpy_sampler(cpu_runner, device_params, use_graphs):
    import torch

    runner = cpu_runner(device_params=device_params, buckets=(1, 4, 8), use_graphs=use_graphs, capture_after=0)
    fn = _toy(torch)
    cases = [(1, 1, 0, np.uint8, np.uint8), (3, 2, 11, np.uint8, np.float32), (3, 2, 12, np.uint8, np.uint8),
             (8, 3, 2**64 - 1, np.float32, np.float32), (11, 2, 4, np.uint8, np.uint8),  # 11: chunks 8 + 3
             (3, 2, 11, np.float32, np.uint8), (2, 3, 7, np.uint8, np.uint8), (5, 2, [1, 2, 3, 4, 5], np.uint8, np.uint8)]
    for n, steps, seed, in_dt, out_dt in cases:
        x = _u8(n, n + steps)
        xin = x if in_dt == np.uint8 else (x[:, None] / np.float32(255)).astype(np.float32)
        sched = np.random.default_rng(n).uniform(0.1, 0.9, (n, steps - 1)).astype(np.float32) if steps > 1 else ()
        got = runner.run(xin, steps, sched, seed=seed, dtype=out_dt)
        want = _numpy_reference(fn, xin, steps, sched, seed, out_dt)
        assert got.dtype == np.dtype(out_dt) and got.shape == (n, 1, RES, RES)
        np.testing.assert_array_equal(got, want, err_msg=f"n={n} steps={steps} seed={seed}")
    graphs = runner.graph_count
    if not use_graphs:
        assert graphs == 0
    elif device_params:
        assert graphs >= 7
    else:  # multi-step requests need the device-params kernel to be captured
        assert graphs >= 1 and all(key[2] == 1 for key in runner._graphs)


def test_runner_capture_policy_and_warmup(cpu_runner):
    runner = cpu_runner(buckets=(1, 4))
    x = _u8(4)
    outs = [runner.run(x, 2, (0.5,), seed=3) for _ in range(2)]
    assert runner.graph_count == 0  # first use of each slot's key: eager
    outs += [runner.run(x, 2, (0.5,), seed=3) for _ in range(2)]
    assert runner.graph_count == 2  # second use: captured, then replayed
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    warm = cpu_runner(buckets=(1, 4, 8))
    assert warm.warmup(steps=(1, 2), batch_sizes=(1, 5), sketch_dtype=np.uint8, dtype=np.uint8) >= 0
    assert warm.graph_count == 2 * 2 * 2 and {k[1] for k in warm._graphs} == {1, 8}  # 5 runs in bucket 8
    with pytest.raises(InvalidInputError, match="steps"):
        warm.run(x, 17)
    with pytest.raises(InvalidInputError, match="dtype"):
        warm.run(x.astype(np.int16), 1)
    with pytest.raises(InvalidInputError, match=f"\\[B,{RES},{RES}\\]"):
        warm.run(np.zeros((2, RES + 1, RES), np.uint8), 1)


def test_runner_stream_order_chunks_polling_errors_and_close(cpu_runner):
    import torch

    runner = cpu_runner(buckets=(1, 4), capture_after=0)
    x = _u8(12, 5)
    sizes = [1, 3, 6, 1, 1]  # 6 > the largest bucket: two chunks
    bounds = np.cumsum([0] + sizes)
    batches = [x[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    want = _numpy_reference(_toy(torch), x[:bounds[-1]], 2, (0.5,), 8, np.uint8)
    for source in (iter(batches), Prefetcher(batches, lambda i, b: b, depth=2)):  # blocking and polled inputs
        out = list(runner.stream(source, 2, (0.5,), seed=8, dtype=np.uint8))
        assert [len(o) for o in out] == sizes
        np.testing.assert_array_equal(np.concatenate(out), want)
    assert _no_workers_left()

    def failing():
        yield x[:2]
        yield x[2:3]
        raise RuntimeError("source failed")

    gen = runner.stream(failing(), 1)
    assert [len(next(gen)), len(next(gen))] == [2, 1]  # both finished before the error is raised
    with pytest.raises(RuntimeError, match="source failed"):
        next(gen)
    gen = runner.stream(iter([x[:4]] * 50), 1)
    next(gen)
    gen.close()
    assert all(slot.job is None for slot in runner._slots)  # abandoned chunks were waited for, slots are free
    np.testing.assert_array_equal(runner.run(x[:4], 1), _numpy_reference(_toy(torch), x[:4], 1, (), 0, np.float32))


def test_pipeline_over_a_runner_equals_the_numpy_pipeline(cpu_runner, sketches):
    import torch

    from cheartflow_sdk.config import ModelConfig
    from cheartflow_sdk.pipeline import Pipeline

    fn = _toy(torch)

    class Encoder:  # the same callable, as a numpy encoder for the numpy path
        config = ModelConfig(resolution=RES, base_channels=8, channel_mult=(1, 2), attention_levels=(1,), groups=4)
        name = "toy"

        def __call__(self, xx, tt):
            with torch.no_grad():
                return fn(torch.from_numpy(xx), torch.from_numpy(np.asarray(tt, np.float32))).numpy()

    numpy_pipe = Pipeline(Encoder(), Path("toy"))
    gpu_like = Pipeline(Encoder(), Path("toy"), runner=cpu_runner(fn, buckets=(1, 4, 8)))
    sk = sketches[:13]
    batches = [sk[:5], sk[5:6], sk[6:13]]
    a = list(gpu_like.stream(batches, steps=2, seed=4))
    b = list(numpy_pipe.stream(batches, steps=2, seed=4))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(gpu_like.synthesize(sk, steps=3, seed=1, batch_size=6),
                                  numpy_pipe.synthesize(sk, steps=3, seed=1, batch_size=6))
    per_sample = np.linspace(0.2, 0.8, 13, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(gpu_like.synthesize(sk, steps=2, schedule=per_sample, seed=2),
                                  numpy_pipe.synthesize(sk, steps=2, schedule=per_sample, seed=2))
    u8 = (sk[:4, 0] * 255).astype(np.uint8)  # uint8 stays uint8 on the runner path (its own preprocess rounding)
    np.testing.assert_allclose(gpu_like.synthesize(u8, steps=2), numpy_pipe.synthesize(u8, steps=2), atol=1e-5)
    with pytest.raises(InvalidInputError, match="stream batch 1"):
        list(gpu_like.stream([sk[:2], sk[:2] * 3], steps=1))
    gen = gpu_like.stream(iter([sk[:2]] * 100), steps=1)
    next(gen)
    gen.close()
    assert _no_workers_left()
    assert gpu_like.warmup(steps=(1,), batch_sizes=(4,)) >= 0 and gpu_like.runner.graph_count >= 2


def test_the_boundary_answers_the_same_on_the_host_path_and_on_a_runner(cpu_runner, sketches):
    """One validation boundary (Pipeline): a request is accepted or refused alike on both paths. Before it,
    steps above the runner's staging limit passed on the host path (with allow_unvalidated_steps) and failed on
    the runner, and warmup's sketch_dtype / batch_sizes were checked by the runner only."""
    import torch

    from cheartflow_sdk.config import ModelConfig
    from cheartflow_sdk.pipeline import Pipeline
    from cheartflow_sdk.validation import MAX_STEPS

    fn = _toy(torch)

    class Encoder:
        config = ModelConfig(resolution=RES, base_channels=8, channel_mult=(1, 2), attention_levels=(1,), groups=4)
        name = "toy"

        def __call__(self, xx, tt):
            with torch.no_grad():
                return fn(torch.from_numpy(xx), torch.from_numpy(np.asarray(tt, np.float32))).numpy()

    host = Pipeline(Encoder(), Path("toy"))
    gpu_like = Pipeline(Encoder(), Path("toy"), runner=cpu_runner(fn, buckets=(1, 4)))
    sk = sketches[:2]
    unvalidated = Encoder.config.max_steps + 1
    outs = []
    for pipe in (host, gpu_like):
        with pytest.raises(InvalidInputError, match=f"at most {MAX_STEPS} network evaluations"):
            pipe.synthesize(sk, steps=MAX_STEPS + 1, allow_unvalidated_steps=True)
        with pytest.raises(InvalidInputError, match=f"at most {MAX_STEPS} network evaluations"):
            next(pipe.stream([sk], steps=MAX_STEPS + 1, allow_unvalidated_steps=True))
        with pytest.raises(InvalidInputError, match="validated for at most"):
            pipe.synthesize(sk, steps=unvalidated)
        with pytest.raises(InvalidInputError, match="validated for at most"):
            pipe.warmup(steps=(1, unvalidated))
        with pytest.raises(InvalidInputError, match="sketch_dtype"):
            pipe.warmup(steps=(1,), sketch_dtype=np.int16)
        with pytest.raises(InvalidInputError, match="batch_sizes"):
            pipe.warmup(steps=(1,), batch_sizes=(0,))
        with pytest.raises(InvalidInputError, match="dtype"):
            pipe.warmup(steps=(1,), dtype=np.float64)
        outs.append(pipe.synthesize(sk, steps=unvalidated, seed=5, allow_unvalidated_steps=True))
    np.testing.assert_array_equal(outs[0], outs[1])
