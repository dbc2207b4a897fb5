"""Sketches: the conditioning inputs of the sketch -> cardiac MR models.

A sketch is float32 ``[B, 1, H, W]`` in ``[0, 1]``. Two kinds exist (``SKETCH_KINDS``):

- ``"edges"``: binary edge maps {0, 1} from :func:`canny` on the (preprocessed) image;
- ``"labels"``: segmentation maps with levels ``label / 3`` (0 bg, 1/3 RV, 2/3 MYO, 1 LV) from
  :func:`from_labels`.

:func:`normalize_drawing` turns a hand-drawn picture into the same form.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from .errors import InvalidInputError
from .validation import NUM_LABELS, check_label_values

logger = logging.getLogger(__name__)

SKETCH_KINDS = ("edges", "labels")
AUTO_LOW = 0.66  # automatic Canny low threshold = AUTO_LOW * median of the blurred crop
AUTO_HIGH = 1.33  # automatic Canny high threshold = AUTO_HIGH * median of the blurred crop
AUTO_MIN_LOW = 20.0  # floor of the automatic low threshold (uint8 units), for dark images
_LEVELS = np.arange(NUM_LABELS, dtype=np.float32) / (NUM_LABELS - 1)


def canny(
    images: np.ndarray, low: float | None = None, high: float | None = None, blur_sigma: float = 1.5
) -> np.ndarray:
    """Canny edge sketches float32 {0,1} ``[B,1,H,W]`` of images.

    ``images``: float ``[B,1,H,W]`` in [-1, 1] (model range, mapped to uint8 by
    ``round((x + 1) * 127.5)``) or uint8 ``[B,H,W]``. Each image is blurred with a Gaussian of
    ``blur_sigma`` pixels (0 disables it; the default 1.5 was chosen on ACDC validation slices at
    128 px, where 1.0 leaves many specks from noise and 2.0 starts to lose the epicardium). When
    ``low``/``high`` are None they are set per image from the median ``m`` of the blurred image:
    ``low = max(AUTO_MIN_LOW, AUTO_LOW * m)`` and ``high = max(AUTO_HIGH * m, 2 * low)`` (uint8
    units; the usual median rule, with a floor so that mostly dark images give no noise edges).
    """
    batch = _to_uint8_batch(images, "canny")
    if blur_sigma < 0 or not np.isfinite(blur_sigma):
        raise InvalidInputError(f"canny expects blur_sigma >= 0, got {blur_sigma!r}")
    for name, value in (("low", low), ("high", high)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise InvalidInputError(f"canny expects {name} >= 0 (uint8 units) or None, got {value!r}")
    if low is not None and high is not None and low > high:
        raise InvalidInputError(f"canny expects low <= high, got low={low!r}, high={high!r}")
    out = np.empty((len(batch), 1, *batch.shape[1:]), dtype=np.float32)
    for i, img in enumerate(batch):
        if blur_sigma > 0:
            img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
        lo, hi = _thresholds(img, low, high)
        out[i, 0] = cv2.Canny(img, lo, hi, L2gradient=True) > 0
    return out


def auto_thresholds(image: np.ndarray) -> tuple[float, float]:
    """The automatic Canny thresholds ``(low, high)`` of one blurred uint8 image (see :func:`canny`)."""
    median = float(np.median(image))
    low = max(AUTO_MIN_LOW, AUTO_LOW * median)
    return low, max(AUTO_HIGH * median, 2.0 * low)


def from_labels(labels: np.ndarray) -> np.ndarray:
    """Label sketches float32 ``[B,1,H,W]`` with levels ``label / 3`` from labels ``[B,H,W]`` or ``[H,W]`` (0..3)."""
    lab = np.asarray(labels)
    if lab.ndim == 4 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim == 2:
        lab = lab[None]
    if lab.ndim != 3:
        raise InvalidInputError(f"from_labels expects labels [B, H, W] or [H, W], got shape {lab.shape}")
    lab = check_label_values(lab, "from_labels")
    return (lab.astype(np.float32) / (NUM_LABELS - 1))[:, None]


def make_sketch(kind: str, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> np.ndarray:
    """The sketch of ``kind``: ``"edges"`` -> :func:`canny` of images, ``"labels"`` -> :func:`from_labels`."""
    _check_kind(kind)
    if kind == "edges":
        if images is None:
            raise InvalidInputError("make_sketch('edges') needs images (float [B,1,H,W] in [-1,1] or uint8 [B,H,W])")
        return canny(images)
    if labels is None:
        raise InvalidInputError("make_sketch('labels') needs labels (integer [B,H,W] with values 0..3)")
    return from_labels(labels)


def normalize_drawing(image: np.ndarray, kind: str, size: int | None = None) -> np.ndarray:
    """A hand-drawn sketch as a model sketch float32 ``[1,1,size,size]`` (``[1,1,H,W]`` if size is None).

    ``image``: uint8 (0..255) or float (0..1), grayscale ``[H,W]`` or ``[H,W,1|3|4]`` (RGB/RGBA;
    transparent pixels count as paper: white for "edges", black for "labels").
    With `size`, a non-square drawing is first padded to a square with its paper (centred), so the
    aspect ratio is kept: a drawing is never stretched.

    - ``"edges"``: the ink is each pixel's largest per-channel distance from the paper colour (the
      per-channel median), so dark, light or coloured lines on any paper all count; ink above half
      its maximum is a line; resize with INTER_AREA and re-threshold at half the coverage a one-pixel
      line keeps (``0.5 * min(1, scale)``), so thin lines survive shrinking; thin the strokes (thick
      lines too) to one pixel with Zhang-Suen thinning, like Canny edges.
    - ``"labels"``: grayscale; resize with INTER_NEAREST; snap each pixel to the nearest of the
      levels 0, 1/3, 2/3, 1.
    """
    _check_kind(kind)
    rgb = _drawing_to_array(image, background=1.0 if kind == "edges" else 0.0)
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise InvalidInputError(f"normalize_drawing expects size to be a positive integer or None, got {size!r}")
    if kind == "labels":
        gray = rgb[..., 0] if rgb.shape[2] == 1 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        gray = _pad_square(gray.astype(np.float32), 0.0) if size is not None else gray
        h, w = gray.shape
        out_h, out_w = (int(size), int(size)) if size is not None else (h, w)
        resized = cv2.resize(gray, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
        idx = np.abs(resized[..., None] - _LEVELS).argmin(axis=-1)
        return _LEVELS[idx][None, None].astype(np.float32)
    paper = np.median(rgb.reshape(-1, rgb.shape[2]), axis=0)
    ink = np.abs(rgb - paper).max(axis=2)
    peak = float(ink.max())
    binary = (ink > 0.5 * peak).astype(np.float32) if peak > 0.05 else np.zeros(ink.shape, np.float32)
    if size is not None:
        binary = _pad_square(binary, 0.0)
    h, w = binary.shape
    out_h, out_w = (int(size), int(size)) if size is not None else (h, w)
    resized = cv2.resize(binary, (out_w, out_h), interpolation=cv2.INTER_AREA)
    scale = min(out_h / h, out_w / w)
    binary = resized > 0.5 * min(1.0, scale) - 1e-6
    return thin(binary).astype(np.float32)[None, None]


def _pad_square(img: np.ndarray, value: float) -> np.ndarray:
    """img [H,W] centred in a square of side max(H, W), padded with `value`."""
    h, w = img.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(img, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=value)


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a 2-D boolean mask to one-pixel-wide strokes (vectorized per pass)."""
    img = np.pad(np.asarray(mask, dtype=bool), 1).astype(np.uint8)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p2, p3, p4, p5 = img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:]
            p6, p7, p8, p9 = img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]
            ring = (p2, p3, p4, p5, p6, p7, p8, p9)
            count = sum(p.astype(np.int32) for p in ring)
            transitions = sum(((ring[k] == 0) & (ring[(k + 1) % 8] == 1)).astype(np.int32) for k in range(8))
            if step == 0:
                side = ((p2 & p4 & p6) == 0) & ((p4 & p6 & p8) == 0)
            else:
                side = ((p2 & p4 & p8) == 0) & ((p2 & p6 & p8) == 0)
            remove = (img[1:-1, 1:-1] == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                img[1:-1, 1:-1][remove] = 0
                changed = True
    return img[1:-1, 1:-1].astype(bool)


def _thresholds(image: np.ndarray, low: float | None, high: float | None) -> tuple[float, float]:
    """Fill in automatic thresholds for the ones that are None."""
    auto_low, auto_high = auto_thresholds(image) if low is None or high is None else (0.0, 0.0)
    lo = auto_low if low is None else float(low)
    hi = auto_high if high is None else float(high)
    return lo, max(hi, lo)


def _to_uint8_batch(images: np.ndarray, name: str) -> np.ndarray:
    """Images float ``[B,1,H,W]`` in [-1,1] or uint8 ``[B,H,W]`` (or ``[B,1,H,W]``) as uint8 ``[B,H,W]``."""
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 3:
            raise InvalidInputError(f"{name} expects uint8 images [B, H, W], got shape {arr.shape}")
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidInputError(
            f"{name} expects float images [B,1,H,W] in [-1,1] or uint8 [B,H,W], got dtype {arr.dtype}"
        )
    if arr.ndim != 4 or arr.shape[1] != 1:
        raise InvalidInputError(f"{name} expects float images [B, 1, H, W] in [-1, 1], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} expects finite images; they contain NaN or infinite values")
    if arr.size and (arr.min() < -1.001 or arr.max() > 1.001):
        raise InvalidInputError(
            f"{name} expects float images in [-1, 1], got values in {arr.min():.3g}..{arr.max():.3g}"
        )
    return np.rint((np.clip(arr[:, 0], -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def _drawing_to_array(image: np.ndarray, background: float) -> np.ndarray:
    """A drawing (uint8 or float in [0,1], [H,W] or [H,W,1|3|4]) as float32 [H,W,1] or RGB [H,W,3] in [0,1]
    (alpha composited onto `background`)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape:
        raise InvalidInputError(
            f"normalize_drawing expects a grayscale [H, W] or RGB/RGBA [H, W, 3|4] image, got shape {arr.shape}"
        )
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == bool or np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError("normalize_drawing expects a finite image; it contains NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise InvalidInputError(
                "normalize_drawing expects float images in [0, 1] (or uint8 0..255), "
                f"got {arr.min():.3g}..{arr.max():.3g}"
            )
    else:
        raise InvalidInputError(f"normalize_drawing expects a uint8 or float image, got dtype {arr.dtype}")
    if arr.ndim == 2:
        return arr[:, :, None]
    rgb = np.ascontiguousarray(arr[:, :, :3])
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4]
        rgb = rgb * alpha + background * (1.0 - alpha)
    return rgb.astype(np.float32)


def _check_kind(kind: str) -> None:
    """Raise InvalidInputError unless ``kind`` is one of SKETCH_KINDS."""
    if kind not in SKETCH_KINDS:
        raise InvalidInputError(f"unknown sketch kind {kind!r}; expected one of {', '.join(SKETCH_KINDS)}")
