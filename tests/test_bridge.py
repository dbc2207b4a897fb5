"""The method's formulas: bridge (Eq. 2) and the consistency boundary condition."""

import numpy as np
import pytest

from cheartflow_sdk import bridge


def test_bridge_endpoints_and_midpoint():
    rng = np.random.default_rng(0)
    x0, x1, eps = (rng.standard_normal((3, 1, 4, 4)) for _ in range(3))
    np.testing.assert_array_equal(bridge.bridge_sample(x0, x1, np.zeros(3), 0.7, eps), x0)
    np.testing.assert_array_equal(bridge.bridge_sample(x0, x1, np.ones(3), 0.7, eps), x1)
    # t = 0.5, sigma = 0.7: 0.5 x0 + 0.5 x1 + 0.25 * 0.49 eps
    np.testing.assert_allclose(bridge.bridge_sample(x0, x1, np.full(3, 0.5), 0.7, eps),
                               0.5 * x0 + 0.5 * x1 + 0.1225 * eps, rtol=1e-12)


def test_bridge_per_sample_times():
    x0, x1, eps = np.zeros((2, 1, 2, 2)), np.ones((2, 1, 2, 2)), np.zeros((2, 1, 2, 2))
    out = bridge.bridge_sample(x0, x1, np.array([0.25, 0.75]), 0.5, eps)
    assert np.all(out[0] == 0.25) and np.all(out[1] == 0.75)


def test_noise_std_vanishes_at_both_ends():
    assert bridge.bridge_noise_std(0.0, 0.5) == 0.0 and bridge.bridge_noise_std(1.0, 0.5) == 0.0
    assert bridge.bridge_noise_std(0.5, 0.5) == pytest.approx(0.0625)


def test_boundary_condition_is_exact():
    assert bridge.c_skip(0.0, 0.5) == 1.0 and bridge.c_out(0.0, 0.5) == 0.0
    x = np.random.default_rng(1).standard_normal((2, 1, 3, 3))
    raw = np.full_like(x, 123.0)
    np.testing.assert_array_equal(bridge.precondition(x, np.zeros(2), raw, 0.5), x)


def test_preconditioning_coefficients():
    t, sd = 1.0, 0.5
    assert bridge.c_skip(t, sd) == pytest.approx(0.25 / 1.25)
    assert bridge.c_out(t, sd) == pytest.approx(0.5 / np.sqrt(1.25))


def test_torch_encoder_boundary_condition():
    torch = pytest.importorskip("torch")
    from cheartflow_sdk.config import ModelConfig
    from cheartflow_sdk.models import build_encoder

    cfg = ModelConfig(resolution=16, base_channels=8, channel_mult=(1, 2), attention_levels=(1,), time_embed_dim=16, groups=4)
    enc = build_encoder(cfg)
    torch.nn.init.normal_(enc.net.out_conv.weight)  # make F non-zero so the test means something
    x = torch.randn(3, 1, 16, 16)
    assert torch.equal(enc(x, torch.zeros(3)), x)
    assert not torch.allclose(enc(x, torch.ones(3)), x)
    assert enc.half()(x, torch.zeros(3)).dtype == torch.float32  # combination in fp32 even with fp16 weights
