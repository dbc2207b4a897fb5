"""The host path: the samplers over an encoder's numpy interface, one chunk at a time.

It has the CudaGraphRunner's interface (`run`, `stream`, `warmup`), so that `Pipeline` drives either one the
same way; it is the path of every engine without the device-resident runtime. Inputs come validated from the
public boundary (``Pipeline``): float32 [B,1,R,R] sketches in [0, 1], checked steps, schedule, seeds and dtype.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .. import kernels, sampling


class HostRunner:
    """`sampling.sample` between ``kernels.preprocess`` and ``kernels.postprocess``, on host arrays."""

    takes_uint8 = False  # sketches come as validated float32 (the CUDA runner copies uint8 as it is)

    def __init__(self, encoder: sampling.Encoder, sigma: float, resolution: int):
        self.encoder = encoder
        self.sigma = float(sigma)
        self.resolution = int(resolution)

    def run(self, sketches: np.ndarray, steps: int = 1, schedule: Any = (), seed: Any = 0,
            dtype: Any = np.float32) -> np.ndarray:
        """Images [B,1,R,R] of one chunk; seed: an int or one per sketch (noise keyed by seed and sketch)."""
        noise = sampling.PhiloxNoise(keys=sampling.request_keys(sketches, steps, seed), sigma=self.sigma)
        x1 = kernels.preprocess(sketches)
        x0_hat = sampling.sample(self._encoder_for(x1), x1, steps, schedule, noise)
        return kernels.postprocess(x0_hat, dtype)

    def _encoder_for(self, x1: np.ndarray) -> sampling.Encoder:
        """The encoder of this chunk: a sketch-conditioned model also sees the chunk's sketches at every step."""
        if not self.encoder.config.sketch_condition:
            return self.encoder
        return lambda x, t: self.encoder(x, t, sketch=x1)

    def stream(self, batches: Iterable[np.ndarray], steps: int = 1, schedule: Any = (), seed: int = 0,
               dtype: Any = np.float32) -> Iterator[np.ndarray]:
        """Images of each batch, in input order."""
        for x in batches:
            yield self.run(x, steps, schedule, seed, dtype)

    def warmup(self, steps: Iterable[int] = (1, 2), batch_sizes: Iterable[int] | None = None,
               sketch_dtype: Any = np.float32, dtype: Any = np.float32) -> None:
        """One batch-1 request per number of steps (engine initialization, allocator warm-up), then one 1-step
        request per size of `batch_sizes` above 1, which a host engine otherwise pays on its first request of
        that size (ONNX Runtime grows its memory arena; OpenVINO compiles its streams graph, once for every size).
        sketch_dtype changes nothing on the host path."""
        r = self.resolution
        for k in steps:
            self.run(np.zeros((1, 1, r, r), np.float32), k, np.full(k - 1, 0.5, np.float32), 0, dtype)
        for batch in sorted({int(b) for b in batch_sizes or ()} - {1}):
            self.run(np.zeros((batch, 1, r, r), np.float32), 1, np.zeros(0, np.float32), 0, dtype)
