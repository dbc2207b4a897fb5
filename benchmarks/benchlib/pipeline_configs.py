"""The pipeline benchmark's configurations: the SDK's own Pipeline over an encoder the registry opens (numpy
path), or over a torch callable in the CUDA-graph runtime, and the plan of which ones run here."""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cheartflow_sdk.config import ModelConfig

from .sketches import sketches_u8

log = logging.getLogger("bench_pipeline")

REF = "torch-eager-fp32"
COMPILE_REF = "torch-compile-fp16"


@dataclass
class Config:
    """One measured configuration: a cheartflow_sdk Pipeline and what the report says about it."""

    name: str
    description: str
    pipe: Any  # cheartflow_sdk.pipeline.Pipeline
    batch_sizes: tuple[int, ...]
    on_gpu: bool = False
    runtime: bool = False  # the SDK's device runtime (candidates for the headline figures)
    selfcheck: Callable[[], bool] | None = None  # graph replays == the same requests run eagerly

    def run(self, x: np.ndarray, steps: int) -> np.ndarray:
        """One request host to host: uint8 [B,R,R] -> uint8 [B,1,R,R]."""
        return self.pipe.synthesize(x, steps=steps, seed=0, dtype=np.uint8, batch_size=len(x))

    def stream(self, xs: Iterable[np.ndarray], steps: int) -> Iterator[np.ndarray]:
        return self.pipe.stream(xs, steps=steps, seed=0, dtype=np.uint8)

    def warmup(self, steps: tuple[int, ...]) -> float:
        """Pipeline.warmup: the runner's graphs at every batch size, or the first calls (session init)."""
        return self.pipe.warmup(steps, self.batch_sizes, np.uint8, np.uint8)

    def close(self) -> None:
        """Drop the pipeline (and on a GPU its memory) before the next configuration is built."""
        self.pipe = None
        gc.collect()
        if self.on_gpu:
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()


@dataclass
class _EncoderInfo:
    """What Pipeline needs of an encoder when a runner does the work."""

    config: ModelConfig
    name: str


def runner_config(name: str, description: str, fn: Any, cfg: ModelConfig, batch_sizes: tuple[int, ...],
                  use_graphs: bool, runtime: bool) -> Config:
    """A CudaGraphRunner around the torch callable `fn`, driven through the public Pipeline API."""
    from cheartflow_sdk.pipeline import Pipeline
    from cheartflow_sdk.runtime import CudaGraphRunner

    runner = CudaGraphRunner(fn, cfg.resolution, cfg.sigma, device="cuda", buckets=batch_sizes,
                             use_graphs=use_graphs, name=name)
    config = Config(name, description, Pipeline(_EncoderInfo(cfg, name), Path(name), runner=runner), batch_sizes,
                    on_gpu=True, runtime=runtime)

    def selfcheck() -> bool:
        """Requests with other seeds (one, or one per sketch) and per-sample schedules: graph replays against the
        same launches without graphs (a second runner on the same callable), bit for bit."""
        small = batch_sizes[:3]
        eager = CudaGraphRunner(fn, cfg.resolution, cfg.sigma, device="cuda", buckets=small, use_graphs=False)
        graphed = config.pipe.runner
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

    if use_graphs:
        config.selfcheck = selfcheck
    return config


def numpy_config(name: str, description: str, encoder: Any, source: Path, batch_sizes: tuple[int, ...],
                 on_gpu: bool = False) -> Config:
    """The numpy path of Pipeline (host arrays between encoder calls) over `encoder`."""
    from cheartflow_sdk.pipeline import Pipeline

    return Config(name, description, Pipeline(encoder, source, runner=None), batch_sizes, on_gpu=on_gpu)


def onnx_path_for(model_dir: Path, work: Path) -> Path:
    if (model_dir / "model.onnx").is_file():
        return model_dir / "model.onnx"
    from cheartflow_sdk.export import export_onnx

    path, _ = export_onnx(model_dir, work / "model.onnx")
    return path


def plan_configs(args: argparse.Namespace, model_dir: Path, work: Path, on_gpu: bool, wanted: set[str] | None,
                 skipped: dict[str, str], modules: dict[str, Any]) -> list[tuple[str, Callable[[], Config]]]:
    """(name, factory) of every configuration to measure; factories run one at a time (each one is closed
    before the next is built, so GPU memory is reused). Every encoder is opened by the SDK's registry
    (backends.registry.open_encoder); absent backends go to `skipped` with the reason."""
    from cheartflow_sdk.backends import registry

    plan: list[tuple[str, Callable[[], Config]]] = []

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    def add(name: str, factory: Callable[[], Config]) -> None:
        if want(name):
            plan.append((name, factory))

    def ort_config(name: str, device: str, batches: tuple[int, ...], desc: str) -> Callable[[], Config]:
        def make() -> Config:
            enc = registry.open_encoder(onnx_path_for(model_dir, work), "onnxruntime", device)
            return numpy_config(name, desc, enc, model_dir, batches, on_gpu=device == "cuda")
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

        def torch_cpu() -> Config:
            return numpy_config(REF, "PyTorch eager fp32 on CPU, numpy pipeline",
                                registry.open_encoder(model_dir, "torch", "cpu"), model_dir, args.cpu_batches)

        add(REF, torch_cpu)
        if providers:
            add("onnxruntime-cpu", ort_config("onnxruntime-cpu", "cpu", args.cpu_batches, "ONNX Runtime CPU EP, numpy pipeline"))
        return plan

    import torch

    cfg = modules["fp32"].config
    batches = args.gpu_batches
    m32 = modules["fp32"]
    m16 = copy.deepcopy(m32).half()

    def runner(name: str, desc: str, get_fn: Callable[[], Any], sizes: tuple[int, ...], graphs: bool,
               runtime: bool) -> Callable[[], Config]:
        return lambda: runner_config(name, desc, get_fn(), cfg, sizes, graphs, runtime)

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

        def engine_config(name: str = name, cfg_name: str = cfg_name) -> Config:
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
                return runner_config(cfg_name, f"SDK runtime around the {name} engine ({enc.name})", fn, cfg, sizes,
                                     True, True)
            return numpy_config(name, f"{enc.name} engine through the numpy pipeline", enc, model_dir, sizes, True)

        plan.append((cfg_name, engine_config))
    for name, factory in late:
        add(name, factory)
    if "CUDAExecutionProvider" in providers:
        add("onnxruntime-cuda", ort_config("onnxruntime-cuda", "cuda", batches, "ONNX Runtime CUDA EP, numpy pipeline"))
    elif providers and want("onnxruntime-cuda"):
        skipped["onnxruntime-cuda"] = f"ONNX Runtime has no CUDA EP here (providers {providers}; install onnxruntime-gpu)"
    if providers:
        add("onnxruntime-cpu", ort_config("onnxruntime-cpu", "cpu", args.cpu_batches, "ONNX Runtime CPU EP, numpy pipeline"))
    return plan
