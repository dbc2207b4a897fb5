"""Metric math: SSIM/PSNR against known values, the Frechet distance against direct computations,
and the Inception/LPIPS networks with random weights (no real weight files are needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cheartflow_sdk.errors import InvalidInputError, ModelNotAvailableError
from cheartflow_sdk.research.metrics import (
    FrechetReference,
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    gaussian_window,
    psnr,
    ssim,
    ssim_map,
)

C1, C2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2


# ----------------------------------------------------------------------------- SSIM


def _ssim_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Independent SSIM: explicit 11x11 Gaussian window (outer product), loop over window positions."""
    r = 5
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / 1.5) ** 2)
    w2 = np.outer(g, g)
    w2 /= w2.sum()
    vals = []
    for i in range(r, x.shape[0] - r):
        for j in range(r, x.shape[1] - r):
            px, py = x[i - r:i + r + 1, j - r:j + r + 1], y[i - r:i + r + 1, j - r:j + r + 1]
            mx, my = (w2 * px).sum(), (w2 * py).sum()
            vx, vy = (w2 * (px - mx) ** 2).sum(), (w2 * (py - my) ** 2).sum()
            cxy = (w2 * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2)))
    return float(np.mean(vals))


def test_gaussian_window_is_the_11_tap_sigma_1_5_window():
    w = gaussian_window()
    assert w.shape == (11,)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1])
    assert w[5] / w[4] == pytest.approx(math.exp(0.5 / 1.5**2))


def test_ssim_of_identical_images_is_one(rng):
    a = rng.random((3, 1, 24, 20))
    np.testing.assert_allclose(ssim(a, a), 1.0, rtol=0, atol=1e-12)


def test_ssim_of_constant_images_matches_the_closed_form():
    # Constant images: zero variances and covariance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = np.full((16, 16), 0.5), np.full((16, 16), 0.25)
    expected = (2 * 0.5 * 0.25 + C1) / (0.5**2 + 0.25**2 + C1)
    assert ssim(a, b)[0] == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.80006, abs=1e-5)


def test_ssim_matches_a_direct_windowed_computation(rng):
    x = rng.random((15, 17))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    assert ssim_map(x, y).shape == (1, 5, 7)
    assert ssim(x, y)[0] == pytest.approx(_ssim_direct(x, y), rel=1e-10)
    assert ssim(x, y)[0] == pytest.approx(ssim(y, x)[0], rel=1e-12)  # symmetric


def test_ssim_matches_skimage_when_installed(rng):
    metrics = pytest.importorskip("skimage.metrics")
    x = rng.random((2, 1, 40, 36))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    ours = ssim(x, y)
    for i in range(2):
        ref = metrics.structural_similarity(x[i, 0], y[i, 0], gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=1.0)
        assert ours[i] == pytest.approx(ref, abs=1e-6)


