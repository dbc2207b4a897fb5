"""Timing of repeated calls: wall clock on the host, CUDA events on the device, and latency percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def wall_times(fn: Callable[[], Any], runs: int, *, warmup: int = 0, calls: int = 1,
               min_seconds: float = 0.0) -> list[float]:
    """Seconds per call of `fn` (time.perf_counter), after `warmup` untimed calls: `runs` timings of `calls`
    back-to-back calls each, and more until the timings add up to `min_seconds`."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < runs or sum(times) * calls < min_seconds:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return times


def cuda_times(fn: Callable[[], Any], runs: int, *, warmup: int = 0, calls: int = 1) -> list[float]:
    """Seconds per call of `fn` (which enqueues work on the current CUDA stream), measured with CUDA events
    around `calls` back-to-back calls, `runs` times, after `warmup` untimed calls."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3 / calls)
    return times


def percentile_ms(times_s: Sequence[float], q: float) -> float:
    """The q-th percentile of times in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(times_s) * 1e3, q))


def latency_summary(times_s: Sequence[float]) -> dict[str, float]:
    """{n, p50_ms, p99_ms, mean_ms} of request times in seconds."""
    return {"n": len(times_s), "p50_ms": percentile_ms(times_s, 50), "p99_ms": percentile_ms(times_s, 99),
            "mean_ms": float(np.mean(times_s) * 1e3)}
