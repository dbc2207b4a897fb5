"""`cheartflow export` (an engine behind the parity gate) and `cheartflow verify` (rerun the gate)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..contract import GROUPNORM_FORMS
from ..errors import InvalidInputError

log = logging.getLogger("cheartflow")
# The formats written from an ONNX graph whose GroupNorms can be one op ("fused") or two passes ("two-pass").
GROUPNORM_FORMATS = ("onnx", "openvino", "openvino-int8")


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_engine

    opts: dict[str, Any] = {"gate": not args.no_gate}
    if args.format in ("tensorrt", "torch-compiled"):
        opts["max_batch"] = args.max_batch
    if args.format == "torch-compiled" and args.device != "auto":
        opts["device"] = args.device
    if args.format == "tensorrt" and args.timing_cache:
        opts["timing_cache"] = args.timing_cache
    if args.format in ("onnx-int8", "openvino-int8"):
        if args.calibration is None:
            log.warning("no --calibration data: calibrating %s on phantom sketches; pass real sketches "
                        "(e.g. --calibration packed/train-128.npz) for an engine meant for real use", args.format)
        opts.update(calibration=args.calibration, calibration_count=args.calibration_count)
    if args.groupnorm is not None:
        if args.format not in GROUPNORM_FORMATS:
            raise InvalidInputError(f"--groupnorm applies to the formats {', '.join(GROUPNORM_FORMATS)}, not {args.format!r}")
        opts["groupnorm"] = args.groupnorm
    path, report = export_engine(args.model, args.format, args.out, **opts)
    if report is not None:
        log.info("parity gate passed: max abs error %.2e, PSNR %.1f dB over %d inputs", report.max_abs_error,
                 report.psnr_db, report.n_inputs)
    log.info("wrote %s", path)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..export import verify_engine

    report = verify_engine(args.engine, args.reference, device=args.device)
    (log.info if report.passed else log.error)("%s", report.summary())
    return 0 if report.passed else 1


def add_parsers(sub) -> None:
    e = sub.add_parser("export", help="export a trained model to an engine (behind the parity gate)")
    e.add_argument("model", help="run folder written by `cheartflow train`")
    e.add_argument("--format", default="onnx", choices=("onnx", "onnx-fp16", "tensorrt", "torch-compiled", "onnx-int8",
                                                         "openvino", "openvino-int8"))
    e.add_argument("--out", help="engine path (default: MODEL/<standard name>: model.onnx, model.fp16.onnx, model.engine, "
                                 "model.pt2, model.int8.onnx, model.openvino.xml, model.int8.xml)")
    e.add_argument("--no-gate", action="store_true", help="skip the parity check against the PyTorch encoder")
    e.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="torch-compiled: cuda (fp16) or cpu (fp32)")
    e.add_argument("--max-batch", type=int, default=256, help="tensorrt / torch-compiled: largest batch")
    e.add_argument("--timing-cache", help="tensorrt: timing cache path (default: beside the engine)")
    e.add_argument("--calibration", help="onnx-int8 / openvino-int8: real sketches to calibrate on, a packed .npz "
                                         "(e.g. packed/train-128.npz) or sketch files (default: phantom sketches)")
    e.add_argument("--calibration-count", type=int, default=64, help="onnx-int8 / openvino-int8: calibration sketches")
    e.add_argument("--groupnorm", choices=GROUPNORM_FORMS,
                   help="onnx / openvino / openvino-int8: GroupNorm from per-channel statistics (channelwise; the "
                        "openvino default, fastest there, gated in OpenVINO), as one GroupNormalization op (fused; "
                        "gated in OpenVINO) or as two passes (two-pass; the onnx default, exact in ONNX Runtime)")
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("verify", help="rerun the parity gate of an engine against its source checkpoint")
    v.add_argument("engine", help="engine file to verify (.onnx, .engine/.plan or .pt2)")
    v.add_argument("--reference", help="source run folder (default: found from the engine's metadata)")
    v.add_argument("--device", default="auto")
    v.set_defaults(func=cmd_verify)