def test_ssim_rejects_bad_input(rng):
    with pytest.raises(InvalidInputError, match="one shape"):
        ssim(rng.random((2, 16, 16)), rng.random((2, 16, 17)))
    with pytest.raises(InvalidInputError, match="NaN"):
        ssim(np.full((16, 16), np.nan), np.zeros((16, 16)))
    with pytest.raises(InvalidInputError, match="at least 11x11"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(InvalidInputError, match="data_range"):
        ssim(np.zeros((16, 16)), np.zeros((16, 16)), data_range=0)


# ----------------------------------------------------------------------------- PSNR


def test_psnr_known_values(rng):
    a = rng.random((4, 1, 8, 8)) * 0.8
    np.testing.assert_allclose(psnr(a, a + 0.1), 20.0, atol=1e-9)  # MSE 0.01
    np.testing.assert_allclose(psnr(a, a - 0.01), 40.0, atol=1e-9)  # MSE 1e-4
    np.testing.assert_allclose(psnr(a, a + 0.2, data_range=2.0), 20.0, atol=1e-9)  # (2 / 0.2)^2 = 100
    assert np.all(np.isposinf(psnr(a, a)))
    b = a.copy()
    b[0, 0, 0, 0] += 0.5  # only the first image differs
    out = psnr(a, b)
    assert out[0] == pytest.approx(10 * math.log10(64 / 0.25)) and np.all(np.isinf(out[1:]))


# ----------------------------------------------------------------------------- Frechet


def test_frechet_distance_closed_form_for_diagonal_covariances():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance([3.0], [[4.0]], [0.0], [[1.0]]) == pytest.approx(9 + (2 - 1) ** 2)


def _random_spd(rng, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_matches_the_eigenvalues_of_the_product(rng):
    d = 12
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    # Direct: tr sqrt(S1 S2) = sum sqrt(eig(S1 S2)) (S1 S2 has real non-negative eigenvalues).
    eig = np.linalg.eigvals(s1 @ s2)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(eig.real.clip(0)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9 * np.trace(s1))


def test_frechet_distance_matches_scipy_sqrtm_when_installed(rng):
    linalg = pytest.importorskip("scipy.linalg")
    d = 10
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    covmean = linalg.sqrtm(s1 @ s2).real
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)


def test_frechet_of_features_is_zero_for_one_set_and_stable_when_singular(rng):
    f = rng.standard_normal((5, 16))  # fewer samples than dimensions: singular covariance
    assert frechet_distance_features(f, f) == pytest.approx(0.0, abs=1e-9)
    g = f + 1.0
    assert frechet_distance_features(f, g) == pytest.approx(16.0, rel=1e-6)  # pure mean shift of 1 per dim
    ref = FrechetReference(f)
    assert ref.distance(g) == pytest.approx(frechet_distance_features(f, g), rel=1e-12)
    mu, cov = gaussian_stats(f)
    np.testing.assert_allclose(cov, np.cov(f, rowvar=False))
    np.testing.assert_allclose(mu, f.mean(0))


def test_frechet_of_large_samples_approaches_the_gaussian_value(rng):
    x = rng.standard_normal((20000, 2)) * [1.0, 2.0]
    y = rng.standard_normal((20000, 2)) * [3.0, 2.0] + [1.0, 0.0]
    assert frechet_distance_features(x, y) == pytest.approx(1.0 + (3 - 1) ** 2, rel=0.05)


def test_frechet_rejects_bad_input(rng):
    with pytest.raises(InvalidInputError, match="N >= 2"):
        gaussian_stats(np.zeros((1, 3)))
    with pytest.raises(InvalidInputError, match="one D"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(InvalidInputError, match="feature sizes"):
        frechet_distance_features(rng.random((4, 2)), rng.random((4, 3)))


# ----------------------------------------------------------------------------- Inception / LPIPS (random weights)


def _randomized_state(cls, seed: int, *args) -> dict:
    """A random state dict of ``cls(*args)``: torch's default init (seeded), conv weights rescaled to He
    variance so activations keep their scale, random BatchNorm statistics, non-negative LPIPS weights."""
    import torch

    torch.manual_seed(seed)
    state = {k: v for k, v in cls(*args).state_dict().items() if not k.endswith("num_batches_tracked")}
    gen = torch.Generator().manual_seed(seed)
    for k, v in state.items():
        if k.endswith("running_var"):
            state[k] = 0.5 + torch.rand(v.shape, generator=gen)
        elif k.endswith(("running_mean", "bn.bias")):
            state[k] = 0.1 * torch.randn(v.shape, generator=gen)
        elif k.endswith("bn.weight"):
            state[k] = 1.0 + 0.1 * torch.rand(v.shape, generator=gen)
        elif k.startswith("lin"):
            state[k] = v.abs()  # LPIPS' linear weights are non-negative
        elif v.ndim == 4:
            state[k] = v * 6**0.5  # kaiming_uniform(a=sqrt(5)) has variance 1/(3 fan_in); He is 2/fan_in
    return state


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from cheartflow_sdk.research.metrics.inception import InceptionV3Features

    state = _randomized_state(InceptionV3Features, 0, "fid")
    state["fc.weight"] = torch.zeros(1008, 2048)  # the pytorch-fid file's classifier (unused by the features)
    state["fc.bias"] = torch.zeros(1008)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-test.pth"
    torch.save(state, path)
    return path


def test_inception_features_shapes_determinism_and_channels(inception_file, rng):
    from cheartflow_sdk.research.metrics import inception_features, load_inception

    net = load_inception(inception_file)
    assert net.variant == "fid"
    imgs = rng.random((2, 1, 64, 64)).astype(np.float32)
    f1 = inception_features(net, imgs)
    assert f1.shape == (2, 2048) and np.all(np.isfinite(f1)) and f1.std() > 0
    assert not np.allclose(f1[0], f1[1])
    # Deterministic, and one channel is the same as three equal channels (batches of one this time).
    f3 = inception_features(net, np.repeat(imgs, 3, axis=1), batch_size=1)
    np.testing.assert_allclose(f1, f3, rtol=1e-4, atol=1e-6 * np.abs(f1).max())


def test_inception_torchvision_layout_selects_the_torchvision_variant(tmp_path):
    torch = pytest.importorskip("torch")
    from cheartflow_sdk.research.metrics.inception import InceptionV3Features, load_inception

    state = _randomized_state(InceptionV3Features, 1, "torchvision")
    state.update({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000),
                  "AuxLogits.fc.weight": torch.zeros(1000, 768)})  # extra torchvision keys are ignored
    path = tmp_path / "inception_v3_google.safetensors"
    from safetensors.torch import save_file

    save_file(state, str(path))
    assert load_inception(path).variant == "torchvision"


def test_inception_missing_corrupt_and_mismatched_files_name_the_file(tmp_path, inception_file):
    torch = pytest.importorskip("torch")
    from cheartflow_sdk.research.metrics import load_inception

    missing = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(ModelNotAvailableError, match=r"pt_inception-2015-12-05-6726825d\.pth.*pytorch-fid"):
        load_inception(missing)
    with pytest.raises(ModelNotAvailableError, match="no Inception"):
        load_inception(None)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="corrupt.pth"):
        load_inception(corrupt)
    partial = torch.load(inception_file, weights_only=True)
    del partial["Mixed_7c.branch_pool.conv.weight"]
    partial_path = tmp_path / "partial.pth"
    torch.save(partial, partial_path)
    with pytest.raises(InvalidInputError, match=r"partial\.pth.*Mixed_7c\.branch_pool\.conv\.weight"):
        load_inception(partial_path)


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from cheartflow_sdk.research.metrics.lpips import LPIPS

    state = _randomized_state(LPIPS, 2)
    state["scaling_layer.shift"] = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    state["scaling_layer.scale"] = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    path = tmp_path_factory.mktemp("lpips") / "lpips_alex.pth"
    torch.save(state, path)
    return path


