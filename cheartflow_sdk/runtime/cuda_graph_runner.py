"""The device-resident K-step sampling loop, captured as CUDA graphs, with pipelined host <-> device copies.

One request chunk (at most the largest bucket of sketches) goes through:

    host sketches --(pinned staging, H2D stream)--> device  --(compute stream: one graph replay)-->
        preprocess -> E(x1, 1) -> [renoise_k -> E(x_t, t_k)] x (K - 1) -> postprocess
    --(D2H stream)--> pinned output --> a new numpy array

* Buckets: a chunk of n sketches runs in the smallest bucket >= n (padding rows are zeroed on the device
  and their outputs dropped); one graph per (slot, bucket, steps, input dtype, output dtype).
* Per-request values reach a captured graph through device memory, not kernel arguments: each slot has one
  device staging buffer holding one {noise key, 0} pair per row (uint64 [bucket, 2]; the keys come from the
  seed and each sketch, :func:`cheartflow_sdk.sampling.noise_keys`, and each row's pair is read by its own
  ``kernels.renoise_device_params`` launch at run time), the schedule t as float32 [K-1, bucket], then the
  sketches. One H2D copy moves all of it. A row's noise is that of a batch of one under its key, so the
  images equal the numpy sampler's (``kernels.renoise_keys``) bit for bit, whatever the chunking.
* Double buffering: two slots (staging, output and graphs each), a copy-in stream, a compute stream and a
  copy-out stream ordered by events, so the copy-in of chunk i + 1 and the copy-out of chunk i - 1 overlap
  the compute of chunk i. ``stream()`` keeps two chunks in flight and yields results in input order.
* ``use_graphs=False`` runs exactly the same launches eagerly: the reference a graph replay must equal bit
  for bit (tests/test_runtime_cuda.py). Because they are equal, a key's first request runs eagerly and the
  graph is captured from its second (``capture_after``), so one-off requests pay no capture; ``warmup()``
  captures ahead of time. A failed capture (``runtime.graph_capture``, the helper every engine uses) turns
  graphs off, keeps the reason in ``graph_error`` and runs the same launches eagerly.

The encoder is any callable on torch CUDA tensors ``fn(x float32 [B,1,R,R], t float32 [B]) -> x0_hat``
(float32, or float16 which is widened); it must not synchronize with the host, so that it can be captured.
torch is imported when a runner is built, never at import time of this module.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import contract, kernels
from .._optional import require
from ..errors import InvalidInputError, NativeUnavailableError
from ..sampling import request_keys, run_steps, schedule_columns
from ..validation import (MAX_STEPS, SKETCH_DTYPES, check_batch_sizes, check_output_dtype,
                          check_sketch_dtype)
from .graph_capture import BucketGraphs

log = logging.getLogger(__name__)

DEFAULT_BUCKETS: tuple[int, ...] = tuple(sorted(set(contract.BATCH_BUCKETS) | {512}))
DEFAULT_MAX_STEPS = MAX_STEPS
_PARAMS_ROW_BYTES = 16  # {noise key, first_sample = 0} as two uint64, one pair per row
_ALIGN = 256


# =============================================================================================
# Pure helpers (no torch; unit-tested on CPU)
# =============================================================================================


def check_buckets(buckets: Iterable[int]) -> tuple[int, ...]:
    """Sorted unique positive bucket sizes."""
    return check_batch_sizes(buckets, "buckets")


def bucket_for(n: int, buckets: Sequence[int]) -> int:
    """The smallest bucket holding n rows (n must be <= the largest bucket)."""
    for b in buckets:
        if n <= b:
            return b
    raise InvalidInputError(f"a chunk of {n} rows exceeds the largest bucket {buckets[-1]}")


def chunk_bounds(n: int, max_rows: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of at most max_rows each covering n rows."""
    return [(a, min(a + max_rows, n)) for a in range(0, n, max_rows)]


def _round_up(v: int, a: int) -> int:
    return (v + a - 1) // a * a


