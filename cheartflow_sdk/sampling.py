"""Samplers (paper Eq. 3-4) as small functions over an `encoder(x, t) -> x0_hat` callable, noise passed in.

Arrays are numpy float32 in model range [-1, 1]; `t` reaches the encoder as a float32 vector [B].
`steps` counts encoder evaluations (NFE): 1 is one-step sampling, k uses k - 1 re-noise times t_k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from .errors import InvalidInputError

Encoder = Callable[[np.ndarray, np.ndarray], np.ndarray]


class NoiseSource(Protocol):
    """Draws the re-noising of Eq. 3 for step k: x_t = (1 - t) x0_hat + t x1 + t (1 - t) sigma^2 eps_k."""

    def renoise(self, x0_hat: np.ndarray, x1: np.ndarray, t: np.ndarray, step: int) -> np.ndarray: ...


@dataclass
class PhiloxNoise:
    """Counter-based noise keyed by (seed, step, global sample index), so a seed gives the same image
    whatever the batching; runs in the native kernel, or the numpy reference when `reference` is set."""

    seed: int
    sigma: float
    first_sample: int = 0  # global index of the batch's first sample in the request stream
    reference: bool = False

    def renoise(self, x0_hat: np.ndarray, x1: np.ndarray, t: np.ndarray, step: int) -> np.ndarray:
        from . import kernels

        fn = kernels.renoise_reference if self.reference else kernels.renoise
        return fn(x0_hat, x1, t, self.sigma, self.seed, step, self.first_sample)


def schedule_columns(schedule: np.ndarray | tuple[float, ...], batch: int) -> np.ndarray:
    """The schedule as float32 [K-1, B]: a shared schedule (K-1,) or a per-sample one (B, K-1)."""
    sched = np.asarray(schedule, dtype=np.float32)
    if sched.ndim == 1:
        return np.repeat(sched[:, None], batch, axis=1)
    if sched.ndim == 2 and sched.shape[0] == batch:
        return np.ascontiguousarray(sched.T)
    raise InvalidInputError(f"schedule: expected shape (K-1,) or (batch={batch}, K-1), got {sched.shape}")


def one_step(encoder: Encoder, x1: np.ndarray) -> np.ndarray:
    """One-step synthesis x0_hat = E(x1, 1): the sketch sits at t = 1 of the bridge (Eq. 2)."""
    return encoder(x1, np.ones(len(x1), dtype=np.float32))


def self_augmented(encoder: Encoder, x1: np.ndarray, schedule: np.ndarray | tuple[float, ...],
                   noise: NoiseSource) -> np.ndarray:
    """Multi-step self-augmentation (Eq. 3-4): one step, then for each t_k re-noise toward x1 and re-encode."""
    x0_hat = one_step(encoder, x1)
    for k, t_k in enumerate(schedule_columns(schedule, len(x1)), start=1):
        x_t = noise.renoise(x0_hat, x1, t_k, k)
        x0_hat = encoder(x_t, t_k)
    return x0_hat


def sample(encoder: Encoder, x1: np.ndarray, steps: int, schedule: np.ndarray | tuple[float, ...],
           noise: NoiseSource) -> np.ndarray:
    """`steps` encoder evaluations: one_step for 1, self_augmented with `schedule` (steps - 1 times) otherwise."""
    if steps == 1:
        return one_step(encoder, x1)
    return self_augmented(encoder, x1, schedule, noise)
