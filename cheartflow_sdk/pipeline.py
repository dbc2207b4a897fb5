"""The public pipeline: load a model or engine, then synthesize or stream sketch batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import kernels, sampling
from .backends.registry import ONNX_FILENAME, open_encoder
from .config import CONFIG_FILENAME, ModelConfig
from .errors import InvalidInputError, ModelMismatchError, ModelNotAvailableError
from .runtime.host_runner import HostRunner
from .runtime.prefetch import Prefetcher
from .validation import (as_sketch_batch, check_batch_sizes, check_count, check_output_dtype, check_request_schedule,
                         check_seed, check_sketch_content, check_sketch_dtype, check_sketch_kind, check_steps)

log = logging.getLogger(__name__)


def default_model_dir(sketch_kind: str = "edges") -> Path:
    """Folder of the bundled default model for a sketch kind (may not exist)."""
    return Path(str(resources.files("cheartflow_sdk") / "default_models" / sketch_kind))


def _resolve_model(model: str | Path | None, sketch_kind: str) -> Path:
    if model is None:
        path = default_model_dir(sketch_kind)
        if not (path / ONNX_FILENAME).is_file() and not (path / CONFIG_FILENAME).is_file():
            raise ModelNotAvailableError(
                f"no bundled default model for sketch kind {sketch_kind!r} is installed (expected {path}); "
                f"train one with `cheartflow train --data ../shared/data/acdc --sketch {sketch_kind} --out runs/{sketch_kind}` "
                f"and pass model='runs/{sketch_kind}' (or the exported .onnx)"
            )
        return path
    path = Path(model)
    if not path.exists():
        raise ModelNotAvailableError(f"model path {path} does not exist (expected a model folder or an .onnx engine)")
    return path


class Pipeline:
    """Sketches in ([B,H,W] uint8 or [B,1,H,W] float in [0,1]), images out (float32 [B,1,H,W] in [0,1],
    or uint8 with dtype=np.uint8).

    With a PyTorch (or other torch-callable) encoder on a CUDA GPU, requests run through a CudaGraphRunner:
    the whole K-step loop on the device, replayed from captured CUDA graphs (``pipe.runner``). ``warmup()``
    captures them ahead of the first request; without it, a batch bucket's first request runs the same
    launches eagerly (identical images) and its graph is captured on the second. Otherwise (``pipe.runner`` is
    None) a HostRunner runs the same samplers over the encoder's numpy interface. Either way the public methods
    here are the one place requests are validated; ``stream`` validates the next batches on a worker thread.
    A pipeline is not meant to be shared by threads that stream concurrently.
    """

    def __init__(self, encoder: Any, source: Path, runner: Any = None):
        self.encoder = encoder
        self.config: ModelConfig = encoder.config
        self.backend: str = encoder.name
        self.source = source
        self.runner = runner  # the CUDA-graph runner, or None
        self._engine = runner if runner is not None else HostRunner(encoder, self.config.sigma, self.config.resolution)

    def __repr__(self) -> str:
        c = self.config
        graphs = ", cuda_graphs=True" if self.runner is not None else ""
        return (f"Pipeline(backend={self.backend!r}, sketch_kind={c.sketch_kind!r}, resolution={c.resolution}, "
                f"source='{self.source}'{graphs})")

    # ------------------------------------------------------------------ the validation boundary

    def _check_steps(self, steps: Any, allow_unvalidated_steps: bool) -> int:
        return check_steps(steps, getattr(self.config, "max_steps", None), allow_unvalidated_steps)

    def _check_request(self, steps: int, schedule: Any, seed: Any, sketch_kind: str | None,
                       per_sample_seed: bool = False, allow_unvalidated_steps: bool = False) -> tuple[int, Any, Any]:
        if check_sketch_kind(sketch_kind) is not None and sketch_kind != self.config.sketch_kind:
            raise ModelMismatchError(
                f"this model was trained on {self.config.sketch_kind!r} sketches but the input is declared {sketch_kind!r}"
            )
        steps = self._check_steps(steps, allow_unvalidated_steps)
        if schedule is None and steps > 1 and len(self.config.default_schedule) == steps - 1:
            schedule = self.config.default_schedule
        sched = check_request_schedule(schedule, steps)
        if per_sample_seed and isinstance(seed, (np.ndarray, list, tuple)):
            return steps, sched, seed  # checked against the batch size by sampling.seeds_for
        return steps, sched, check_seed(seed)

    def _input(self, batch: Any, name: str, declared: bool = False) -> np.ndarray:
        """Validated sketches, their content checked against the model's kind (``validation.check_sketch_content``;
        `declared`: the caller declared the input's kind): float32 [B,1,R,R] in [0, 1]; but uint8 intensity
        sketches stay uint8 [B,R,R] for an engine that takes them (a quarter of the bytes to copy; they need no
        range check). Integer maps (values <= 3) are always converted."""
        kind, r = self.config.sketch_kind, self.config.resolution
        if self._engine.takes_uint8 and isinstance(batch, np.ndarray) and batch.dtype == np.uint8 and batch.size > 0 \
                and (batch.ndim in (2, 3) or (batch.ndim == 4 and batch.shape[1] == 1)) \
                and batch.shape[-2:] == (r, r) and int(batch.max()) > 3:
            x = np.ascontiguousarray(batch.reshape(-1, r, r))
        else:
            x = as_sketch_batch(batch, resolution=r, name=name, kind=kind)
        check_sketch_content(x, kind, declared, name)
        return x

    # ------------------------------------------------------------------ public API

    def synthesize(self, sketches: Any, steps: int = 1, schedule: Any = None, seed: Any = 0,
                   batch_size: int = 64, sketch_kind: str | None = None, dtype: Any = np.float32,
                   allow_unvalidated_steps: bool = False) -> np.ndarray:
        """Synthesize one image per sketch with `steps` encoder evaluations (1 = one-step).

        schedule: the steps - 1 re-noise times t_k in (0, 1) (shared, or one row per sketch); None uses the
        model's default. seed: an int in [0, 2**64), or one int per sketch. Each sketch's noise is keyed by
        its seed and its own content (:func:`cheartflow_sdk.sampling.noise_keys`): one sketch, one image,
        wherever it sits, so ``synthesize(x)[i] == synthesize(x[i:i+1])[0]`` for any batching, and the same
        on every backend. dtype: float32 images in [0, 1] (default) or uint8 in 0..255.
        sketch_kind: declare the input's kind (checked against the model; without it, a label sketch given to
        an edges model or the reverse is detected and refused). steps above the model's
        ``config.max_steps`` (the largest count it was validated for) need allow_unvalidated_steps=True; at
        most ``validation.MAX_STEPS`` on every backend. Input rules: :func:`cheartflow_sdk.validation.as_sketch_batch`.
        """
        out_dtype = check_output_dtype(dtype)
        batch_size = check_count(batch_size, "batch_size", "")
        steps, sched, seed = self._check_request(steps, schedule, seed, sketch_kind, per_sample_seed=True,
                                                 allow_unvalidated_steps=allow_unvalidated_steps)
        x = self._input(sketches, "sketches", sketch_kind is not None)
        if np.ndim(sched) == 2 and len(sched) != len(x):
            raise InvalidInputError(f"schedule: a per-sample schedule needs one row per sketch ({len(x)}), got {len(sched)}")
        seeds = sampling.seeds_for(seed, len(x))
        outs = []
        for start in range(0, len(x), batch_size):
            part = sched[start:start + batch_size] if np.ndim(sched) == 2 else sched
            stop = start + batch_size
            outs.append(self._engine.run(x[start:stop], steps, part, seeds[start:stop], out_dtype))
        return np.concatenate(outs)

    def stream(self, batches: Iterable[Any], steps: int = 1, schedule: Any = None, seed: int = 0,
               sketch_kind: str | None = None, dtype: Any = np.float32, prefetch: int = 2,
               allow_unvalidated_steps: bool = False) -> Iterator[np.ndarray]:
        """Yield the images of each batch in input order; equal to synthesize() on the concatenated batches
        (and, one sketch one image, to synthesize() of each sketch alone). seed: one int for all sketches.

        Batches may have any sizes. Arguments are checked here, at the call; each batch is validated on a
        worker thread up to `prefetch` batches ahead (on a GPU runner the next chunk's copy-in also overlaps
        the current chunk's compute). A bad batch raises InvalidInputError naming it ("stream batch 3: ..."),
        after the images of the batches before it; an exception raised by `batches` itself reaches the caller
        the same way. Stopping early (break, close()) stops the worker.
        """
        out_dtype = check_output_dtype(dtype)
        depth = check_count(prefetch, "prefetch", " (batches prepared ahead)")
        steps, sched, seed = self._check_request(steps, schedule, seed, sketch_kind,
                                                 allow_unvalidated_steps=allow_unvalidated_steps)
        declared = sketch_kind is not None
        if np.ndim(sched) == 2:
            raise InvalidInputError("schedule: stream takes one schedule shared by all samples, shape "
                                    f"({steps - 1},); per-sample schedules are for synthesize()")
        try:
            items = iter(batches)
        except TypeError:
            raise InvalidInputError(f"batches: expected an iterable of sketch batches, got {type(batches).__name__}") from None
        return self._stream(items, steps, sched, seed, out_dtype, depth, declared)

    def _stream(self, items: Iterator[Any], steps: int, sched: Any, seed: int, dtype: np.dtype, depth: int,
                declared: bool) -> Iterator[np.ndarray]:
        def prepare(i: int, batch: Any) -> np.ndarray:
            return self._input(batch, f"stream batch {i}", declared)

        with Prefetcher(items, prepare, depth) as ready:  # polled: a runner launches only batches that have arrived
            yield from self._engine.stream(ready, steps, sched, seed, dtype)

    def warmup(self, steps: Iterable[int] = (1, 2), batch_sizes: Iterable[int] | None = None,
               sketch_dtype: Any = np.float32, dtype: Any = np.float32, allow_unvalidated_steps: bool = False) -> float:
        """Pay the cold start now instead of on the first request; returns the seconds it took.

        On a CUDA runner: captures the graphs of every batch bucket (or of `batch_sizes`' buckets) for each
        number of `steps`, for `sketch_dtype` inputs (uint8 or float32) and `dtype` outputs. Otherwise: one
        batch-1 request per number of steps (engine initialization, allocator warm-up) and one 1-step request
        per size of `batch_sizes` (ONNX Runtime's arena for that size, OpenVINO's streams graph). Each number
        of steps is checked as in synthesize().
        """
        out_dtype = check_output_dtype(dtype)
        in_dtype = check_sketch_dtype(sketch_dtype)
        steps = [self._check_steps(k, allow_unvalidated_steps) for k in steps]
        sizes = None if batch_sizes is None else check_batch_sizes(batch_sizes)
        t0 = time.perf_counter()
        self._engine.warmup(steps, sizes, in_dtype, out_dtype)
        seconds = time.perf_counter() - t0
        log.info("warm-up of %r took %.3f s", self, seconds)
        return seconds


def _make_runner(encoder: Any) -> Any:
    """A CudaGraphRunner when the encoder runs torch CUDA tensors and the CUDA kernels are usable, else None."""
    from .runtime import DEFAULT_BUCKETS, CudaGraphRunner, torch_callable

    fn = torch_callable(encoder)
    if fn is None or encoder.config.sketch_condition:  # the graph runner's loop calls E(x, t) only
        return None
    if not kernels.cuda_available():
        log.warning("%s runs on a GPU but cheartflow_sdk._C has no usable CUDA kernels; sampling goes through "
                    "host arrays (slower). Rebuild the package with CUDA for the device-resident runtime.", encoder.name)
        return None
    cfg = encoder.config
    device = getattr(encoder, "device", "cuda")
    # an engine built for a largest batch (compiled / TensorRT profiles) bounds the buckets
    buckets = tuple(getattr(encoder, "buckets", None) or DEFAULT_BUCKETS)
    max_batch = getattr(encoder, "max_batch", None)
    if max_batch:
        buckets = tuple(b for b in buckets if b <= int(max_batch)) or (int(max_batch),)
    return CudaGraphRunner(fn, cfg.resolution, cfg.sigma, device=device, buckets=buckets, name=encoder.name)


DEVICES = ("auto", "cpu", "cuda")  # and "cuda:N"


def check_device(device: Any) -> str:
    """`device` as given, once it is "auto", "cpu", "cuda" or "cuda:N"; asking for CUDA without a usable GPU
    is a ModelMismatchError (never a silent CPU fallback)."""
    ok = isinstance(device, str) and (device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit()))
    if not ok:
        raise InvalidInputError(f"device: expected one of {', '.join(DEVICES)} or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not _gpu_usable():
        raise ModelMismatchError(f"device={device!r} asks for a CUDA GPU but none is usable here (no GPU, driver or "
                                 "CUDA build of torch / onnxruntime found); use device='cpu' or 'auto'")
    return device


def _gpu_usable() -> bool:
    """Whether a CUDA GPU can run here: the native module sees one, or torch does (when installed)."""
    if kernels.cuda_available():
        return True
    import importlib.util
    import sys

    if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
        import torch

        return bool(torch.cuda.is_available())
    return False


def load_pipeline(model: str | Path | None = None, backend: str = "auto", device: str = "auto",
                  sketch_kind: str | None = None, threads: int | None = None) -> Pipeline:
    """Load a model folder or an exported engine (None: the bundled default for `sketch_kind`, "edges" if None).

    backend: "auto" (an engine file by its kind; in a folder the fastest usable engine, see
    :mod:`cheartflow_sdk.backends.registry`), "onnxruntime", "torch", "torch-compiled" or "tensorrt";
    the choice is in `pipe.backend`. device: "auto", "cpu", "cuda" or "cuda:N" (CUDA without a usable GPU is
    an error). sketch_kind: checked against the model's (ModelMismatchError when they differ). threads: CPU
    threads of the engine (None: its default, every core; torch's setting is process-wide). A PyTorch
    encoder on a CUDA GPU gets the CUDA-graph runtime (`pipe.runner`); call `pipe.warmup()` to capture its
    graphs before the first request.
    """
    check_sketch_kind(sketch_kind)
    check_device(device)
    if threads is not None:
        threads = check_count(threads, "threads", " (CPU threads of the engine) or None")
    path = _resolve_model(model, sketch_kind or "edges")
    encoder = open_encoder(path, backend, device, threads)
    if sketch_kind is not None and encoder.config.sketch_kind != sketch_kind:
        raise ModelMismatchError(f"{path}: this model was trained on {encoder.config.sketch_kind!r} sketches but "
                                 f"sketch_kind={sketch_kind!r} was asked for; pass a {sketch_kind} model (or sketch_kind=None)")
    pipe = Pipeline(encoder, path, runner=_make_runner(encoder))
    log.info("loaded %r", pipe)
    return pipe
