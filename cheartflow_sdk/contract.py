"""The one IO contract shared by export and the runtime backends: tensor names, engine files, metadata.

Standard library only (no numpy, torch or onnx), so every backend and the registry can import it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, ModelMismatchError

log = logging.getLogger(__name__)

INPUT_X = "x"  # float32 [batch, 1, R, R], model range [-1, 1]
INPUT_T = "t"  # float32 [batch], bridge time in [0, 1]
OUTPUT = "x0_hat"  # float32 [batch, 1, R, R]
BATCH_AXIS = "batch"
BATCH_BUCKETS = (1, 8, 64, 256)  # batch sizes engines are tuned for (optimization profiles, graphs)
ONNX_OPSET = 17

# ---------------------------------------------------------------------------------------------- engine files

# Standard file names of the engines a model folder may hold, by export format.
ONNX_FILENAME = "model.onnx"  # fp32 ONNX (ONNX Runtime, CPU or CUDA)
ONNX_FP16_FILENAME = "model.fp16.onnx"  # fp16 weights/compute, fp32 inputs/outputs (ONNX Runtime; TensorRT's source)
TENSORRT_FILENAME = "model.engine"  # TensorRT FP16 engine (+ model.engine.json sidecar)
COMPILED_FILENAME = "model.pt2"  # AOTInductor package (+ model.pt2.json sidecar)
ONNX_INT8_FILENAME = "model.int8.onnx"  # ONNX Runtime static int8 (QDQ), calibrated on real sketches
OPENVINO_FILENAME = "model.openvino.xml"  # OpenVINO IR (+ .bin), fp32 weights, run in bf16 where the CPU has it
OPENVINO_INT8_FILENAME = "model.int8.xml"  # OpenVINO IR (+ .bin) quantized to int8 by NNCF

MODEL_FILENAME = "model.safetensors"  # the trained encoder's fp16 weights (beside config.json), every engine's source

ENGINE_FILENAMES = {
    "onnx": ONNX_FILENAME,
    "onnx-fp16": ONNX_FP16_FILENAME,
    "tensorrt": TENSORRT_FILENAME,
    "torch-compiled": COMPILED_FILENAME,
    "onnx-int8": ONNX_INT8_FILENAME,
    "openvino": OPENVINO_FILENAME,
    "openvino-int8": OPENVINO_INT8_FILENAME,
}
ENGINE_FORMATS = tuple(ENGINE_FILENAMES)  # accepted by export_engine / `cheartflow export --format`

# Which backend opens an engine file, by suffix.
SUFFIX_BACKENDS = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".pt2": "torch-compiled",
                   ".xml": "openvino"}
# Backends that can also open a file of another backend's kind (OpenVINO reads ONNX directly).
ALSO_OPENS = {".onnx": ("openvino",)}
SIDECAR_SUFFIX = ".json"  # model.engine -> model.engine.json

# ---------------------------------------------------------------------------------------------- metadata keys

# Keys of the metadata stored in every exported engine (ONNX: metadata_props; .engine/.pt2: the sidecar).
META_MODEL_CONFIG = "cheartflow.model_config"  # JSON of ModelConfig
META_SKETCH_KIND = "cheartflow.sketch_kind"
META_RESOLUTION = "cheartflow.resolution"
META_SIGMA = "cheartflow.sigma"
META_DEFAULT_SCHEDULE = "cheartflow.default_schedule"  # JSON list
META_SDK_VERSION = "cheartflow.sdk_version"
META_SOURCE_SHA256 = "cheartflow.source_sha256"  # hash of the source model.safetensors
META_PRECISION = "cheartflow.precision"  # "fp32", "fp16", "bf16" (OpenVINO IR run in bf16) or "int8"
META_FORMAT = "cheartflow.format"  # one of ENGINE_FORMATS
META_SOURCE_PATH = "cheartflow.source_path"  # name of the source model folder at export time (never a full path)
META_MAX_BATCH = "cheartflow.max_batch"  # largest batch the engine accepts (compiled / TensorRT)
META_BATCH_BUCKETS = "cheartflow.batch_buckets"  # JSON list: profiles / CUDA-graph buckets
# Reduced-precision CPU engines (bf16, int8): what their quality gate measured, where, and on what data.
META_GATE_PSNR = "cheartflow.gate_psnr_db"  # output PSNR vs the fp32 PyTorch encoder on the gate sketches
META_CPU_ISA = "cheartflow.cpu_isa"  # cpu_features.isa_class() of the CPU the gate ran on
META_CALIBRATION = "cheartflow.calibration"  # int8: the calibration data (file name, count, sketch kind)
META_GROUPNORM = "cheartflow.groupnorm"  # how GroupNorm is written: "two-pass" (ONNX Runtime), "fused" or "channelwise" (OpenVINO)
GROUPNORM_FORMS = ("two-pass", "fused", "channelwise")  # the values of META_GROUPNORM
OPENVINO_ONLY_GROUPNORM_FORMS = ("fused", "channelwise")  # forms ONNX Runtime computes less exactly than its fp32 gate
# Sidecar-only keys: what a GPU engine was built with, checked at load.
META_ENGINE_SHA256 = "cheartflow.engine_sha256"  # hash of the engine file the sidecar describes
META_DEVICE = "cheartflow.device"  # "cuda" or "cpu" (compiled packages are built for one)
META_GPU_NAME = "cheartflow.gpu_name"
META_COMPUTE_CAPABILITY = "cheartflow.compute_capability"  # "9.0"
META_TENSORRT_VERSION = "cheartflow.tensorrt_version"
META_TORCH_VERSION = "cheartflow.torch_version"
META_CUDA_VERSION = "cheartflow.cuda_version"

_ENV_LABELS = {
    META_DEVICE: "device",
    META_GPU_NAME: "GPU",
    META_COMPUTE_CAPABILITY: "compute capability",
    META_TENSORRT_VERSION: "TensorRT",
    META_TORCH_VERSION: "torch",
    META_CUDA_VERSION: "CUDA",
}


def dynamic_axes() -> dict[str, dict[int, str]]:
    """Dynamic batch axis of every input and output."""
    return {INPUT_X: {0: BATCH_AXIS}, INPUT_T: {0: BATCH_AXIS}, OUTPUT: {0: BATCH_AXIS}}


def buckets_up_to(max_batch: int) -> tuple[int, ...]:
    """BATCH_BUCKETS capped at max_batch (max_batch itself is the last bucket)."""
    if max_batch < 1:
        raise InvalidInputError(f"max_batch must be >= 1, got {max_batch}")
    return tuple(sorted({b for b in BATCH_BUCKETS if b < max_batch} | {max_batch}))


def engine_backend(path: str | Path) -> str | None:
    """The backend that opens an engine file, from its suffix (None for an unknown suffix)."""
    return SUFFIX_BACKENDS.get(Path(path).suffix.lower())


def engine_backends(path: str | Path) -> tuple[str, ...]:
    """Every backend that can open an engine file, its own kind first (empty for an unknown suffix)."""
    suffix = Path(path).suffix.lower()
    own = SUFFIX_BACKENDS.get(suffix)
    return () if own is None else (own, *ALSO_OPENS.get(suffix, ()))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (engine provenance and integrity)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_engine_file(engine: str | Path, meta: Mapping[str, str]) -> None:
    """InvalidInputError when the engine file's sha256 differs from the one its sidecar recorded (corrupt,
    truncated or replaced file)."""
    want = meta.get(META_ENGINE_SHA256)
    if want and file_sha256(engine) != want:
        raise InvalidInputError(f"{engine} is corrupt or was replaced: its sha256 differs from the one recorded in "
                                f"{sidecar_path(engine)} at export; re-export the engine")


def sidecar_path(engine: str | Path) -> Path:
    """Where the metadata of a `.engine` / `.pt2` file lives: `<engine>.json`."""
    engine = Path(engine)
    return engine.with_name(engine.name + SIDECAR_SUFFIX)


def read_sidecar(engine: str | Path) -> dict[str, str]:
    """The metadata sidecar of an engine file; a clear error when it is missing or not cheartflow metadata."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise ModelMismatchError(f"{engine} has no metadata sidecar (expected {path}, written by `cheartflow export`); "
                                 "re-export the engine")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not a readable JSON metadata sidecar: {exc}") from exc
    if not isinstance(meta, dict) or META_MODEL_CONFIG not in meta:
        raise ModelMismatchError(f"{path} holds no cheartflow metadata ({META_MODEL_CONFIG}); re-export the engine")
    return {str(k): str(v) for k, v in meta.items()}


