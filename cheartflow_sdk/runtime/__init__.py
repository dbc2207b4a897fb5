"""Streaming runtime: the bounded prefetch queue (every backend) and the CUDA-graph K-step runner (GPU).

Importing this package imports numpy only; torch is imported when a CudaGraphRunner is built.
"""

from .cuda_graph_runner import DEFAULT_BUCKETS, CudaGraphRunner, torch_callable
from .prefetch import Prefetcher, prefetch

__all__ = ["DEFAULT_BUCKETS", "CudaGraphRunner", "Prefetcher", "prefetch", "torch_callable"]
