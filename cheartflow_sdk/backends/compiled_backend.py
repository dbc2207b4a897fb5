"""Compiled PyTorch engine: an AOTInductor package (`.pt2`) run without the training code.

Lifecycle, explicit in the class:

1. load: read the `<engine>.json` sidecar, check the engine file's hash and that this machine matches what
   the package was built for (device, GPU compute capability, torch major.minor), then load the package
   with `torch._inductor.aoti_load_package` (only torch is imported, never cheartflow_sdk.training/models);
2. allocate: static per-bucket input/output buffers on the GPU (`allocate(bucket)`, lazily on first use);
3. run: copy in, replay the bucket's CUDA graph, copy out. A graph is captured on the first call with a
   bucket's batch size and re-captured whenever the buffers it points to change (`allocate(..., force=True)`).
   Batch sizes that are not a bucket run the package directly (no graph); larger batches are chunked.

Calls take numpy float32 (returns numpy) or torch tensors (returns a new torch tensor on the engine's
device, computed on `stream` or the current stream). `torch_callable()` gives the raw, capturable function
on CUDA tensors for the device-resident runtime (which captures its own whole-loop graphs).
"""

from __future__ import annotations

import inspect
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


def _major_minor(version: str | None) -> str | None:
    if not version:
        return version
    return ".".join(version.split("+")[0].split(".")[:2])


def torch_environment(device: str | None = None, index: int | None = None) -> dict[str, str]:
    """What a compiled engine depends on, for this machine: device ("cuda" when torch sees a GPU, else
    "cpu", unless `device` says which), GPU name and compute capability (of GPU `index`, default the
    current one), torch and CUDA versions."""
    torch = require("torch")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    env = {contract.META_DEVICE: device, contract.META_TORCH_VERSION: torch.__version__,
           contract.META_CUDA_VERSION: torch.version.cuda or ""}
    if device == "cuda":
        index = torch.cuda.current_device() if index is None else index
        major, minor = torch.cuda.get_device_capability(index)
        env[contract.META_GPU_NAME] = torch.cuda.get_device_name(index)
        env[contract.META_COMPUTE_CAPABILITY] = f"{major}.{minor}"
    return env


def check_compiled_environment(meta: dict[str, str], running: dict[str, str], source: str | Path) -> None:
    """ModelMismatchError unless the package can run here: same device kind, and for CUDA the same compute
    capability; torch must have the same major.minor. A different GPU name or CUDA version only warns."""
    def norm(env: dict[str, str]) -> dict[str, str]:
        out = dict(env)
        out[contract.META_TORCH_VERSION] = _major_minor(env.get(contract.META_TORCH_VERSION)) or ""
        return out

    strict = (contract.META_DEVICE, contract.META_COMPUTE_CAPABILITY, contract.META_TORCH_VERSION)
    contract.check_build_environment(norm(meta), norm(running), source, strict=strict,
                                     warn=(contract.META_GPU_NAME, contract.META_CUDA_VERSION))


@dataclass
class _Buffers:
    """Static device tensors of one bucket; a captured graph reads x, t and writes out."""

    x: Any
    t: Any
    out: Any = None  # the graph's static output (allocated in the graph's pool at capture)


