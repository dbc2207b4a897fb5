"""Export the encoder E(x, t) to ONNX (opset >= 17, dynamic batch, `t` an input) with cheartflow metadata.

Two precisions: fp32 (the reference engine) and fp16 (`export_onnx_fp16`: fp16 weights and compute with
float32 inputs/outputs, GroupNorm and attention kept in fp32; see fp16.py). Both are parity-gated in ONNX
Runtime (CPU) against the fp32 PyTorch encoder before the file lands.

GroupNorm is written in two stages (onnx_groupnorm.py), exact in ONNX Runtime; `groupnorm="fused"` writes it
as one GroupNormalization-21 op instead (fused_groupnorm.py), and `groupnorm="channelwise"` from per-channel
statistics (onnx_groupnorm.ChannelwiseGroupNorm): source graphs for OpenVINO only, gated there.
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
                gate: bool = True, precision: str = "fp32", groupnorm: str = "two-pass") -> tuple[Path, ParityReport | None]:
    """Write `model_dir`'s encoder as an ONNX engine (default: model_dir/model.onnx, or model.fp16.onnx).

    With `gate`, the engine is first run in ONNX Runtime (CPU) against the fp32 PyTorch encoder: fp32 needs
    max abs error <= 1e-4, fp16 PSNR >= 40 dB, both no NaN/inf; otherwise nothing is written and
    ModelMismatchError gives the measured numbers.

    groupnorm="fused" (fp32 only) writes every GroupNorm as one GroupNormalization op at opset 21 (`opset` is
    not used): a source graph for OpenVINO, gated in OpenVINO (fp32 hint) at the reduced-precision gate
    every OpenVINO run is held to, because ONNX Runtime computes that op less exactly than the fp32 gate allows.
    groupnorm="channelwise" (fp32 only) writes it from per-channel spatial means at `opset`, gated the same way.
    """
    torch = require("torch")
    onnx = require("onnx")
    from ..backends.torch_backend import TorchEncoder

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
    if groupnorm not in contract.GROUPNORM_FORMS:
        raise ValueError(f"groupnorm must be one of {contract.GROUPNORM_FORMS}, got {groupnorm!r}")
    if groupnorm in contract.OPENVINO_ONLY_GROUPNORM_FORMS and precision != "fp32":
        raise ValueError(f"groupnorm={groupnorm!r} is written in fp32 only, got precision {precision!r}")
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    model_dir = Path(model_dir)
    fmt = "onnx" if precision == "fp32" else "onnx-fp16"
    out_path = Path(out_path) if out_path is not None else model_dir / contract.ENGINE_FILENAMES[fmt]
    reference = TorchEncoder(model_dir, device="cpu")
    cfg = reference.config
    module, export_opts = _export_module(reference.module, groupnorm, opset)
    if precision == "fp16":
        from .fp16 import half_encoder

        module = half_encoder(module)
    r = cfg.resolution
    example = (torch.zeros(2, 1, r, r), torch.ones(2))
    with atomic_output(out_path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module, example, str(tmp), dynamo=False, **export_opts,
                input_names=[contract.INPUT_X, contract.INPUT_T], output_names=[contract.OUTPUT],
                dynamic_axes=contract.dynamic_axes(),
            )
        proto = onnx.load(str(tmp))
        if groupnorm == "fused":
            from .fused_groupnorm import to_group_normalization

            to_group_normalization(proto)
        meta = engine_metadata(cfg, model_dir, precision, fmt, **{contract.META_GROUPNORM: groupnorm})
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "cheartflow-sdk"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        report = None
        if gate:
            engine, gate_precision = _gate_engine(tmp, groupnorm, precision)
            report = check_parity(engine, reference, r)
            log.info("parity of %s (%s): %s", out_path.name, engine.name, describe_gate(report, gate_precision))
            enforce_gate(report, gate_precision, f"the {precision} ONNX engine {out_path.name} ({engine.name})")
    return out_path, report


def _export_module(module, groupnorm: str, opset: int):
    """(the module to trace, its opset keyword arguments of torch.onnx.export) for a GroupNorm form."""
    if groupnorm == "fused":
        from .fused_groupnorm import export_options, fused_group_norms

        return fused_group_norms(module), export_options()
    from .onnx_groupnorm import channelwise_group_norms, two_pass_group_norms

    if groupnorm == "channelwise":
        return channelwise_group_norms(module), {"opset_version": opset}

    return two_pass_group_norms(module), {"opset_version": opset}


def _gate_engine(path: Path, groupnorm: str, precision: str):
    """(the engine the gate runs, the gate's precision): ONNX Runtime at the file's own precision, except a
    graph for OpenVINO only (fused or channelwise), which ONNX Runtime computes less exactly."""
    if groupnorm in contract.OPENVINO_ONLY_GROUPNORM_FORMS:
        from ..backends.openvino_backend import OpenVINOEncoder

        engine = OpenVINOEncoder(path, device="cpu", precision="fp32")
        return engine, engine.gate_precision
    from ..backends.onnxruntime_backend import OnnxRuntimeEncoder

    return OnnxRuntimeEncoder(path, device="cpu"), precision


def export_onnx_fp16(model_dir: str | Path, out_path: str | Path | None = None, opset: int = contract.ONNX_OPSET,
                     gate: bool = True) -> tuple[Path, ParityReport | None]:
    """Write the fp16 ONNX engine (default: model_dir/model.fp16.onnx); gated at PSNR >= 40 dB."""
    return export_onnx(model_dir, out_path, opset=opset, gate=gate, precision="fp16")