@dataclass(frozen=True)
class StageLayout:
    """Byte layout of a slot's staging buffer for one (bucket, steps, input dtype)."""

    bucket: int
    steps: int
    row_bytes: int  # bytes of one input sketch
    t_offset: int = _PARAMS_ROW_BYTES  # the params block (bucket {key, 0} pairs) comes first
    t_bytes: int = 0
    input_offset: int = 0

    @classmethod
    def make(cls, bucket: int, steps: int, row_bytes: int) -> StageLayout:
        t_bytes = 4 * (steps - 1) * bucket
        params = _PARAMS_ROW_BYTES * bucket
        return cls(bucket, steps, row_bytes, params, t_bytes, _round_up(params + t_bytes, _ALIGN))

    def copy_bytes(self, n: int) -> int:
        """Bytes to copy host -> device for n real rows (params, full t block, n sketches)."""
        return self.input_offset + n * self.row_bytes

    @property
    def total_bytes(self) -> int:
        return self.input_offset + self.bucket * self.row_bytes


def write_stage(stage: np.ndarray, layout: StageLayout, sketches: np.ndarray, t_cols: np.ndarray,
                keys: np.ndarray) -> int:
    """Fill a uint8 staging array for one chunk; returns the number of bytes to copy to the device.

    sketches: n rows (uint8 or float32, any shape [n, ...]); t_cols: float32 [K-1, n]; keys: uint64 [n]
    noise keys (padding rows get key 0); padding columns of t get 0.5 (a valid time), so padded rows
    compute finite values that are then dropped.
    """
    n = len(sketches)
    params = stage[0:layout.t_offset].view(np.uint64).reshape(layout.bucket, 2)
    params[:, 1] = 0
    params[:n, 0] = np.asarray(keys, dtype=np.uint64).reshape(n)
    params[n:, 0] = 0
    if layout.steps > 1:
        t = stage[layout.t_offset:layout.t_offset + layout.t_bytes].view(np.float32).reshape(layout.steps - 1, layout.bucket)
        t[:, :n] = t_cols
        t[:, n:] = 0.5
    rows = np.ascontiguousarray(sketches).reshape(n, -1).view(np.uint8)
    if rows.shape[1] != layout.row_bytes:
        raise InvalidInputError(f"internal: sketch rows of {rows.shape[1]} bytes, layout expects {layout.row_bytes}")
    stage[layout.input_offset:layout.input_offset + n * layout.row_bytes].reshape(n, layout.row_bytes)[...] = rows
    return layout.copy_bytes(n)


# =============================================================================================
# Encoders as torch callables
# =============================================================================================


