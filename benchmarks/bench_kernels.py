"""Benchmark of the native kernels (issue 3): fused renoise bandwidth, speed-up over PyTorch ops, CUDA vs CPU.

    python benchmarks/bench_kernels.py [--quick] [--device auto|cuda|cpu] [--results-dir DIR]

GPU (``--device cuda``, or ``auto`` with a GPU that torch sees): measures the device's copy bandwidth (a
device-to-device copy of a large buffer, bytes read + written, CUDA events, median of repeats), the fused
renoise at B x 1 x 128 x 128 (B = 256) in float32 and float16 (bytes = x0_hat + x1 read + out written + t),
its fraction of the copy bandwidth, the same computation as PyTorch ops (``torch.randn_like`` + arithmetic,
same dtype) and the speed-up, and checks CUDA vs CPU (noise bits, renoise differences). Kernels are timed
inside a captured CUDA graph (no host launch overhead in the numbers) over rotating buffer sets that together
exceed 4x the L2 cache, so the data comes from device memory as in a real step. Writes
``kernels-<gpu-name-slug>.json``.

CPU (``--device cpu``, or ``auto`` without a GPU): throughput of the native CPU kernels (renoise fp32/fp16,
normal noise, pre/post-processing) in GB/s and Melem/s for 1 and all threads, vs the numpy reference and vs
the same computation as torch CPU ops when torch is importable. Writes ``kernels-cpu.json`` (metrics
prefixed ``cpu_``).

``--quick`` shrinks sizes and repeats for a smoke test (its numbers are not meaningful). Results: JSON with
device, date, versions, command and a flat ``metrics`` object (benchmarks/results.py), plus a markdown table
on stdout.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.append(str(REPO))  # an installed cheartflow_sdk wins; else this checkout (PYTHONPATH=$PWD puts it first)
sys.path.insert(0, str(BENCH_DIR))  # results.py and benchlib/: the helpers every benchmark shares

import results  # noqa: E402
from benchlib.roofline import device_copy_gbs  # noqa: E402
from benchlib.timing import wall_times  # noqa: E402
from cheartflow_sdk import kernels  # noqa: E402

SIGMA = 0.5
SEED, OFFSET = 20240611, 3


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def table(metrics: dict[str, Any]) -> str:
    lines = ["| metric | value |", "|---|---|"]
    for key, value in metrics.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


# =============================================================================================
# GPU
# =============================================================================================


def torch_renoise(torch: Any, x0: Any, x1: Any, t: Any, sigma: float) -> Any:
    """The same computation written as PyTorch ops: randn_like + arithmetic, in x0's dtype."""
    tt = t.to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    eps = torch.randn_like(x0)
    return (1 - tt) * x0 + tt * x1 + (tt * (1 - tt) * (sigma * sigma)) * eps


def torch_renoise_fused_ops(torch: Any, x0: Any, x1: Any, t: Any, sigma: float) -> Any:
    """A tighter PyTorch formulation (lerp + addcmul_), for reference."""
    tt = t.to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    out = torch.lerp(x0, x1, tt)
    return out.addcmul_(tt * (1 - tt) * (sigma * sigma), torch.randn_like(x0))