def config_from_metadata(meta: Mapping[str, str], source: str | Path):
    """The ModelConfig embedded in an engine's metadata; a clear error when it is missing or invalid."""
    from .config import model_config_from_dict

    if META_MODEL_CONFIG not in meta:
        raise ModelMismatchError(f"{source} has no cheartflow metadata ({META_MODEL_CONFIG}); export it with `cheartflow export`")
    try:
        return model_config_from_dict(json.loads(meta[META_MODEL_CONFIG]))
    except (ValueError, TypeError, KeyError, ArithmeticError, RecursionError) as exc:  # any bad value (fuzzed)
        raise ModelMismatchError(f"{source}: its {META_MODEL_CONFIG} metadata is not a valid model config: {exc}") from exc


def _describe(env: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    parts = [f"{_ENV_LABELS.get(k, k)} {env.get(k) or 'none'}" for k in keys]
    return ", ".join(parts)


def check_build_environment(meta: Mapping[str, str], running: Mapping[str, Any], source: str | Path,
                            strict: tuple[str, ...], warn: tuple[str, ...] = ()) -> None:
    """Compare what an engine was built for (its metadata) with what is running.

    A difference in a `strict` key raises ModelMismatchError naming both sides; a difference in a `warn`
    key is logged. Keys the metadata does not record are not compared. Versions compare as given (callers
    pass e.g. "2.11" to compare torch by major.minor).
    """
    recorded = tuple(k for k in strict if meta.get(k))
    bad = [k for k in recorded if str(meta[k]) != str(running.get(k))]
    if bad:
        raise ModelMismatchError(
            f"{source} was built for {_describe(meta, recorded)}; running: {_describe(running, recorded)} "
            f"(mismatch in {', '.join(_ENV_LABELS.get(k, k) for k in bad)}); re-export the engine on this machine "
            "with `cheartflow export --format ...`"
        )
    for k in warn:
        if meta.get(k) and str(meta[k]) != str(running.get(k)):
            log.warning("%s was built with %s %s, running %s: it may be slower or behave differently; "
                        "re-export it on this machine for best results", source, _ENV_LABELS.get(k, k), meta[k], running.get(k))
