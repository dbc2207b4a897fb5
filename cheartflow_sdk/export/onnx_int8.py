"""Static int8 ONNX engine for ONNX Runtime's CPU provider (`--format onnx-int8`, model.int8.onnx).

onnxruntime.quantization.quantize_static in QDQ format, calibrated on real sketches (calibration.py):

* only the convolutions are quantized (int8 weights per output channel, uint8 activations with ranges from
  the calibration set: the u8s8 kernels of x86 VNNI/AMX); GroupNorm, attention, the time embedding and the
  preconditioning stay fp32;
* the first and last convolutions stay fp32 (the sketch goes in, the image comes out there);
* the engine is gated before it lands: output PSNR >= 35 dB against the fp32 PyTorch encoder on the gate
  sketches (parity.REDUCED_MIN_PSNR_DB), no NaN/inf; otherwise nothing is written and ModelMismatchError
  gives the measured numbers. The PSNR, the CPU class it ran on and the calibration data are recorded in
  the engine's metadata.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from .. import contract
from .._optional import require
from ..atomic import atomic_output
from ..errors import InvalidInputError
from .calibration import DEFAULT_COUNT, Calibration, calibration_inputs
from .metadata import engine_metadata
from .parity import ParityReport, check_parity, describe_gate, enforce_gate

log = logging.getLogger(__name__)

CALIBRATION_METHODS = ("percentile", "minmax", "entropy")


def keep_fp32_nodes(proto) -> list[str]:
    """Names of the Conv nodes that stay fp32: the first (reads the sketch) and the last (writes the image)."""
    convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
    return sorted({convs[0], convs[-1]}) if convs else []


def _reader(calibration: Calibration, batch_size: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration.batches(batch_size))

        def get_next(self):
            item = next(self._it, None)
            return None if item is None else {contract.INPUT_X: item[0], contract.INPUT_T: item[1]}

    return Reader()


def _set_metadata(onnx, path: Path, meta: dict[str, str]) -> None:
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    proto.producer_name = "cheartflow-sdk"
    onnx.save(proto, str(path))


def export_onnx_int8(model_dir: str | Path, out_path: str | Path | None = None, calibration: str | Path | None = None,
                     calibration_count: int = DEFAULT_COUNT, method: str = "percentile", gate: bool = True,
                     opset: int = contract.ONNX_OPSET) -> tuple[Path, ParityReport | None]:
    """Write `model_dir`'s encoder as a static int8 QDQ ONNX engine (default model_dir/model.int8.onnx).

    calibration: real sketches to calibrate on (a packed .npz such as packed/val-128.npz, or a folder/file of
    sketches); None uses phantom sketches (tests only). method: "percentile" (99.999th, default), "minmax" or
    "entropy". With `gate` (default) the engine must reach the reduced-precision gate (see the module doc).
    """
    onnx = require("onnx")
    require("onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from ..backends.onnxruntime_backend import OnnxRuntimeEncoder
    from ..backends.torch_backend import TorchEncoder
    from ..cpu_features import isa_class
    from .onnx_export import export_onnx

    if method not in CALIBRATION_METHODS:
        raise InvalidInputError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
    model_dir = Path(model_dir)
    out_path = Path(out_path) if out_path is not None else model_dir / contract.ONNX_INT8_FILENAME
    if out_path.suffix != ".onnx":
        raise InvalidInputError(f"an int8 ONNX engine's file name must end in .onnx, got {out_path}")
    reference = TorchEncoder(model_dir, device="cpu")
    cfg = reference.config
    calib = calibration_inputs(reference, calibration, calibration_count)
    methods = {"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory(prefix="cf-int8-") as work:
        fp32, _ = export_onnx(model_dir, Path(work) / "model.onnx", opset=opset)  # the gated fp32 graph
        exclude = keep_fp32_nodes(onnx.load(str(fp32), load_external_data=False))
        with atomic_output(out_path) as tmp:
            quantize_static(
                str(fp32), str(tmp), _reader(calib, 8), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude, calibrate_method=methods[method],
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "CalibPercentile": 99.999,
                               "CalibTensorRangeSymmetric": False},
            )
            meta = engine_metadata(cfg, model_dir, "int8", "onnx-int8", **{
                contract.META_CPU_ISA: isa_class(),
                contract.META_CALIBRATION: f"{calib.source}; {len(calib.x)} encoder inputs; {method}",
            })
            _set_metadata(onnx, tmp, meta)
            report = None
            if gate:
                report = check_parity(OnnxRuntimeEncoder(tmp, device="cpu"), reference, cfg.resolution)
                log.info("quality gate of %s: %s", out_path.name, describe_gate(report, "int8"))
                enforce_gate(report, "int8", f"the int8 ONNX engine {out_path.name} (calibrated on {calib.source})")
                meta[contract.META_GATE_PSNR] = f"{report.psnr_db:.2f}"
                _set_metadata(onnx, tmp, meta)
    return out_path, report

