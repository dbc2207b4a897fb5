"""Streaming runtime: the host runner and the CUDA-graph K-step runner (GPU), both driving the samplers of
``sampling.py``; the one CUDA-graph capture helper; the bounded prefetch queue (every backend).

Importing this package imports numpy only; torch is imported when a CudaGraphRunner is built.
"""

from .cuda_graph_runner import DEFAULT_BUCKETS, CudaGraphRunner, torch_callable
from .host_runner import HostRunner
from .prefetch import Prefetcher, prefetch

__all__ = ["DEFAULT_BUCKETS", "CudaGraphRunner", "HostRunner", "Prefetcher", "prefetch", "torch_callable"]
