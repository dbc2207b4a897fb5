"""Export of a trained encoder to engines (installed as `cheartflow_sdk.export`; needs the `train` extra).

Formats (contract.ENGINE_FORMATS), each parity-gated against the fp32 PyTorch encoder before it is written:

* "onnx": fp32 ONNX (max abs error <= 1e-4), model.onnx;
* "onnx-fp16": fp16 ONNX with fp32 inputs/outputs (PSNR >= 40 dB), model.fp16.onnx;
* "tensorrt": TensorRT FP16 engine built from the fp16 ONNX (unverified here), model.engine + sidecar;
* "torch-compiled": AOTInductor package, fp16 on CUDA / fp32 on CPU, model.pt2 + sidecar;
* "onnx-int8": static int8 QDQ ONNX for ONNX Runtime's CPU provider, calibrated on real sketches
  (PSNR >= 35 dB), model.int8.onnx;
* "openvino": OpenVINO IR, run in bf16 where the CPU has native bf16, else fp32 (PSNR >= 35 dB),
  model.openvino.xml + .bin;
* "openvino-int8": NNCF int8 OpenVINO IR calibrated on real sketches (PSNR >= 35 dB), model.int8.xml + .bin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import contract
from ..config import read_config
from ..errors import InvalidInputError
from .onnx_export import export_onnx, export_onnx_fp16
from .parity import FP16_MIN_PSNR_DB, FP32_MAX_ABS_ERROR, REDUCED_MIN_PSNR_DB, ParityReport, check_parity, parity_inputs
from .verify import VerifyReport, verify_engine

__all__ = ["FP16_MIN_PSNR_DB", "FP32_MAX_ABS_ERROR", "REDUCED_MIN_PSNR_DB", "ParityReport", "VerifyReport",
           "check_parity", "export_compiled", "export_engine", "export_onnx", "export_onnx_fp16", "export_onnx_int8",
           "export_openvino", "export_openvino_int8", "export_tensorrt", "parity_inputs", "verify_engine"]

# Formats calibrated on real sketches (export_engine's `calibration=` / `cheartflow export --calibration`).
INT8_FORMATS = ("onnx-int8", "openvino-int8")


def export_compiled(*args: Any, **kwargs: Any):
    """See torch_compiled.export_compiled (imported on use)."""
    from .torch_compiled import export_compiled as impl

    return impl(*args, **kwargs)


def export_tensorrt(*args: Any, **kwargs: Any):
    """See tensorrt_export.export_tensorrt (imported on use)."""
    from .tensorrt_export import export_tensorrt as impl

    return impl(*args, **kwargs)


def export_onnx_int8(*args: Any, **kwargs: Any):
    """See onnx_int8.export_onnx_int8 (imported on use)."""
    from .onnx_int8 import export_onnx_int8 as impl

    return impl(*args, **kwargs)


def export_openvino(*args: Any, **kwargs: Any):
    """See openvino_export.export_openvino (imported on use)."""
    from .openvino_export import export_openvino as impl

    return impl(*args, **kwargs)


def export_openvino_int8(*args: Any, **kwargs: Any):
    """See openvino_export.export_openvino_int8 (imported on use)."""
    from .openvino_export import export_openvino_int8 as impl

    return impl(*args, **kwargs)


def export_engine(model_dir: str | Path, format: str, out: str | Path | None = None,
                  **opts: Any) -> tuple[Path, ParityReport | None]:
    """Export `model_dir` to `format` (one of contract.ENGINE_FORMATS) at `out` (default: the standard file
    name in model_dir); `opts` go to the format's exporter (e.g. gate=False, device="cpu", max_batch=64,
    calibration="packed/val-128.npz" for the int8 formats).
    Returns (engine path, parity report or None when the gate was skipped)."""
    exporters = {"onnx": export_onnx, "onnx-fp16": export_onnx_fp16, "tensorrt": export_tensorrt,
                 "torch-compiled": export_compiled, "onnx-int8": export_onnx_int8, "openvino": export_openvino,
                 "openvino-int8": export_openvino_int8}
    if format not in exporters:
        raise InvalidInputError(f"format must be one of {contract.ENGINE_FORMATS}, got {format!r}")
    if read_config(model_dir)[0].sketch_condition:
        raise InvalidInputError(f"{model_dir} holds a sketch-conditioned model (ModelConfig.sketch_condition): engines "
                                "take (x, t) only, so it cannot be exported; run it with backend='torch'")
    return exporters[format](model_dir, out, **opts)
