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

The configurations, their measurement and the report are in benchlib/ (pipeline_configs.py,
pipeline_measure.py, pipeline_report.py; roofline.py, nvml.py, timing.py are shared with the other benchmarks).
"""

from __future__ import annotations

import argparse
import logging
import os
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
from benchlib.nvml import NvmlSampler  # noqa: E402
from benchlib.pipeline_configs import plan_configs  # noqa: E402
from benchlib.pipeline_measure import cold_start, measure_config, measure_stream_drift  # noqa: E402
from benchlib.pipeline_report import flatten, markdown, plot  # noqa: E402
from benchlib.roofline import (cpu_fp32_matmul_peak_gflops, flops_per_image, gpu_fp16_matmul_peak_tflops,  # noqa: E402
                               gpu_kernel_bandwidth)
from benchlib.models import random_init_model  # noqa: E402
from benchlib.sketches import sketches_u8  # noqa: E402
from cheartflow_sdk import kernels  # noqa: E402

log = logging.getLogger("bench_pipeline")

GPU_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CPU_BATCHES = (1, 16)


def fresh_model(out_dir: Path, export: bool) -> Path:
    """A default-size model with random weights, with its ONNX engine when `export`."""
    random_init_model(out_dir)
    if export:  # no parity gate: random weights give larger activations than a trained model (timing only)
        from cheartflow_sdk.export import export_onnx

        export_onnx(out_dir, gate=False)
    return out_dir


def host_info(load_start: tuple[float, float, float]) -> dict[str, Any]:
    """The CPU the run used and how busy the machine was (other processes skew CPU numbers)."""
    return {"cpu": results.cpu_name(), "cpu_count": os.cpu_count(), "loadavg_1min_start": round(load_start[0], 2),
            "loadavg_1min_end": round(os.getloadavg()[0], 2)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="model folder (config.json + model.safetensors); default: a fresh "
                   "default-size model with random weights")
    p.add_argument("--quick", action="store_true", help="a smoke run: few requests, small batches, no torch.compile")
    p.add_argument("--results-dir", type=Path, default=results.RESULTS_DIR)
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
        from cheartflow_sdk.models.files import load_encoder

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
        dev = "cpu" if not on_gpu else results.slug(torch.cuda.get_device_name(0))
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

            def draw(doc: dict[str, Any], png: Path) -> None:
                where = doc["device"] if on_gpu else f"CPU: {doc['host']['cpu']}, {doc['host']['cpu_count']} cores"
                plot(report, f"cheartflow-sdk pipeline on {where} ({doc['date']})", png)

            json_path = results.write_report(name, metrics, extra, args.results_dir, draw,
                                             lambda doc, png_name: markdown(doc, report, png_name))
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
        plan = plan_configs(args, model_dir, work, on_gpu, args.wanted, skipped, modules)
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
                entry = measure_config(engine, args, res, sampler, cap)
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
