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

__all__ = ["OUTPUT_DTYPES", "MAX_STEPS", "SKETCH_DTYPES", "as_sketch_batch", "check_batch_sizes", "check_count",
           "check_output_dtype", "check_request_schedule", "check_schedule", "check_seed", "check_sketch_content",
           "check_sketch_dtype", "check_sketch_kind", "check_steps", "describe", "integer_sketch_values"]

logger = logging.getLogger(__name__)

_RANGE_TOL = 1e-6
_EXPECTED_SKETCH = (
    "expected uint8 [B,H,W] or [H,W] (0..255), or float32 [B,1,H,W], [B,H,W] or [H,W] in [0, 1]"
)
_MAX_SEED = 2**64
MAX_STEPS = 16  # most encoder evaluations per request on every path (the CUDA-graph runner's staging holds this many)
OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8))  # images: float32 in [0, 1] or uint8 in 0..255
SKETCH_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))  # validated sketches as the samplers take them


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


def as_sketch_batch(x: object, *, resolution: int | None = None, name: str = "sketches",
                    kind: str | None = None) -> np.ndarray:
    """Validate a sketch batch and return it as a new C-contiguous float32 array [B,1,H,W] in [0, 1].

    Accepted inputs (rank 2 = one image, rank 3 = a batch, rank 4 must have one channel):

    * integer (any integer dtype, uint8 included) and ``bool`` arrays follow one rule, per array
      (:func:`integer_sketch_values`): values all in 0..3 are a map (an edge map 0/1, or a label
      map 0 bg, 1 RV, 2 MYO, 3 LV read as label / 3); else values in 0..255 are 8-bit intensities
      (divided by 255); else uint16 is divided by 65535; anything else is rejected.
      ``kind`` ("edges" / "labels", the model's) settles a 0/1 map: 0/1 for edges, label / 3 for
      labels; a 0..3 map with labels 2 or 3 for an edges model is a ModelMismatchError.
    * ``float16/32/64`` [B,1,H,W], [B,H,W] or [H,W] with values in [0, 1]; values within
      1e-6 outside the range are clipped, NaN/inf and other values are rejected.
    * a list/tuple of 2-D numpy arrays of equal shape (each converted by the rules above,
      so uint8 and float images may be mixed).

    If ``resolution`` is given, H and W must both equal it (else ModelMismatchError).
    """
    if kind is not None and kind not in _KINDS:
        raise InvalidInputError(f"kind: expected one of {_KINDS} or None, got {kind!r}")
    if isinstance(x, (list, tuple)):
        batch = _stack_list(x, name, kind)
    else:
        batch = _single_array(x, name, kind)
    if resolution is not None:
        _check_resolution(batch, resolution, name)
    return batch


def _stack_list(items: Sequence[object], name: str, kind: str | None = None) -> np.ndarray:
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
        converted.append(_single_array(item, f"{name}[{i}]", kind))
    return np.ascontiguousarray(np.concatenate(converted, axis=0))


def _single_array(x: object, name: str, sketch_kind: str | None = None) -> np.ndarray:
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
    if kind in "biu":
        return integer_sketch_values(x, sketch_kind, name, got)
    return _from_float(x, name, got)


_KINDS = ("edges", "labels")
MAP_MAX = 3  # integer sketches with all values <= 3 are maps (edge 0/1, labels 0..3), not intensities


