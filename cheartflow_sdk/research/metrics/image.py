"""Full-reference image metrics on ``[0, 1]`` images: SSIM (Wang et al., 2004) and PSNR (numpy only).

SSIM follows Wang et al. and ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1)``: local means, variances and covariance
under an 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma, normalized), ``K1 = 0.01``,
``K2 = 0.03``, averaged over the pixels whose window lies fully inside the image (a 5-pixel
border is left out, as skimage does). Images are ``[B, 1, H, W]``, ``[B, H, W]`` or ``[H, W]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import InvalidInputError

SSIM_SIGMA = 1.5  # Gaussian window standard deviation (Wang et al.)
SSIM_TRUNCATE = 3.5  # window radius in sigmas: int(3.5 * 1.5 + 0.5) = 5 -> 11 x 11 (skimage)
SSIM_K1 = 0.01  # luminance stabilizer: C1 = (K1 * data_range)^2
SSIM_K2 = 0.03  # contrast stabilizer: C2 = (K2 * data_range)^2


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """The normalized 1-D Gaussian window (float64, odd length ``2 * int(truncate * sigma + 0.5) + 1``)."""
    if not (np.isfinite(sigma) and sigma > 0) or not (np.isfinite(truncate) and truncate > 0):
        raise InvalidInputError(f"gaussian_window expects sigma > 0 and truncate > 0, got {sigma!r}, {truncate!r}")
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _as_batch(images: np.ndarray, name: str) -> np.ndarray:
    """Images ``[B,1,H,W]``, ``[B,H,W]`` or ``[H,W]`` as float64 ``[B,H,W]`` (finite)."""
    arr = np.asarray(images)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidInputError(f"{name}: expected a float image array, got dtype {arr.dtype}")
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InvalidInputError(f"{name}: expected images [B, 1, H, W], [B, H, W] or [H, W], got shape {np.shape(images)}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name}: images contain NaN or infinite values")
    return arr


def _pair(a: np.ndarray, b: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_batch(a, f"{who} (first images)"), _as_batch(b, f"{who} (second images)")
    if x.shape != y.shape:
        raise InvalidInputError(f"{who}: both image arrays must have one shape, got {np.shape(a)} and {np.shape(b)}")
    return x, y


def _check_range(data_range: float, who: str) -> float:
    if isinstance(data_range, bool) or not np.isfinite(data_range) or data_range <= 0:
        raise InvalidInputError(f"{who}: data_range must be a positive number, got {data_range!r}")
    return float(data_range)


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of ``[B,H,W]`` with ``w`` along H and W: ``[B, H-k+1, W-k+1]``."""
    k = len(w)
    h, wd = x.shape[1] - k + 1, x.shape[2] - k + 1
    rows = sum(w[i] * x[:, i:i + h, :] for i in range(k))
    return sum(w[i] * rows[:, :, i:i + wd] for i in range(k))


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, *, sigma: float = SSIM_SIGMA,
             truncate: float = SSIM_TRUNCATE, k1: float = SSIM_K1, k2: float = SSIM_K2) -> np.ndarray:
    """Local SSIM ``[B, H-2r, W-2r]`` (float64) at the pixels whose window lies inside the image.

    ``S = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))`` with
    Gaussian-weighted moments (population covariance, no ``N/(N-1)`` factor).
    """
    x, y = _pair(a, b, "ssim")
    data_range = _check_range(data_range, "ssim")
    w = gaussian_window(sigma, truncate)
    if min(x.shape[1:]) < len(w):
        raise InvalidInputError(f"ssim: images must be at least {len(w)}x{len(w)} pixels (the window), got {x.shape[1]}x{x.shape[2]}")
    return ssim_map_with_filter(x, y, lambda z: _filter_valid(z, w), (k1 * data_range) ** 2, (k2 * data_range) ** 2)


def ssim_map_with_filter(x: Any, y: Any, local_mean: Callable[[Any], Any], c1: float, c2: float) -> Any:
    """SSIM's formula from the local moments that `local_mean` (the window filter) gives, for numpy arrays or
    torch tensors alike (the training loss uses it with a torch convolution, so it stays differentiable)."""
    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x * mu_x
    var_y = local_mean(y * y) - mu_y * mu_y
    cov = local_mean(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, **window: float) -> np.ndarray:
    """Mean SSIM of each image pair: float64 ``[B]`` (identical images give exactly 1).

    ``a``, ``b``: ``[B,1,H,W]``, ``[B,H,W]`` or ``[H,W]`` (one shape), values in ``[0, data_range]``.
    ``window``: ``sigma``, ``truncate``, ``k1``, ``k2`` (defaults of Wang et al., see module doc).
    """
    return ssim_map(a, b, data_range, **window).mean(axis=(1, 2))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """PSNR in dB of each image pair: ``10 log10(data_range^2 / MSE)``, float64 ``[B]``; ``+inf`` when identical."""
    x, y = _pair(a, b, "psnr")
    data_range = _check_range(data_range, "psnr")
    mse = np.mean((x - y) ** 2, axis=(1, 2))
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(data_range**2 / np.maximum(mse, np.finfo(np.float64).tiny)), np.inf)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """Images in ``[-1, 1]`` (the model's range) as float32 in ``[0, 1]`` (clipped)."""
    return np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 0.5, 0.0, 1.0)
