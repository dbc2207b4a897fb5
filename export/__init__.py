"""Export of a trained encoder to engines (installed as `cheartflow_sdk.export`; needs the `train` extra)."""

from .onnx_export import export_onnx
from .parity import ParityReport, check_parity, parity_inputs

__all__ = ["ParityReport", "check_parity", "export_onnx", "parity_inputs"]
