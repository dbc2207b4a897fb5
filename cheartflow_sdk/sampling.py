"""Samplers (paper Eq. 3-4) as small functions over an `encoder(x, t) -> x0_hat` callable, noise passed in.

Arrays are numpy float32 in model range [-1, 1]; `t` reaches the encoder as a float32 vector [B].
`steps` counts encoder evaluations (NFE): 1 is one-step sampling, k uses k - 1 re-noise times t_k.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any, Callable, Protocol

import numpy as np

from .errors import InvalidInputError

Encoder = Callable[[np.ndarray, np.ndarray], np.ndarray]


class NoiseSource(Protocol):
    """Draws the re-noising of Eq. 3 for step k: x_t = (1 - t) x0_hat + t x1 + t (1 - t) sigma^2 eps_k."""

    def renoise(self, x0_hat: np.ndarray, x1: np.ndarray, t: np.ndarray, step: int) -> np.ndarray: ...


NOISE_SCHEME = "sketch-keyed-v1"  # names the noise definition below (cache keys, engine metadata)
_KEY_PERSON = b"cheartflow-noise"


def noise_keys(sketches: np.ndarray, seed: Any) -> np.ndarray:
    """One 64-bit Philox key per sample, from the seed and the sketch itself: uint64 [B].

    sketches: the validated sketches, float32 [B, ...] in [0, 1] (``validation.as_sketch_batch``), or uint8
    [B, ...] (read as value / 255 in float32, as validation does); seed: an int in [0, 2**64) for every
    sample, or one such int per sample. key_b is the little-endian uint64 of BLAKE2b (digest 8 bytes,
    person "cheartflow-noise", key = seed_b as 8 little-endian bytes) over sample b's float32 [0, 1] values
    as little-endian bytes in C order. So a sketch with a seed gets the same noise, hence the same image,
    alone, in any batch, at any position of a request, stream or folder, on every backend.
    """
    x = np.asarray(sketches)
    if x.ndim < 1 or x.dtype not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise InvalidInputError(f"noise_keys: sketches must be float32 [B, ...] in [0, 1] or uint8 [B, ...], "
                                f"got dtype {x.dtype} shape {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    rows = np.ascontiguousarray(x, dtype="<f4").reshape(len(x), -1)
    seeds = seeds_for(seed, len(x))
    keys = np.empty(len(x), dtype=np.uint64)
    for b in range(len(x)):
        h = hashlib.blake2b(rows[b].data, digest_size=8, key=int(seeds[b]).to_bytes(8, "little"), person=_KEY_PERSON)
        keys[b] = int.from_bytes(h.digest(), "little")
    return keys


def request_keys(sketches: np.ndarray, steps: int, seed: Any) -> np.ndarray:
    """The noise keys of a request of `steps` evaluations: :func:`noise_keys`, or zeros for one-step sampling,
    which draws no noise (the seed is still checked)."""
    if steps == 1:
        seeds_for(seed, len(sketches))
        return np.zeros(len(sketches), np.uint64)
    return noise_keys(sketches, seed)


def seeds_for(seed: Any, n: int) -> np.ndarray:
    """`seed` as uint64 [n]: an int broadcast to n samples, or n ints (a sequence or 1-D integer array)."""
    from .validation import check_seed

    if isinstance(seed, (np.ndarray, list, tuple)):
        if (seed.ndim if isinstance(seed, np.ndarray) else 1) != 1 or len(seed) != n:
            raise InvalidInputError(f"seed: expected an int or {n} ints (one per sketch), got "
                                    f"{type(seed).__name__} of shape {np.shape(seed) if isinstance(seed, np.ndarray) else (len(seed),)}")
        return np.array([check_seed(v) for v in seed], dtype=np.uint64)
    return np.full(n, check_seed(seed), dtype=np.uint64)


@dataclass
class PhiloxNoise:
    """Counter-based noise with one key per sample (:func:`noise_keys`: from the seed and the sketch), keyed
    within a sample by (step, element), so a sketch gets the same image whatever the batching or position;
    runs in the native kernel, or the numpy reference when `reference` is set."""

    keys: np.ndarray  # uint64 [B], one per sample of the batch
    sigma: float
    reference: bool = False

    def renoise(self, x0_hat: np.ndarray, x1: np.ndarray, t: np.ndarray, step: int) -> np.ndarray:
        from . import kernels

        fn = kernels.renoise_keys_reference if self.reference else kernels.renoise_keys
        return fn(x0_hat, x1, t, self.sigma, self.keys, step)


def schedule_columns(schedule: np.ndarray | tuple[float, ...], batch: int) -> np.ndarray:
    """The schedule as float32 [K-1, B]: a shared schedule (K-1,) or a per-sample one (B, K-1)."""
    sched = np.asarray(schedule, dtype=np.float32)
    if sched.ndim == 1:
        return np.repeat(sched[:, None], batch, axis=1)
    if sched.ndim == 2 and sched.shape[0] == batch:
        return np.ascontiguousarray(sched.T)
    raise InvalidInputError(f"schedule: expected shape (K-1,) or (batch={batch}, K-1), got {sched.shape}")


def run_steps(encoder: Encoder, x1: Any, t_one: Any, t_columns: Iterable[Any], noise: NoiseSource | None) -> Any:
    """The K-step loop itself, over any array type (numpy here, torch CUDA tensors in the CUDA-graph runner):
    x0_hat = E(x1, t_one), then for each column t_k (step k = 1, 2, ...) x0_hat = E(renoise(x0_hat, x1, t_k, k), t_k).

    t_one: the time 1 for every sample, [B]; t_columns: the re-noise times, one [B] vector per step.
    """
    x0_hat = encoder(x1, t_one)
    for k, t_k in enumerate(t_columns, start=1):
        x0_hat = encoder(noise.renoise(x0_hat, x1, t_k, k), t_k)
    return x0_hat


def one_step(encoder: Encoder, x1: np.ndarray) -> np.ndarray:
    """One-step synthesis x0_hat = E(x1, 1): the sketch sits at t = 1 of the bridge (Eq. 2)."""
    return run_steps(encoder, x1, np.ones(len(x1), dtype=np.float32), (), None)


def self_augmented(encoder: Encoder, x1: np.ndarray, schedule: np.ndarray | tuple[float, ...],
                   noise: NoiseSource) -> np.ndarray:
    """Multi-step self-augmentation (Eq. 3-4): one step, then for each t_k re-noise toward x1 and re-encode."""
    return run_steps(encoder, x1, np.ones(len(x1), dtype=np.float32), schedule_columns(schedule, len(x1)), noise)


def sample(encoder: Encoder, x1: np.ndarray, steps: int, schedule: np.ndarray | tuple[float, ...],
           noise: NoiseSource) -> np.ndarray:
    """`steps` encoder evaluations: one_step for 1, self_augmented with `schedule` (steps - 1 times) otherwise."""
    if steps == 1:
        return one_step(encoder, x1)
    return self_augmented(encoder, x1, schedule, noise)
