"""One CUDA graph per batch bucket for the GPU engine backends (compiled PyTorch, TensorRT).

A bucket's graph is keyed by the addresses of the buffers it was captured on and re-captured when they
change (`allocate(bucket, force=True)`). A failed capture turns graphs off for the backend, keeps the reason
in `graph_error`, and the caller runs the same work eagerly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class BucketGraphs:
    """Mixin: `_init_graphs(enabled)` in `__init__`, then `_bucket_graph(...)` per graphed call.

    Needs `self._torch`, `self.device` (a CUDA torch.device) and `self.path` on the host class.
    """

    def _init_graphs(self, enabled: bool) -> None:
        self.cuda_graphs = bool(enabled)
        self._graphs: dict[int, tuple[Any, tuple[int, ...]]] = {}
        self.captures = 0  # graphs captured so far (re-captures included)
        self.graph_error: str | None = None  # set when a capture failed and graphs were turned off

    def _bucket_graph(self, bucket: int, ptrs: tuple[int, ...], prepare: Callable[[Any], None],
                      body: Callable[[Any], None]) -> Any:
        """The graph of `bucket` on buffers at `ptrs`, captured on first use (None: capture failed, graphs off).

        prepare(stream) runs once on a side stream outside the capture (lazy library init, autotuning,
        binding shapes and addresses); body(stream) is the work captured on that stream.
        """
        entry = self._graphs.get(bucket)
        if entry is not None and entry[1] == ptrs:
            return entry[0]
        if entry is not None:
            log.info("buffers of bucket %d changed: re-capturing its CUDA graph", bucket)
        torch = self._torch
        with torch.cuda.device(self.device):
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                prepare(side)
            side.synchronize()
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=side):
                    body(side)
            except RuntimeError as exc:
                self.cuda_graphs = False
                self.graph_error = str(exc)
                log.warning("CUDA graph capture of %s (bucket %d) failed, running without graphs: %s",
                            self.path, bucket, exc)
                torch.cuda.synchronize(self.device)
                return None
        self._graphs[bucket] = (graph, ptrs)
        self.captures += 1
        return graph
