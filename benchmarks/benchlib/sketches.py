"""Benchmark inputs: phantom sketches as uint8 [n,R,R], the form a host-to-host request takes."""

from __future__ import annotations

import numpy as np

_SKETCHES: dict[tuple[int, str], np.ndarray] = {}


def sketches_u8(n: int, resolution: int, kind: str = "edges") -> np.ndarray:
    """n phantom sketches of `kind` (edges or labels), uint8 [n,R,R] (16 distinct ones, repeated)."""
    if (resolution, kind) not in _SKETCHES:
        from cheartflow_sdk.data.phantom import make_phantom
        from cheartflow_sdk.sketch import make_sketch

        images, labels = make_phantom(16, size=resolution, seed=0)
        sketch = make_sketch(kind, images=images, labels=labels)[:, 0]
        _SKETCHES[resolution, kind] = np.round(sketch * 255).astype(np.uint8)
    return np.ascontiguousarray(np.resize(_SKETCHES[resolution, kind], (n, resolution, resolution)))
