"""Export of a trained encoder to engines (installed as `cheartflow_sdk.export`; needs the `train` extra).

Formats (contract.ENGINE_FORMATS), each parity-gated against the fp32 PyTorch encoder before it is written:

* "onnx": fp32 ONNX (max abs error <= 1e-4), model.onnx;
* "onnx-fp16": fp16 ONNX with fp32 inputs/outputs (PSNR >= 40 dB), model.fp16.onnx;
* "tensorrt": TensorRT FP16 engine built from the fp16 ONNX (unverified here), model.engine + sidecar;
* "torch-compiled": AOTInductor package, fp16 on CUDA / fp32 on CPU, model.pt2 + sidecar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import contract
from ..errors import InvalidInputError
from .onnx_export import export_onnx, export_onnx_fp16
from .parity import FP16_MIN_PSNR_DB, FP32_MAX_ABS_ERROR, ParityReport, check_parity, parity_inputs
from .verify import VerifyReport, verify_engine

__all__ = ["FP16_MIN_PSNR_DB", "FP32_MAX_ABS_ERROR", "ParityReport", "VerifyReport", "check_parity",
           "export_compiled", "export_engine", "export_onnx", "export_onnx_fp16", "export_tensorrt",
           "parity_inputs", "verify_engine"]


def export_compiled(*args: Any, **kwargs: Any):
    """See torch_compiled.export_compiled (imported on use)."""
    from .torch_compiled import export_compiled as impl

    return impl(*args, **kwargs)


def export_tensorrt(*args: Any, **kwargs: Any):
    """See tensorrt_export.export_tensorrt (imported on use)."""
    from .tensorrt_export import export_tensorrt as impl

    return impl(*args, **kwargs)


def export_engine(model_dir: str | Path, format: str, out: str | Path | None = None,
                  **opts: Any) -> tuple[Path, ParityReport | None]:
    """Export `model_dir` to `format` (one of contract.ENGINE_FORMATS) at `out` (default: the standard file
    name in model_dir); `opts` go to the format's exporter (e.g. gate=False, device="cpu", max_batch=64).
    Returns (engine path, parity report or None when the gate was skipped)."""
    exporters = {"onnx": export_onnx, "onnx-fp16": export_onnx_fp16, "tensorrt": export_tensorrt,
                 "torch-compiled": export_compiled}
    if format not in exporters:
        raise InvalidInputError(f"format must be one of {contract.ENGINE_FORMATS}, got {format!r}")
    return exporters[format](model_dir, out, **opts)