class CompiledEncoder(BucketGraphs):
    """An AOTInductor `.pt2` engine (fp16 on CUDA, or fp32 on CPU) with CUDA graphs per batch bucket."""

    name = "torch-compiled"

    # ------------------------------------------------------------------ 1. load

    def __init__(self, path: str | Path, device: str = "auto", cuda_graphs: bool = True,
                 metadata: dict[str, str] | None = None, capture_warmup: int = 2):
        """Load `path` (metadata from its sidecar, or `metadata` when given, as export does before the
        sidecar exists). device: "auto" (the one it was compiled for), "cuda" or "cpu"."""
        torch = require("torch")
        self._torch = torch
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInputError(f"expected a compiled engine (.pt2) file at {self.path}")
        self.metadata = dict(metadata) if metadata is not None else contract.read_sidecar(self.path)
        self.config = contract.config_from_metadata(self.metadata, self.path)
        self.precision = self.metadata.get(contract.META_PRECISION, "fp16")
        built_for = self.metadata.get(contract.META_DEVICE, "cuda")
        if device != "auto" and str(device).split(":")[0] != built_for:
            raise ModelMismatchError(f"{self.path} is compiled for {built_for!r} but device={device!r} was asked; "
                                     f"export a package for {device!r} (cheartflow export --format torch-compiled)")
        contract.check_engine_file(self.path, self.metadata)
        index = int(str(device).split(":")[1]) if str(device).startswith("cuda:") else None
        check_compiled_environment(self.metadata, torch_environment(index=index), self.path)
        if built_for == "cuda":
            self.device = torch.device("cuda", torch.cuda.current_device() if index is None else index)
        else:
            self.device = torch.device("cpu")
        self._init_graphs(cuda_graphs and self.device.type == "cuda")
        self.capture_warmup = capture_warmup
        self.max_batch = int(self.metadata.get(contract.META_MAX_BATCH, max(contract.BATCH_BUCKETS)))
        self.buckets = contract.buckets_up_to(self.max_batch)
        from torch._inductor import aoti_load_package

        # Single-threaded mode on CUDA: no cross-thread event synchronization, which CUDA graph capture forbids.
        params = inspect.signature(aoti_load_package).parameters
        kwargs: dict[str, Any] = {}
        if self.device.type == "cuda":
            if "run_single_threaded" in params:
                kwargs["run_single_threaded"] = True
            else:
                log.warning("torch %s's aoti_load_package has no run_single_threaded: CUDA graphs may fail to capture",
                            torch.__version__)
            if "device_index" in params:
                kwargs["device_index"] = self.device.index
        try:
            self._runner = aoti_load_package(str(self.path), **kwargs)
        except Exception as exc:  # torch raises RuntimeError / zip errors for corrupt or foreign packages
            raise InvalidInputError(f"{self.path} is not a loadable AOTInductor package: {exc}") from exc
        self._buffers: dict[int, _Buffers] = {}
        log.info("loaded %s (%s, %s, max batch %d, CUDA graphs %s)", self.path, self.precision, self.device,
                 self.max_batch, self.cuda_graphs)

    # ------------------------------------------------------------------ 2. allocate

    def allocate(self, bucket: int, force: bool = False) -> _Buffers:
        """The static buffers of `bucket` (allocated on first use; `force` replaces them, so the bucket's
        graph is re-captured on its next use)."""
        torch = self._torch
        bufs = self._buffers.get(bucket)
        if bufs is None or force:
            r = self.config.resolution
            bufs = _Buffers(torch.zeros(bucket, 1, r, r, device=self.device), torch.ones(bucket, device=self.device))
            self._buffers[bucket] = bufs
        return bufs

    def _graph_for(self, bucket: int) -> Any:
        bufs = self.allocate(bucket)

        def warm_up(stream: Any) -> None:  # outside the capture: lazy library init, autotuned launches
            for _ in range(self.capture_warmup):
                self._runner(bufs.x, bufs.t)

        def body(stream: Any) -> None:
            bufs.out = self._runner(bufs.x, bufs.t)

        return self._bucket_graph(bucket, (bufs.x.data_ptr(), bufs.t.data_ptr()), warm_up, body)

    # ------------------------------------------------------------------ 3. run

    def torch_callable(self):
        """The raw package call on CUDA tensors (x float32 [B,1,R,R], t float32 [B] -> float32), on the current
        stream, no copies and no graph of its own, so the caller can capture it; None for a CPU package."""
        return self._runner if self.device.type == "cuda" else None

    def _run_chunk(self, x: Any, t: Any) -> Any:
        """One chunk (<= max_batch rows, host or device tensors) -> device output (static when graphed)."""
        n = x.shape[0]
        if self.cuda_graphs and n in self.buckets:
            bufs = self.allocate(n)
            bufs.x.copy_(x, non_blocking=True)
            bufs.t.copy_(t, non_blocking=True)
            graph = self._graph_for(n)
            if graph is not None:
                graph.replay()
                return bufs.out
        return self._runner(x.to(self.device, non_blocking=True).contiguous(), t.to(self.device, non_blocking=True).contiguous())

    def __call__(self, x: Any, t: Any, stream: Any = None) -> Any:
        """E(x, t): numpy float32 in -> numpy float32 out, or torch tensors in -> a new torch tensor out."""
        return call_in_chunks(self, x, t, stream)
