"""Export the encoder E(x, t) to ONNX (opset >= 17, dynamic batch, `t` an input) with cheartflow metadata.

Two precisions: fp32 (the reference engine) and fp16 (`export_onnx_fp16`: fp16 weights and compute with
float32 inputs/outputs, GroupNorm and attention kept in fp32; see fp16.py). Both are parity-gated in ONNX
Runtime (CPU) against the fp32 PyTorch encoder before the file lands.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .. import contract
from .._optional import require
from ..atomic import atomic_output
from .metadata import engine_metadata
from .parity import ParityReport, check_parity, describe_gate, enforce_gate

log = logging.getLogger(__name__)


def export_onnx(model_dir: str | Path, out_path: str | Path | None = None, opset: int = contract.ONNX_OPSET,
                gate: bool = True, precision: str = "fp32") -> tuple[Path, ParityReport | None]:
    """Write `model_dir`'s encoder as an ONNX engine (default: model_dir/model.onnx, or model.fp16.onnx).

    With `gate`, the engine is first run in ONNX Runtime (CPU) against the fp32 PyTorch encoder: fp32 needs
    max abs error <= 1e-4, fp16 PSNR >= 40 dB, both no NaN/inf; otherwise nothing is written and
    ModelMismatchError gives the measured numbers.
    """
    torch = require("torch")
    onnx = require("onnx")
    from ..backends.onnxruntime_backend import OnnxRuntimeEncoder
    from ..backends.torch_backend import TorchEncoder
    from .onnx_groupnorm import two_pass_group_norms

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    model_dir = Path(model_dir)
    fmt = "onnx" if precision == "fp32" else "onnx-fp16"
    out_path = Path(out_path) if out_path is not None else model_dir / contract.ENGINE_FILENAMES[fmt]
    reference = TorchEncoder(model_dir, device="cpu")
    cfg = reference.config
    module = two_pass_group_norms(reference.module)
    if precision == "fp16":
        from .fp16 import half_encoder

        module = half_encoder(module)
    r = cfg.resolution
    example = (torch.zeros(2, 1, r, r), torch.ones(2))
    with atomic_output(out_path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module, example, str(tmp), dynamo=False, opset_version=opset,
                input_names=[contract.INPUT_X, contract.INPUT_T], output_names=[contract.OUTPUT],
                dynamic_axes=contract.dynamic_axes(),
            )
        proto = onnx.load(str(tmp))
        for key, value in engine_metadata(cfg, model_dir, precision, fmt).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "cheartflow-sdk"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        report = None
        if gate:
            report = check_parity(OnnxRuntimeEncoder(tmp, device="cpu"), reference, r)
            log.info("parity of %s: %s", out_path.name, describe_gate(report, precision))
            enforce_gate(report, precision, f"the {precision} ONNX engine {out_path.name}")
    return out_path, report


def export_onnx_fp16(model_dir: str | Path, out_path: str | Path | None = None, opset: int = contract.ONNX_OPSET,
                     gate: bool = True) -> tuple[Path, ParityReport | None]:
    """Write the fp16 ONNX engine (default: model_dir/model.fp16.onnx); gated at PSNR >= 40 dB."""
    return export_onnx(model_dir, out_path, opset=opset, gate=gate, precision="fp16")
