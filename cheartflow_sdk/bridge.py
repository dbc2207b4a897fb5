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


def bridge_variance(t: Array, sigma: float, sigma_x0: float, sigma_x1: float) -> Array:
    """Var(x_t) of Eq. 2 for independent x0, x1 of stds sigma_x0, sigma_x1: (1-t)^2 s0^2 + t^2 s1^2 + std_t^2."""
    noise = bridge_noise_std(t, sigma)
    return (1 - t) * (1 - t) * (sigma_x0 * sigma_x0) + t * t * (sigma_x1 * sigma_x1) + noise * noise


def bridge_c_in(t: Array, sigma: float, sigma_x0: float, sigma_x1: float) -> Array:
    """Input scale of the bridge preconditioning: 1 / std(x_t), so the network sees unit-variance inputs."""
    return bridge_variance(t, sigma, sigma_x0, sigma_x1) ** -0.5


def bridge_c_skip(t: Array, sigma: float, sigma_x0: float, sigma_x1: float) -> Array:
    """Skip weight Cov(x0, x_t) / Var(x_t) = (1-t) s0^2 / Var(x_t) (as DDBM derives it): 1 at t = 0, 0 at t = 1."""
    return (1 - t) * (sigma_x0 * sigma_x0) / bridge_variance(t, sigma, sigma_x0, sigma_x1)


def bridge_c_out(t: Array, sigma: float, sigma_x0: float, sigma_x1: float) -> Array:
    """Output weight std(x0 - c_skip x_t) = s0 sqrt(t^2 s1^2 + std_t^2) / std(x_t): 0 at t = 0, s0 at t = 1."""
    noise = bridge_noise_std(t, sigma)
    residual = t * t * (sigma_x1 * sigma_x1) + noise * noise
    return sigma_x0 * (residual / bridge_variance(t, sigma, sigma_x0, sigma_x1)) ** 0.5
