"""The public pipeline: load a model or engine, then synthesize or stream sketch batches."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from . import kernels, sampling
from .backends.registry import ONNX_FILENAME, open_encoder
from .config import CONFIG_FILENAME, ModelConfig
from .errors import InvalidInputError, ModelMismatchError, ModelNotAvailableError
from .validation import as_sketch_batch, check_schedule, check_seed

log = logging.getLogger(__name__)


def default_model_dir(sketch_kind: str = "edges") -> Path:
    """Folder of the bundled default model for a sketch kind (may not exist)."""
    return Path(str(resources.files("cheartflow_sdk") / "default_models" / sketch_kind))


def _resolve_model(model: str | Path | None, sketch_kind: str) -> Path:
    if model is None:
        path = default_model_dir(sketch_kind)
        if not (path / ONNX_FILENAME).is_file() and not (path / CONFIG_FILENAME).is_file():
            raise ModelNotAvailableError(
                f"no bundled default model for sketch kind {sketch_kind!r} is shipped in this release yet; "
                "train one with `cheartflow train --data ../shared/data/acdc --out runs/edges` and pass "
                "model='runs/edges' (or the exported .onnx)"
            )
        return path
    path = Path(model)
    if not path.exists():
        raise ModelNotAvailableError(f"model path {path} does not exist (expected a model folder or an .onnx engine)")
    return path


class Pipeline:
    """Sketches in ([B,H,W] uint8 or [B,1,H,W] float in [0,1]), images out (float32 [B,1,H,W] in [0,1])."""

    def __init__(self, encoder: Any, source: Path):
        self.encoder = encoder
        self.config: ModelConfig = encoder.config
        self.backend: str = encoder.name
        self.source = source

    def __repr__(self) -> str:
        c = self.config
        return f"Pipeline(backend={self.backend!r}, sketch_kind={c.sketch_kind!r}, resolution={c.resolution}, source='{self.source}')"

    def _check_request(self, steps: int, schedule: Any, seed: int, sketch_kind: str | None) -> tuple[Any, int]:
        if sketch_kind is not None and sketch_kind != self.config.sketch_kind:
            raise ModelMismatchError(
                f"this model was trained on {self.config.sketch_kind!r} sketches but the input is declared {sketch_kind!r}"
            )
        if schedule is None and steps > 1 and len(self.config.default_schedule) == steps - 1:
            schedule = self.config.default_schedule
        if schedule is not None and np.ndim(schedule) == 2:
            sched = np.asarray(schedule, dtype=np.float32)
            if sched.shape[1] != steps - 1 or not ((sched > 0) & (sched < 1)).all():
                raise InvalidInputError(f"schedule: a per-sample schedule needs shape (B, {steps - 1}) with values in (0, 1)")
        else:
            sched = check_schedule(schedule, steps)
        return sched, check_seed(seed)

    def _run(self, x: np.ndarray, steps: int, schedule: Any, seed: int, first_sample: int) -> np.ndarray:
        x1 = kernels.preprocess(x)
        noise = sampling.PhiloxNoise(seed=seed, sigma=self.config.sigma, first_sample=first_sample)
        return kernels.postprocess(sampling.sample(self.encoder, x1, steps, schedule, noise))

    def synthesize(self, sketches: Any, steps: int = 1, schedule: Any = None, seed: int = 0,
                   batch_size: int = 64, sketch_kind: str | None = None) -> np.ndarray:
        """Synthesize one image per sketch with `steps` encoder evaluations (1 = one-step).

        schedule: the steps - 1 re-noise times t_k in (0, 1) (shared, or one row per sketch); None uses the
        model's default. seed: noise seed; sample i of the request gets the same noise however it is batched.
        """
        x = as_sketch_batch(sketches, resolution=self.config.resolution)
        sched, seed = self._check_request(steps, schedule, seed, sketch_kind)
        outs = []
        for start in range(0, len(x), batch_size):
            part = sched[start:start + batch_size] if np.ndim(sched) == 2 else sched
            outs.append(self._run(x[start:start + batch_size], steps, part, seed, start))
        return np.concatenate(outs)

    def stream(self, batches: Iterable[Any], steps: int = 1, schedule: Any = None, seed: int = 0,
               sketch_kind: str | None = None) -> Iterator[np.ndarray]:
        """Yield the images of each batch in input order; equal to synthesize() on the concatenated batches."""
        sched, seed = self._check_request(steps, schedule, seed, sketch_kind)
        first = 0
        for i, batch in enumerate(batches):
            x = as_sketch_batch(batch, resolution=self.config.resolution, name=f"stream batch {i}")
            yield self._run(x, steps, sched, seed, first)
            first += len(x)


def load_pipeline(model: str | Path | None = None, backend: str = "auto", device: str = "auto",
                  sketch_kind: str = "edges") -> Pipeline:
    """Load a model folder or an exported engine (None: the bundled default for `sketch_kind`).

    backend: "auto" (ONNX Runtime when an .onnx engine is there, else PyTorch), "onnxruntime" or "torch";
    the choice is in `pipe.backend`.
    """
    path = _resolve_model(model, sketch_kind)
    encoder = open_encoder(path, backend, device)
    pipe = Pipeline(encoder, path)
    log.info("loaded %r", pipe)
    return pipe
