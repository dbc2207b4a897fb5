"""The public preprocessing of one short-axis slice: heart-centred square crop, resize, robust scaling.

Every image the SDK trains on or is evaluated on goes through :func:`preprocess`, so the same
function applied to a new scan gives images in the form the models expect.

Steps (in order):

1. **Crop.** With labels that contain any heart pixel (``labels > 0``), a square centred on the
   centre of the heart's bounding box, of side ``max(crop_scale * longer bbox side, min_crop)``.
   Without labels (``None`` or all zero), a square centred on the image centre, of side
   ``max(centre_crop_fraction * shorter image side, min_crop)``. Where the square leaves the image
   it is padded: the image with its edge values (``numpy.pad(mode="edge")``, which avoids an
   artificial black border that the models would learn), the labels with 0 (background).
2. **Resize** to ``size x size``: the image with ``cv2.INTER_AREA`` when shrinking and
   ``cv2.INTER_LINEAR`` when enlarging, the labels with ``cv2.INTER_NEAREST``.
3. **Robust intensity scaling.** The ``low_percentile`` and ``high_percentile`` of the cropped image
   are mapped to -1 and 1, values outside are clipped. A constant crop maps to all -1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidInputError
from ..validation import check_label_values

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of :func:`preprocess` (the defaults are the SDK's training preprocessing)."""

    size: int = 128  # side of the square output, pixels
    crop_scale: float = 1.8  # crop side as a multiple of the heart bounding box's longer side
    min_crop: int = 96  # smallest crop side, pixels (keeps small apical hearts from being zoomed in)
    centre_crop_fraction: float = 0.6  # crop side / shorter image side when there are no labels
    low_percentile: float = 1.0  # percentile of the crop mapped to -1
    high_percentile: float = 99.0  # percentile of the crop mapped to +1

    def __post_init__(self) -> None:
        if int(self.size) != self.size or self.size < 8:
            raise InvalidInputError(f"PreprocessConfig.size must be an integer >= 8, got {self.size!r}")
        if not self.crop_scale > 0:
            raise InvalidInputError(f"PreprocessConfig.crop_scale must be > 0, got {self.crop_scale!r}")
        if int(self.min_crop) != self.min_crop or self.min_crop < 1:
            raise InvalidInputError(f"PreprocessConfig.min_crop must be an integer >= 1, got {self.min_crop!r}")
        if not 0 < self.centre_crop_fraction <= 1:
            raise InvalidInputError(
                f"PreprocessConfig.centre_crop_fraction must be in (0, 1], got {self.centre_crop_fraction!r}"
            )
        if not 0 <= self.low_percentile < self.high_percentile <= 100:
            raise InvalidInputError(
                "PreprocessConfig percentiles must satisfy 0 <= low_percentile < high_percentile <= 100, "
                f"got low={self.low_percentile!r}, high={self.high_percentile!r}"
            )


def preprocess(
    image: np.ndarray,
    labels: np.ndarray | None = None,
    config: PreprocessConfig = PreprocessConfig(),
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop around the heart, resize and scale one 2-D slice.

    Returns ``(image, labels)``: the image float32 ``[size, size]`` in ``[-1, 1]`` and the labels
    uint8 ``[size, size]`` with values 0..3, or ``None`` when no labels were given.
    """
    img = _check_image(image)
    lab = _check_labels(labels, img.shape)
    centre, side = crop_box(img.shape, lab, config)
    img_crop = _crop_square(img, centre, side, mode="edge")
    out_img = _resize_image(img_crop, config.size)
    out_img = robust_scale(out_img, config.low_percentile, config.high_percentile)
    if lab is None:
        return out_img, None
    lab_crop = _crop_square(lab, centre, side, mode="constant")
    out_lab = cv2.resize(lab_crop, (config.size, config.size), interpolation=cv2.INTER_NEAREST)
    return out_img, out_lab.astype(np.uint8, copy=False)


def crop_box(
    shape: tuple[int, int], labels: np.ndarray | None, config: PreprocessConfig = PreprocessConfig()
) -> tuple[tuple[float, float], int]:
    """The square crop ``((row_centre, col_centre), side)`` that :func:`preprocess` uses."""
    if labels is not None and np.any(labels > 0):
        rows = np.flatnonzero(np.any(labels > 0, axis=1))
        cols = np.flatnonzero(np.any(labels > 0, axis=0))
        centre = ((rows[0] + rows[-1]) / 2.0, (cols[0] + cols[-1]) / 2.0)
        extent = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        side = max(int(round(config.crop_scale * extent)), int(config.min_crop))
    else:
        centre = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
        side = max(int(round(config.centre_crop_fraction * min(shape))), int(config.min_crop))
    return centre, side


def robust_scale(image: np.ndarray, low_percentile: float = 1.0, high_percentile: float = 99.0) -> np.ndarray:
    """Map the low/high percentiles of ``image`` to -1/1 with clipping; a constant image gives all -1."""
    lo, hi = np.percentile(image, [low_percentile, high_percentile])
    if not hi - lo > 1e-12 * max(1.0, abs(hi)):
        return np.full(image.shape, -1.0, dtype=np.float32)
    out = (np.clip(image, lo, hi) - lo) * (2.0 / (hi - lo)) - 1.0
    return out.astype(np.float32)


def _crop_square(array: np.ndarray, centre: tuple[float, float], side: int, mode: str) -> np.ndarray:
    """Cut a ``side x side`` square around ``centre``, padding where it leaves the array."""
    r0 = int(np.floor(centre[0] - (side - 1) / 2.0 + 0.5))
    c0 = int(np.floor(centre[1] - (side - 1) / 2.0 + 0.5))
    r1, c1 = r0 + side, c0 + side
    h, w = array.shape
    pad = ((max(0, -r0), max(0, r1 - h)), (max(0, -c0), max(0, c1 - w)))
    inner = array[max(r0, 0) : min(r1, h), max(c0, 0) : min(c1, w)]
    if any(p for pair in pad for p in pair):
        if mode == "edge" and inner.size == 0:
            return np.zeros((side, side), dtype=array.dtype)
        inner = np.pad(inner, pad, mode=mode)
    return np.ascontiguousarray(inner)


def _resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size x size``: INTER_AREA when shrinking, INTER_LINEAR when enlarging."""
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def _check_image(image: np.ndarray) -> np.ndarray:
    """A finite 2-D real image as float32, or InvalidInputError."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise InvalidInputError(f"preprocess expects a 2-D image [H, W] (one slice), got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidInputError(f"preprocess expects a non-empty image, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise InvalidInputError(f"preprocess expects a real numeric image, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("preprocess expects a finite image; it contains NaN or infinite values")
    return arr


def _check_labels(labels: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """Labels as uint8 with values 0..3 and the image's shape, or InvalidInputError."""
    if labels is None:
        return None
    lab = np.asarray(labels)
    if lab.shape != shape:
        raise InvalidInputError(f"preprocess expects labels of the image's shape {shape}, got {lab.shape}")
    return check_label_values(lab, "preprocess")
