"""The call of the GPU engine backends (compiled PyTorch, TensorRT): E(x, t) in chunks of their largest batch.

Both engines run fixed-size buffers per batch bucket; this is the part around them that they share: input
conversion, the shape check, the caller's stream, chunking to `max_batch` rows and copying results out of
the engine's static buffers.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ..errors import InvalidInputError


def call_in_chunks(engine: Any, x: Any, t: Any, stream: Any = None) -> Any:
    """E(x, t) on `engine`: numpy float32 in -> numpy float32 out, torch tensors in -> a new torch tensor out.

    `engine` has `_torch`, `device`, `config.resolution`, `max_batch` and `_run_chunk(x, t)` (one chunk of at
    most `max_batch` rows -> a device tensor, possibly a static graph buffer, so it is copied here). On a CUDA
    engine the work runs on `stream` when one is given, else on the current stream.
    """
    torch = engine._torch
    as_numpy = not isinstance(x, torch.Tensor)
    if as_numpy:
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        t = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32))
    else:
        x, t = x.float(), t.float()
    r = engine.config.resolution
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, r, r) or tuple(t.shape) != (x.shape[0],):
        raise InvalidInputError(f"expected x [B, 1, {r}, {r}] and t [B], got x {tuple(x.shape)} and t {tuple(t.shape)}")
    on_stream = stream is not None and engine.device.type == "cuda"
    ctx = torch.cuda.stream(stream) if on_stream else contextlib.nullcontext()
    outs = []
    with ctx, torch.no_grad():
        for a in range(0, x.shape[0], engine.max_batch):
            out = engine._run_chunk(x[a:a + engine.max_batch], t[a:a + engine.max_batch])
            outs.append(out.to("cpu", copy=True) if as_numpy else out.clone())  # never a view of a static buffer
    if not outs:
        return np.zeros((0, 1, r, r), np.float32) if as_numpy else torch.zeros(0, 1, r, r, device=engine.device)
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    return out.numpy() if as_numpy else out
