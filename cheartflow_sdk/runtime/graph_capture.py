"""The one CUDA-graph capture helper of every engine: the GPU backends' per-bucket graphs (compiled PyTorch,
TensorRT) and the CUDA-graph runner's whole-loop graphs.

A capture runs `prepare` on its stream outside the graph (lazy library init, autotuning, binding shapes and
addresses), then records `body` on that stream. A graph keyed by the addresses of the buffers it was captured
on is re-captured when they change. A failed capture (every capture_error_mode tried) turns graphs off for its
owner, keeps the reason in `graph_error`, and the caller runs the same work eagerly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any

log = logging.getLogger(__name__)


class BucketGraphs:
    """Mixin: `_init_graphs(enabled)` in `__init__`, then `_bucket_graph(...)` per graphed call (buffers that may
    move) or `_capture_graph(...)` (buffers fixed for the owner's life).

    Needs `self._torch` and `self.device` (a CUDA torch.device) on the host class.
    """

    def _init_graphs(self, enabled: bool, error_modes: Sequence[str | None] = (None,), shared_pool: bool = False) -> None:
        """error_modes: the capture_error_mode of each attempt (None: torch's default), tried in order;
        shared_pool: all of the owner's graphs share one memory pool."""
        self.cuda_graphs = bool(enabled)
        self._graph_entries: dict[Hashable, tuple[Any, tuple[int, ...]]] = {}
        self._graph_modes = tuple(error_modes)
        self._graph_pool: Any = None
        self._shared_pool = shared_pool
        self.captures = 0  # graphs captured so far (re-captures included)
        self.graph_error: str | None = None  # set when a capture failed and graphs were turned off

    def _bucket_graph(self, bucket: Hashable, ptrs: tuple[int, ...], prepare: Callable[[Any], None],
                      body: Callable[[Any], None]) -> Any:
        """The graph of `bucket` on buffers at `ptrs`, captured on first use (None: capture failed, graphs off)."""
        entry = self._graph_entries.get(bucket)
        if entry is not None and entry[1] == ptrs:
            return entry[0]
        if entry is not None:
            log.info("buffers of bucket %s changed: re-capturing its CUDA graph", bucket)
        graph = self._capture_graph(f"{getattr(self, 'path', type(self).__name__)} (bucket {bucket})", prepare, body)
        if graph is not None:
            self._graph_entries[bucket] = (graph, ptrs)
        return graph

    def _capture_graph(self, what: str, prepare: Callable[[Any], None], body: Callable[[Any], None],
                       stream: Any = None) -> Any:
        """Capture `body` on `stream` (default: a new side stream behind the current one) after `prepare` ran
        there; None when every attempt failed (graphs are then off, the reason in `graph_error`)."""
        torch = self._torch
        errors = []
        with torch.cuda.device(self.device):
            if stream is None:
                stream = torch.cuda.Stream(self.device)
                stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                prepare(stream)
            stream.synchronize()
            kwargs: dict[str, Any] = {}
            if self._shared_pool:
                if self._graph_pool is None:
                    self._graph_pool = torch.cuda.graph_pool_handle()
                kwargs["pool"] = self._graph_pool
            for mode in self._graph_modes:
                if mode is not None:
                    kwargs["capture_error_mode"] = mode
                graph = torch.cuda.CUDAGraph()
                try:
                    with torch.cuda.graph(graph, stream=stream, **kwargs):
                        body(stream)
                except RuntimeError as exc:
                    errors.append(f"{mode or 'default mode'}: {exc}" if len(self._graph_modes) > 1 else str(exc))
                    log.warning("CUDA graph capture of %s failed (capture_error_mode=%s): %s", what, mode, exc)
                    torch.cuda.synchronize(self.device)
                    continue
                self.captures += 1
                return graph
        self.cuda_graphs = False
        self.graph_error = "; ".join(errors)
        log.warning("CUDA graph capture of %s failed, running without graphs: %s", what, self.graph_error)
        return None
