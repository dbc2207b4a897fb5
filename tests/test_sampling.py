"""Samplers against hand-computed steps with a fake encoder and explicit noise."""

import numpy as np
import pytest

from cheartflow_sdk import sampling
from cheartflow_sdk.errors import InvalidInputError


def fake_encoder(x, t):
    # E(x, t) = 0.5 x + t: simple enough to compute every step by hand.
    return 0.5 * x + t[:, None, None, None]


class RecordingNoise:
    """Explicit noise: eps_k = k (a constant per step), recording each call."""

    def __init__(self, sigma):
        self.sigma, self.calls = sigma, []

    def renoise(self, x0_hat, x1, t, step):
        self.calls.append((step, t.copy()))
        tb = t[:, None, None, None]
        return (1 - tb) * x0_hat + tb * x1 + tb * (1 - tb) * self.sigma**2 * float(step)


def test_one_step_is_encoder_at_t1():
    x1 = np.full((2, 1, 2, 2), 0.4, dtype=np.float32)
    np.testing.assert_allclose(sampling.one_step(fake_encoder, x1), 0.5 * 0.4 + 1.0)


def test_two_step_by_hand():
    x1 = np.full((1, 1, 2, 2), 0.4, dtype=np.float32)
    noise = RecordingNoise(sigma=0.5)
    out = sampling.self_augmented(fake_encoder, x1, (0.5,), noise)
    x0 = 0.5 * 0.4 + 1.0  # step 1: E(x1, 1) = 1.2
    xt = 0.5 * x0 + 0.5 * 0.4 + 0.25 * 0.25 * 1.0  # Eq. 3 at t=0.5, sigma=0.5, eps=1 -> 0.8625
    want = 0.5 * xt + 0.5  # Eq. 4: E(x_t, 0.5)
    np.testing.assert_allclose(out, want, rtol=1e-6)
    assert [c[0] for c in noise.calls] == [1]


def test_three_step_by_hand_with_per_sample_schedule():
    x1 = np.zeros((2, 1, 1, 1), dtype=np.float32)
    sched = np.array([[0.8, 0.2], [0.6, 0.4]], dtype=np.float32)
    noise = RecordingNoise(sigma=1.0)
    out = sampling.self_augmented(fake_encoder, x1, sched, noise)
    for b in range(2):
        x0 = 1.0
        for k, t in enumerate(sched[b], start=1):
            xt = (1 - t) * x0 + t * (1 - t) * k
            x0 = 0.5 * xt + t
        assert out[b, 0, 0, 0] == pytest.approx(x0, rel=1e-6)
    np.testing.assert_allclose(noise.calls[0][1], [0.8, 0.6])


def test_sample_dispatch_and_bad_schedule():
    x1 = np.zeros((3, 1, 2, 2), dtype=np.float32)
    np.testing.assert_allclose(sampling.sample(fake_encoder, x1, 1, (), None), 1.0)
    with pytest.raises(InvalidInputError, match="schedule"):
        sampling.schedule_columns(np.zeros((2, 1)), batch=3)


def test_philox_noise_matches_reference_and_formula():
    from cheartflow_sdk import kernels

    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (3, 1, 8, 8)).astype(np.float32)
    x1 = rng.uniform(-1, 1, (3, 1, 8, 8)).astype(np.float32)
    t = np.array([0.3, 0.5, 0.9], dtype=np.float32)
    keys = np.array([7, 2**64 - 1, 7], dtype=np.uint64)
    native = sampling.PhiloxNoise(keys=keys, sigma=0.5).renoise(x0, x1, t, 1)
    ref = sampling.PhiloxNoise(keys=keys, sigma=0.5, reference=True).renoise(x0, x1, t, 1)
    np.testing.assert_array_equal(native, ref)
    eps = np.concatenate([kernels.normal_noise((1, 1, 8, 8), seed=int(k), offset=1) for k in keys])
    tb = t[:, None, None, None].astype(np.float64)
    want = (1 - tb) * x0 + tb * x1 + tb * (1 - tb) * 0.25 * eps
    np.testing.assert_allclose(native, want, atol=1e-6)