def integer_sketch_values(x: np.ndarray, kind: str | None, name: str, got: str | None = None) -> np.ndarray:
    """The one rule for integer and bool sketches (API and every reader): float32 in [0, 1].

    Values all in 0..3: a map. With kind "labels" (or kind None and a value 2 or 3) a label map, read
    as label / 3; with kind "edges" (or None and only 0/1) an edge map, read as 0/1; labels 2..3 for an
    edges model raise ModelMismatchError. Else values in 0..255: 8-bit intensities / 255. Else uint16:
    / 65535. Negative values, or other dtypes above 255: InvalidInputError.
    """
    got = got or describe(x)
    if x.size == 0:
        return x.astype(np.float32)
    lo, hi = int(x.min()), int(x.max())
    if lo < 0:
        raise _fail(name, got, f"integer sketches must hold 0/1 edges, 0..3 labels or 0..255 intensities (or uint16 "
                               f"0..65535), never negative values; found min {lo}, max {hi}")
    if hi <= MAP_MAX:
        if kind == "edges" and hi > 1:
            raise ModelMismatchError(
                f"{name}: integer values 0..{hi} are a label map (0 bg, 1 RV, 2 MYO, 3 LV) but the model takes "
                "edge sketches (expected 0/1 or 0..255); use a labels model or make edges with cf.sketch.canny"
            )
        if kind == "labels" or (kind is None and hi > 1):
            return x.astype(np.float32) / np.float32(MAP_MAX)
        return x.astype(np.float32)
    if hi <= 255:
        out = x.astype(np.float32)
        out /= np.float32(255.0)
        return out
    if x.dtype == np.uint16:
        return x.astype(np.float32) / np.float32(65535.0)
    raise _fail(name, got, f"integer sketches must hold 0/1 edges, 0..3 labels, 0..255 intensities (any integer "
                           f"dtype) or uint16 0..65535; found min {lo}, max {hi}")


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


def check_steps(steps: object, max_steps: int | None = None, allow_unvalidated: bool = False) -> int:
    """Validate the number of encoder evaluations: an int in [1, MAX_STEPS], and at most `max_steps` (the largest
    count the model was validated for) unless `allow_unvalidated`."""
    steps = _check_int(steps, "steps", "an int >= 1 (number of network evaluations)")
    if steps < 1:
        raise InvalidInputError(f"steps: expected an int >= 1 (number of network evaluations), got {steps}")
    if steps > MAX_STEPS:
        raise InvalidInputError(f"steps: expected at most {MAX_STEPS} network evaluations per request (on every "
                                f"backend), got {steps}")
    if max_steps is not None and steps > max_steps and not allow_unvalidated:
        raise InvalidInputError(
            f"steps: this model was validated for at most {max_steps} steps (ModelConfig.max_steps), got {steps}; "
            "pass allow_unvalidated_steps=True (CLI: --allow-unvalidated-steps) to run it anyway"
        )
    return steps


_LABEL_LEVELS = np.array([1 / 3, 2 / 3], dtype=np.float32)
_BRIGHT_SHARE = 0.5  # an edge sketch whose pixels are mostly bright is a drawing on light paper
_LEVEL_SHARE = 0.01  # pixels at the label levels 1/3, 2/3 that make an edges input a label map
_INTERIOR_SHARE = 0.2  # filled share of a binary map below which a labels input is an edge map


def check_sketch_content(x: np.ndarray, kind: str, declared: bool = False, name: str = "sketches") -> None:
    """Refuse sketches that are plausible-looking garbage for a `kind` model (the model's sketch kind).

    x: float32 [B,1,H,W] in [0, 1] (or uint8, read as value / 255). For "edges": a sketch whose pixels are
    mostly bright (> 50% above 0.5) is dark lines on light paper (InvalidInputError with the drawing hint).
    Unless the input's kind was `declared`: an edges model refuses a label map (> 1% of the pixels at the
    levels 1/3 or 2/3 and nothing off the four label levels), a labels model refuses an edge map (a binary
    0/1 sketch whose bright pixels are thin lines: < 20% of them have all four neighbours bright).
    Both raise ModelMismatchError naming the kind that was expected.
    """
    v = np.asarray(x)
    v = v.astype(np.float32) / np.float32(255.0) if v.dtype == np.uint8 else v
    v = v.reshape(len(v), v.shape[-2], v.shape[-1])
    on = v > 0.5
    if kind == "edges":
        bright = on.mean(axis=(1, 2))
        if (bright > _BRIGHT_SHARE).any():
            i = int(np.argmax(bright))
            raise InvalidInputError(
                f"{name}[{i}]: {bright[i]:.0%} of its pixels are bright, but an edge sketch is thin bright lines on a "
                "black background; for a drawing with dark lines on light paper (or coloured or thick lines) use "
                "cf.sketch.normalize_drawing(image, 'edges', size=...) (CLI: --drawing)"
            )
    if declared:
        return
    if kind == "edges":
        near = np.zeros_like(on)
        for level in _LABEL_LEVELS:  # one comparison per level: a broadcast over them took 0.8 ms per 128^2 image
            near |= np.abs(v - level) < 1e-3
        on_levels = near | (v < 1e-3) | (v > 1 - 1e-3)
        mid = near.mean(axis=(1, 2))
        hits = (mid > _LEVEL_SHARE) & on_levels.all(axis=(1, 2))
        if hits.any():
            i = int(np.argmax(hits))
            raise ModelMismatchError(
                f"{name}[{i}]: looks like a label sketch (filled regions at the levels 0, 1/3, 2/3, 1) but the model "
                "takes edge sketches (thin bright lines); use a labels model, or declare sketch_kind='edges' "
                "(CLI: --sketch-kind edges) if it really is an edge sketch"
            )
    elif kind == "labels":
        binary = ((v < 1e-3) | (v > 1 - 1e-3)).all(axis=(1, 2))
        interior = on[:, 1:-1, 1:-1] & on[:, :-2, 1:-1] & on[:, 2:, 1:-1] & on[:, 1:-1, :-2] & on[:, 1:-1, 2:]
        count = on.sum(axis=(1, 2))
        filled = interior.sum(axis=(1, 2)) / np.maximum(count, 1)
        hits = binary & (count > 0) & (filled < _INTERIOR_SHARE)
        if hits.any():
            i = int(np.argmax(hits))
            raise ModelMismatchError(
                f"{name}[{i}]: looks like an edge sketch (thin binary lines) but the model takes label sketches "
                "(filled label maps 0 bg, 1 RV, 2 MYO, 3 LV, read as label / 3); use an edges model, or declare "
                "sketch_kind='labels' (CLI: --sketch-kind labels) if it really is a label sketch"
            )


