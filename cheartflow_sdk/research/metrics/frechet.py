"""Frechet distance between Gaussians fitted to feature sets (the FID formula, numpy only).

``d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))`` (Dowson & Landau, 1982;
Heusel et al., 2017). The trace term is computed without a non-symmetric matrix square root:
``S_1 S_2`` has the eigenvalues of the symmetric PSD matrix ``S_1^(1/2) S_2 S_1^(1/2)``, so
``tr((S_1 S_2)^(1/2)) = sum_i sqrt(lambda_i)`` with ``lambda_i`` from ``eigvalsh`` (negative
round-off clipped to 0). This is stable for singular covariances (fewer samples than dimensions)
where ``scipy.linalg.sqrtm`` needs an ``eps`` offset and returns complex values.
"""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (unbiased, ``N - 1``, as pytorch-fid) of features ``[N, D]``, float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2 or f.shape[1] < 1:
        raise InvalidInputError(f"gaussian_stats expects features [N, D] with N >= 2, got shape {np.shape(features)}")
    if not np.all(np.isfinite(f)):
        raise InvalidInputError("gaussian_stats: features contain NaN or infinite values")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0)."""
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray, sqrt_cov1: np.ndarray | None = None) -> float:
    """``tr((cov1 cov2)^(1/2))`` for symmetric PSD ``cov1``, ``cov2`` via ``eigvalsh(cov1^(1/2) cov2 cov1^(1/2))``.

    ``sqrt_cov1``: :func:`psd_sqrt` of ``cov1`` when already known (a reference set scored many times).
    """
    s1 = psd_sqrt(cov1) if sqrt_cov1 is None else sqrt_cov1
    m = s1 @ cov2 @ s1
    vals = np.linalg.eigvalsh((m + m.T) * 0.5)
    return float(np.sqrt(np.clip(vals, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray,
                     sqrt_cov1: np.ndarray | None = None) -> float:
    """Squared Frechet distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)`` (>= 0; the FID formula).

    ``sqrt_cov1``: optional precomputed :func:`psd_sqrt` of ``cov1`` (see :class:`FrechetReference`).
    """
    m1, m2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    c1, c2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = m1.shape[0]
    if m1.shape != (d,) or m2.shape != (d,) or c1.shape != (d, d) or c2.shape != (d, d):
        raise InvalidInputError(
            f"frechet_distance expects means [D] and covariances [D, D] of one D, got {m1.shape}, {c1.shape}, {m2.shape}, {c2.shape}"
        )
    if not all(np.all(np.isfinite(v)) for v in (m1, m2, c1, c2)):
        raise InvalidInputError("frechet_distance: means or covariances contain NaN or infinite values")
    c1, c2 = (c1 + c1.T) * 0.5, (c2 + c2.T) * 0.5
    diff = m1 - m2
    value = diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * trace_sqrt_product(c1, c2, sqrt_cov1)
    return max(float(value), 0.0)


def frechet_distance_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``[N1, D]`` and ``[N2, D]``."""
    mu1, cov1 = gaussian_stats(features1)
    mu2, cov2 = gaussian_stats(features2)
    if mu1.shape != mu2.shape:
        raise InvalidInputError(f"frechet_distance_features: feature sizes differ ({mu1.shape[0]} vs {mu2.shape[0]})")
    return frechet_distance(mu1, cov1, mu2, cov2)


class FrechetReference:
    """The Gaussian of a reference feature set (e.g. the real images), fitted once and compared with many sets."""

    def __init__(self, features: np.ndarray):
        self.mu, self.cov = gaussian_stats(features)
        self.cov = (self.cov + self.cov.T) * 0.5
        self.sqrt_cov = psd_sqrt(self.cov)

    def distance(self, features: np.ndarray) -> float:
        """Frechet distance between this reference and Gaussians fitted to ``features`` ``[N, D]``."""
        mu, cov = gaussian_stats(features)
        if mu.shape != self.mu.shape:
            raise InvalidInputError(f"FrechetReference: feature sizes differ ({self.mu.shape[0]} vs {mu.shape[0]})")
        return frechet_distance(self.mu, self.cov, mu, cov, sqrt_cov1=self.sqrt_cov)
