"""Sketches of another in-plane size than the model's: fitted in (pad to a square, resize) and images back out.

Interpolation, documented because it changes pixels:

* in, label sketches: centred zero padding to a square, then INTER_NEAREST (labels stay labels);
* in, edge sketches: centred zero padding, then INTER_AREA (shrinking) or INTER_LINEAR (enlarging) of the
  binary map, re-thresholded at half the coverage a one-pixel line keeps (``0.5 * min(1, scale)``) and thinned
  to one-pixel strokes (Zhang-Suen), like :func:`cheartflow_sdk.sketch.normalize_drawing`;
* out, images: INTER_AREA (shrinking) or INTER_CUBIC (enlarging) back to the padded square, clipped to
  [0, 1], then the padding is cropped off: the image covers exactly the input slice's pixels.

The aspect ratio is always kept: nothing is stretched.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InvalidInputError

__all__ = ["Fit", "fit_sketches", "restore_images"]


@dataclass(frozen=True)
class Fit:
    """How sketches of height x width were fitted into size x size (to undo it on the images)."""

    height: int
    width: int
    size: int

    @property
    def side(self) -> int:
        return max(self.height, self.width)

    @property
    def top(self) -> int:
        return (self.side - self.height) // 2

    @property
    def left(self) -> int:
        return (self.side - self.width) // 2


def _pad(img: np.ndarray, fit: Fit) -> np.ndarray:
    out = np.zeros((fit.side, fit.side), np.float32)
    out[fit.top:fit.top + fit.height, fit.left:fit.left + fit.width] = img
    return out


def fit_sketches(sketches: np.ndarray, size: int, kind: str) -> tuple[np.ndarray, Fit]:
    """Sketches float32 [n,1,H,W] in [0, 1] as [n,1,size,size] for a `kind` model (see the module docstring)."""
    from .sketch import thin

    x = np.asarray(sketches)
    if x.ndim != 4 or x.shape[1] != 1 or x.dtype != np.float32:
        raise InvalidInputError(f"fit_sketches: expected float32 sketches [n,1,H,W], got {x.dtype} {x.shape}")
    if kind not in ("edges", "labels"):
        raise InvalidInputError(f"fit_sketches: kind must be 'edges' or 'labels', got {kind!r}")
    fit = Fit(int(x.shape[2]), int(x.shape[3]), int(size))
    if (fit.height, fit.width) == (fit.size, fit.size):
        return x, fit
    scale = fit.size / fit.side
    out = np.empty((len(x), 1, fit.size, fit.size), np.float32)
    for i, img in enumerate(x[:, 0]):
        padded = _pad(img, fit)
        if kind == "labels":
            out[i, 0] = cv2.resize(padded, (fit.size, fit.size), interpolation=cv2.INTER_NEAREST)
        else:
            binary = (padded > 0.5).astype(np.float32)
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            resized = cv2.resize(binary, (fit.size, fit.size), interpolation=interp)
            out[i, 0] = thin(resized > 0.5 * min(1.0, scale) - 1e-6)
    return out, fit


def restore_images(images: np.ndarray, fit: Fit) -> np.ndarray:
    """Images float32 [n,1,size,size] in [0, 1] back to the sketches' [n,1,H,W] (see the module docstring)."""
    y = np.asarray(images, dtype=np.float32)
    if y.ndim != 4 or y.shape[1:] != (1, fit.size, fit.size):
        raise InvalidInputError(f"restore_images: expected images [n,1,{fit.size},{fit.size}], got {y.shape}")
    if (fit.height, fit.width) == (fit.size, fit.size):
        return y
    interp = cv2.INTER_AREA if fit.side < fit.size else cv2.INTER_CUBIC
    out = np.empty((len(y), 1, fit.height, fit.width), np.float32)
    for i, img in enumerate(y[:, 0]):
        big = np.clip(cv2.resize(img, (fit.side, fit.side), interpolation=interp), 0.0, 1.0)
        out[i, 0] = big[fit.top:fit.top + fit.height, fit.left:fit.left + fit.width]
    return out
