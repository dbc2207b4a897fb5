#!/usr/bin/env python
"""Pipeline benchmark: host-to-host latency, throughput, roofline, GPU telemetry, cold start, streaming drift.

    python benchmarks/bench_pipeline.py [--model DIR] [--quick] [--results-dir DIR] [--backends a,b,...]

Writes ``pipeline-<device>.json`` (benchmarks/results.py format: device, date, versions, command and a flat
``metrics`` object), ``pipeline-<device>.md`` (tables) and ``pipeline-<device>.png`` (throughput vs batch,
latency bars) into the results folder. Every request is host to host: uint8 sketches [B,R,R] in, uint8
images [B,1,R,R] out. Without --model, a freshly initialized default-size model (ModelConfig(), 128x128) is
saved and exported on the fly: timings do not depend on the weights' values.

Configurations (each one measured only where it can run; the others are listed as skipped, with the reason):

  on a GPU (all device-resident: preprocess, K encoder calls, renoise and postprocess kernels on the device)
    torch-eager-fp32        PyTorch eager fp32 module, kernels launched eagerly, no CUDA graphs (the reference)
    torch-eager-fp16        the same with the network in fp16 (preconditioning stays fp32)
    torch-compile-fp16      torch.compile(fp16 module), launched eagerly (measured at --compile-batches)
    sdk-graphs-fp32         the SDK runtime (CudaGraphRunner: the whole K-step loop in one CUDA graph) on fp32
    sdk-graphs-fp16         the SDK runtime on the fp16 module
    sdk-graphs-compile-fp16 the SDK runtime around the torch.compile'd fp16 module
    sdk-graphs-<engine>     the SDK runtime around an engine backend (compiled engine, TensorRT) when present
    onnxruntime-cuda        ONNX Runtime CUDA EP through the numpy pipeline (when onnxruntime-gpu is installed)
  everywhere
    onnxruntime-cpu         ONNX Runtime CPU EP through the numpy pipeline (batch 1 and 16)
  on CPU only
    torch-eager-fp32        PyTorch eager fp32 through the numpy pipeline (batch 1 and 16)
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import json
import logging
import math
import os
import platform
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.append(str(REPO))  # an installed cheartflow_sdk wins; else this checkout (PYTHONPATH=$PWD puts it first)
sys.path.insert(0, str(HERE))  # benchmarks/results.py: the results-file writer every benchmark shares

import results  # noqa: E402
from cheartflow_sdk import kernels  # noqa: E402
from cheartflow_sdk.config import ModelConfig  # noqa: E402


RESULTS_DIR = results.RESULTS_DIR
write_results = results.write_results

log = logging.getLogger("bench_pipeline")

SCHEDULES = {1: (), 2: (0.5,)}  # two-step: the default schedule t_1 = 0.5
GPU_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CPU_BATCHES = (1, 16)
REF = "torch-eager-fp32"
COMPILE_REF = "torch-compile-fp16"
TARGETS = {  # issue 5, H100, 128x128
    "latency_p50_ms_1step_b1": ("<=", 0.5),
    "latency_p50_ms_2step_b1": ("<=", 0.8),
    "latency_p99_over_p50_1step_b1": ("<=", 1.5),
    "throughput_ratio_vs_eager_fp32_b256": (">=", 10.0),
    "throughput_ratio_vs_compile_fp16_b256": (">=", 1.3),
}


# =============================================================================================
# Engines: one request host to host, and a stream of requests
# =============================================================================================


@dataclass
class Engine:
    name: str
    description: str
    batch_sizes: tuple[int, ...]
    run: Callable[[np.ndarray, int], np.ndarray]  # (uint8 [B,R,R], steps) -> uint8 [B,1,R,R]
    stream: Callable[[Iterable[np.ndarray], int], Iterator[np.ndarray]]
    warmup: Callable[[tuple[int, ...]], float]
    close: Callable[[], None] = lambda: None
    on_gpu: bool = False
    runtime: bool = False  # the SDK's device runtime (candidates for the headline figures)
    selfcheck: Callable[[], bool] | None = None  # graph replays == the same requests run eagerly


@dataclass
class _EncoderInfo:
    """What Pipeline needs of an encoder when a runner does the work."""

    config: ModelConfig
    name: str


def runner_engine(name: str, description: str, fn: Any, cfg: ModelConfig, batch_sizes: tuple[int, ...],
                  use_graphs: bool, runtime: bool) -> Engine:
    """A CudaGraphRunner around the torch callable `fn`, driven through the public Pipeline API."""
    import torch

    from cheartflow_sdk.pipeline import Pipeline
    from cheartflow_sdk.runtime import CudaGraphRunner

    runner = CudaGraphRunner(fn, cfg.resolution, cfg.sigma, device="cuda", buckets=batch_sizes,
                             use_graphs=use_graphs, name=name)
    holder = {"pipe": Pipeline(_EncoderInfo(cfg, name), Path(name), runner=runner)}

    def close() -> None:
        holder.clear()
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()

    def selfcheck() -> bool:
        """Requests with other seeds (one, or one per sketch) and per-sample schedules: graph replays against the
        same launches without graphs (a second runner on the same callable), bit for bit."""
        small = batch_sizes[:3]
        eager = CudaGraphRunner(fn, cfg.resolution, cfg.sigma, device="cuda", buckets=small, use_graphs=False)
        graphed = holder["pipe"].runner
        rng = np.random.default_rng(0)
        ok = True
        for n in sorted({1, small[-1], max(1, small[-1] - 1)}):
            x = sketches_u8(n, cfg.resolution)
            for k in (1, 2):
                for seed in (1, 2**40 + 3, list(range(17, 17 + n))):
                    sched = rng.uniform(0.1, 0.9, (n, k - 1)).astype(np.float32) if k > 1 else ()
                    a = graphed.run(x, k, sched, seed=seed, dtype=np.uint8)
                    b = eager.run(x, k, sched, seed=seed, dtype=np.uint8)
                    if not np.array_equal(a, b):
                        log.error("%s: graph replay differs from eager (n=%d, steps=%d, seed=%s): max |diff| %d", name,
                                  n, k, seed, int(np.abs(a.astype(int) - b).max()))
                        ok = False
        return ok

    return Engine(
        name, description, batch_sizes,
        selfcheck=selfcheck if use_graphs else None,
        run=lambda x, k: holder["pipe"].synthesize(x, steps=k, seed=0, dtype=np.uint8, batch_size=len(x)),
        stream=lambda xs, k: holder["pipe"].stream(xs, steps=k, seed=0, dtype=np.uint8),
        warmup=lambda steps: holder["pipe"].warmup(steps, batch_sizes, np.uint8, np.uint8),
        close=close, on_gpu=True, runtime=runtime,
    )


def pipeline_engine(name: str, description: str, encoder: Any, source: Path, batch_sizes: tuple[int, ...],
                    on_gpu: bool = False) -> Engine:
    from cheartflow_sdk.pipeline import Pipeline

    pipe = Pipeline(encoder, source, runner=None)  # the numpy path: host arrays between encoder calls

    def warmup(steps: tuple[int, ...]) -> float:  # first calls (session init); larger batches warm up untimed
        t0 = time.perf_counter()
        r = pipe.config.resolution
        for k in steps:
            pipe.synthesize(np.zeros((1, r, r), np.uint8), steps=k, dtype=np.uint8)
        return time.perf_counter() - t0

    return Engine(
        name, description, batch_sizes,
        run=lambda x, k: pipe.synthesize(x, steps=k, seed=0, dtype=np.uint8, batch_size=len(x)),
        stream=lambda xs, k: pipe.stream(xs, steps=k, seed=0, dtype=np.uint8),
        warmup=warmup, on_gpu=on_gpu,
    )


# =============================================================================================
# Measurements
# =============================================================================================


def percentile_ms(times_s: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(times_s) * 1e3, q))


def measure_latency(engine: Engine, x1: np.ndarray, steps: int, requests: int, warmup: int,
                    max_seconds: float, min_requests: int) -> list[float]:
    """Seconds of each batch-1 request, host to host, after `warmup` untimed requests."""
    for _ in range(warmup):
        engine.run(x1, steps)
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < requests and (len(times) < min_requests or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        engine.run(x1, steps)
        times.append(time.perf_counter() - t0)
    return times


def measure_throughput(engine: Engine, x: np.ndarray, steps: int, target_s: float, max_iters: int) -> tuple[float, int]:
    """Images/s streaming repeated batches `x` (after one untimed batch to estimate the count)."""
    t0 = time.perf_counter()
    for _ in engine.stream([x], steps):
        pass
    est = max(time.perf_counter() - t0, 1e-6)
    iters = int(max(1, min(max_iters, target_s / est)))
    t0 = time.perf_counter()
    n = 0
    for out in engine.stream([x] * iters, steps):
        n += len(out)
    return n / (time.perf_counter() - t0), iters


def _timed_stream(engine: Engine, x1: np.ndarray, steps: int, requests: int, max_seconds: float,
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
    for _ in engine.stream(source(), steps):
        t_out.append(time.perf_counter())
    return np.asarray(t_in[:len(t_out)]), np.asarray(t_out)


def measure_stream_drift(engine: Engine, x1: np.ndarray, steps: int, requests: int, max_seconds: float,
                         single_p50_ms: float) -> dict[str, float]:
    """A long stream of batch-1 requests, twice: saturated (requests always waiting: time per request in steady
    state) and paced at one request per 2x the single-request p50 latency (latency from arrival to image).
    Drift: the median of the last 10% of requests over that of the first 10%."""
    out: dict[str, float] = {}
    _, t_out = _timed_stream(engine, x1, steps, requests, max_seconds)
    gaps = np.diff(t_out) * 1e3
    tenth = max(1, len(gaps) // 10)
    out.update({"saturated_requests": float(len(t_out)), "saturated_rps": (len(t_out) - 1) / (t_out[-1] - t_out[0]),
                "saturated_interval_p50_ms": float(np.median(gaps)),
                "saturated_interval_p99_ms": float(np.percentile(gaps, 99)),
                "saturated_drift_ratio": float(np.median(gaps[-tenth:]) / np.median(gaps[:tenth]))})
    interval = 2 * single_p50_ms / 1e3
    t_in, t_out = _timed_stream(engine, x1, steps, max(20, requests // 2), max_seconds, interval)
    lat = (t_out - t_in) * 1e3
    tenth = max(1, len(lat) // 10)
    first, last = float(np.median(lat[:tenth])), float(np.median(lat[-tenth:]))
    out.update({"paced_requests": float(len(lat)), "paced_interval_ms": interval * 1e3,
                "paced_latency_p50_ms": float(np.median(lat)), "paced_latency_p99_ms": float(np.percentile(lat, 99)),
                "paced_latency_p50_ms_first10pct": first, "paced_latency_p50_ms_last10pct": last,
                "paced_drift_ratio": last / first, "paced_p50_over_single_p50": float(np.median(lat)) / single_p50_ms})
    return out


def flops_per_image(module: Any, resolution: int) -> float:
    """FLOPs of one encoder call on one image (torch.utils.flop_counter: 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(module).float().cpu().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        m(torch.zeros(1, 1, resolution, resolution), torch.ones(1))
    return float(counter.get_total_flops())


def gpu_fp16_matmul_peak_tflops(n: int, reps: int) -> float:
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    for _ in range(3):
        torch.matmul(a, b)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = 0.0
    for _ in range(3):
        start.record()
        for _ in range(reps):
            torch.matmul(a, b)
        end.record()
        end.synchronize()
        best = max(best, 2 * n**3 * reps / (start.elapsed_time(end) * 1e-3) / 1e12)
    return best


def cpu_fp32_matmul_peak_gflops(n: int = 2048, reps: int = 3) -> tuple[float, str]:
    """Best fp32 n x n matmul rate on the CPU threads, of torch and of ONNX Runtime (MLAS), best of 5 timings
    each (libraries differ: on some CPUs one of them misses the widest vector units). Returns (GFLOP/s, who)."""
    import torch

    def best_of(fn: Callable[[], Any]) -> float:
        fn()
        best = 0.0
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
        return best

    a, b = torch.randn(n, n), torch.randn(n, n)
    rates = {"torch.matmul": best_of(lambda: torch.matmul(a, b))}
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                                  [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "ab"],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = min(model.ir_version, 9)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {"a": a.numpy(), "b": b.numpy()}
        rates["onnxruntime MatMul"] = best_of(lambda: sess.run(None, feeds))
    except Exception as exc:  # noqa: BLE001 - the torch figure stands alone
        log.info("ONNX Runtime matmul peak not measured: %s", exc)
    who = max(rates, key=rates.get)
    return rates[who], who


def gpu_kernel_bandwidth(resolution: int, batch: int, sigma: float, reps: int) -> dict[str, float]:
    """GB/s of the SDK kernels at `batch` (bytes each must read and write) and of a large device copy."""
    import torch

    def timed(fn: Callable[[], Any]) -> float:
        fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3 / reps

    out: dict[str, float] = {}
    bufs = [torch.empty(256 * 2**20, dtype=torch.float32, device="cuda") for _ in range(2)]  # 1 GiB each
    t = timed(lambda: bufs[1].copy_(bufs[0]))
    copy_bw = 2 * bufs[0].numel() * 4 / t / 1e9
    out["copy_bandwidth_gbs"] = copy_bw
    bufs.clear()
    torch.cuda.empty_cache()
    n = batch * resolution * resolution
    u8 = torch.randint(0, 256, (batch, resolution, resolution), dtype=torch.uint8, device="cuda")
    x1 = kernels.preprocess(u8, np.float32)
    x0 = torch.rand_like(x1) * 2 - 1
    tt = torch.full((batch,), 0.5, device="cuda")
    xt = torch.empty_like(x0)
    res = torch.empty((batch, 1, resolution, resolution), dtype=torch.uint8, device="cuda")
    cases = {
        "preprocess": (lambda: kernels.preprocess(u8, np.float32, out=x1), n * (1 + 4)),
        "postprocess": (lambda: kernels.postprocess(x0, np.uint8, out=res), n * (4 + 1)),
    }
    if hasattr(kernels, "renoise_device_params"):
        params = torch.tensor([7, 0], dtype=torch.uint64, device="cuda")
        cases["renoise"] = (lambda: kernels.renoise_device_params(x0, x1, tt, sigma, params, 1, out=xt), n * 12 + 4 * batch)
    else:
        cases["renoise"] = (lambda: kernels.renoise(x0, x1, tt, sigma, 7, 1, 0, out=xt), n * 12 + 4 * batch)
    for name, (fn, nbytes) in cases.items():
        bw = nbytes / timed(fn) / 1e9
        out[f"kernel_{name}_gbs"] = bw
        out[f"kernel_{name}_bw_fraction"] = bw / copy_bw
    return out


class NvmlSampler:
    """GPU memory, power and utilization sampled on a thread through NVML (nvidia-ml-py), tagged by phase."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.phase = "idle"
        self.samples: list[tuple[str, float, float, float]] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = self._find_handle(pynvml)
        except Exception as exc:
            self._nvml = None
            self.error = f"NVML unavailable ({type(exc).__name__}: {exc}); install nvidia-ml-py"

    @staticmethod
    def _find_handle(pynvml: Any) -> Any:
        import torch

        try:  # the CUDA device 0 of this process, whatever CUDA_VISIBLE_DEVICES says
            uuid = str(torch.cuda.get_device_properties(0).uuid)
            return pynvml.nvmlDeviceGetHandleByUUID(("GPU-" + uuid).encode())
        except Exception:
            return pynvml.nvmlDeviceGetHandleByIndex(0)

    @property
    def ok(self) -> bool:
        return self._nvml is not None

    def start(self) -> None:
        if self.ok:
            self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        nv, h = self._nvml, self._handle
        while not self._stop.is_set():
            try:
                mem = nv.nvmlDeviceGetMemoryInfo(h).used / 2**20
                power = nv.nvmlDeviceGetPowerUsage(h) / 1e3
                util = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                self.samples.append((self.phase, mem, power, util))
            except Exception as exc:
                self.error = f"NVML sampling stopped: {exc}"
                return
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.ok:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass

    def summary(self, prefix: str = "") -> dict[str, float]:
        rows = [s for s in self.samples if s[0].startswith(prefix)]
        if not rows:
            return {}
        mem, power, util = (np.asarray([r[i] for r in rows]) for i in (1, 2, 3))
        return {"samples": len(rows), "mem_used_max_mb": float(mem.max()), "power_mean_w": float(power.mean()),
                "power_max_w": float(power.max()), "util_mean_pct": float(util.mean()), "util_max_pct": float(util.max())}


# =============================================================================================
# Model and engines
# =============================================================================================


def fresh_model(out_dir: Path, export: bool) -> Path:
    """A default-size model with random weights (the zero-initialized output conv re-drawn so the network's
    output matters), saved like a trained one, with its ONNX engine when `export`."""
    import torch

    from cheartflow_sdk.models import build_encoder
    from cheartflow_sdk.training.checkpoint import save_model

    torch.manual_seed(0)
    enc = build_encoder(ModelConfig())
    enc.net.out_conv.reset_parameters()
    save_model(enc, out_dir, fresh_random_init=True)
    if export:  # no parity gate: random weights give larger activations than a trained model (timing only)
        from cheartflow_sdk.export import export_onnx

        export_onnx(out_dir, gate=False)
    return out_dir


def onnx_path_for(model_dir: Path, work: Path) -> Path:
    if (model_dir / "model.onnx").is_file():
        return model_dir / "model.onnx"
    from cheartflow_sdk.export import export_onnx

    path, _ = export_onnx(model_dir, work / "model.onnx")
    return path


def plan_engines(args: argparse.Namespace, model_dir: Path, work: Path, on_gpu: bool, wanted: set[str] | None,
                 skipped: dict[str, str], modules: dict[str, Any]) -> list[tuple[str, Callable[[], Engine]]]:
    """(name, factory) of every configuration to measure; factories run one at a time (each engine is closed
    before the next is built, so GPU memory is reused). Absent backends go to `skipped` with the reason."""
    from cheartflow_sdk.backends import registry

    plan: list[tuple[str, Callable[[], Engine]]] = []

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    def add(name: str, factory: Callable[[], Engine]) -> None:
        if want(name):
            plan.append((name, factory))

    def ort_engine(name: str, device: str, batches: tuple[int, ...], desc: str) -> Callable[[], Engine]:
        def make() -> Engine:
            from cheartflow_sdk.backends.onnxruntime_backend import OnnxRuntimeEncoder

            enc = OnnxRuntimeEncoder(onnx_path_for(model_dir, work), device=device)
            return pipeline_engine(name, desc, enc, model_dir, batches, on_gpu=device == "cuda")
        return make

    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError as exc:
        providers = []
        for name in ("onnxruntime-cpu", "onnxruntime-cuda"):
            if want(name):
                skipped[name] = f"onnxruntime not importable ({exc})"

    gpu_names = ["torch-eager-fp16", COMPILE_REF, "sdk-graphs-fp32", "sdk-graphs-fp16", "sdk-graphs-compile-fp16",
                 "onnxruntime-cuda", "tensorrt"]
    if not on_gpu:
        for name in gpu_names:
            if want(name):
                skipped[name] = "no CUDA GPU on this machine"

        def torch_cpu() -> Engine:
            from cheartflow_sdk.backends.torch_backend import TorchEncoder

            return pipeline_engine(REF, "PyTorch eager fp32 on CPU, numpy pipeline", TorchEncoder(model_dir, device="cpu"),
                                   model_dir, args.cpu_batches)

        add(REF, torch_cpu)
        if providers:
            add("onnxruntime-cpu", ort_engine("onnxruntime-cpu", "cpu", args.cpu_batches, "ONNX Runtime CPU EP, numpy pipeline"))
        return plan

    import torch

    cfg = modules["fp32"].config
    batches = args.gpu_batches
    m32 = modules["fp32"]
    m16 = copy.deepcopy(m32).half()

    def runner(name: str, desc: str, get_fn: Callable[[], Any], sizes: tuple[int, ...], graphs: bool,
               runtime: bool) -> Callable[[], Engine]:
        return lambda: runner_engine(name, desc, get_fn(), cfg, sizes, graphs, runtime)

    # most important first (a run cut short keeps them): the reference, the SDK runtime, torch.compile, engines
    add(REF, runner(REF, "PyTorch eager fp32, device loop, no CUDA graphs (reference)", lambda: m32, batches, False, False))
    add("sdk-graphs-fp16", runner("sdk-graphs-fp16", "SDK runtime: CUDA graph of the K-step loop, fp16 network",
                                  lambda: m16, batches, True, True))
    late = [("torch-eager-fp16", runner("torch-eager-fp16", "PyTorch eager, fp16 network, no CUDA graphs", lambda: m16,
                                        batches, False, False)),
            ("sdk-graphs-fp32", runner("sdk-graphs-fp32", "SDK runtime: CUDA graph of the K-step loop, fp32 network",
                                       lambda: m32, batches, True, True))]
    compiled: dict[str, Any] = {}

    def compiled_fp16() -> Any:  # one compiled module for both configurations (compiled once per batch size)
        if "m" not in compiled:
            compiled["m"] = torch.compile(copy.deepcopy(m16), dynamic=False)
        return compiled["m"]

    for name, graphs, desc in ((COMPILE_REF, False, "torch.compile(fp16 module), launched eagerly"),
                               ("sdk-graphs-compile-fp16", True, "SDK runtime around torch.compile(fp16 module)")):
        if args.quick and want(name):
            skipped[name] = "skipped with --quick (compilation takes minutes)"
        else:
            add(name, runner(name, desc, compiled_fp16, args.compile_batches, graphs, graphs))
    # engine backends of the registry beyond onnxruntime / torch (compiled engine, TensorRT), when present
    extra = [b for b in registry.BACKENDS if b not in ("auto", "onnxruntime", "torch", "openvino")]  # openvino: CPU only,
    # measured by bench_cpu_engines.py
    engine_paths = dict(spec.split("=", 1) for spec in args.engine)
    for name in sorted(set(extra) | set(engine_paths) | {"tensorrt"}):
        cfg_name = f"sdk-graphs-{name}"
        if not (want(cfg_name) or want(name)):
            continue
        if name not in registry.BACKENDS:
            skipped[name] = f"no {name!r} backend in this build (backends.registry.BACKENDS = {registry.BACKENDS})"
            continue

        def engine_factory(name: str = name, cfg_name: str = cfg_name) -> Engine:
            from cheartflow_sdk.runtime import torch_callable

            source = Path(engine_paths.get(name, model_dir))
            try:
                enc = registry.open_encoder(source, name, "cuda")
            except Exception as first_error:  # noqa: BLE001 - no engine file yet: try to export one
                export_engine = getattr(importlib.import_module("cheartflow_sdk.export"), "export_engine", None)
                if export_engine is None or name in engine_paths:
                    raise
                log.info("no %s engine for %s (%s): exporting one", name, source, first_error)
                export_engine(model_dir, name)
                enc = registry.open_encoder(model_dir, name, "cuda")
            sizes = tuple(b for b in batches if b <= int(getattr(enc, "max_batch", batches[-1])))
            fn = torch_callable(enc)
            if fn is not None:
                return runner_engine(cfg_name, f"SDK runtime around the {name} engine ({enc.name})", fn, cfg, sizes,
                                     True, True)
            return pipeline_engine(name, f"{enc.name} engine through the numpy pipeline", enc, model_dir, sizes, True)

        plan.append((cfg_name, engine_factory))
    for name, factory in late:
        add(name, factory)
    if "CUDAExecutionProvider" in providers:
        add("onnxruntime-cuda", ort_engine("onnxruntime-cuda", "cuda", batches, "ONNX Runtime CUDA EP, numpy pipeline"))
    elif providers and want("onnxruntime-cuda"):
        skipped["onnxruntime-cuda"] = f"ONNX Runtime has no CUDA EP here (providers {providers}; install onnxruntime-gpu)"
    if providers:
        add("onnxruntime-cpu", ort_engine("onnxruntime-cpu", "cpu", args.cpu_batches, "ONNX Runtime CPU EP, numpy pipeline"))
    return plan


# =============================================================================================
# The run
# =============================================================================================


_SKETCHES: dict[int, np.ndarray] = {}


def sketches_u8(n: int, resolution: int) -> np.ndarray:
    """n phantom edge sketches, uint8 [n,R,R] (16 distinct ones, repeated)."""
    if resolution not in _SKETCHES:
        from cheartflow_sdk.data.phantom import make_phantom
        from cheartflow_sdk.sketch import canny

        images, _ = make_phantom(16, size=resolution, seed=0)
        _SKETCHES[resolution] = (canny(images)[:, 0] * 255).astype(np.uint8)
    return np.ascontiguousarray(np.resize(_SKETCHES[resolution], (n, resolution, resolution)))


def bench_engine(engine: Engine, args: argparse.Namespace, res: int, sampler: NvmlSampler | None,
                 max_seconds: float) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"description": engine.description, "batch_sizes": list(engine.batch_sizes)}
    if engine.on_gpu:
        torch.cuda.reset_peak_memory_stats()
    if sampler:
        sampler.phase = f"{engine.name}/warmup"
    out["warmup_s"] = engine.warmup((1, 2))
    if engine.selfcheck is not None:
        out["graph_equals_eager"] = bool(engine.selfcheck())
        log.info("%s: graph replays equal eager runs: %s", engine.name, out["graph_equals_eager"])
    x1 = sketches_u8(1, res)
    lat: dict[str, Any] = {}
    if 1 in engine.batch_sizes:
        for k in (1, 2):
            if sampler:
                sampler.phase = f"{engine.name}/latency"
            times = measure_latency(engine, x1, k, args.requests, args.latency_warmup, max_seconds, args.min_requests)
            lat[f"{k}step"] = {"n": len(times), "p50_ms": percentile_ms(times, 50), "p99_ms": percentile_ms(times, 99),
                               "mean_ms": float(np.mean(times) * 1e3)}
            log.info("%s %d-step b1: p50 %.3f ms p99 %.3f ms (n=%d)", engine.name, k, lat[f"{k}step"]["p50_ms"],
                     lat[f"{k}step"]["p99_ms"], len(times))
    out["latency_b1"] = lat
    thr: dict[str, dict[str, float]] = {"1step": {}, "2step": {}}
    iters: dict[str, dict[str, int]] = {"1step": {}, "2step": {}}
    for b in engine.batch_sizes:
        x = sketches_u8(b, res)
        for k in (1, 2):
            if sampler:
                sampler.phase = f"{engine.name}/throughput"
            ips, n = measure_throughput(engine, x, k, args.throughput_seconds, args.max_iters)
            thr[f"{k}step"][str(b)] = ips
            iters[f"{k}step"][str(b)] = n
            log.info("%s %d-step b%d: %.1f images/s (%d batches)", engine.name, k, b, ips, n)
    out["throughput_ips"] = thr
    out["throughput_batches_timed"] = iters
    if engine.on_gpu:
        out["torch_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if sampler:
        out["nvml_throughput"] = sampler.summary(f"{engine.name}/throughput")
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


def flatten(report: dict[str, Any], on_gpu: bool) -> dict[str, Any]:
    """The flat `metrics` object: headline figures, then per-configuration ones as 'metric@config'."""
    m: dict[str, Any] = {}
    configs = report["configs"]
    for name, c in configs.items():
        for k, v in c["latency_b1"].items():
            m[f"latency_p50_ms_{k}_b1@{name}"] = v["p50_ms"]
            m[f"latency_p99_ms_{k}_b1@{name}"] = v["p99_ms"]
            m[f"latency_n_{k}_b1@{name}"] = v["n"]
        for k, row in c["throughput_ips"].items():
            for b, ips in row.items():
                m[f"throughput_ips_{k}_b{b}@{name}"] = ips
                ref = configs.get(REF, {}).get("throughput_ips", {}).get(k, {}).get(b)
                if ref:
                    m[f"throughput_ratio_vs_eager_fp32_{k}_b{b}@{name}"] = ips / ref
                flops = report["flops_per_image"] * int(k[0])
                m[f"achieved_tflops_{k}_b{b}@{name}"] = ips * flops / 1e12
        m[f"cold_warmup_s@{name}"] = c["warmup_s"]
        if "graph_equals_eager" in c:
            m[f"graph_equals_eager@{name}"] = c["graph_equals_eager"]
        if "torch_max_memory_allocated_mb" in c:
            m[f"torch_max_memory_allocated_mb@{name}"] = c["torch_max_memory_allocated_mb"]
        for key, v in c.get("nvml_throughput", {}).items():
            m[f"nvml_{key}@{name}"] = v
    # headline: the best configuration of the SDK runtime (GPU), or of all pipelines (CPU)
    cands = {n: c for n, c in configs.items() if c.get("runtime")} or configs
    lat_cands = {n: c for n, c in cands.items() if "1step" in c["latency_b1"]}
    if lat_cands:
        best = min(lat_cands, key=lambda n: lat_cands[n]["latency_b1"]["1step"]["p50_ms"])
        lb = lat_cands[best]["latency_b1"]
        m["headline_latency_config"] = best
        m["latency_p50_ms_1step_b1"] = lb["1step"]["p50_ms"]
        m["latency_p99_ms_1step_b1"] = lb["1step"]["p99_ms"]
        m["latency_p99_over_p50_1step_b1"] = lb["1step"]["p99_ms"] / lb["1step"]["p50_ms"]
        if "2step" in lb:
            m["latency_p50_ms_2step_b1"] = lb["2step"]["p50_ms"]
            m["latency_p99_ms_2step_b1"] = lb["2step"]["p99_ms"]
        m["latency_requests_b1"] = lb["1step"]["n"]
    measured = {b for c in cands.values() for b in c["throughput_ips"]["1step"]}
    ref_batch = "256" if "256" in measured else (max(measured, key=int) if measured else "")
    thr_cands = {n: c for n, c in cands.items() if ref_batch in c["throughput_ips"]["1step"]}
    if thr_cands:
        best = max(thr_cands, key=lambda n: thr_cands[n]["throughput_ips"]["1step"][ref_batch])
        ips = thr_cands[best]["throughput_ips"]["1step"][ref_batch]
        m["headline_throughput_config"] = best
        m[f"throughput_ips_1step_b{ref_batch}"] = ips
        for ref, key in ((REF, "eager_fp32"), (COMPILE_REF, "compile_fp16")):
            base = configs.get(ref, {}).get("throughput_ips", {}).get("1step", {}).get(ref_batch)
            if base:
                m[f"throughput_ratio_vs_{key}_b{ref_batch}"] = ips / base
        roof = report.get("roofline", {})
        if roof.get("peak_tflops"):
            m[f"roofline_fraction_b{ref_batch}"] = ips * report["flops_per_image"] / 1e12 / roof["peak_tflops"]
        elif roof.get("peak_gflops_cpu_fp32"):
            m[f"roofline_fraction_b{ref_batch}"] = ips * report["flops_per_image"] / 1e9 / roof["peak_gflops_cpu_fp32"]
    checks = [c["graph_equals_eager"] for c in configs.values() if "graph_equals_eager" in c]
    if checks:
        m["graph_replays_equal_eager"] = all(checks)
    m["flops_per_image_per_step"] = report["flops_per_image"]
    for key, v in report.get("roofline", {}).items():
        m[f"roofline_{key}"] = v
    for key, v in report.get("cold_start", {}).items():
        m[f"cold_start_{key}"] = v
    for key, v in report.get("stream_b1", {}).items():
        m[f"stream_b1_{key}"] = v
    for key, v in report.get("nvml", {}).items():
        m[f"nvml_{key}"] = v
    if on_gpu and not report["quick"]:
        for key, (op, target) in TARGETS.items():
            if key in m:
                m[f"target_met_{key}"] = bool(m[key] <= target if op == "<=" else m[key] >= target)
    return m


def host_info(load_start: tuple[float, float, float]) -> dict[str, Any]:
    """The CPU the run used and how busy the machine was (other processes skew CPU numbers)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpu_count": os.cpu_count(), "loadavg_1min_start": round(load_start[0], 2),
            "loadavg_1min_end": round(os.getloadavg()[0], 2)}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


