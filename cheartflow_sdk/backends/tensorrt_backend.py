"""TensorRT backend: runs a serialized TensorRT 10 engine (`.engine` / `.plan`) built by `cheartflow export
--format tensorrt`. UNVERIFIED in this project's build environment (TensorRT is not installable there): the
code follows the documented TensorRT 10 Python API, and its tests skip when `tensorrt` is missing.

Lifecycle, explicit in the class:

1. load: read the `<engine>.json` sidecar, check the file's hash, the GPU (name and compute capability) and
   the TensorRT version against the ones the engine was built with (ModelMismatchError naming both), then
   deserialize it (`trt.Runtime.deserialize_cuda_engine`);
2. allocate: per-bucket input/output buffers as torch CUDA tensors (torch is present wherever TensorRT is),
   one execution context per exact bucket size (its shapes never change) plus one per optimization profile
   for other batch sizes;
3. run: copy in, `execute_async_v3` on the caller's stream (or replay the bucket's CUDA graph, captured on
   first use and re-captured when a buffer address changes), copy out.

Calls take numpy float32 (returns numpy) or torch CUDA tensors (returns a new CUDA tensor). One encoder serves
one stream at a time. `torch_callable()` gives a capturable function on CUDA tensors for the device-resident
runtime. tensorrt is imported only inside this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import contract
from .._optional import require
from ..errors import InvalidInputError, ModelMismatchError
from ..runtime.graph_capture import BucketGraphs
from .engine_call import call_in_chunks

log = logging.getLogger(__name__)


def gpu_environment() -> dict[str, str]:
    """The running GPU as engine metadata (device "cpu" when torch sees no GPU)."""
    from .compiled_backend import torch_environment

    env = torch_environment()
    env.pop(contract.META_TORCH_VERSION, None)
    return env


def tensorrt_environment() -> dict[str, str]:
    """What a TensorRT engine depends on: GPU name, compute capability, TensorRT and CUDA versions."""
    trt = require("tensorrt")
    env = gpu_environment()
    env[contract.META_TENSORRT_VERSION] = trt.__version__
    return env


_GPU_KEYS = (contract.META_DEVICE, contract.META_GPU_NAME, contract.META_COMPUTE_CAPABILITY)


@dataclass
class _Buffers:
    x: Any
    t: Any
    out: Any


class TensorRTEncoder(BucketGraphs):
    """A TensorRT FP16 engine with preallocated buffers, caller streams and optional CUDA graphs per bucket."""

    name = "tensorrt"

    # ------------------------------------------------------------------ 1. load

    def __init__(self, path: str | Path, device: str = "auto", cuda_graphs: bool = True,
                 metadata: dict[str, str] | None = None):
        self.path = Path(path)
        if device == "cpu":
            raise ModelMismatchError(f"{self.path}: TensorRT engines run on CUDA GPUs only, device='cpu' was asked")
        if not self.path.is_file():
            raise InvalidInputError(f"expected a TensorRT engine file at {self.path}")
        self.metadata = dict(metadata) if metadata is not None else contract.read_sidecar(self.path)
        self.config = contract.config_from_metadata(self.metadata, self.path)
        self.precision = self.metadata.get(contract.META_PRECISION, "fp16")
        contract.check_engine_file(self.path, self.metadata)
        torch = require("torch")
        self._torch = torch
        contract.check_build_environment(self.metadata, gpu_environment(), self.path, strict=_GPU_KEYS,
                                         warn=(contract.META_CUDA_VERSION,))
        trt = require("tensorrt")
        self._trt = trt
        contract.check_build_environment(self.metadata, {contract.META_TENSORRT_VERSION: trt.__version__}, self.path,
                                         strict=(contract.META_TENSORRT_VERSION,))
        self.device = torch.device("cuda", torch.cuda.current_device())
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise InvalidInputError(f"{self.path} could not be deserialized by TensorRT {trt.__version__} "
                                    "(corrupt file, or built by another TensorRT version); re-export it")
        self._check_io()
        self.profiles = self._read_profiles()  # [(min batch, max batch)] per optimization profile
        self.buckets = tuple(hi for _, hi in self.profiles)
        self.max_batch = max(self.buckets)
        self._init_graphs(cuda_graphs)
        self._contexts: dict[tuple[str, int], Any] = {}
        self._buffers: dict[int, _Buffers] = {}
        log.info("loaded %s (TensorRT %s, profiles %s)", self.path, trt.__version__, self.profiles)

    def _check_io(self) -> None:
        trt, eng = self._trt, self.engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        want = {contract.INPUT_X: trt.TensorIOMode.INPUT, contract.INPUT_T: trt.TensorIOMode.INPUT,
                contract.OUTPUT: trt.TensorIOMode.OUTPUT}
        if sorted(names) != sorted(want):
            raise ModelMismatchError(f"{self.path}: expected IO tensors {sorted(want)}, found {sorted(names)}")
        for name, mode in want.items():
            if eng.get_tensor_mode(name) != mode or eng.get_tensor_dtype(name) != trt.float32:
                raise ModelMismatchError(f"{self.path}: tensor {name!r} must be a float32 {mode}")

    def _read_profiles(self) -> list[tuple[int, int]]:
        out = []
        for p in range(self.engine.num_optimization_profiles):
            lo, _, hi = self.engine.get_tensor_profile_shape(contract.INPUT_X, p)
            out.append((int(lo[0]), int(hi[0])))
        return out

    def _profile_for(self, n: int) -> int:
        for p, (lo, hi) in enumerate(self.profiles):
            if lo <= n <= hi:
                return p
        raise InvalidInputError(f"batch {n} is outside the engine's optimization profiles {self.profiles}")

    # ------------------------------------------------------------------ 2. allocate

    def _context(self, n: int, stream_handle: int) -> Any:
        """Execution context for batch n: one per exact bucket size (shapes fixed), else one per profile."""
        p = self._profile_for(n)
        key = ("bucket", n) if n in self.buckets else ("profile", p)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self.engine.create_execution_context()
            if ctx is None:
                raise ModelMismatchError(f"TensorRT could not create an execution context for {self.path} (out of GPU memory?)")
            ctx.set_optimization_profile_async(p, stream_handle)
            self._contexts[key] = ctx
        return ctx

    def allocate(self, bucket: int, force: bool = False) -> _Buffers:
        """Input/output buffers of `bucket` (on first use; `force` replaces them: its graph is re-captured)."""
        torch = self._torch
        bufs = self._buffers.get(bucket)
        if bufs is None or force:
            r = self.config.resolution
            bufs = _Buffers(torch.zeros(bucket, 1, r, r, device=self.device), torch.ones(bucket, device=self.device),
                            torch.zeros(bucket, 1, r, r, device=self.device))
            self._buffers[bucket] = bufs
        return bufs

    # ------------------------------------------------------------------ 3. run

    def _enqueue(self, x: Any, t: Any, out: Any, stream_handle: int) -> None:
        """execute_async_v3 of one batch (contiguous float32 CUDA tensors) on `stream_handle`."""
        n = int(x.shape[0])
        r = self.config.resolution
        ctx = self._context(n, stream_handle)
        ctx.set_input_shape(contract.INPUT_X, (n, 1, r, r))
        ctx.set_input_shape(contract.INPUT_T, (n,))
        ctx.set_tensor_address(contract.INPUT_X, x.data_ptr())
        ctx.set_tensor_address(contract.INPUT_T, t.data_ptr())
        ctx.set_tensor_address(contract.OUTPUT, out.data_ptr())
        if not ctx.execute_async_v3(stream_handle):
            raise ModelMismatchError(f"TensorRT execution of {self.path} failed for batch {n} (see the TensorRT log)")

    def torch_callable(self):
        """fn(x, t) -> new output on CUDA tensors, enqueued on the current stream; capturable by the caller."""
        torch = self._torch

        def fn(x: Any, t: Any) -> Any:
            x, t = x.float().contiguous(), t.float().contiguous()
            out = torch.empty_like(x)
            handle = torch.cuda.current_stream(self.device).cuda_stream
            for a in range(0, x.shape[0], self.max_batch):
                b = a + self.max_batch
                self._enqueue(x[a:b], t[a:b], out[a:b], handle)
            return out

        return fn

    def _graph_for(self, bucket: int, bufs: _Buffers) -> Any:
        def enqueue(stream: Any) -> None:  # run once outside the capture too: applies shapes and addresses
            self._enqueue(bufs.x, bufs.t, bufs.out, stream.cuda_stream)

        return self._bucket_graph(bucket, (bufs.x.data_ptr(), bufs.t.data_ptr(), bufs.out.data_ptr()), enqueue, enqueue)

    def _run_chunk(self, x: Any, t: Any) -> Any:
        """One chunk (<= max_batch rows, host or device tensors) -> a view of the bucket's output buffer."""
        torch = self._torch
        n = int(x.shape[0])
        bucket = self.profiles[self._profile_for(n)][1]
        bufs = self.allocate(bucket)
        bufs.x[:n].copy_(x, non_blocking=True)
        bufs.t[:n].copy_(t, non_blocking=True)
        if self.cuda_graphs and n == bucket:
            graph = self._graph_for(bucket, bufs)
            if graph is not None:
                graph.replay()
                return bufs.out
        self._enqueue(bufs.x[:n], bufs.t[:n], bufs.out[:n], torch.cuda.current_stream(self.device).cuda_stream)
        return bufs.out[:n]

    def __call__(self, x: Any, t: Any, stream: Any = None) -> Any:
        """E(x, t): numpy float32 in -> numpy out, or torch tensors in -> a new CUDA tensor out (on `stream`
        or the current stream)."""
        return call_in_chunks(self, x, t, stream)