def torch_callable(encoder: Any) -> Callable[[Any, Any], Any] | None:
    """A callable on torch CUDA tensors for `encoder`, or None when it only takes numpy arrays.

    Recognized: ``encoder.torch_callable()`` (returns the callable or None), ``encoder.accepts_torch_cuda``
    (the encoder itself takes torch CUDA tensors), or an ``encoder.module`` torch module on a CUDA device
    (the PyTorch backend). Never imports torch itself.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    factory = getattr(encoder, "torch_callable", None)
    if callable(factory):
        return factory()
    if getattr(encoder, "accepts_torch_cuda", False):
        return encoder
    module = getattr(encoder, "module", None)
    if isinstance(module, torch.nn.Module):
        try:
            param = next(module.parameters())
        except StopIteration:
            return None
        if param.is_cuda:
            return module
    return None


# =============================================================================================
# The runner
# =============================================================================================


@dataclass
class _Views:
    """Device views (torch tensors) a graph of one key reads and writes; kept alive with the graph."""

    sketch: Any
    t: Any  # float32 [K-1, bucket] or None
    params: Any  # uint64 [bucket, 2]: {noise key, 0} per row
    t_one: Any  # float32 [bucket] of ones
    out: Any  # [bucket, 1, R, R] float32 / uint8
    # host copy of the request's keys (padded to the bucket), used only by the eager path without
    # renoise_device_params
    keys: Any = None


@dataclass
class _DeviceNoise:
    """The samplers' noise source on the runner's device tensors (re-noise of Eq. 3, step k = `step`)."""

    runner: CudaGraphRunner
    views: _Views
    stream: int
    eager: bool

    def renoise(self, x0_hat: Any, x1: Any, t: Any, step: int) -> Any:
        r, v, s = self.runner, self.views, self.stream
        if r.device_params:  # one launch per row: each reads its own {key, 0} at run time
            x_t = r._torch.empty_like(x0_hat)
            for b in range(x0_hat.shape[0]):
                kernels.renoise_device_params(x0_hat[b:b + 1], x1[b:b + 1], t[b:b + 1], r.sigma, v.params[b], step,
                                              out=x_t[b:b + 1], stream=s)
            return x_t
        if self.eager:
            return kernels.renoise_keys(x0_hat, x1, t.cpu().numpy(), r.sigma, v.keys, step, stream=s)
        # pragma: no cover - guarded by _graph_for
        raise NativeUnavailableError("internal: a multi-step graph needs kernels.renoise_device_params")


@dataclass
class _Slot:
    index: int
    stage_host: Any  # pinned uint8 tensor
    stage_np: np.ndarray  # numpy view of stage_host
    stage_dev: Any  # device uint8 tensor
    out_host: Any
    out_np: np.ndarray
    out_dev: Any
    h2d_done: Any
    compute_done: Any
    d2h_done: Any
    job: Job | None = None


@dataclass
class Job:
    """One submitted chunk; ``CudaGraphRunner.collect`` returns its images."""

    slot: _Slot
    rows: int
    out_dtype: np.dtype
    out_bytes: int
    result: np.ndarray | None = None


class CudaGraphRunner(BucketGraphs):
    """Fixed-step sampling of sketch chunks on one GPU: bucketed CUDA graphs of the whole K-step loop."""

    takes_uint8 = True  # uint8 intensity sketches are copied as they are (a quarter of the bytes) and preprocessed on the GPU

    def __init__(self, fn: Callable[[Any, Any], Any], resolution: int, sigma: float, device: Any = "cuda",
                 buckets: Iterable[int] = DEFAULT_BUCKETS, max_steps: int = DEFAULT_MAX_STEPS,
                 use_graphs: bool = True, capture_after: int = 1, capture_warmup: int = 2,
                 capture_error_mode: str = "thread_local", name: str = "torch"):
        """fn: the encoder on torch CUDA tensors; buckets: the batch sizes graphs are captured for (a chunk runs in
        the smallest bucket that holds it); max_steps: the most encoder calls per request; use_graphs: False runs
        every request eagerly; capture_after: eager runs of a (slot, bucket, steps, dtypes) key before it is
        captured (0: on first use; warmup() always captures); capture_warmup: eager runs right before a capture."""
        torch = require("torch")
        self._torch = torch
        if not torch.cuda.is_available():
            raise NativeUnavailableError("CudaGraphRunner needs a CUDA GPU visible to torch")
        if not kernels.cuda_available():
            raise NativeUnavailableError("CudaGraphRunner needs cheartflow_sdk._C built with its CUDA kernels "
                                         "(rebuild the package with CUDA) and a usable GPU")
        dev = torch.device(device)
        if dev.type != "cuda":
            raise InvalidInputError(f"CudaGraphRunner: device must be a CUDA device, got {device!r}")
        self.device = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        self.fn = fn
        self.name = name
        self.resolution = int(resolution)
        self.sigma = float(sigma)
        self.buckets = check_buckets(buckets)
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise InvalidInputError(f"max_steps must be an int >= 1, got {max_steps!r}")
        self.max_steps = max_steps
        self.device_params = hasattr(kernels, "renoise_device_params")
        modes = (capture_error_mode,) + (("relaxed",) if capture_error_mode != "relaxed" else ())
        self._init_graphs(use_graphs, error_modes=modes, shared_pool=True)
        if self.use_graphs and not self.device_params:
            log.warning("kernels.renoise_device_params is missing: multi-step requests run without CUDA graphs "
                        "(one-step requests still use graphs)")
        self.capture_after = int(capture_after)
        self.capture_warmup = int(capture_warmup)
        self._uses: dict[tuple, int] = {}
        self._lock = threading.RLock()
        self._graphs: dict[tuple, Any] = {}
        self._views: dict[tuple, _Views] = {}
        self.capture_seconds: dict[tuple, float] = {}
        pixels = self.resolution * self.resolution
        max_b = self.buckets[-1]
        stage_bytes = StageLayout.make(max_b, self.max_steps, pixels * 4).total_bytes
        out_bytes = max_b * pixels * 4
        with torch.cuda.device(self.device):
            self._compute = torch.cuda.Stream(self.device)
            self._h2d = torch.cuda.Stream(self.device)
            self._d2h = torch.cuda.Stream(self.device)
            self._t_one = self._device_zeros(max_b, torch.float32)
            self._t_one.fill_(1.0)
            self._slots = [self._make_slot(i, stage_bytes, out_bytes) for i in range(2)]
            torch.cuda.synchronize(self.device)
        self._next_slot = 0

    # allocation (two methods, so that tests can run the bookkeeping on CPU tensors)
    def _device_zeros(self, n: int, dtype: Any) -> Any:
        return self._torch.zeros(n, dtype=dtype, device=self.device)

    def _pinned_zeros(self, n: int) -> Any:
        return self._torch.zeros(n, dtype=self._torch.uint8, pin_memory=True)

    def _make_slot(self, index: int, stage_bytes: int, out_bytes: int) -> _Slot:
        torch = self._torch
        stage_host = self._pinned_zeros(stage_bytes)
        out_host = self._pinned_zeros(out_bytes)
        return _Slot(index, stage_host, stage_host.numpy(), self._device_zeros(stage_bytes, torch.uint8),
                     out_host, out_host.numpy(), self._device_zeros(out_bytes, torch.uint8),
                     torch.cuda.Event(), torch.cuda.Event(), torch.cuda.Event())

    def __repr__(self) -> str:
        return (f"CudaGraphRunner(name={self.name!r}, device={self.device}, buckets={self.buckets}, "
                f"graphs={len(self._graphs)}, use_graphs={self.use_graphs})")

    # ------------------------------------------------------------------ bounds of the staging buffers
    # (request values are validated at the public boundary, ``Pipeline``; these keep the copies in bounds)

    def _check_steps(self, steps: Any) -> int:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= self.max_steps:
            raise InvalidInputError(f"steps must be an int in [1, {self.max_steps}] for this runner, got {steps!r}")
        return int(steps)

    def _as_rows(self, sketches: Any, name: str = "sketches") -> np.ndarray:
        """Sketches as uint8 [n, R, R] or float32 [n, 1, R, R] (values are trusted: validate them first)."""
        x = np.asarray(sketches)
        r = self.resolution
        if x.dtype not in SKETCH_DTYPES:
            raise InvalidInputError(f"{name}: the CUDA runner takes uint8 [B,R,R] or float32 [B,1,R,R] sketches, "
                                    f"got dtype {x.dtype}")
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3 or x.shape[1:] != (r, r) or x.shape[0] == 0:
            raise InvalidInputError(f"{name}: expected [B,{r},{r}] or [B,1,{r},{r}] with B >= 1, got shape {np.shape(sketches)}")
        return np.ascontiguousarray(x)

    # ------------------------------------------------------------------ the loop

    def _views_for(self, slot: _Slot, bucket: int, steps: int, in_dtype: np.dtype, out_dtype: np.dtype) -> _Views:
        key = (slot.index, bucket, steps, in_dtype.str, out_dtype.str)
        views = self._views.get(key)
        if views is None:
            torch = self._torch
            r = self.resolution
            layout = StageLayout.make(bucket, steps, r * r * in_dtype.itemsize)
            st = slot.stage_dev
            raw = st[layout.input_offset:layout.input_offset + bucket * layout.row_bytes]
            sketch = raw.view(torch.float32).view(bucket, 1, r, r) if in_dtype == np.float32 else raw.view(bucket, r, r)
            t = None
            if steps > 1:
                t = st[layout.t_offset:layout.t_offset + layout.t_bytes].view(torch.float32).view(steps - 1, bucket)
            params = st[0:layout.t_offset].view(torch.uint64).view(bucket, 2)
            out_raw = slot.out_dev[:bucket * r * r * out_dtype.itemsize]
            out = out_raw.view(torch.float32 if out_dtype == np.float32 else torch.uint8).view(bucket, 1, r, r)
            views = _Views(sketch, t, params, self._t_one[:bucket], out)
            self._views[key] = views
        return views

    def _encode(self, x: Any, t: Any) -> Any:
        y = self.fn(x, t)
        if isinstance(y, (list, tuple)) and len(y) == 1:  # exported programs may return their outputs as a list
            y = y[0]
        if tuple(y.shape) != tuple(x.shape):
            raise InvalidInputError(f"encoder {self.name!r} returned shape {tuple(y.shape)} for input {tuple(x.shape)}")
        if y.dtype != self._torch.float32:
            y = y.float()
        return y if y.is_contiguous() else y.contiguous()

    def _loop(self, v: _Views, steps: int, out_dtype: np.dtype, eager: bool) -> None:
        """preprocess -> the samplers' K-step loop (:func:`cheartflow_sdk.sampling.run_steps`) -> postprocess,
        on the current stream."""
        torch = self._torch
        s = int(torch.cuda.current_stream(self.device).cuda_stream)
        with torch.no_grad():
            x1 = kernels.preprocess(v.sketch, np.float32, stream=s)
            noise = _DeviceNoise(self, v, s, eager)
            x0 = run_steps(self._encode, x1, v.t_one, v.t if steps > 1 else (), noise)
            kernels.postprocess(x0, out_dtype, out=v.out, stream=s)

    def _graph_for(self, slot: _Slot, bucket: int, steps: int, in_dtype: np.dtype, out_dtype: np.dtype,
                   capture: bool | None) -> Any:
        """The key's graph; captured now if `capture`, or (None) once the key has run `capture_after` times."""
        if not self.use_graphs or (steps > 1 and not self.device_params):
            return None
        key = (slot.index, bucket, steps, in_dtype.str, out_dtype.str)
        graph = self._graphs.get(key)
        if graph is None:
            uses = self._uses.get(key, 0)
            self._uses[key] = uses + 1
            if capture or (capture is None and uses >= self.capture_after):
                graph = self._capture(key, self._views_for(slot, bucket, steps, in_dtype, out_dtype), steps, out_dtype)
        return graph

    def _capture(self, key: tuple, v: _Views, steps: int, out_dtype: np.dtype) -> Any:
        """The key's graph of the whole loop, captured on the compute stream (None: capture failed, graphs off)."""
        t0 = time.perf_counter()
        self._torch.cuda.synchronize(self.device)  # nothing of ours in flight: warm-up runs reuse the slot buffers

        def warm_up(stream: Any) -> None:  # on the capture stream: lazy cuDNN / cuBLAS init
            for _ in range(self.capture_warmup):
                self._loop(v, steps, out_dtype, eager=True)

        graph = self._capture_graph(f"the {steps}-step loop of encoder {self.name!r} (bucket {key[1]})", warm_up,
                                    lambda stream: self._loop(v, steps, out_dtype, eager=False), stream=self._compute)
        if graph is not None:
            self._graphs[key] = graph
            self.capture_seconds[key] = time.perf_counter() - t0
            log.debug("captured %s in %.3f s", key, self.capture_seconds[key])
        return graph

    # ------------------------------------------------------------------ submit / collect

    def _take_slot(self) -> _Slot:
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        if slot.job is not None:  # the chunk submitted two before: keep its images in the job
            self._finish(slot.job)
        return slot

    def _finish(self, job: Job) -> None:
        slot = job.slot
        slot.d2h_done.synchronize()
        n = job.rows
        r = self.resolution
        job.result = slot.out_np[:job.out_bytes].view(job.out_dtype).reshape(n, 1, r, r).copy()
        slot.job = None

    def submit(self, sketches: np.ndarray, steps: int, t_cols: np.ndarray, keys: np.ndarray,
               dtype: Any = np.float32, capture: bool | None = None) -> Job:
        """Launch one chunk (<= the largest bucket) asynchronously; ``collect(job)`` returns its images.

        sketches: uint8 [n,R,R] or float32 [n,1,R,R] (validated values); t_cols: float32 [steps-1, n];
        keys: uint64 [n] noise keys (``sampling.noise_keys``); capture: True captures the chunk's graph now
        if needed, None after `capture_after` eager runs.
        """
        x = self._as_rows(sketches)
        steps = self._check_steps(steps)
        out_dtype = check_output_dtype(dtype)
        n = len(x)
        bucket = bucket_for(n, self.buckets)
        t_cols = np.asarray(t_cols, dtype=np.float32).reshape(steps - 1, n) if steps > 1 else np.zeros((0, n), np.float32)
        keys = np.asarray(keys, dtype=np.uint64).reshape(n)
        torch = self._torch
        with self._lock, torch.cuda.device(self.device):
            slot = self._take_slot()
            v = self._views_for(slot, bucket, steps, x.dtype, out_dtype)
            layout = StageLayout.make(bucket, steps, x[0].nbytes)
            nbytes = write_stage(slot.stage_np, layout, x, t_cols, keys)
            v.keys = np.concatenate([keys, np.zeros(bucket - n, np.uint64)])
            with torch.cuda.stream(self._h2d):
                if n < bucket:  # zero the padding rows (earlier chunks may have left any bytes there)
                    slot.stage_dev[nbytes:layout.total_bytes].zero_()
                slot.stage_dev[:nbytes].copy_(slot.stage_host[:nbytes], non_blocking=True)
                slot.h2d_done.record(self._h2d)
            # after the copy-in: a capture's eager warm-up runs (behind its synchronize) on this chunk's values,
            # never on stale bytes of another layout
            graph = self._graph_for(slot, bucket, steps, x.dtype, out_dtype, capture)
            self._compute.wait_event(slot.h2d_done)
            with torch.cuda.stream(self._compute):
                if graph is not None:
                    graph.replay()
                else:
                    self._loop(v, steps, out_dtype, eager=True)
                slot.compute_done.record(self._compute)
            out_bytes = n * self.resolution ** 2 * out_dtype.itemsize
            self._d2h.wait_event(slot.compute_done)
            with torch.cuda.stream(self._d2h):
                slot.out_host[:out_bytes].copy_(slot.out_dev[:out_bytes], non_blocking=True)
                slot.d2h_done.record(self._d2h)
            job = Job(slot, n, out_dtype, out_bytes)
            slot.job = job
            return job

    def collect(self, job: Job) -> np.ndarray:
        """Wait for a submitted chunk and return its images [n, 1, R, R] (a new array)."""
        with self._lock:
            if job.result is None:
                self._finish(job)
            return job.result

    def _abandon(self, jobs: Iterable[Job]) -> None:
        """Wait for jobs nobody will collect, so their slots are idle again."""
        with self._lock:
            for job in jobs:
                if job.result is None and job.slot.job is job:
                    job.slot.d2h_done.synchronize()
                    job.slot.job = None

    # ------------------------------------------------------------------ requests

    def _columns(self, schedule: Any, steps: int, n: int) -> np.ndarray:
        if steps == 1:
            return np.zeros((0, n), np.float32)
        cols = schedule_columns(schedule, n)
        if cols.shape != (steps - 1, n):
            raise InvalidInputError(f"schedule: expected {steps - 1} re-noise times per sample, got shape {np.shape(schedule)}")
        return cols

    def run(self, sketches: Any, steps: int = 1, schedule: Any = (), seed: Any = 0, dtype: Any = np.float32,
            capture: bool | None = None) -> np.ndarray:
        """Images of one request (any batch size: split into chunks of the largest bucket), synchronously.

        schedule: the steps - 1 times t_k, shared (K-1,) or per sample (B, K-1) (validated by the caller);
        seed: an int, or one per sketch (noise keys from the seed and each sketch: one sketch, one image).
        """
        x = self._as_rows(sketches)
        steps = self._check_steps(steps)
        cols = self._columns(schedule, steps, len(x))
        keys = request_keys(x, steps, seed)
        jobs = [self.submit(x[a:b], steps, cols[:, a:b], keys[a:b], dtype, capture)
                for a, b in chunk_bounds(len(x), self.buckets[-1])]
        outs = [self.collect(j) for j in jobs]
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def stream(self, batches: Iterable[Any], steps: int = 1, schedule: Any = (), seed: int = 0,
               dtype: Any = np.float32) -> Iterator[np.ndarray]:
        """Images of each batch, in input order, with two chunks in flight (copy-in, compute and copy-out of
        neighbouring chunks overlap). Each sketch's noise comes from `seed` and the sketch itself.
        An exception from `batches` is raised after the images of the batches before it.

        If `batches` has ``next_nowait(default)`` (a Prefetcher), a second chunk is only launched when its batch
        is already there: a finished image is never held back waiting for the next request to arrive."""
        steps = self._check_steps(steps)
        pending: deque[list[Job]] = deque()
        in_flight = len(self._slots)
        error: Exception | None = None
        exhausted = False
        it = iter(batches)
        poll = getattr(batches, "next_nowait", None)
        nothing = object()
        try:
            while True:
                while not exhausted and error is None and sum(len(j) for j in pending) < in_flight:
                    try:
                        batch = poll(nothing) if (pending and poll is not None) else next(it)
                        if batch is nothing:
                            break
                    except StopIteration:
                        exhausted = True
                        break
                    except Exception as exc:
                        error = exc
                        break
                    x = self._as_rows(batch)
                    cols = self._columns(schedule, steps, len(x))
                    keys = request_keys(x, steps, seed)
                    pending.append([self.submit(x[a:b], steps, cols[:, a:b], keys[a:b], dtype)
                                    for a, b in chunk_bounds(len(x), self.buckets[-1])])
                if not pending:
                    break
                outs = [self.collect(j) for j in pending.popleft()]
                yield outs[0] if len(outs) == 1 else np.concatenate(outs)
            if error is not None:
                raise error
        finally:
            self._abandon(j for jobs in pending for j in jobs)

    # ------------------------------------------------------------------ cold start

    def warmup(self, steps: Iterable[int] = (1, 2), batch_sizes: Iterable[int] | None = None,
               sketch_dtype: Any = np.float32, dtype: Any = np.float32) -> float:
        """Capture (or, without graphs, run once) every (bucket, steps) in both slots ahead of the first
        request; returns the seconds it took."""
        t0 = time.perf_counter()
        in_dtype = check_sketch_dtype(sketch_dtype)
        sizes = self.buckets if batch_sizes is None else check_buckets(batch_sizes)
        r = self.resolution
        for k in steps:
            k = self._check_steps(k)
            for b in sizes:
                b = bucket_for(b, self.buckets)
                x = np.zeros((b, r, r) if in_dtype == np.uint8 else (b, 1, r, r), in_dtype)
                for _ in self._slots:  # one request per slot: both slots get their graph
                    self.run(x, k, np.full(k - 1, 0.5, np.float32), seed=0, dtype=dtype, capture=True)
        self._torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0

    @property
    def use_graphs(self) -> bool:
        """Whether requests replay CUDA graphs (False when asked, or once a capture failed: see graph_error)."""
        return self.cuda_graphs

    @property
    def graph_count(self) -> int:
        return len(self._graphs)
