"""Export the encoder E(x, t) to ONNX (opset >= 17, dynamic batch, `t` an input) with cheartflow metadata."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

from .. import contract
from .._optional import require
from .._version import __version__
from ..errors import ModelMismatchError
from ..atomic import atomic_output
from .parity import ParityReport, check_parity

log = logging.getLogger(__name__)
FP32_MAX_ABS_ERROR = 1e-4


def _metadata(cfg, source_sha256: str, precision: str) -> dict[str, str]:
    from dataclasses import asdict

    return {
        contract.META_MODEL_CONFIG: json.dumps(asdict(cfg)),
        contract.META_SKETCH_KIND: cfg.sketch_kind,
        contract.META_RESOLUTION: str(cfg.resolution),
        contract.META_SIGMA: repr(cfg.sigma),
        contract.META_DEFAULT_SCHEDULE: json.dumps(list(cfg.default_schedule)),
        contract.META_SDK_VERSION: __version__,
        contract.META_SOURCE_SHA256: source_sha256,
        contract.META_PRECISION: precision,
    }


def export_onnx(model_dir: str | Path, out_path: str | Path | None = None, opset: int = contract.ONNX_OPSET,
                gate: bool = True) -> tuple[Path, ParityReport | None]:
    """Write `model_dir`'s encoder as an fp32 ONNX engine (default: model_dir/model.onnx).

    With `gate`, the engine is first run in ONNX Runtime against the PyTorch encoder; if the max abs error
    exceeds 1e-4 or any output is not finite, nothing is written and ModelMismatchError gives the numbers.
    """
    torch = require("torch")
    onnx = require("onnx")
    from ..backends.onnxruntime_backend import OnnxRuntimeEncoder
    from ..backends.torch_backend import TorchEncoder
    from ..training.checkpoint import MODEL_FILENAME, file_sha256

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    model_dir = Path(model_dir)
    out_path = Path(out_path) if out_path is not None else model_dir / "model.onnx"
    reference = TorchEncoder(model_dir, device="cpu")
    cfg = reference.config
    r = cfg.resolution
    example = (torch.zeros(2, 1, r, r), torch.ones(2))
    with atomic_output(out_path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                reference.module, example, str(tmp), dynamo=False, opset_version=opset,
                input_names=[contract.INPUT_X, contract.INPUT_T], output_names=[contract.OUTPUT],
                dynamic_axes=contract.dynamic_axes(),
            )
        proto = onnx.load(str(tmp))
        for key, value in _metadata(cfg, file_sha256(model_dir / MODEL_FILENAME), "fp32").items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "cheartflow-sdk"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        report = None
        if gate:
            report = check_parity(OnnxRuntimeEncoder(tmp, device="cpu"), reference, r)
            log.info("parity of %s: %s", out_path.name, report)
            if not report.passes(max_abs_error=FP32_MAX_ABS_ERROR):
                raise ModelMismatchError(
                    f"parity gate failed for the fp32 ONNX engine: max abs error {report.max_abs_error:.3g} "
                    f"(limit {FP32_MAX_ABS_ERROR}), PSNR {report.psnr_db:.1f} dB, finite={report.finite}; nothing written"
                )
    return out_path, report
