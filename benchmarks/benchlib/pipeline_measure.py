"""Measurements of one pipeline configuration, host to host: batch-1 latency, throughput, a long stream's
drift, and the cold start of load_pipeline."""

from __future__ import annotations

import argparse
import gc
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .nvml import NvmlSampler
from .pipeline_configs import Config
from .sketches import sketches_u8
from .timing import latency_summary

log = logging.getLogger("bench_pipeline")


def measure_latency(config: Config, x1: np.ndarray, steps: int, requests: int, warmup: int,
                    max_seconds: float, min_requests: int) -> list[float]:
    """Seconds of each batch-1 request, host to host, after `warmup` untimed requests."""
    for _ in range(warmup):
        config.run(x1, steps)
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < requests and (len(times) < min_requests or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        config.run(x1, steps)
        times.append(time.perf_counter() - t0)
    return times


def measure_throughput(config: Config, x: np.ndarray, steps: int, target_s: float, max_iters: int) -> tuple[float, int]:
    """Images/s streaming repeated batches `x` (after one untimed batch to estimate the count)."""
    t0 = time.perf_counter()
    for _ in config.stream([x], steps):
        pass
    est = max(time.perf_counter() - t0, 1e-6)
    iters = int(max(1, min(max_iters, target_s / est)))
    t0 = time.perf_counter()
    n = 0
    for out in config.stream([x] * iters, steps):
        n += len(out)
    return n / (time.perf_counter() - t0), iters


def _timed_stream(config: Config, x1: np.ndarray, steps: int, requests: int, max_seconds: float,
                  interval_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(arrival, completion) times of a stream of batch-1 requests, arriving every `interval_s` (0: as fast as
    the pipeline pulls them)."""
    t_in: list[float] = []
    deadline = time.perf_counter() + max_seconds

    def source() -> Iterator[np.ndarray]:
        due = time.perf_counter()
        for _ in range(requests):
            if time.perf_counter() > deadline and len(t_in) >= 20:
                return
            if interval_s:
                due += interval_s
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            t_in.append(time.perf_counter())
            yield x1

    t_out: list[float] = []
    for _ in config.stream(source(), steps):
        t_out.append(time.perf_counter())
    return np.asarray(t_in[:len(t_out)]), np.asarray(t_out)


def measure_stream_drift(config: Config, x1: np.ndarray, steps: int, requests: int, max_seconds: float,
                         single_p50_ms: float) -> dict[str, float]:
    """A long stream of batch-1 requests, twice: saturated (requests always waiting: time per request in steady
    state) and paced at one request per 2x the single-request p50 latency (latency from arrival to image).
    Drift: the median of the last 10% of requests over that of the first 10%."""
    out: dict[str, float] = {}
    _, t_out = _timed_stream(config, x1, steps, requests, max_seconds)
    gaps = np.diff(t_out) * 1e3
    tenth = max(1, len(gaps) // 10)
    out.update({"saturated_requests": float(len(t_out)), "saturated_rps": (len(t_out) - 1) / (t_out[-1] - t_out[0]),
                "saturated_interval_p50_ms": float(np.median(gaps)),
                "saturated_interval_p99_ms": float(np.percentile(gaps, 99)),
                "saturated_drift_ratio": float(np.median(gaps[-tenth:]) / np.median(gaps[:tenth]))})
    interval = 2 * single_p50_ms / 1e3
    t_in, t_out = _timed_stream(config, x1, steps, max(20, requests // 2), max_seconds, interval)
    lat = (t_out - t_in) * 1e3
    tenth = max(1, len(lat) // 10)
    first, last = float(np.median(lat[:tenth])), float(np.median(lat[-tenth:]))
    out.update({"paced_requests": float(len(lat)), "paced_interval_ms": interval * 1e3,
                "paced_latency_p50_ms": float(np.median(lat)), "paced_latency_p99_ms": float(np.percentile(lat, 99)),
                "paced_latency_p50_ms_first10pct": first, "paced_latency_p50_ms_last10pct": last,
                "paced_drift_ratio": last / first, "paced_p50_over_single_p50": float(np.median(lat)) / single_p50_ms})
    return out


def measure_config(config: Config, args: argparse.Namespace, res: int, sampler: NvmlSampler | None,
                   max_seconds: float) -> dict[str, Any]:
    """Warm-up, graph self-check, batch-1 latency (1 and 2 steps) and throughput at every batch size."""
    import torch

    out: dict[str, Any] = {"description": config.description, "batch_sizes": list(config.batch_sizes)}
    if config.on_gpu:
        torch.cuda.reset_peak_memory_stats()
    if sampler:
        sampler.phase = f"{config.name}/warmup"
    out["warmup_s"] = config.warmup((1, 2))
    if config.selfcheck is not None:
        out["graph_equals_eager"] = bool(config.selfcheck())
        log.info("%s: graph replays equal eager runs: %s", config.name, out["graph_equals_eager"])
    x1 = sketches_u8(1, res)
    lat: dict[str, Any] = {}
    if 1 in config.batch_sizes:
        for k in (1, 2):
            if sampler:
                sampler.phase = f"{config.name}/latency"
            times = measure_latency(config, x1, k, args.requests, args.latency_warmup, max_seconds, args.min_requests)
            lat[f"{k}step"] = latency_summary(times)
            log.info("%s %d-step b1: p50 %.3f ms p99 %.3f ms (n=%d)", config.name, k, lat[f"{k}step"]["p50_ms"],
                     lat[f"{k}step"]["p99_ms"], len(times))
    out["latency_b1"] = lat
    thr: dict[str, dict[str, float]] = {"1step": {}, "2step": {}}
    iters: dict[str, dict[str, int]] = {"1step": {}, "2step": {}}
    for b in config.batch_sizes:
        x = sketches_u8(b, res)
        for k in (1, 2):
            if sampler:
                sampler.phase = f"{config.name}/throughput"
            ips, n = measure_throughput(config, x, k, args.throughput_seconds, args.max_iters)
            thr[f"{k}step"][str(b)] = ips
            iters[f"{k}step"][str(b)] = n
            log.info("%s %d-step b%d: %.1f images/s (%d batches)", config.name, k, b, ips, n)
    out["throughput_ips"] = thr
    out["throughput_batches_timed"] = iters
    if config.on_gpu:
        out["torch_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if sampler:
        out["nvml_throughput"] = sampler.summary(f"{config.name}/throughput")
        sampler.phase = "idle"
    return out


def cold_start(model_dir: Path, on_gpu: bool, res: int) -> dict[str, float]:
    """load_pipeline + warmup() + the first request, and the first request of a pipeline without warmup()."""
    import cheartflow_sdk as cf

    x = sketches_u8(1, res)
    backend, device = ("torch", "cuda") if on_gpu else ("auto", "cpu")
    t0 = time.perf_counter()
    pipe = cf.load_pipeline(model_dir, backend=backend, device=device)
    load_s = time.perf_counter() - t0
    warm_s = pipe.warmup(steps=(1, 2), sketch_dtype=np.uint8, dtype=np.uint8)
    t0 = time.perf_counter()
    pipe.synthesize(x, steps=1, dtype=np.uint8)
    first_ms = (time.perf_counter() - t0) * 1e3
    out = {"load_s": load_s, "warmup_s": warm_s, "first_request_ms_after_warmup": first_ms,
           "graphs_captured": float(pipe.runner.graph_count) if pipe.runner is not None else 0.0}
    del pipe
    gc.collect()
    cold = cf.load_pipeline(model_dir, backend=backend, device=device)
    t0 = time.perf_counter()
    cold.synthesize(x, steps=1, dtype=np.uint8)
    out["first_request_ms_without_warmup"] = (time.perf_counter() - t0) * 1e3
    del cold
    gc.collect()
    return out
