"""The roofline's figures: FLOPs per encoder call, matmul peaks (CPU, GPU) and device memory bandwidth."""

from __future__ import annotations

import copy
import logging
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np

from .timing import cuda_times, wall_times

log = logging.getLogger("benchlib.roofline")


def flops_per_image(module: Any, resolution: int) -> float:
    """FLOPs of one encoder call on one image (torch.utils.flop_counter: 2 per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(module).float().cpu().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        m(torch.zeros(1, 1, resolution, resolution), torch.ones(1))
    return float(counter.get_total_flops())


def _matmul_rate(fn: Callable[[], Any], n: int, reps: int) -> float:
    """Best GFLOP/s of an n x n matmul `fn` on the CPU: one warm-up, then the best of 5 timings of `reps` calls."""
    return 2 * n**3 / min(wall_times(fn, 5, warmup=1, calls=reps)) / 1e9


def gpu_fp16_matmul_peak_tflops(n: int, reps: int) -> float:
    """Best fp16 n x n torch.matmul rate on the GPU (3 warm-ups, best of 3 timings of `reps` calls)."""
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    return 2 * n**3 / min(cuda_times(lambda: torch.matmul(a, b), 3, warmup=3, calls=reps)) / 1e12


def cpu_fp32_matmul_peak_gflops(n: int = 2048, reps: int = 3) -> tuple[float, str]:
    """Best fp32 n x n matmul rate on the CPU threads, of torch and of ONNX Runtime (MLAS), best of 5 timings
    each (libraries differ: on some CPUs one of them misses the widest vector units). Returns (GFLOP/s, who)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    rates = {"torch.matmul": _matmul_rate(lambda: torch.matmul(a, b), n, reps)}
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
        rates["onnxruntime MatMul"] = _matmul_rate(lambda: sess.run(None, feeds), n, reps)
    except Exception as exc:  # noqa: BLE001 - the torch figure stands alone
        log.info("ONNX Runtime matmul peak not measured: %s", exc)
    who = max(rates, key=rates.get)
    return rates[who], who


def cpu_bf16_matmul_peak_gflops(n: int = 2048, reps: int = 3) -> float | None:
    """Best bf16 n x n torch.matmul rate on the CPU threads (oneDNN: AMX / AVX512-BF16 where present); None on
    a CPU without native bf16, where torch emulates it (about 1 GFLOP/s: no peak to compare an engine with)."""
    import torch

    from cheartflow_sdk.cpu_features import has_native_bf16

    if not has_native_bf16():
        return None
    a, b = torch.randn(n, n, dtype=torch.bfloat16), torch.randn(n, n, dtype=torch.bfloat16)
    return _matmul_rate(lambda: torch.matmul(a, b), n, reps)


def device_copy_gbs(nbytes: int, runs: int, calls: int, warmup: int) -> float:
    """GB/s of a device-to-device copy of `nbytes` (bytes read + written), the median of `runs` timings of
    `calls` copies each."""
    import torch

    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    src.fill_(7)
    dst = torch.empty_like(src)
    seconds = statistics.median(cuda_times(lambda: dst.copy_(src), runs, warmup=warmup, calls=calls))
    copied = bool((dst[:: max(1, nbytes // 4096)] == 7).all())
    src = dst = None  # free both buffers before the next measurement
    torch.cuda.empty_cache()
    assert copied
    return 2 * nbytes / seconds / 1e9


def gpu_kernel_bandwidth(resolution: int, batch: int, sigma: float, reps: int) -> dict[str, float]:
    """GB/s of the SDK kernels at `batch` (bytes each must read and write) and of a large device copy."""
    import torch

    from cheartflow_sdk import kernels

    def timed(fn: Callable[[], Any]) -> float:
        return cuda_times(fn, 1, warmup=1, calls=reps)[0]

    copy_bw = device_copy_gbs(2**30, 1, reps, warmup=1)  # 1 GiB
    out: dict[str, float] = {"copy_bandwidth_gbs": copy_bw}
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
