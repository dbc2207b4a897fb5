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
from .runtime.prefetch import Prefetcher
from .runtime.prefetch import prefetch as _prefetch
from .validation import as_sketch_batch, check_schedule, check_seed, check_sketch_content, check_steps

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


_OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8))


def _check_output_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _OUTPUT_DTYPES:
        raise InvalidInputError(f"dtype: images come as float32 in [0, 1] or uint8 in 0..255, got {dtype!r}")
    return dt


def _check_prefetch(prefetch: Any) -> int:
    if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 1:
        raise InvalidInputError(f"prefetch: expected an int >= 1 (batches prepared ahead), got {prefetch!r}")
    return int(prefetch)


class Pipeline:
    """Sketches in ([B,H,W] uint8 or [B,1,H,W] float in [0,1]), images out (float32 [B,1,H,W] in [0,1],
    or uint8 with dtype=np.uint8).

    With a PyTorch (or other torch-callable) encoder on a CUDA GPU, requests run through a CudaGraphRunner:
    the whole K-step loop on the device, replayed from captured CUDA graphs (``pipe.runner``). ``warmup()``
    captures them ahead of the first request; without it, a batch bucket's first request runs the same
    launches eagerly (identical images) and its graph is captured on the second. Otherwise the sampler runs
    over the encoder's numpy interface and ``stream`` prepares the next batch on a worker thread.
    A pipeline is not meant to be shared by threads that stream concurrently.
    """

    def __init__(self, encoder: Any, source: Path, runner: Any = None):
        self.encoder = encoder
        self.config: ModelConfig = encoder.config
        self.backend: str = encoder.name
        self.source = source
        self.runner = runner

    def __repr__(self) -> str:
        c = self.config
        graphs = ", cuda_graphs=True" if self.runner is not None else ""
        return (f"Pipeline(backend={self.backend!r}, sketch_kind={c.sketch_kind!r}, resolution={c.resolution}, "
                f"source='{self.source}'{graphs})")

    def _check_request(self, steps: int, schedule: Any, seed: Any, sketch_kind: str | None,
                       per_sample_seed: bool = False, allow_unvalidated_steps: bool = False) -> tuple[Any, Any]:
        if sketch_kind is not None and sketch_kind not in ("edges", "labels"):
            raise InvalidInputError(f"sketch_kind: expected 'edges', 'labels' or None, got {sketch_kind!r}")
        if sketch_kind is not None and sketch_kind != self.config.sketch_kind:
            raise ModelMismatchError(
                f"this model was trained on {self.config.sketch_kind!r} sketches but the input is declared {sketch_kind!r}"
            )
        steps = check_steps(steps, getattr(self.config, "max_steps", None), allow_unvalidated_steps)
        if schedule is None and steps > 1 and len(self.config.default_schedule) == steps - 1:
            schedule = self.config.default_schedule
        if schedule is not None and np.ndim(schedule) == 2:
            try:
                sched = np.asarray(schedule, dtype=np.float32)
            except (TypeError, ValueError):
                raise InvalidInputError(f"schedule: a per-sample schedule needs shape (B, {steps - 1}) of floats in "
                                        f"(0, 1), got {type(schedule).__name__}") from None
            if sched.shape[1] != steps - 1 or not ((sched > 0) & (sched < 1)).all():
                raise InvalidInputError(f"schedule: a per-sample schedule needs shape (B, {steps - 1}) with values in (0, 1)")
        else:
            sched = check_schedule(schedule, steps)
        if per_sample_seed and isinstance(seed, (np.ndarray, list, tuple)):
            return sched, seed  # checked against the batch size by sampling.seeds_for
        return sched, check_seed(seed)

    # ------------------------------------------------------------------ input preparation

    def _host_input(self, batch: Any, name: str, declared: bool = False) -> np.ndarray:
        """Validated float32 [B,1,R,R] in [0, 1] (the numpy path), its content checked against the model's kind
        (``validation.check_sketch_content``; `declared`: the caller declared the input's kind)."""
        kind = self.config.sketch_kind
        x = as_sketch_batch(batch, resolution=self.config.resolution, name=name, kind=kind)
        check_sketch_content(x, kind, declared, name)
        return x

    def _device_input(self, batch: Any, name: str, declared: bool = False) -> np.ndarray:
        """For the CUDA runner: uint8 intensity sketches stay uint8 [B,R,R] (a quarter of the bytes to copy; they
        need no range check), anything else (integer maps with values <= 3 included) is validated into
        float32 [B,1,R,R]. The content is checked like on the host path."""
        r = self.config.resolution
        if isinstance(batch, np.ndarray) and batch.dtype == np.uint8 and batch.size > 0 and (
                batch.ndim in (2, 3) or (batch.ndim == 4 and batch.shape[1] == 1)) and batch.shape[-2:] == (r, r) \
                and int(batch.max()) > 3:
            x = np.ascontiguousarray(batch.reshape(-1, r, r))
            check_sketch_content(x, self.config.sketch_kind, declared, name)
            return x
        return self._host_input(batch, name, declared)

    # ------------------------------------------------------------------ numpy path

    def _run(self, x: np.ndarray, steps: int, schedule: Any, seed: Any, dtype: Any = np.float32) -> np.ndarray:
        return self._sample(kernels.preprocess(x), self._keys(x, steps, seed), steps, schedule, dtype)

    @staticmethod
    def _keys(x: np.ndarray, steps: int, seed: Any) -> np.ndarray:
        """Per-sample noise keys from the seed and each sketch (one-step sampling draws no noise)."""
        if steps == 1:
            sampling.seeds_for(seed, len(x))  # still validated
            return np.zeros(len(x), np.uint64)
        return sampling.noise_keys(x, seed)

    def _sample(self, x1: np.ndarray, keys: np.ndarray, steps: int, schedule: Any, dtype: np.dtype) -> np.ndarray:
        noise = sampling.PhiloxNoise(keys=keys, sigma=self.config.sigma)
        return kernels.postprocess(sampling.sample(self.encoder, x1, steps, schedule, noise), dtype)

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
        ``config.max_steps`` (the largest count it was validated for) need allow_unvalidated_steps=True.
        Input rules: :func:`cheartflow_sdk.validation.as_sketch_batch`.
        """
        out_dtype = _check_output_dtype(dtype)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidInputError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        sched, seed = self._check_request(steps, schedule, seed, sketch_kind, per_sample_seed=True,
                                          allow_unvalidated_steps=allow_unvalidated_steps)
        declared = sketch_kind is not None
        x = (self._device_input(sketches, "sketches", declared) if self.runner is not None
             else self._host_input(sketches, "sketches", declared))
        if np.ndim(sched) == 2 and len(sched) != len(x):
            raise InvalidInputError(f"schedule: a per-sample schedule needs one row per sketch ({len(x)}), got {len(sched)}")
        seeds = sampling.seeds_for(seed, len(x))
        outs = []
        for start in range(0, len(x), batch_size):
            part = sched[start:start + batch_size] if np.ndim(sched) == 2 else sched
            chunk = x[start:start + batch_size]
            chunk_seeds = seeds[start:start + batch_size]
            if self.runner is not None:
                outs.append(self.runner.run(chunk, steps, part, chunk_seeds, out_dtype))
            else:
                outs.append(self._run(chunk, steps, part, chunk_seeds, out_dtype))
        return np.concatenate(outs)

    def stream(self, batches: Iterable[Any], steps: int = 1, schedule: Any = None, seed: int = 0,
               sketch_kind: str | None = None, dtype: Any = np.float32, prefetch: int = 2,
               allow_unvalidated_steps: bool = False) -> Iterator[np.ndarray]:
        """Yield the images of each batch in input order; equal to synthesize() on the concatenated batches
        (and, one sketch one image, to synthesize() of each sketch alone). seed: one int for all sketches.

        Batches may have any sizes. Arguments are checked here, at the call; each batch is validated and
        preprocessed on a worker thread up to `prefetch` batches ahead (on a GPU runner the next chunk's
        copy-in also overlaps the current chunk's compute). A bad batch raises InvalidInputError naming it
        ("stream batch 3: ..."), after the images of the batches before it; an exception raised by `batches`
        itself reaches the caller the same way. Stopping early (break, close()) stops the worker.
        """
        out_dtype = _check_output_dtype(dtype)
        depth = _check_prefetch(prefetch)
        sched, seed = self._check_request(steps, schedule, seed, sketch_kind,
                                          allow_unvalidated_steps=allow_unvalidated_steps)
        declared = sketch_kind is not None
        if np.ndim(sched) == 2:
            raise InvalidInputError("schedule: stream takes one schedule shared by all samples, shape "
                                    f"({steps - 1},); per-sample schedules are for synthesize()")
        try:
            items = iter(batches)
        except TypeError:
            raise InvalidInputError(f"batches: expected an iterable of sketch batches, got {type(batches).__name__}") from None
        if self.runner is not None:
            return self._stream_runner(items, steps, sched, seed, out_dtype, depth, declared)
        return self._stream_numpy(items, steps, sched, seed, out_dtype, depth, declared)

    def _stream_numpy(self, items: Iterator[Any], steps: int, sched: Any, seed: int, dtype: np.dtype,
                      depth: int, declared: bool = False) -> Iterator[np.ndarray]:
        def prepare(i: int, batch: Any) -> tuple[np.ndarray, np.ndarray]:
            x = self._host_input(batch, f"stream batch {i}", declared)
            return kernels.preprocess(x), self._keys(x, steps, seed)

        for x1, keys in _prefetch(items, prepare, depth):
            yield self._sample(x1, keys, steps, sched, dtype)

    def _stream_runner(self, items: Iterator[Any], steps: int, sched: Any, seed: int, dtype: np.dtype,
                       depth: int, declared: bool = False) -> Iterator[np.ndarray]:
        def prepare(i: int, batch: Any) -> np.ndarray:
            return self._device_input(batch, f"stream batch {i}", declared)

        with Prefetcher(items, prepare, depth) as ready:  # polled: launches only batches that have arrived
            yield from self.runner.stream(ready, steps, sched, seed, dtype)

    def warmup(self, steps: Iterable[int] = (1, 2), batch_sizes: Iterable[int] | None = None,
               sketch_dtype: Any = np.float32, dtype: Any = np.float32) -> float:
        """Pay the cold start now instead of on the first request; returns the seconds it took.

        On a CUDA runner: captures the graphs of every batch bucket (or of `batch_sizes`' buckets) for each
        number of `steps`, for `sketch_dtype` inputs (uint8 or float32) and `dtype` outputs. Otherwise: one
        batch-1 request per number of steps (engine initialization, allocator warm-up).
        """
        out_dtype = _check_output_dtype(dtype)
        steps = list(steps)
        for k in steps:
            check_schedule(None, k)  # validates each number of steps
        t0 = time.perf_counter()
        if self.runner is not None:
            self.runner.warmup(steps, batch_sizes, sketch_dtype, out_dtype)
        else:
            x = np.zeros((1, 1, self.config.resolution, self.config.resolution), np.float32)
            for k in steps:
                self.synthesize(x, steps=k, dtype=out_dtype)
        seconds = time.perf_counter() - t0
        log.info("warm-up of %r took %.3f s", self, seconds)
        return seconds


def _make_runner(encoder: Any) -> Any:
    """A CudaGraphRunner when the encoder runs torch CUDA tensors and the CUDA kernels are usable, else None."""
    from .runtime import DEFAULT_BUCKETS, CudaGraphRunner, torch_callable

    fn = torch_callable(encoder)
    if fn is None:
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
                  sketch_kind: str | None = None) -> Pipeline:
    """Load a model folder or an exported engine (None: the bundled default for `sketch_kind`, "edges" if None).

    backend: "auto" (an engine file by its kind; in a folder the fastest usable engine, see
    :mod:`cheartflow_sdk.backends.registry`), "onnxruntime", "torch", "torch-compiled" or "tensorrt";
    the choice is in `pipe.backend`. device: "auto", "cpu", "cuda" or "cuda:N" (CUDA without a usable GPU is
    an error). sketch_kind: checked against the model's (ModelMismatchError when they differ). A PyTorch
    encoder on a CUDA GPU gets the CUDA-graph runtime (`pipe.runner`); call `pipe.warmup()` to capture its
    graphs before the first request.
    """
    if sketch_kind is not None and sketch_kind not in ("edges", "labels"):
        raise InvalidInputError(f"sketch_kind: expected 'edges', 'labels' or None, got {sketch_kind!r}")
    check_device(device)
    path = _resolve_model(model, sketch_kind or "edges")
    encoder = open_encoder(path, backend, device)
    if sketch_kind is not None and encoder.config.sketch_kind != sketch_kind:
        raise ModelMismatchError(f"{path}: this model was trained on {encoder.config.sketch_kind!r} sketches but "
                                 f"sketch_kind={sketch_kind!r} was asked for; pass a {sketch_kind} model (or sketch_kind=None)")
    pipe = Pipeline(encoder, path, runner=_make_runner(encoder))
    log.info("loaded %r", pipe)
    return pipe