def test_lpips_is_zero_for_identical_images_symmetric_and_positive(lpips_file, rng):
    from cheartflow_sdk.research.metrics import load_lpips, lpips_distance

    net = load_lpips(lpips_file)
    a = rng.random((3, 1, 64, 64)).astype(np.float32)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    np.testing.assert_array_equal(lpips_distance(net, a, a), 0.0)
    d_ab, d_ba = lpips_distance(net, a, b), lpips_distance(net, b, a)
    assert d_ab.shape == (3,) and np.all(d_ab > 0)
    np.testing.assert_allclose(d_ab, d_ba, rtol=1e-5)
    np.testing.assert_allclose(lpips_distance(net, a, b, batch_size=1), d_ab, rtol=1e-5)


def test_lpips_accepts_torchvision_backbone_keys_and_names_bad_files(lpips_file, tmp_path, rng):
    torch = pytest.importorskip("torch")
    from cheartflow_sdk.research.metrics import load_lpips, lpips_distance

    state = torch.load(lpips_file, weights_only=True)
    renamed = {}
    for k, v in state.items():
        if k.startswith("net.slice"):
            idx, param = k.split(".")[2:4]
            renamed[f"features.{idx}.{param}"] = v  # torchvision AlexNet layout
        else:
            renamed[k] = v
    path = tmp_path / "alex_torchvision_keys.pth"
    torch.save(renamed, path)
    a, b = rng.random((2, 1, 64, 64)).astype(np.float32), rng.random((2, 1, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(lpips_distance(load_lpips(path), a, b), lpips_distance(load_lpips(lpips_file), a, b), rtol=1e-6)
    with pytest.raises(ModelNotAvailableError, match=r"lpips_alex_missing\.pth.*lin0\.model\.1\.weight"):
        load_lpips(tmp_path / "lpips_alex_missing.pth")
    no_lin = {k: v for k, v in state.items() if not k.startswith("lin")}
    torch.save(no_lin, tmp_path / "backbone_only.pth")
    with pytest.raises(InvalidInputError, match=r"backbone_only\.pth.*lin0\.model\.1\.weight"):
        load_lpips(tmp_path / "backbone_only.pth")
    bad_scale = dict(state, **{"scaling_layer.scale": torch.ones(1, 3, 1, 1)})
    torch.save(bad_scale, tmp_path / "bad_scale.pth")
    with pytest.raises(InvalidInputError, match="scaling_layer.scale"):
        load_lpips(tmp_path / "bad_scale.pth")


def test_metrics_import_needs_numpy_only(tmp_path):
    import subprocess
    import sys

    code = ("import sys, cheartflow_sdk.research.metrics as m, cheartflow_sdk.research.segmentation as s, "
            "cheartflow_sdk.research.evaluation as e; "
            "m.ssim; s.mean_foreground_dice; e.Evaluator; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=120)
