#!/usr/bin/env python
"""Engine benchmark: the compiled PyTorch engine (AOTInductor .pt2, fp16, CUDA graphs) vs the eager fp32 encoder.

    python benchmarks/bench_engines.py [MODEL_DIR] [--cpu] [--results-dir DIR] [--keep DIR]

On CUDA: exports MODEL_DIR's encoder as a compiled fp16 engine (parity-gated: PSNR >= 40 dB against the fp32
encoder), checks that its CUDA-graph replay equals its direct calls, then times ONE encoder evaluation
(one-step sampling, E(x1, 1)) at batch 1 and batch 256 on device-resident tensors with CUDA events: warm-up,
then the median of >= 50 runs (batch 1) / >= 20 runs (batch 256), for

    eager_fp32      the PyTorch fp32 module (the training code's encoder, eager, cuDNN defaults)
    compiled_fp16   CompiledEncoder.__call__ on CUDA tensors (copy in, graph replay, copy out)

and writes ``engines-<device-slug>.json`` (benchmarks/results.py format) with ``compiled_fp16_b1_ms``,
``eager_fp32_b1_ms``, ``compiled_speedup_b1`` (= eager / compiled), the same for b256, the gate's PSNR and
the compile time. Without MODEL_DIR a freshly initialized default-size model (ModelConfig(), 128x128; output
conv re-initialized so the network's output is not zero) is used: timings do not depend on the weights'
values, and the result is labelled "untrained (random init)".

Without CUDA it exits with a message (exit code 0) and writes nothing, unless --cpu is given: then a CPU fp32
package is compiled and timed with time.perf_counter (a smoke run of this script, not a GPU claim).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.append(str(REPO))  # an installed cheartflow_sdk wins; else this checkout (PYTHONPATH=$PWD puts it first)
sys.path.insert(0, str(HERE))  # results.py and benchlib/: the helpers every benchmark shares

import results  # noqa: E402
from benchlib.models import random_init_model  # noqa: E402
from benchlib.timing import cuda_times, wall_times  # noqa: E402

log = logging.getLogger("bench_engines")
BATCHES = {1: 50, 256: 20}  # batch -> minimum timed runs
WARMUP = 10


def check_graph_replay(engine: Any, resolution: int, device: Any) -> float:
    """Max abs difference between the engine's graph replay (bucket 8) and a direct package call."""
    import torch

    x = torch.rand(8, 1, resolution, resolution, device=device) * 2 - 1
    t = torch.rand(8, device=device)
    with torch.no_grad():
        graphed = engine(x, t)
        direct = engine.torch_callable()(x, t)
    return float((graphed - direct).abs().max())


def run(model_dir: Path, cpu: bool, results_dir: Path | None, weights: str) -> Path:
    import torch

    from cheartflow_sdk.backends.compiled_backend import CompiledEncoder
    from cheartflow_sdk.export import export_engine
    from cheartflow_sdk.models.files import load_encoder

    device = torch.device("cpu" if cpu else "cuda")
    t0 = time.perf_counter()
    path, report = export_engine(model_dir, "torch-compiled", device=device.type)
    compile_s = time.perf_counter() - t0
    log.info("compiled %s in %.1f s; gate: PSNR %.1f dB, max abs error %.3g", path, compile_s, report.psnr_db,
             report.max_abs_error)
    engine = CompiledEncoder(path)
    eager = load_encoder(model_dir, device)
    r = eager.config.resolution
    metrics: dict[str, Any] = {
        "resolution": r,
        "compiled_precision": engine.precision,
        "compiled_gate_psnr_db": round(min(report.psnr_db, 999.0), 2),  # 999: bit-exact (inf is not JSON)
        "compiled_gate_max_abs_error": float(report.max_abs_error),
        "compiled_compile_s": round(compile_s, 1),
        "weights": weights,
        "eager_cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32) if not cpu else False,
    }
    if not cpu:
        diff = check_graph_replay(engine, r, device)
        metrics["compiled_graph_vs_direct_max_abs"] = diff
        if diff > 1e-2 or engine.graph_error:
            raise SystemExit(f"graph replay differs from direct calls by {diff} (graph error: {engine.graph_error})")
    def median_ms(fn: Any, runs: int) -> float:  # CUDA events on a GPU, perf_counter on the CPU
        times = wall_times(fn, runs, warmup=3) if cpu else cuda_times(fn, runs, warmup=WARMUP)
        return statistics.median(times) * 1e3

    tag = "fp32" if cpu else "fp16"
    for batch, runs in BATCHES.items():
        if cpu:
            runs = max(3, runs // 10)
        x = torch.rand(batch, 1, r, r, device=device) * 2 - 1
        t = torch.ones(batch, device=device)  # one-step sampling: E(x1, 1)
        with torch.inference_mode():
            eager_ms = median_ms(lambda x=x, t=t: eager(x, t), runs)
        with torch.no_grad():
            compiled_ms = median_ms(lambda x=x, t=t: engine(x, t), runs)
        metrics[f"eager_fp32_b{batch}_ms"] = round(eager_ms, 4)
        metrics[f"compiled_{tag}_b{batch}_ms"] = round(compiled_ms, 4)
        metrics[f"compiled_speedup_b{batch}"] = round(eager_ms / compiled_ms, 3)
        metrics[f"runs_b{batch}"] = runs
        log.info("batch %d: eager fp32 %.3f ms, compiled %s %.3f ms (x%.2f)", batch, eager_ms, tag, compiled_ms,
                 eager_ms / compiled_ms)
    name = f"engines-{results.slug(results.device_name()) if not cpu else 'cpu'}"
    extra = {"model": weights.removeprefix("trained: ") if weights.startswith("trained") else "ModelConfig() default, 128x128",
             "timing": "CUDA events per call, median after warm-up" if not cpu else "perf_counter per call, median",
             "what": "one encoder evaluation (one-step sampling) on device-resident tensors"}
    kwargs = {"results_dir": results_dir} if results_dir is not None else {}
    out = results.write_results(name, metrics, extra=extra, **kwargs)
    log.info("wrote %s", out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="trained model folder (default: an untrained default-size model)")
    parser.add_argument("--cpu", action="store_true", help="without CUDA: compile and time a CPU fp32 package")
    parser.add_argument("--results-dir", type=Path, help="where to write the JSON (default: benchmarks/results)")
    parser.add_argument("--keep", type=Path, help="keep the model folder and engine here instead of a temp folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    if not torch.cuda.is_available() and not args.cpu:
        print("bench_engines: no CUDA GPU visible to torch; nothing measured, nothing written "
              "(pass --cpu for a CPU smoke run)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        work = args.keep or Path(tmp) / "model"
        work.mkdir(parents=True, exist_ok=True)
        if args.model:
            for name in ("config.json", "model.safetensors"):
                shutil.copy(Path(args.model) / name, work / name)
            weights = f"trained: {args.model}"
        else:
            random_init_model(work)
            weights = "untrained (random init)"
        run(work, args.cpu, args.results_dir, weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