# =============================================================================================
# Markdown and plot
# =============================================================================================


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def markdown(doc: dict[str, Any], report: dict[str, Any], png_name: str) -> str:
    m = doc["metrics"]
    configs = report["configs"]
    where = doc["device"] if report["on_gpu"] else f"CPU ({doc['host']['cpu']}, {doc['host']['cpu_count']} cores)"
    lines = [f"# Pipeline benchmark on {where}", "",
             f"- date: {doc['date']}", f"- command: `{doc['command']}`",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()),
             (f"- host: {doc['host']['cpu']}, {doc['host']['cpu_count']} cores; 1-min load average "
              f"{doc['host']['loadavg_1min_start']} at the start, {doc['host']['loadavg_1min_end']} at the end"),
             f"- model: {report['model']}",
             (f"- resolution {report['resolution']}, {_fmt(report['flops_per_image'] / 1e9)} GFLOP per image per "
              "encoder call (FlopCounterMode)"),
             "- every request host to host: uint8 sketches in, uint8 images out; two-step uses t_1 = 0.5"]
    if report["quick"]:
        lines.append("- **--quick run: few requests, small batches; not for quoting**")
    if report.get("partial"):
        lines.append("- **partial results: the run stopped before every configuration was measured**")
    on_gpu = report["on_gpu"]
    lines += ["", f"![throughput and latency]({png_name})", "", "## Headline", ""]
    lines += (["| metric | value | target (issue 5, H100) |", "| --- | --- | --- |"] if on_gpu else
              ["The issue's targets are for an H100 GPU; this is a CPU run.", "", "| metric | value |", "| --- | --- |"])
    keys = ["latency_p50_ms_1step_b1", "latency_p99_ms_1step_b1", "latency_p99_over_p50_1step_b1",
            "latency_p50_ms_2step_b1", "latency_p99_ms_2step_b1", "headline_latency_config"]
    keys += sorted(k for k in m if k.startswith(("throughput_ratio_vs_", "roofline_fraction_b", "throughput_ips_1step_b"))
                   and "@" not in k)
    keys += ["headline_throughput_config", "graph_replays_equal_eager", "stream_b1_saturated_drift_ratio", "stream_b1_paced_p50_over_single_p50",
             "cold_start_load_s", "cold_start_warmup_s", "cold_start_first_request_ms_after_warmup"]
    for key in keys:
        if key in m:
            if not on_gpu:
                lines.append(f"| {key} | {_fmt(m[key])} |")
                continue
            op, target = TARGETS.get(key, ("", None))
            met = m.get(f"target_met_{key}")
            tgt = f"{op} {target}" + ("" if met is None else (" (met)" if met else " (missed)")) if target else ""
            lines.append(f"| {key} | {_fmt(m[key])} | {tgt} |")
    lines += ["", "## Latency, batch 1 (ms, host to host)", "",
              "| config | description | 1-step p50 | 1-step p99 | 2-step p50 | 2-step p99 | requests |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in configs.items():
        lb = c["latency_b1"]
        if not lb:
            continue
        one, two = lb.get("1step", {}), lb.get("2step", {})
        lines.append(f"| {name} | {c['description']} | {_fmt(one.get('p50_ms'))} | {_fmt(one.get('p99_ms'))} | "
                     f"{_fmt(two.get('p50_ms'))} | {_fmt(two.get('p99_ms'))} | {one.get('n', '-')} |")
    all_b = sorted({int(b) for c in configs.values() for b in c["throughput_ips"]["1step"]})
    for k in ("1step", "2step"):
        lines += ["", f"## Throughput, {k[0]}-step (images/s; ratio to {REF} in brackets)", "",
                  "| config | " + " | ".join(f"b={b}" for b in all_b) + " |", "| --- |" + " --- |" * len(all_b)]
        for name, c in configs.items():
            cells = []
            for b in all_b:
                ips = c["throughput_ips"][k].get(str(b))
                ref = configs.get(REF, {}).get("throughput_ips", {}).get(k, {}).get(str(b))
                cells.append("-" if ips is None else _fmt(ips) + (f" ({ips / ref:.2g}x)" if ref and name != REF else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rf = report.get("roofline", {})
    if rf:
        lines += ["", "## Roofline", ""] + [f"- {k}: {_fmt(v)}" for k, v in rf.items()]
        lines.append("- achieved TFLOP/s per configuration: `achieved_tflops_<k>step_b<B>@<config>` in the JSON")
    for title, key in (("Cold start", "cold_start"), ("Streaming a long run of batch-1 requests (one-step)", "stream_b1"),
                       ("GPU telemetry (NVML, whole run)", "nvml")):
        if report.get(key):
            lines += ["", f"## {title}", ""] + [f"- {k}: {_fmt(v)}" for k, v in report[key].items()]
    if report.get("stream_b1_config"):
        lines.append(f"- configuration: {report['stream_b1_config']}")
    if report["skipped"]:
        lines += ["", "## Not measured", "", "| backend | reason |", "| --- | --- |"]
        lines += [f"| {n} | {r} |" for n, r in report["skipped"].items()]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = report["configs"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, c) in enumerate(configs.items()):
        col = colors[i % len(colors)]
        for k, style in (("1step", "-o"), ("2step", "--s")):
            row = c["throughput_ips"][k]
            if row:
                bs = sorted(int(b) for b in row)
                ax1.plot(bs, [row[str(b)] for b in bs], style, color=col, ms=4, label=f"{name} {k[0]}-step")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("images / s (host to host)")
    ax1.set_title("Throughput")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7)
    names = [n for n, c in configs.items() if c["latency_b1"]]
    width = 0.2
    xs = np.arange(len(names))
    for j, (k, q) in enumerate((("1step", "p50_ms"), ("1step", "p99_ms"), ("2step", "p50_ms"), ("2step", "p99_ms"))):
        vals = [configs[n]["latency_b1"].get(k, {}).get(q, np.nan) for n in names]
        ax2.bar(xs + (j - 1.5) * width, vals, width, label=f"{k[0]}-step {q[:3]}")
    ax2.set_xticks(xs, names, rotation=30, ha="right", fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("ms per batch-1 request (host to host)")
    ax2.set_title("Latency, batch 1")
    ax2.grid(True, axis="y", which="both", alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


# =============================================================================================
# Main
# =============================================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="model folder (config.json + model.safetensors); default: a fresh "
                   "default-size model with random weights")
    p.add_argument("--quick", action="store_true", help="a smoke run: few requests, small batches, no torch.compile")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--backends", default="", help="comma-separated configuration names to run (default: all present)")
    p.add_argument("--engine", action="append", default=[], metavar="NAME=PATH",
                   help="open registry backend NAME from PATH (e.g. an engine file), measured as sdk-graphs-NAME")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--requests", type=int, help="timed batch-1 requests per latency point (default 1000; 50 quick)")
    p.add_argument("--max-seconds", type=float, help="time cap of one latency point (default 60 GPU, 15 CPU)")
    p.add_argument("--throughput-seconds", type=float, help="target time of one throughput point (default 0.5 GPU, 4 CPU)")
    p.add_argument("--stream-requests", type=int, help="batch-1 requests of the streaming drift run (default 10000)")
    p.add_argument("--budget-s", type=float, default=0.0, help="skip the configurations not started after this many "
                   "seconds (0: no limit); results are saved after every configuration anyway")
    p.add_argument("--stream-config", help="configuration of the long batch-1 stream (default: the SDK runtime "
                   "configuration with the best batch-1 latency on a GPU, onnxruntime-cpu on CPU)")
    p.add_argument("--compile-batches", default="1,256", help="batch sizes measured with torch.compile")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.wanted = {s.strip() for s in args.backends.split(",") if s.strip()} or None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    import torch

    on_gpu = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if on_gpu and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU")
    if on_gpu and not kernels.cuda_available():
        raise SystemExit("a GPU is visible but cheartflow_sdk._C has no usable CUDA kernels: build it with CUDA first")
    q = args.quick
    args.requests = args.requests or (20 if q else 1000)
    args.min_requests = min(args.requests, 5)
    args.latency_warmup = 5 if q else (100 if on_gpu else 3)
    args.max_seconds = args.max_seconds or (5.0 if q else (60.0 if on_gpu else 15.0))
    args.throughput_seconds = args.throughput_seconds or (0.1 if q else (0.5 if on_gpu else 4.0))
    args.max_iters = 10 if q else 500
    args.stream_requests = args.stream_requests or (40 if q else 10000)
    args.gpu_batches = (1, 8) if q else GPU_BATCHES
    args.cpu_batches = (1, 4) if q and not on_gpu else CPU_BATCHES
    args.compile_batches = tuple(int(b) for b in args.compile_batches.split(","))
    if on_gpu:
        torch.backends.cudnn.benchmark = True

    notes: list[str] = []
    skipped: dict[str, str] = {}
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as tmp:
        work = Path(tmp)
        if args.model is None:
            model_dir = fresh_model(work / "fresh", export=args.wanted is None or any("onnx" in w for w in args.wanted))
            model_note = ("fresh default-size model (ModelConfig(): 128x128, base 32 channels, mult (1,2,3,4), "
                          "attention at 16x16), random weights, exported on the fly without the parity gate; timings "
                          "do not depend on training")
        else:
            model_dir = args.model
            model_note = f"{model_dir}"
        from cheartflow_sdk.config import read_config
        from cheartflow_sdk.training.checkpoint import load_encoder

        cfg, _, _ = read_config(model_dir)
        res = cfg.resolution
        modules: dict[str, Any] = {"fp32": load_encoder(model_dir, "cuda" if on_gpu else "cpu")}
        report: dict[str, Any] = {"model": model_note, "resolution": res, "quick": q, "on_gpu": on_gpu,
                                  "configs": {}, "skipped": skipped,
                                  "notes": notes, "flops_per_image": flops_per_image(modules["fp32"], res)}
        sampler = NvmlSampler() if on_gpu else None
        if sampler is not None:
            if sampler.ok:
                sampler.start()
            else:
                notes.append(sampler.error)
        if on_gpu:
            notes.append("cudnn.benchmark on for every configuration; PyTorch defaults otherwise (TF32 convolutions "
                         f"allowed: {torch.backends.cudnn.allow_tf32})")
            notes.append("throughput is measured at the runner's bucket sizes (no padding); torch.compile configurations "
                         f"only at batch sizes {list(args.compile_batches)}")
        notes.append("latency: one request at a time, synchronously; throughput: a stream of equal batches "
                     "(pipelined: Pipeline.stream / CudaGraphRunner.stream)")
        dev = "cpu" if not on_gpu else slug(torch.cuda.get_device_name(0))
        name = f"pipeline-{dev}"
        t_start = time.perf_counter()
        state: dict[str, Any] = {"stream_config": None}

        def save(final: bool) -> None:
            """Write JSON, markdown and PNG now (after every configuration: a run cut short keeps its results)."""
            report["partial"] = not final
            report["stream_b1_config"] = state["stream_config"]
            if sampler is not None:
                report["nvml"] = sampler.summary()
            metrics = flatten(report, on_gpu)
            extra = {"quick": q, "partial": not final, "model": report["model"], "resolution": res,
                     "configs": report["configs"], "skipped": skipped, "notes": notes,
                     "stream_b1_config": state["stream_config"], "host": host_info(load_start),
                     "elapsed_s": round(time.perf_counter() - t_start, 1),
                     "settings": {"requests": args.requests, "max_seconds": args.max_seconds,
                                  "throughput_seconds": args.throughput_seconds, "stream_requests": args.stream_requests,
                                  "gpu_batches": list(args.gpu_batches), "cpu_batches": list(args.cpu_batches),
                                  "compile_batches": list(args.compile_batches), "budget_s": args.budget_s,
                                  "torch_threads": torch.get_num_threads(), "kernel_threads": kernels.get_num_threads()}}
            json_path = write_results(name, metrics, extra, results_dir=args.results_dir)
            doc = json.loads(json_path.read_text())
            md_path = args.results_dir / f"{name}.md"
            png_path = args.results_dir / f"{name}.png"
            where = doc["device"] if on_gpu else f"CPU: {doc['host']['cpu']}, {doc['host']['cpu_count']} cores"
            plot(report, f"cheartflow-sdk pipeline on {where} ({doc['date']})", png_path)
            tmp_md = md_path.with_name(f".{md_path.name}.tmp")
            tmp_md.write_text(markdown(doc, report, png_path.name))
            tmp_md.replace(md_path)
            log.info("saved %s (%s)", json_path, "final" if final else "partial")

        # the roofline's device figures first (seconds), so that every save has them
        roof: dict[str, Any] = {}
        report["roofline"] = roof
        if on_gpu:
            roof["peak_tflops"] = gpu_fp16_matmul_peak_tflops(4096 if q else 8192, 5 if q else 20)
            roof["peak_kind"] = "fp16 torch.matmul, measured"
            roof.update(gpu_kernel_bandwidth(res, 8 if q else 256, cfg.sigma, 5 if q else 50))
            cpu_peak_start = (0.0, "")
        else:
            cpu_peak_start = cpu_fp32_matmul_peak_gflops(512 if q else 2048)
            roof["peak_gflops_cpu_fp32"], who = cpu_peak_start
            roof["peak_kind"] = f"fp32 matmul on the CPU ({who})"
        x1 = sketches_u8(1, res)
        plan = plan_engines(args, model_dir, work, on_gpu, args.wanted, skipped, modules)
        names = [n for n, _ in plan]
        stream_pick = args.stream_config or ("onnxruntime-cpu" if "onnxruntime-cpu" in names else (names or [""])[0])
        for name_, factory in plan:
            if args.budget_s and time.perf_counter() - t_start > args.budget_s:
                skipped[name_] = f"not run: the time budget of {args.budget_s:.0f} s (--budget-s) was spent"
                continue
            try:
                engine = factory()
            except Exception as exc:
                log.warning("%s not measured: %s", name_, exc)
                skipped[name_] = f"could not build: {type(exc).__name__}: {exc}"
                continue
            try:
                log.info("benchmarking %s", engine.name)
                cap = args.max_seconds if (engine.on_gpu or not on_gpu) else min(args.max_seconds, 10.0)
                entry = bench_engine(engine, args, res, sampler, cap)
                entry["runtime"] = engine.runtime
                report["configs"][engine.name] = entry
                # the long batch-1 stream: on a GPU the SDK runtime configuration with the best batch-1 latency
                # so far (it is cheap there), on CPU one chosen configuration (--stream-config)
                lat1 = entry["latency_b1"].get("1step", {}).get("p50_ms")
                if on_gpu and args.stream_config is None:
                    best = state["stream_config"] and report["configs"][state["stream_config"]]["latency_b1"]["1step"]["p50_ms"]
                    pick = engine.runtime and lat1 is not None and (not best or lat1 < best)
                else:
                    pick = engine.name == stream_pick and lat1 is not None
                if pick:
                    if sampler:
                        sampler.phase = f"{engine.name}/stream"
                    report["stream_b1"] = measure_stream_drift(engine, x1, 1, args.stream_requests, cap, lat1)
                    state["stream_config"] = engine.name
            except Exception as exc:
                log.exception("%s failed", engine.name)
                skipped[engine.name] = f"failed: {type(exc).__name__}: {exc}"
                report["configs"].pop(engine.name, None)
            finally:
                engine.close()
            if "cold_start" not in report:  # once, after the first configuration (libraries are loaded by then)
                if sampler is not None:
                    sampler.phase = "cold_start"
                try:
                    report["cold_start"] = cold_start(model_dir, on_gpu, res)
                except Exception as exc:
                    log.exception("cold start measurement failed")
                    report["cold_start"] = {}
                    notes.append(f"cold start not measured: {type(exc).__name__}: {exc}")
            save(final=False)
        if not on_gpu:
            peak, who = max(cpu_peak_start, cpu_fp32_matmul_peak_gflops(512 if q else 2048))
            roof["peak_gflops_cpu_fp32"] = peak
            roof["peak_kind"] = f"fp32 matmul on the CPU ({who}), best of the start and the end of the run"
            for n, c in report["configs"].items():
                ips = c["throughput_ips"]["1step"].get("16")
                if ips:
                    roof[f"achieved_gflops_1step_b16@{n}"] = ips * report["flops_per_image"] / 1e9
                    roof[f"fraction_of_cpu_peak_1step_b16@{n}"] = roof[f"achieved_gflops_1step_b16@{n}"] / peak
            if any(v > 1 for k, v in roof.items() if k.startswith("fraction_of_cpu_peak")):
                notes.append("a fraction of the CPU peak above 1 means the matmul peak was measured while other "
                             "processes loaded the machine (see the load average): read it as a lower bound of the peak")
        if sampler is not None:
            sampler.stop()
            if sampler.error and sampler.error not in notes:
                notes.append(sampler.error)
        save(final=True)
    print(f"wrote {args.results_dir / name}.json, .md and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
