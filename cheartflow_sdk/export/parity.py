"""The parity gate: an engine must match the fp32 PyTorch encoder on a fixed set of inputs before it is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ModelMismatchError

# Times covering the one-step point, the default two-step point and both ends of the bridge.
PARITY_TIMES = (1.0, 0.75, 0.5, 0.25, 0.05)
FP32_MAX_ABS_ERROR = 1e-4  # gate of fp32 engines: max abs error on the model range [-1, 1]
FP16_MIN_PSNR_DB = 40.0  # gate of fp16 engines: PSNR over the data range 2
REDUCED_MIN_PSNR_DB = 35.0  # gate of the CPU's reduced-precision engines (bf16, int8): PSNR over the data range 2


@dataclass
class ParityReport:
    """How far an engine's outputs are from the reference encoder's, on the model range [-1, 1]."""

    max_abs_error: float
    psnr_db: float  # over the data range 2 of [-1, 1]
    finite: bool
    n_inputs: int

    def passes(self, max_abs_error: float | None = None, min_psnr_db: float | None = None) -> bool:
        ok = self.finite
        if max_abs_error is not None:
            ok = ok and self.max_abs_error <= max_abs_error
        if min_psnr_db is not None:
            ok = ok and self.psnr_db >= min_psnr_db
        return ok


def parity_inputs(resolution: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """Fixed sketches (phantom edges and label maps) bridged to each PARITY_TIMES point: (x [N,1,R,R], t [N])."""
    from ..data.phantom import make_phantom
    from ..sketch import canny, from_labels
    from ..bridge import bridge_sample

    images, labels = make_phantom(4, size=resolution, seed=seed)
    sketches = np.concatenate([canny(images), from_labels(labels)]) * 2 - 1
    targets = np.concatenate([images, images])
    rng = np.random.default_rng(seed)
    xs, ts = [], []
    for t in PARITY_TIMES:
        eps = rng.standard_normal(sketches.shape).astype(np.float32)
        tv = np.full(len(sketches), t, dtype=np.float32)
        xs.append(bridge_sample(targets, sketches, tv, 0.5, eps).astype(np.float32))
        ts.append(tv)
    return np.concatenate(xs), np.concatenate(ts)


def check_parity(engine: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 reference: Callable[[np.ndarray, np.ndarray], np.ndarray], resolution: int) -> ParityReport:
    """Run both encoders on the fixed inputs and compare."""
    x, t = parity_inputs(resolution)
    got = np.asarray(engine(x, t), dtype=np.float64)
    want = np.asarray(reference(x, t), dtype=np.float64)
    if got.shape != want.shape:
        raise ModelMismatchError(f"engine output shape {got.shape} differs from the reference {want.shape}")
    finite = bool(np.isfinite(got).all())
    if not finite:
        return ParityReport(float("inf"), float("-inf"), False, len(x))
    err = np.abs(got - want)
    mse = float(np.mean(err**2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(4.0 / mse))
    return ParityReport(float(err.max()), psnr, finite, len(x))


def gate_limits(precision: str) -> dict[str, float]:
    """The parity-gate limits of an engine precision, as keyword arguments of ParityReport.passes."""
    if precision == "fp32":
        return {"max_abs_error": FP32_MAX_ABS_ERROR}
    if precision == "fp16":
        return {"min_psnr_db": FP16_MIN_PSNR_DB}
    if precision in ("bf16", "int8", "reduced"):  # "reduced": any engine that reorders or rounds fp32 (OpenVINO)
        return {"min_psnr_db": REDUCED_MIN_PSNR_DB}
    raise ValueError(f"precision must be 'fp32', 'fp16', 'bf16', 'int8' or 'reduced', got {precision!r}")


def describe_gate(report: ParityReport, precision: str) -> str:
    """The measured numbers next to the limits of `precision`, for logs and error messages."""
    limits = gate_limits(precision)
    limit = (f"max abs error <= {limits['max_abs_error']:g}" if "max_abs_error" in limits
             else f"PSNR >= {limits['min_psnr_db']:g} dB")
    return (f"max abs error {report.max_abs_error:.3g}, PSNR {report.psnr_db:.1f} dB, finite={report.finite} "
            f"over {report.n_inputs} inputs (limit for {precision}: {limit}, no NaN/inf)")


def enforce_gate(report: ParityReport, precision: str, what: str) -> ParityReport:
    """Raise ModelMismatchError with the measured numbers when `report` fails the gate of `precision`."""
    if not report.passes(**gate_limits(precision)):
        raise ModelMismatchError(f"parity gate failed for {what}: {describe_gate(report, precision)}; nothing written")
    return report
