"""Validation of user inputs: sketch batches, multi-step schedules and seeds.

Every check raises :class:`~cheartflow_sdk.errors.InvalidInputError` (or
:class:`~cheartflow_sdk.errors.ModelMismatchError` for a resolution that does not
match the model) with a message that names the argument, what was expected and
what was received. This module depends on numpy only.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence

import numpy as np

from .errors import InvalidInputError, ModelMismatchError

__all__ = ["as_sketch_batch", "check_schedule", "check_seed", "describe"]

logger = logging.getLogger(__name__)

_RANGE_TOL = 1e-6
_EXPECTED_SKETCH = (
    "expected uint8 [B,H,W] or [H,W] (0..255), or float32 [B,1,H,W], [B,H,W] or [H,W] in [0, 1]"
)
_MAX_SEED = 2**64


def describe(x: object) -> str:
    """Short description of a value for error messages: dtype and shape of arrays, else the type."""
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {tuple(x.shape)}"
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__} of length {len(x)}"
    return f"{type(x).__module__}.{type(x).__qualname__}".removeprefix("builtins.")


def _fail(name: str, got: str, detail: str = "") -> InvalidInputError:
    msg = f"{name}: {_EXPECTED_SKETCH}, got {got}"
    return InvalidInputError(f"{msg} ({detail})" if detail else msg)


def as_sketch_batch(x: object, *, resolution: int | None = None, name: str = "sketches") -> np.ndarray:
    """Validate a sketch batch and return it as a new C-contiguous float32 array [B,1,H,W] in [0, 1].

    Accepted inputs (rank 2 = one image, rank 3 = a batch, rank 4 must have one channel):

    * ``uint8`` [B,H,W], [H,W] (or [B,1,H,W]): divided by 255.
    * other integer dtypes with all values in 0..255: treated exactly like uint8
      (divided by 255); values outside 0..255 are rejected.
    * ``bool``: False/True become 0.0/1.0.
    * ``float16/32/64`` [B,1,H,W], [B,H,W] or [H,W] with values in [0, 1]; values within
      1e-6 outside the range are clipped, NaN/inf and other values are rejected.
    * a list/tuple of 2-D numpy arrays of equal shape (each converted by the rules above,
      so uint8 and float images may be mixed).

    If ``resolution`` is given, H and W must both equal it (else ModelMismatchError).
    """
    if isinstance(x, (list, tuple)):
        batch = _stack_list(x, name)
    else:
        batch = _single_array(x, name)
    if resolution is not None:
        _check_resolution(batch, resolution, name)
    return batch


def _stack_list(items: Sequence[object], name: str) -> np.ndarray:
    if len(items) == 0:
        raise _fail(name, f"an empty {type(items).__name__}", "the batch must hold at least one image")
    converted = []
    for i, item in enumerate(items):
        if not isinstance(item, np.ndarray) or item.ndim != 2:
            raise InvalidInputError(
                f"{name}[{i}]: expected a 2-D numpy array [H,W] in a list of sketches, got {describe(item)}"
            )
        if item.shape != items[0].shape:
            raise InvalidInputError(
                f"{name}: all images in a list must share one shape [H,W], "
                f"got {tuple(items[0].shape)} at index 0 and {tuple(item.shape)} at index {i}"
            )
        converted.append(_single_array(item, f"{name}[{i}]"))
    return np.ascontiguousarray(np.concatenate(converted, axis=0))


def _single_array(x: object, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        hint = "convert it with np.asarray(...)"
        if hasattr(x, "__array__") or hasattr(x, "numpy"):
            hint += " (for a torch tensor: t.detach().cpu().numpy())"
        raise _fail(name, describe(x), f"a numpy array is required; {hint}")
    x = np.asarray(x)  # drop ndarray subclasses (matrix, memmap, ...)
    got = describe(x)
    kind = x.dtype.kind
    if kind not in "buif":
        raise _fail(name, got, f"dtype {x.dtype} is not a boolean, integer or real floating-point type")
    if x.ndim not in (2, 3, 4):
        raise _fail(name, got, f"{x.ndim} dimensions")
    if x.ndim == 4 and x.shape[1] != 1:
        raise _fail(name, got, f"the channel dimension must be 1, not {x.shape[1]}")
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]
    if x.shape[0] == 0:
        raise _fail(name, got, "the batch is empty (B == 0)")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise _fail(name, got, "the images have zero size")
    if kind == "b":
        return x.astype(np.float32)
    if kind in "iu":
        return _from_integer(x, name, got)
    return _from_float(x, name, got)


def _from_integer(x: np.ndarray, name: str, got: str) -> np.ndarray:
    if x.dtype != np.uint8:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise _fail(
                name, got, f"integer sketches must hold values in 0..255 like uint8; found min {lo}, max {hi}"
            )
    out = x.astype(np.float32)
    out /= np.float32(255.0)
    return out


def _from_float(x: np.ndarray, name: str, got: str) -> np.ndarray:
    finite = np.isfinite(x)
    if not finite.all():
        n_nan = int(np.isnan(x).sum())
        n_inf = int(x.size - finite.sum()) - n_nan
        raise _fail(name, got, f"found {n_nan} NaN and {n_inf} inf values; all values must be finite")
    lo, hi = float(x.min()), float(x.max())
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
        raise _fail(
            name,
            got,
            f"values must lie in [0, 1]; found min {lo:.6g}, max {hi:.6g} "
            "(uint8 images must keep dtype uint8; divide 0..255 floats by 255)",
        )
    out = x.astype(np.float32)  # always a copy; float16/float64 become float32
    return np.clip(out, 0.0, 1.0, out=out)


def _check_resolution(batch: np.ndarray, resolution: int, name: str) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) or resolution < 1:
        raise InvalidInputError(f"resolution: expected a positive int, got {resolution!r}")
    h, w = batch.shape[2], batch.shape[3]
    if h != resolution or w != resolution:
        raise ModelMismatchError(
            f"{name}: the model expects {resolution}x{resolution} sketches, got {h}x{w}; "
            f"use cf.sketch.normalize_drawing(..., size={resolution}) for drawings "
            f"or resize the sketches to {resolution}x{resolution}"
        )


def _check_int(value: object, name: str, expected: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name}: expected {expected}, got {value!r} ({describe(value)})")
    return int(value)


def check_schedule(schedule: Sequence[float] | np.ndarray | None, steps: int) -> tuple[float, ...]:
    """Validate a multi-step schedule and return it as a tuple of ``steps - 1`` floats.

    ``steps`` is the number of encoder evaluations (NFE, int >= 1; 1 = one-step). The
    schedule lists the re-noise time t_k in (0, 1) used before each evaluation after the
    first; values are used in the given order (no sorting). ``None`` gives the default,
    evenly spaced descending times ``np.linspace(1, 0, steps + 1)[1:-1]``, e.g.
    steps=2 -> (0.5,), steps=3 -> (0.667, 0.333), steps=1 -> ().
    """
    steps = _check_int(steps, "steps", "an int >= 1 (number of network evaluations)")
    if steps < 1:
        raise InvalidInputError(f"steps: expected an int >= 1 (number of network evaluations), got {steps}")
    expected = f"{steps - 1} re-noise times strictly inside (0, 1) for steps={steps}"
    if schedule is None:
        return tuple(float(t) for t in np.linspace(1.0, 0.0, steps + 1)[1:-1])
    if isinstance(schedule, np.ndarray):
        if schedule.ndim != 1:
            raise InvalidInputError(f"schedule: expected {expected}, got {describe(schedule)}")
        schedule = schedule.tolist()
    if isinstance(schedule, (str, bytes)) or not isinstance(schedule, Sequence):
        raise InvalidInputError(f"schedule: expected a sequence of {expected}, got {describe(schedule)}")
    if len(schedule) != steps - 1:
        raise InvalidInputError(
            f"schedule: expected {expected}, got {len(schedule)} values: {list(schedule)!r}"
        )
    times = []
    for i, t in enumerate(schedule):
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Real):
            raise InvalidInputError(f"schedule[{i}]: expected a float in (0, 1), got {t!r} ({describe(t)})")
        t = float(t)
        if not (0.0 < t < 1.0):  # also rejects NaN
            raise InvalidInputError(
                f"schedule[{i}]: expected a finite float strictly inside (0, 1), got {t!r}"
            )
        times.append(t)
    return tuple(times)


def check_seed(seed: object) -> int:
    """Validate a random seed: an int (Python or numpy, not bool) in [0, 2**64); returns a Python int."""
    value = _check_int(seed, "seed", "an int in [0, 2**64)")
    if not 0 <= value < _MAX_SEED:
        raise InvalidInputError(f"seed: expected an int in [0, 2**64), got {value}")
    return value


NUM_LABELS = 4  # 0 background, 1 RV, 2 MYO, 3 LV (ACDC)


def check_label_values(labels: np.ndarray, who: str) -> np.ndarray:
    """Integer labels 0..3 (ints, bools, or floats holding whole numbers) as uint8; `who` names the caller."""
    lab = np.asarray(labels)
    if np.issubdtype(lab.dtype, np.floating):
        if not np.all(np.isfinite(lab)) or np.any(lab != np.rint(lab)):
            raise InvalidInputError(f"{who} expects integer labels 0..3; got non-integer float values")
    elif not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
        raise InvalidInputError(f"{who} expects integer labels 0..3, got dtype {lab.dtype}")
    if lab.size and (lab.min() < 0 or lab.max() >= NUM_LABELS):
        raise InvalidInputError(
            f"{who} expects labels in 0..{NUM_LABELS - 1} (0 bg, 1 RV, 2 MYO, 3 LV), got values in {lab.min()}..{lab.max()}"
        )
    return lab.astype(np.uint8)
