"""Build a TensorRT FP16 engine from the fp16 ONNX engine. UNVERIFIED in this project's build environment.

TensorRT is not installable where this project is built and tested, so this module follows the documented
TensorRT 10 Python API without having run; `tensorrt` is imported only inside the functions here.

* Precision: the network is parsed from `model.fp16.onnx` (fp16 weights and compute, GroupNorm and attention
  in fp32, fp32 inputs/outputs; see fp16.py) as a *strongly typed* network, so TensorRT keeps exactly the
  precisions of the ONNX graph. This works on TensorRT 10 and 11 (which removed BuilderFlag.FP16).
* One optimization profile per batch bucket (contract.BATCH_BUCKETS up to max_batch): profile k covers
  batches (bucket[k-1], bucket[k]], tuned at bucket[k].
* A timing cache (default `<engine>.timing-cache`) is read before and written after each build.
* The engine is parity-gated (PSNR >= 40 dB, no NaN/inf) against the fp32 PyTorch encoder before it lands,
  with a `<engine>.json` sidecar recording the GPU, compute capability, TensorRT and CUDA versions.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .. import contract
from .._optional import require
from ..atomic import atomic_output, atomic_write_bytes
from ..errors import InvalidInputError, ModelMismatchError
from .metadata import engine_metadata, sidecar_document, write_sidecar
from .parity import ParityReport, check_parity, describe_gate, enforce_gate

log = logging.getLogger(__name__)


def timing_cache_path(engine: str | Path) -> Path:
    """Default timing cache of an engine: `<engine>.timing-cache`."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".timing-cache")


def build_serialized_engine(onnx_path: str | Path, resolution: int, buckets: tuple[int, ...],
                            timing_cache: Path | None = None, workspace_gib: float = 4.0) -> bytes:
    """Parse `onnx_path` as a strongly typed network and build a serialized engine with one optimization
    profile per bucket; reads and updates `timing_cache` when given."""
    trt = require("tensorrt")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelMismatchError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    cache_bytes = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, False):
        log.warning("timing cache %s does not match this GPU / TensorRT; starting a new one", timing_cache)
        config.set_timing_cache(config.create_timing_cache(b""), False)
    r = resolution
    low = 1
    for bucket in buckets:
        profile = builder.create_optimization_profile()
        profile.set_shape(contract.INPUT_X, (low, 1, r, r), (bucket, 1, r, r), (bucket, 1, r, r))
        profile.set_shape(contract.INPUT_T, (low,), (bucket,), (bucket,))
        config.add_optimization_profile(profile)
        low = bucket + 1
    log.info("building a TensorRT %s engine from %s (profiles up to %s); this can take minutes",
             trt.__version__, onnx_path, buckets)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelMismatchError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    if timing_cache is not None:
        atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def export_tensorrt(model_dir: str | Path, out_path: str | Path | None = None, onnx_path: str | Path | None = None,
                    max_batch: int = max(contract.BATCH_BUCKETS), timing_cache: str | Path | bool | None = None,
                    workspace_gib: float = 4.0, gate: bool = True) -> tuple[Path, ParityReport | None]:
    """Write a TensorRT FP16 engine (default model_dir/model.engine) plus its `.json` sidecar.

    onnx_path: the fp16 ONNX to build from (default model_dir/model.fp16.onnx, exported and gated first when
    missing). timing_cache: a path, None for `<engine>.timing-cache`, False for none. Needs a CUDA GPU,
    tensorrt and torch. The engine only runs on the same GPU model with the same TensorRT version.
    """
    from ..backends.tensorrt_backend import TensorRTEncoder, tensorrt_environment
    from ..backends.torch_backend import TorchEncoder

    require("tensorrt")
    torch = require("torch")
    if not torch.cuda.is_available():
        raise ModelMismatchError("a TensorRT engine is built on the GPU it will run on, but torch sees no CUDA GPU here")
    model_dir = Path(model_dir)
    out_path = Path(out_path) if out_path is not None else model_dir / contract.TENSORRT_FILENAME
    onnx_path = Path(onnx_path) if onnx_path is not None else model_dir / contract.ONNX_FP16_FILENAME
    if not onnx_path.is_file():
        from .onnx_export import export_onnx_fp16

        export_onnx_fp16(model_dir, onnx_path)
    onnx = require("onnx")
    onnx_meta = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    if onnx_meta.get(contract.META_PRECISION) != "fp16":
        raise InvalidInputError(f"{onnx_path}: TensorRT engines are built from the fp16 ONNX engine "
                                f"(`cheartflow export --format onnx-fp16`), got precision {onnx_meta.get(contract.META_PRECISION)!r}")
    reference = TorchEncoder(model_dir, device="cpu")
    cfg = reference.config
    if contract.config_from_metadata(onnx_meta, onnx_path) != cfg:
        raise ModelMismatchError(f"{onnx_path} was exported from another model than {model_dir}; re-export it")
    buckets = contract.buckets_up_to(max_batch)
    cache = None if timing_cache is False else (Path(timing_cache) if timing_cache not in (None, True) else timing_cache_path(out_path))
    data = build_serialized_engine(onnx_path, cfg.resolution, buckets, cache, workspace_gib)
    meta = engine_metadata(cfg, model_dir, "fp16", "tensorrt", **{
        contract.META_MAX_BATCH: max_batch,
        contract.META_BATCH_BUCKETS: json.dumps(list(buckets)),
        **tensorrt_environment(),
    })
    with atomic_output(out_path) as tmp:
        tmp.write_bytes(data)
        doc = sidecar_document(meta, tmp)
        report = None
        if gate:
            report = check_parity(TensorRTEncoder(tmp, metadata=doc), reference, cfg.resolution)
            log.info("parity of %s: %s", out_path.name, describe_gate(report, "fp16"))
            enforce_gate(report, "fp16", f"the TensorRT engine {out_path.name}")
        write_sidecar(out_path, doc)
    return out_path, report
