"""Image-quality metrics: SSIM/PSNR and the Frechet distance (numpy), FID/LPIPS networks (torch, lazy).

    from cheartflow_sdk.research import metrics
    metrics.ssim(a, b)              # [B] mean SSIM, images in [0, 1]
    metrics.psnr(a, b)              # [B] dB, +inf for identical images
    metrics.frechet_distance_features(f_real, f_fake)
    net = metrics.load_inception("pt_inception-2015-12-05-6726825d.pth")   # needs torch
    metrics.inception_features(net, images01)                               # [N, 2048]
    lp = metrics.load_lpips("lpips_alex.pth"); metrics.lpips_distance(lp, a, b)

`import cheartflow_sdk.research.metrics` imports numpy only; the network modules load torch when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .frechet import (
    FrechetReference,
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    psd_sqrt,
    trace_sqrt_product,
)
from .image import gaussian_window, psnr, ssim, ssim_map, to_unit_range

_LAZY = {
    "load_inception": "inception", "inception_features": "inception", "InceptionV3Features": "inception",
    "load_lpips": "lpips", "lpips_distance": "lpips", "LPIPS": "lpips",
}

__all__ = [
    "FrechetReference", "frechet_distance", "frechet_distance_features", "gaussian_stats", "gaussian_window", "psd_sqrt", "psnr",
    "ssim", "ssim_map", "to_unit_range", "trace_sqrt_product", *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ..._optional import require

        require("torch")
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'cheartflow_sdk.research.metrics' has no attribute {name!r}")