class GpuTimer:
    """Median seconds per launch of a list of callables (each enqueues work on the current stream), timed
    with CUDA events around a captured CUDA graph of `rounds` passes over the list (eager launches if
    capture fails; `method` says which)."""

    def __init__(self, torch: Any, repeats: int, launches_per_run: int = 64) -> None:
        self.torch = torch
        self.repeats = repeats
        self.launches_per_run = launches_per_run
        self.methods: set[str] = set()

    def __call__(self, fns: list[Callable[[], Any]]) -> float:
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph (allocator, lazy init)
            for f in fns:
                f()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        rounds = max(1, self.launches_per_run // len(fns))
        per_run = rounds * len(fns)
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(rounds):
                    for f in fns:
                        f()
            run: Callable[[], Any] = graph.replay
            self.methods.add("cuda_graph")
        except Exception as exc:  # noqa: BLE001 - report and fall back to eager launches
            print(f"warning: CUDA graph capture failed ({exc!r}); timing eager launches", file=sys.stderr)
            torch.cuda.synchronize()

            def run() -> None:
                for _ in range(rounds):
                    for f in fns:
                        f()

            self.methods.add("stream")
        for _ in range(2):
            run()
        torch.cuda.synchronize()
        times = []
        for _ in range(self.repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3 / per_run)
        return statistics.median(times)


def check_cuda_vs_cpu(torch: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    """Noise bits and renoise differences of the CUDA kernels vs the CPU kernels (which equal the reference)."""
    rng = np.random.default_rng(0)
    batch = shape[0]
    first = 1000
    noise_gpu = torch.empty(shape, dtype=torch.float32, device="cuda")
    kernels.normal_noise(shape, SEED, OFFSET, first, out=noise_gpu)
    noise_cpu = kernels.normal_noise(shape, SEED, OFFSET, first)
    small = (2, 1, 9, 13)
    ref_ok = np.array_equal(kernels.normal_noise_reference(small, SEED, OFFSET, first).view(np.uint32),
                            kernels.normal_noise(small, SEED, OFFSET, first).view(np.uint32))
    t = rng.uniform(0, 1, batch).astype(np.float32)
    out: dict[str, Any] = {
        "noise_bit_identical_cuda_cpu": bool(np.array_equal(noise_gpu.cpu().numpy().view(np.uint32),
                                                            noise_cpu.view(np.uint32))),
        "noise_bit_identical_cpu_reference": bool(ref_ok),
    }
    t_dev = torch.from_numpy(t).cuda()
    for dtype, name in ((np.float32, "fp32"), (np.float16, "fp16")):
        x0 = rng.uniform(-1.2, 1.2, shape).astype(dtype)
        x1 = rng.uniform(-1, 1, shape).astype(dtype)
        want = kernels.renoise(x0, x1, t, SIGMA, SEED, OFFSET, first)
        X0, X1 = torch.from_numpy(x0).cuda(), torch.from_numpy(x1).cuda()
        got = kernels.renoise(X0, X1, t_dev, SIGMA, SEED, OFFSET, first).cpu().numpy()
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        out[f"renoise_{name}_max_abs_diff_cuda_cpu"] = float(diff.max())
        out[f"renoise_{name}_bit_identical_cuda_cpu"] = bool(np.array_equal(got.view(np.uint8), want.view(np.uint8)))
        if dtype == np.float16:
            out["renoise_fp16_max_ulp_diff_cuda_cpu"] = float((diff / np.spacing(np.abs(want)).astype(np.float64)).max())
        params = torch.empty(2, dtype=torch.uint64, device="cuda")
        params.view(torch.int64).copy_(torch.from_numpy(np.array([SEED, first], np.uint64).view(np.int64)))
        via_params = kernels.renoise_device_params(X0, X1, t_dev, SIGMA, params, OFFSET).cpu().numpy()
        out[f"renoise_device_params_{name}_bit_identical_renoise"] = bool(
            np.array_equal(via_params.view(np.uint8), got.view(np.uint8)))
    return out


def gpu_bench(quick: bool) -> tuple[str, dict[str, Any], dict[str, Any]]:
    torch = _torch()
    if torch is None or not torch.cuda.is_available():
        raise SystemExit("bench_kernels: --device cuda needs torch with a visible CUDA GPU")
    if not kernels.cuda_available():
        raise SystemExit("bench_kernels: a GPU is visible but cheartflow_sdk._C has no usable CUDA kernels "
                         f"(native={kernels.native_available()}, cuda compiled={kernels.native_cuda_compiled()}); "
                         "build it with nvcc (CHEARTFLOW_CUDA=ON)")
    props = torch.cuda.get_device_properties(0)
    l2 = int(getattr(props, "L2_cache_size", 0) or (50 << 20))
    batch = 16 if quick else 256
    shape = (batch, 1, 128, 128)
    repeats = 5 if quick else 30
    numel = math.prod(shape)
    m: dict[str, Any] = {
        "renoise_shape": "x".join(map(str, shape)),
        "gpu_name": torch.cuda.get_device_name(0),
        "gpu_sm_count": int(props.multi_processor_count),
        "gpu_l2_cache_bytes": l2,
    }
    copy_bytes = (64 << 20) if quick else (1 << 30)
    m["copy_bytes"] = copy_bytes
    m["copy_bandwidth_gbs"] = device_copy_gbs(copy_bytes, repeats, calls=5, warmup=3)
    timer = GpuTimer(torch, repeats)
    speedups, fused_speedups = [], []
    for tdtype, name in ((torch.float32, "fp32"), (torch.float16, "fp16")):
        itemsize = torch.tensor([], dtype=tdtype).element_size()
        set_bytes = 3 * numel * itemsize + 4 * batch
        nsets = max(2, math.ceil(4 * l2 / set_bytes))
        gen = torch.Generator(device="cuda").manual_seed(0)
        sets = []
        for _ in range(nsets):
            x0 = torch.randn(shape, generator=gen, device="cuda").to(tdtype)
            x1 = torch.randn(shape, generator=gen, device="cuda").to(tdtype)
            t = torch.rand(batch, generator=gen, device="cuda")
            params = torch.empty(2, dtype=torch.uint64, device="cuda")
            params.view(torch.int64).zero_()  # (seed, first_sample) = (0, 0)
            sets.append((x0, x1, t, torch.empty_like(x0), params))
        m[f"buffer_sets_{name}"] = nsets

        def fused(s: tuple) -> Callable[[], Any]:
            return lambda: kernels.renoise(s[0], s[1], s[2], SIGMA, SEED, OFFSET, 0, out=s[3])

        def fused_params(s: tuple) -> Callable[[], Any]:
            return lambda: kernels.renoise_device_params(s[0], s[1], s[2], SIGMA, s[4], OFFSET, out=s[3])

        def ops(s: tuple) -> Callable[[], Any]:
            return lambda: torch_renoise(torch, s[0], s[1], s[2], SIGMA)

        def fused_ops(s: tuple) -> Callable[[], Any]:
            return lambda: torch_renoise_fused_ops(torch, s[0], s[1], s[2], SIGMA)

        t_fused = timer([fused(s) for s in sets])
        t_params = timer([fused_params(s) for s in sets])
        t_ops = timer([ops(s) for s in sets])
        t_fused_ops = timer([fused_ops(s) for s in sets])
        gbs = set_bytes / t_fused / 1e9
        m[f"renoise_us_{name}"] = t_fused * 1e6
        m[f"renoise_gbs_{name}"] = gbs
        m[f"renoise_bandwidth_fraction_{name}"] = gbs / m["copy_bandwidth_gbs"]
        m[f"renoise_device_params_us_{name}"] = t_params * 1e6
        m[f"renoise_device_params_bandwidth_fraction_{name}"] = set_bytes / t_params / 1e9 / m["copy_bandwidth_gbs"]
        m[f"torch_ops_us_{name}"] = t_ops * 1e6
        m[f"renoise_speedup_vs_torch_ops_{name}"] = t_ops / t_fused
        m[f"torch_fused_ops_us_{name}"] = t_fused_ops * 1e6
        m[f"renoise_speedup_vs_torch_fused_ops_{name}"] = t_fused_ops / t_fused
        speedups.append(t_ops / t_fused)
        fused_speedups.append(t_fused_ops / t_fused)
        del sets
        torch.cuda.empty_cache()
    # Noise alone (Philox + Box-Muller, 4-byte writes): the compute ceiling of the fused kernel, for diagnosis.
    nsets = max(2, math.ceil(4 * l2 / (4 * numel)))
    noise_bufs = [torch.empty(shape, dtype=torch.float32, device="cuda") for _ in range(nsets)]
    t_noise = timer([(lambda b=b: kernels.normal_noise(shape, SEED, OFFSET, 0, out=b)) for b in noise_bufs])
    m["normal_noise_us"] = t_noise * 1e6
    m["normal_noise_gelems_per_s"] = numel / t_noise / 1e9
    m["renoise_gelems_per_s_fp32"] = numel / (m["renoise_us_fp32"] * 1e-6) / 1e9
    m["renoise_gelems_per_s_fp16"] = numel / (m["renoise_us_fp16"] * 1e-6) / 1e9
    del noise_bufs
    m["renoise_speedup_vs_torch_ops"] = min(speedups)
    m["renoise_speedup_vs_torch_fused_ops"] = min(fused_speedups)
    m["timing_method"] = "+".join(sorted(timer.methods))
    m.update(check_cuda_vs_cpu(torch, shape))
    extra = {"notes": (
        "renoise bytes = x0_hat + x1 read + out written + t (float32 [B]); copy bandwidth = 2 x bytes of a "
        "device-to-device copy / time. Kernels timed inside a captured CUDA graph over rotating buffer sets "
        "totalling >= 4x L2 (buffer_sets_*), median over repeats. torch_ops = randn_like + arithmetic in the "
        "same dtype; torch_fused_ops = lerp + addcmul_ + randn_like. renoise_speedup_vs_torch_ops (and "
        "..._fused_ops) is the smaller of the fp32 and fp16 speed-ups. *_cuda_cpu compare the CUDA kernels "
        "with the native CPU kernels, which equal the numpy reference bit for bit.")}
    return f"kernels-{results.slug(m['gpu_name'], 'gpu')}", m, extra


# =============================================================================================
# CPU
# =============================================================================================


def time_cpu(fn: Callable[[], Any], repeats: int, min_seconds: float = 0.0) -> float:
    """Median wall time of fn() over at least `repeats` calls and at least `min_seconds` in total, after one
    warm-up call (page faults, thread start)."""
    return statistics.median(wall_times(fn, repeats, warmup=1, min_seconds=min_seconds))


def cpu_model() -> str:
    """The CPU's model name and logical CPU count."""
    return f"{results.cpu_name()} ({os.cpu_count() or 1} logical CPUs)"


def cpu_bench(quick: bool) -> tuple[str, dict[str, Any], dict[str, Any]]:
    if not kernels.native_available():
        raise SystemExit("bench_kernels: cheartflow_sdk._C is not importable (build it first); the CPU benchmark "
                         "measures the native kernels")
    rng = np.random.default_rng(0)
    shape = (8, 1, 64, 64) if quick else (256, 1, 128, 128)
    ref_shape = (2, 1, 32, 32) if quick else (16, 1, 128, 128)
    repeats, min_seconds = (2, 0.0) if quick else (9, 1.5)
    batch, numel = shape[0], math.prod(shape)
    all_threads = kernels.get_num_threads()
    m: dict[str, Any] = {
        "cpu_shape": "x".join(map(str, shape)),
        "cpu_threads_all": all_threads,
        "cpu_count": os.cpu_count() or 1,
        "cpu_load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else -1.0,
    }
    x = {dt: (rng.uniform(-1.2, 1.2, shape).astype(dt), rng.uniform(-1, 1, shape).astype(dt)) for dt in (np.float32, np.float16)}
    t = rng.uniform(0, 1, batch).astype(np.float32)
    outs = {dt: np.empty(shape, dt) for dt in (np.float32, np.float16)}
    noise = np.empty(shape, np.float32)
    sketches = rng.integers(0, 256, (batch, shape[2], shape[3]), dtype=np.uint8)
    pre_out = np.empty(shape, np.float32)
    post_src = rng.uniform(-1.1, 1.1, shape).astype(np.float32)
    post_out = np.empty(shape, np.uint8)
    cases: list[tuple[str, Callable[[], Any], int]] = [
        ("renoise_fp32", lambda: kernels.renoise(*x[np.float32], t, SIGMA, SEED, OFFSET, 0, out=outs[np.float32]),
         3 * numel * 4 + 4 * batch),
        ("renoise_fp16", lambda: kernels.renoise(*x[np.float16], t, SIGMA, SEED, OFFSET, 0, out=outs[np.float16]),
         3 * numel * 2 + 4 * batch),
        ("normal_fill", lambda: kernels.normal_noise(shape, SEED, OFFSET, 0, out=noise), numel * 4),
        ("preprocess_u8_f32", lambda: kernels.preprocess(sketches, np.float32, out=pre_out), numel * 5),
        ("postprocess_f32_u8", lambda: kernels.postprocess(post_src, np.uint8, out=post_out), numel * 5),
    ]
    try:
        for label, threads in (("1thread", 1), ("allthreads", all_threads)):
            kernels.set_num_threads(threads)
            for name, fn, nbytes in cases:
                sec = time_cpu(fn, repeats, min_seconds)
                m[f"cpu_{name}_gbs_{label}"] = nbytes / sec / 1e9
                m[f"cpu_{name}_melems_{label}"] = numel / sec / 1e6
    finally:
        kernels.set_num_threads(all_threads)
    native_melems = m["cpu_renoise_fp32_melems_allthreads"]

    # numpy reference (the specification; slow) on a smaller batch
    rx0, rx1 = (a[: ref_shape[0]] for a in x[np.float32])
    rt = t[: ref_shape[0]]
    sec = time_cpu(lambda: kernels.renoise_reference(rx0, rx1, rt, SIGMA, SEED, OFFSET, 0), 1)
    m["cpu_numpy_reference_renoise_fp32_melems"] = math.prod(ref_shape) / sec / 1e6
    m["cpu_renoise_speedup_vs_numpy_reference"] = native_melems / m["cpu_numpy_reference_renoise_fp32_melems"]
    small = (2, 1, 9, 13)
    m["cpu_noise_bit_identical_native_reference"] = bool(np.array_equal(
        kernels.normal_noise(small, SEED, OFFSET, 5).view(np.uint32),
        kernels.normal_noise_reference(small, SEED, OFFSET, 5).view(np.uint32)))

    torch = _torch()
    if torch is not None:
        previous = torch.get_num_threads()
        torch.set_num_threads(all_threads)
        try:
            tx0, tx1 = (torch.from_numpy(a) for a in x[np.float32])
            tt = torch.from_numpy(t)
            sec = time_cpu(lambda: torch_renoise(torch, tx0, tx1, tt, SIGMA), repeats, min_seconds)
        finally:
            torch.set_num_threads(previous)
        m["cpu_torch_ops_renoise_fp32_melems"] = numel / sec / 1e6
        m["cpu_renoise_speedup_vs_torch_ops"] = native_melems / m["cpu_torch_ops_renoise_fp32_melems"]
    extra = {"device": cpu_model(), "notes": (
        "CPU path of the native kernels (no GPU used). GB/s counts bytes read + written (renoise: x0_hat, x1, "
        "out, t; normal_fill: out; preprocess uint8 -> float32 and postprocess float32 -> uint8: 1 + 4 bytes per "
        "element); median wall time of repeated calls through cheartflow_sdk.kernels (at least 9 calls and 1.5 s "
        "per case). Speed-ups vs the numpy "
        "reference (smaller batch) and vs torch CPU ops (randn_like + arithmetic, float32, same thread count) use "
        "the all-threads native renoise float32. cpu_load_average_1min_at_start documents contention from other "
        "processes on the machine.")}
    return "kernels-cpu", m, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke test)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="auto: the GPU when torch sees one (and _C has CUDA), else the CPU")
    parser.add_argument("--results-dir", type=Path, default=results.RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    device = args.device
    if device == "auto":
        torch = _torch()
        device = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    print(f"cheartflow_sdk from {Path(kernels.__file__).parent}; native={kernels.native_available()} "
          f"cuda_compiled={kernels.native_cuda_compiled()}; device={device}", file=sys.stderr)
    name, metrics, extra = gpu_bench(args.quick) if device == "cuda" else cpu_bench(args.quick)
    if args.quick:
        extra["notes"] = "QUICK SMOKE RUN (--quick): sizes and repeats shrunk, numbers not meaningful. " + extra["notes"]
    path = results.write_results(name, metrics, extra=extra, results_dir=args.results_dir)
    print(table(metrics))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
