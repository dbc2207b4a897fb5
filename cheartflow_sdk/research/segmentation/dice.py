"""Dice overlap of label maps (numpy): per slice and class, and the mean over foreground classes."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError

FOREGROUND = (1, 2, 3)  # ACDC: 1 RV, 2 MYO, 3 LV (0 is background)
CLASS_NAMES = {0: "background", 1: "RV", 2: "MYO", 3: "LV"}


def _labels(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise InvalidInputError(f"dice: {name} must be integer label maps [N, H, W], got {arr.dtype} {np.shape(x)}")
    return arr


def dice_per_class(pred: np.ndarray, target: np.ndarray, classes: tuple[int, ...] = FOREGROUND) -> np.ndarray:
    """Dice ``2|P & T| / (|P| + |T|)`` per slice and class: float64 ``[N, len(classes)]``.

    A class absent from both the prediction and the target of a slice gives NaN (left out of
    means), so a slice without RV is not rewarded or punished for predicting none.
    """
    p, t = _labels(pred, "pred"), _labels(target, "target")
    if p.shape != t.shape:
        raise InvalidInputError(f"dice: pred and target must have one shape, got {p.shape} and {t.shape}")
    out = np.empty((len(p), len(classes)), dtype=np.float64)
    for j, c in enumerate(classes):
        pc, tc = p == c, t == c
        inter = np.count_nonzero(pc & tc, axis=(1, 2))
        total = np.count_nonzero(pc, axis=(1, 2)) + np.count_nonzero(tc, axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = np.where(total > 0, 2.0 * inter / np.maximum(total, 1), np.nan)
    return out


def mean_foreground_dice(pred: np.ndarray, target: np.ndarray, classes: tuple[int, ...] = FOREGROUND) -> np.ndarray:
    """Mean Dice over the classes present (in prediction or target) of each slice: ``[N]`` (NaN if none)."""
    d = dice_per_class(pred, target, classes)
    present = ~np.isnan(d)
    counts = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.nansum(d, axis=1) / np.maximum(counts, 1), np.nan)
