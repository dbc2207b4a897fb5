"""OpenVINO IR engines for the CPU (extra `[openvino]`): `--format openvino` and `--format openvino-int8`.

* "openvino" (model.openvino.xml + .bin): the fp32 ONNX graph as an OpenVINO IR with fp32 weights. It runs
  with the bf16 inference precision hint where the CPU has native bf16 (cpu_features.has_native_bf16()),
  else in fp32, and is gated in the precision it will run in on this machine (recorded as
  cheartflow.precision, "bf16" or "fp32"). The same run needs no file: `backend="openvino"` reads
  model.onnx directly with the same hint, but only an exported IR counts as gated for `backend="auto"`.
* "openvino-int8" (model.int8.xml + .bin): NNCF post-training quantization (`nncf.quantize`, mixed preset:
  symmetric int8 weights, asymmetric activations) calibrated on real sketches (calibration.py), with the
  first and last convolutions kept fp32; the rest runs with the same precision hint as above.

Both are built from the fp32 ONNX export, gated in ONNX Runtime first as always; by default OpenVINO then
reads the same export with every GroupNorm written from per-channel statistics (`groupnorm="channelwise"`,
onnx_groupnorm.ChannelwiseGroupNorm: no reshape of the activations, so OpenVINO's CPU plugin keeps its
channel-blocked layout; measured on the 2-core AMD EPYC, edges model, against "fused": int8 batch 1
15.0 -> 13.0 ms and batch 16 80 -> 99 images/s, bf16 25 -> 15.3 ms and 64 -> 77 images/s), or as one
GroupNormalization op (`groupnorm="fused"`, run as one MVN kernel; fused_groupnorm.py), or the two-pass
graph itself (`groupnorm="two-pass"`).

Both are gated before they land: output PSNR >= 35 dB against the fp32 PyTorch encoder on the gate sketches
(parity.REDUCED_MIN_PSNR_DB), no NaN/inf; otherwise nothing is written. The cheartflow metadata (plus the
gate's PSNR, the CPU class and, for int8, the calibration data) is in the IR's rt_info ("cheartflow").
Writes: the .bin lands first, then the .xml (each atomically); the .xml is the engine file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .. import contract
from .._optional import require
from ..atomic import atomic_output
from ..errors import InvalidInputError
from .calibration import DEFAULT_COUNT, calibration_inputs
from .metadata import engine_metadata
from .parity import ParityReport, check_parity, describe_gate, enforce_gate

log = logging.getLogger(__name__)

QUANTIZED_OP_TYPES = ("Convolution",)  # NNCF quantizes only these (where the compute is), as the ONNX int8 engine
_NEVER_IGNORED = {"Parameter", "Result", "Constant"}


def _fp32_op_types(model: Any) -> list[str]:
    """Every other op type of the graph, for NNCF's ignored scope: NNCF's CPU preset would otherwise also
    quantize the element-wise ops of GroupNorm and the time embedding (measured: 16 dB instead of >= 35)."""
    return sorted({op.get_type_name() for op in model.get_ordered_ops()} - set(QUANTIZED_OP_TYPES) - _NEVER_IGNORED)


def _first_last_convs(model: Any) -> list[str]:
    convs = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    return sorted({convs[0], convs[-1]}) if convs else []


def _write_ir(ov: Any, model: Any, out_path: Path, meta: dict[str, str], gate_fn) -> ParityReport | None:
    """Save `model` with `meta` as an IR at out_path (+ .bin) after `gate_fn(tmp_xml)` passes (it returns the
    report, or None without a gate); nothing lands when it raises."""
    from ..backends.openvino_backend import write_metadata

    with atomic_output(out_path) as tmp:
        tmp_bin = tmp.with_suffix(".bin")
        try:
            write_metadata(model, meta)
            ov.save_model(model, str(tmp), compress_to_fp16=False)
            report = gate_fn(tmp)
            if report is not None:
                meta[contract.META_GATE_PSNR] = f"{report.psnr_db:.2f}"
                write_metadata(model, meta)
                ov.save_model(model, str(tmp), compress_to_fp16=False)
            os.replace(tmp_bin, out_path.with_suffix(".bin"))  # the weights first, then the .xml that reads them
        finally:
            with contextlib.suppress(OSError):
                tmp_bin.unlink()
    return report


def _prepare(model_dir: Path, out_path: Path, work: Path, groupnorm: str):
    """(openvino module, TorchEncoder reference, the fp32 ONNX graph of `groupnorm`'s form read as an OpenVINO
    model); the two-pass graph passes the fp32 ONNX Runtime gate first, whichever form is read."""
    ov = require("openvino")
    from ..backends.torch_backend import TorchEncoder
    from .onnx_export import export_onnx

    if out_path.suffix != ".xml":
        raise InvalidInputError(f"an OpenVINO IR engine's file name must end in .xml, got {out_path}")
    if groupnorm not in contract.GROUPNORM_FORMS:
        raise InvalidInputError(f"groupnorm must be one of {contract.GROUPNORM_FORMS}, got {groupnorm!r}")
    reference = TorchEncoder(model_dir, device="cpu")
    fp32, _ = export_onnx(model_dir, work / "model.onnx")
    if groupnorm in contract.OPENVINO_ONLY_GROUPNORM_FORMS:  # its own gate is the IR's, in the precision it runs in
        fp32, _ = export_onnx(model_dir, work / f"model.{groupnorm}.onnx", groupnorm=groupnorm, gate=False)
    return ov, reference, ov.Core().read_model(str(fp32))


def _gate(reference: Any, precision: str, name: str, gate: bool):
    from ..backends.openvino_backend import OpenVINOEncoder

    def run(tmp: Path) -> ParityReport | None:
        if not gate:
            return None
        engine = OpenVINOEncoder(tmp, device="cpu")
        report = check_parity(engine, reference, reference.config.resolution)
        log.info("quality gate of %s (%s): %s", name, engine.name, describe_gate(report, precision))
        enforce_gate(report, precision, f"the OpenVINO engine {name} ({engine.name})")
        return report

    return run


def export_openvino(model_dir: str | Path, out_path: str | Path | None = None, gate: bool = True,
                    groupnorm: str = "channelwise") -> tuple[Path, ParityReport | None]:
    """Write the OpenVINO IR engine (default model_dir/model.openvino.xml + .bin), gated in the precision it
    runs in here (bf16 where the CPU has native bf16, else fp32; PSNR >= 35 dB either way). `groupnorm`:
    "channelwise" (from per-channel statistics, the fastest in OpenVINO), "fused" (one op per GroupNorm) or
    "two-pass" (the ONNX Runtime engine's graph)."""
    from ..cpu_features import has_native_bf16, isa_class

    model_dir = Path(model_dir)
    out_path = Path(out_path) if out_path is not None else model_dir / contract.OPENVINO_FILENAME
    precision = "bf16" if has_native_bf16() else "fp32"
    with tempfile.TemporaryDirectory(prefix="cf-openvino-") as work:
        ov, reference, model = _prepare(model_dir, out_path, Path(work), groupnorm)
        meta = engine_metadata(reference.config, model_dir, precision, "openvino", **{
            contract.META_CPU_ISA: isa_class(), contract.META_GROUPNORM: groupnorm})
        gate_precision = "bf16" if precision == "bf16" else "reduced"
        report = _write_ir(ov, model, out_path, meta, _gate(reference, gate_precision, out_path.name, gate))
    return out_path, report


def export_openvino_int8(model_dir: str | Path, out_path: str | Path | None = None,
                         calibration: str | Path | None = None, calibration_count: int = DEFAULT_COUNT,
                         gate: bool = True, groupnorm: str = "channelwise") -> tuple[Path, ParityReport | None]:
    """Write an NNCF int8 OpenVINO IR (default model_dir/model.int8.xml + .bin) calibrated on `calibration`
    (a packed .npz such as packed/val-128.npz, or sketch files; None: phantom sketches, for tests);
    `groupnorm` as in export_openvino (GroupNorm's ops stay unquantized: only convolutions are quantized)."""
    nncf = require("nncf")
    from ..cpu_features import isa_class

    model_dir = Path(model_dir)
    out_path = Path(out_path) if out_path is not None else model_dir / contract.OPENVINO_INT8_FILENAME
    with tempfile.TemporaryDirectory(prefix="cf-openvino-int8-") as work:
        ov, reference, model = _prepare(model_dir, out_path, Path(work), groupnorm)
        calib = calibration_inputs(reference, calibration, calibration_count)
        items = [{contract.INPUT_X: x, contract.INPUT_T: t} for x, t in calib.batches(8)]
        quantized = nncf.quantize(
            model, nncf.Dataset(items), preset=nncf.QuantizationPreset.MIXED, subset_size=len(items),
            ignored_scope=nncf.IgnoredScope(names=_first_last_convs(model), types=_fp32_op_types(model), validate=False),
            fast_bias_correction=True,
        )
        meta = engine_metadata(reference.config, model_dir, "int8", "openvino-int8", **{
            contract.META_CPU_ISA: isa_class(), contract.META_GROUPNORM: groupnorm,
            contract.META_CALIBRATION: f"{calib.source}; {len(calib.x)} encoder inputs; nncf mixed preset",
        })
        report = _write_ir(ov, quantized, out_path, meta, _gate(reference, "int8", out_path.name, gate))
    return out_path, report
