"""Batches run on a CPU engine in chunks of a few images.

ONNX Runtime, and OpenVINO on a dynamic batch axis, keep memory for the largest batch they have run. Measured on
the edges model (2-core AVX2 EPYC, 64-image batches): ONNX Runtime fp32 in one call 21.9 images/s at 1833 MB RSS,
in chunks of 8 26.9 images/s at 312 MB (16: 26.0 / 530 MB, 4: 24.9 / 204 MB); OpenVINO fp32 (dynamic) 23.0 images/s
at 1659 MB against 23.8 at 434 MB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CPU_CHUNK = 8  # images per engine call on the CPU


def run_in_chunks(run: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray, t: np.ndarray,
                  chunk: int = CPU_CHUNK) -> np.ndarray:
    """run(x, t) over consecutive chunks of at most `chunk` images, outputs in input order."""
    if len(x) <= chunk:
        return run(x, t)
    return np.concatenate([run(x[i:i + chunk], t[i:i + chunk]) for i in range(0, len(x), chunk)])