def _dtype_in(dtype: object, allowed: tuple[np.dtype, ...]) -> np.dtype | None:
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        return None
    return dt if dt in allowed else None


def check_output_dtype(dtype: object) -> np.dtype:
    """The images' dtype: float32 (in [0, 1]) or uint8 (0..255)."""
    dt = _dtype_in(dtype, OUTPUT_DTYPES)
    if dt is None:
        raise InvalidInputError(f"dtype: images come as float32 in [0, 1] or uint8 in 0..255, got {dtype!r}")
    return dt


def check_sketch_dtype(dtype: object) -> np.dtype:
    """The dtype of the sketches a warm-up prepares for: uint8 or float32."""
    dt = _dtype_in(dtype, SKETCH_DTYPES)
    if dt is None:
        raise InvalidInputError(f"sketch_dtype: expected uint8 or float32 sketches, got {dtype!r}")
    return dt


def check_count(value: object, name: str, what: str) -> int:
    """A count: an int >= 1 (`what` says what it counts, for the message)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidInputError(f"{name}: expected an int >= 1{what}, got {value!r}")
    return int(value)


def check_batch_sizes(values: object, name: str = "batch_sizes") -> tuple[int, ...]:
    """Sorted unique positive batch sizes (at least one)."""
    try:
        sizes = sorted({int(b) for b in values})  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be positive ints, got {values!r}") from None
    if not sizes or sizes[0] < 1:
        raise InvalidInputError(f"{name} must be positive ints, got {values!r}")
    return tuple(sizes)


def check_sketch_kind(kind: object) -> str | None:
    """A declared sketch kind: "edges", "labels" or None."""
    if kind is not None and kind not in _KINDS:
        raise InvalidInputError(f"sketch_kind: expected 'edges', 'labels' or None, got {kind!r}")
    return kind  # type: ignore[return-value]


def check_request_schedule(schedule: object, steps: int) -> tuple[float, ...] | np.ndarray:
    """A request's schedule: shared (:func:`check_schedule`), or per sample, float32 (B, steps - 1) in (0, 1)
    (its row count is checked against the batch by the caller)."""
    if schedule is None or np.ndim(schedule) != 2:
        return check_schedule(schedule, steps)  # type: ignore[arg-type]
    try:
        sched = np.asarray(schedule, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"schedule: a per-sample schedule needs shape (B, {steps - 1}) of floats in "
                                f"(0, 1), got {type(schedule).__name__}") from None
    if sched.shape[1] != steps - 1 or not ((sched > 0) & (sched < 1)).all():
        raise InvalidInputError(f"schedule: a per-sample schedule needs shape (B, {steps - 1}) with values in (0, 1)")
    return sched
