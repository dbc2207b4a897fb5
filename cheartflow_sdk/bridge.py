"""The method's formulas (paper Eq. 2 and the consistency boundary condition).

Plain arithmetic only, so each function works on numpy arrays and torch tensors alike.
`t` is broadcast against images of shape [B, 1, H, W]: pass a scalar or a [B] array/tensor.
"""

from __future__ import annotations

from typing import Any

Array = Any  # numpy.ndarray or torch.Tensor


def _per_sample(t: Array, like: Array) -> Array:
    """Reshape a [B] time vector to [B, 1, ..., 1] so it broadcasts over one sample's pixels."""
    if getattr(t, "ndim", 0) == 1:
        return t.reshape((-1,) + (1,) * (like.ndim - 1))
    return t


def bridge_noise_std(t: Array, sigma: float) -> Array:
    """Std of the bridge noise at time t: t (1 - t) sigma^2 (paper Eq. 2)."""
    return t * (1 - t) * (sigma * sigma)


def bridge_sample(x0: Array, x1: Array, t: Array, sigma: float, eps: Array) -> Array:
    """Paper Eq. 2: x_t = (1 - t) x0 + t x1 + t (1 - t) sigma^2 eps. Also Eq. 3 with x0 = the last estimate."""
    tb = _per_sample(t, x0)
    return ((1 - tb) * x0 + tb * x1) + bridge_noise_std(tb, sigma) * eps


def c_skip(t: Array, sigma_data: float) -> Array:
    """Skip weight of the consistency preconditioning; c_skip(0) = 1 exactly."""
    return (sigma_data * sigma_data) / (t * t + sigma_data * sigma_data)


def c_out(t: Array, sigma_data: float) -> Array:
    """Output weight of the consistency preconditioning; c_out(0) = 0 exactly."""
    return t * sigma_data / (t * t + sigma_data * sigma_data) ** 0.5


def precondition(x: Array, t: Array, raw_output: Array, sigma_data: float) -> Array:
    """E(x, t) = c_skip(t) x + c_out(t) F(x, t), so E(x, 0) = x (the boundary condition)."""
    tb = _per_sample(t, x)
    return c_skip(tb, sigma_data) * x + c_out(tb, sigma_data) * raw_output
