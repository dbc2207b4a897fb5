"""Baselines (pix2pix, iDDPM) on 32x32 phantoms: learning, resume, the sketch->image callable, iDDPM's schedules."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import RES

from cheartflow_sdk.research.baselines import (
    IDDPMConfig,
    Pix2PixConfig,
    iddpm,
    load_baseline,
    make_trainer,
    train_baseline,
)
from cheartflow_sdk.research.baselines._base import (
    MODEL_FILENAME,
    STATE_DIRNAME,
    count_parameters,
)
from cheartflow_sdk.research.baselines.pix2pix import PatchDiscriminator, UNetGenerator
from cheartflow_sdk.errors import InvalidInputError, ModelMismatchError
from cheartflow_sdk.training.checkpoint import MAX_SHARD_BYTES

LOOP = dict(resolution=RES, batch_size=8, lr=2e-3, log_every=5, checkpoint_every=10**6)
P2P_TINY = dict(ngf=8, ndf=8, lr_decay_fraction=0.0, **LOOP)
IDDPM_TINY = dict(base_channels=8, channel_mult=(1, 2), attention_levels=(1,), time_embed_dim=32, groups=4, dropout=0.0,
                  sample_steps=8, **LOOP)
TRAIN_STEPS = 40


def _tiny(kind, **kw):
    return Pix2PixConfig(**{**P2P_TINY, **kw}) if kind == "pix2pix" else IDDPMConfig(**{**IDDPM_TINY, **kw})


@pytest.fixture(scope="module")
def runs(tmp_path_factory, phantom_set):
    """kind -> (run folder, step results) of a tiny run of each baseline trained for TRAIN_STEPS steps."""
    images, _, sketches = phantom_set
    out = {}
    for kind in ("pix2pix", "iddpm"):
        folder = tmp_path_factory.mktemp(kind)
        results = train_baseline(kind, images, sketches, folder, _tiny(kind, steps=TRAIN_STEPS), device="cpu", progress=False)
        out[kind] = folder, results
    return out


# --- learning ------------------------------------------------------------------------------------

def test_pix2pix_l1_decreases(runs):
    _, results = runs["pix2pix"]
    assert [r.step for r in results] == list(range(1, TRAIN_STEPS + 1))
    first, last = np.mean([r.l1 for r in results[:5]]), np.mean([r.l1 for r in results[-5:]])
    assert last < 0.7 * first, (first, last)
    assert all(math.isfinite(r.d_loss) and math.isfinite(r.g_gan) for r in results)


def test_iddpm_epsilon_loss_decreases(runs):
    _, results = runs["iddpm"]
    first, last = np.mean([r.mse for r in results[:5]]), np.mean([r.mse for r in results[-5:]])
    assert first == pytest.approx(1.0, abs=0.15)  # zero-initialized output: eps_hat = 0 at the start
    assert last < 0.7 * first, (first, last)
    assert all(math.isfinite(r.vb) and r.vb >= 0 for r in results)


@pytest.mark.parametrize("kind", ["pix2pix", "iddpm"])
def test_run_folder(runs, kind):
    folder, _ = runs[kind]
    doc = json.loads((folder / "config.json").read_text())
    assert doc["kind"] == kind and doc["steps_trained"] == TRAIN_STEPS and doc["config"]["resolution"] == RES
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(5, TRAIN_STEPS + 1, 5))
    from safetensors.numpy import load_file

    assert all(v.dtype in (np.float16, np.int64) for v in load_file(str(folder / MODEL_FILENAME)).values())
    for f in (folder / STATE_DIRNAME).iterdir():
        assert f.stat().st_size < MAX_SHARD_BYTES + 2**16


# --- resume --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pix2pix", "iddpm"])
def test_resume_continues_exactly(phantom_set, tmp_path, kind):
    """3 steps, a fresh trainer from the folder, 3 more == 6 straight (same batches, noise, dropout)."""
    images, _, sketches = phantom_set
    cfg = _tiny(kind, steps=6, log_every=1, **({"dropout": 0.1} if kind == "iddpm" else {}))
    straight = make_trainer(kind, images, sketches, tmp_path / "a", cfg, device="cpu")
    straight.run(progress=False)
    make_trainer(kind, images, sketches, tmp_path / "b", cfg, device="cpu").run(until_step=3, progress=False)
    resumed = make_trainer(kind, images, sketches, tmp_path / "b", cfg, device="cpu")
    assert resumed.step_count == 3
    assert [r.step for r in resumed.run(progress=False)] == [4, 5, 6]
    for name, module in straight.modules.items():
        for (k, p), q in zip(module.state_dict().items(), resumed.modules[name].state_dict().values(), strict=True):
            torch.testing.assert_close(p, q, msg=f"{name}.{k}")
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))
    shards = sorted(p.name for p in (tmp_path / "b" / STATE_DIRNAME).glob("*.safetensors"))
    assert shards and all("s00000006" in name for name in shards)  # older checkpoints' shards are removed


def test_time_limit_stops_and_the_same_call_resumes(phantom_set, tmp_path):
    images, _, sketches = phantom_set
    cfg = _tiny("pix2pix", steps=4)
    first = train_baseline("pix2pix", images, sketches, tmp_path, cfg, device="cpu", time_limit_s=0.0, progress=False)
    assert [r.step for r in first] == [1]
    again = train_baseline("pix2pix", images, sketches, tmp_path, cfg, device="cpu", time_limit_s=0.0, progress=False)
    assert [r.step for r in again] == [2]
    assert json.loads((tmp_path / "config.json").read_text())["steps_trained"] == 2


def test_resume_refuses_another_config_or_kind(phantom_set, tmp_path):
    images, _, sketches = phantom_set
    train_baseline("pix2pix", images, sketches, tmp_path, _tiny("pix2pix", steps=1), device="cpu", progress=False)
    with pytest.raises(InvalidInputError, match="different config.*ngf"):
        make_trainer("pix2pix", images, sketches, tmp_path, _tiny("pix2pix", steps=2, ngf=16), device="cpu")
    with pytest.raises(InvalidInputError, match="holds a 'pix2pix' run"):
        make_trainer("iddpm", images, sketches, tmp_path, _tiny("iddpm", steps=1), device="cpu")
    make_trainer("pix2pix", images, sketches, tmp_path, _tiny("pix2pix", steps=5), device="cpu")  # longer run: fine


def test_bad_arguments(phantom_set):
    images, _, sketches = phantom_set
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        make_trainer("vqgan", images, sketches, "/tmp/unused-cf-bl", device="cpu", resume=False)
    with pytest.raises(InvalidInputError, match=r"expected a float array \[N, 1, 128, 128\]"):
        make_trainer("pix2pix", images, sketches, "/tmp/unused-cf-bl", device="cpu", resume=False)
    with pytest.raises(InvalidInputError, match=r"values in \[0, 1\]"):
        make_trainer("pix2pix", images, sketches * 2 - 1, "/tmp/unused-cf-bl", _tiny("pix2pix"), device="cpu", resume=False)
    with pytest.raises(InvalidInputError, match="gan_mode"):
        Pix2PixConfig(gan_mode="wgan")
    with pytest.raises(InvalidInputError, match="unknown IDDPMConfig fields"):
        make_trainer("iddpm", images, sketches, "/tmp/unused-cf-bl", {"sigma": 1}, device="cpu", resume=False)


# --- the callable --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pix2pix", "iddpm"])
def test_loaded_callable_contract(runs, phantom_set, kind):
    folder, _ = runs[kind]
    fn = load_baseline(folder, device="cpu")
    assert fn.kind == kind and fn.sketch_kind == "edges" and fn.resolution == RES
    sketches = phantom_set[2][:5]
    out = fn(sketches, seed=0, batch_size=3)
    assert out.shape == (5, 1, RES, RES) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and np.isfinite(out).all()
    out_u8 = fn((sketches[:, 0] * 255).astype(np.uint8), seed=0, batch_size=3)  # the SDK's other sketch form
    np.testing.assert_allclose(out_u8, out, atol=1e-5)
    with pytest.raises(ModelMismatchError):
        fn(np.zeros((1, 1, 2 * RES, 2 * RES), np.float32))
    with pytest.raises(ModelMismatchError, match="'edges'"):
        fn(sketches, sketch_kind="labels")


def test_iddpm_sampling_is_deterministic_for_a_seed(runs, phantom_set):
    fn = load_baseline(runs["iddpm"][0], device="cpu")
    sketches = phantom_set[2][:3]
    a, b, c = fn(sketches, steps=5, seed=7), fn(sketches, steps=5, seed=7), fn(sketches, steps=5, seed=8)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    with pytest.raises(InvalidInputError, match=r"\[2, 1000\]"):
        fn(sketches, steps=1001)


def test_pix2pix_is_one_step(runs, phantom_set):
    fn = load_baseline(runs["pix2pix"][0], device="cpu")
    np.testing.assert_array_equal(fn(phantom_set[2][:2], seed=1), fn(phantom_set[2][:2], steps=1, seed=2))
    with pytest.raises(InvalidInputError, match="one-step"):
        fn(phantom_set[2][:2], steps=200)


def test_load_refuses_a_non_baseline_folder(trained_model_dir):
    with pytest.raises(InvalidInputError, match="not a baseline config"):
        load_baseline(trained_model_dir, device="cpu")


# --- iDDPM schedules, respacing and loss ---------------------------------------------------------

def test_cosine_schedule_matches_closed_form():
    T, s = 1000, 0.008
    betas = iddpm.cosine_betas(T, s)
    f = lambda t: math.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2
    closed = np.array([f(t) / f(0) for t in range(1, T + 1)])
    alpha_bar = np.cumprod(1 - betas)
    unclipped = betas < 0.999
    assert unclipped[:-1].all() and not unclipped[-1]  # only beta_T (alpha_bar(T) = 0) hits the clip
    np.testing.assert_allclose(alpha_bar[:-1], closed[:-1], rtol=1e-10, atol=1e-15)
    assert betas.max() == 0.999 and (np.diff(betas) > 0).all()
    diffusion = iddpm.GaussianDiffusion.from_config(IDDPMConfig())
    np.testing.assert_array_equal(diffusion.betas, betas)


@pytest.mark.parametrize("steps", [2, 7, 50, 200, 333, 999, 1000])
def test_respacing_gives_exactly_the_requested_steps(steps):
    base = iddpm.GaussianDiffusion(iddpm.cosine_betas(1000), learn_sigma=True)
    kept = iddpm.space_timesteps(1000, [steps])
    assert len(kept) == steps and kept[0] == 0 and kept[-1] == 999 and kept == sorted(set(kept))
    spaced = base.respaced(steps)
    assert spaced.num_timesteps == steps and list(spaced.timestep_map) == kept
    np.testing.assert_allclose(spaced.alphas_cumprod, base.alphas_cumprod[kept], rtol=1e-9, atol=1e-15)
    if steps == 200:  # iDDPM's stride: round(k * 999 / 199)
        assert kept == [round(k * 999 / 199) for k in range(200)]
    if steps == 1000:
        np.testing.assert_allclose(spaced.betas, base.betas, rtol=1e-12)


def test_respacing_rejects_impossible_counts():
    base = iddpm.GaussianDiffusion(iddpm.cosine_betas(100), learn_sigma=False)
    for bad in (1, 101):
        with pytest.raises(InvalidInputError):
            base.respaced(bad)
    assert iddpm.space_timesteps(100, [10, 5]) == sorted(set(iddpm.space_timesteps(100, [10, 5])))
    assert len(iddpm.space_timesteps(100, [10, 5])) == 15


def test_sampler_calls_the_network_once_per_respaced_step():
    diffusion = iddpm.GaussianDiffusion(iddpm.cosine_betas(1000), learn_sigma=True).respaced(200)
    seen = []

    def model(x, t):
        seen.append(t[0].item())
        return torch.zeros(len(x), 2, *x.shape[2:])

    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn(2, 1, 8, 8, generator=gen)
    out = iddpm.p_sample_loop(model, diffusion, x_T, lambda i: torch.randn(2, 1, 8, 8, generator=gen))
    assert len(seen) == 200 and seen[0] == pytest.approx(0.999) and seen[-1] == 0.0
    assert seen == sorted(seen, reverse=True)
    assert out.shape == (2, 1, 8, 8) and out.abs().max() <= 1


def test_hybrid_loss_trains_only_the_variance_through_the_bound():
    diffusion = iddpm.GaussianDiffusion(iddpm.cosine_betas(50), learn_sigma=True)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0, 1, 25, 49])
    x_t = diffusion.q_sample(x0, t, noise)
    out = torch.randn(4, 2, 8, 8, generator=g).requires_grad_(True)
    terms = diffusion.training_losses(out, x0, x_t, t, noise, vlb_weight=0.001)
    (grad_eps, grad_v), = [torch.autograd.grad(terms["vb"].sum(), out)[0].split(1, dim=1)]
    assert grad_eps.abs().max() == 0 and grad_v.abs().max() > 0
    torch.testing.assert_close(terms["loss"], terms["mse"] + 0.001 * 50 * terms["vb"])
    kl = iddpm.normal_kl(x0, torch.zeros_like(x0), x0, torch.zeros_like(x0))
    assert kl.abs().max() == 0
    fixed = iddpm.GaussianDiffusion(iddpm.cosine_betas(50), learn_sigma=False)
    terms = fixed.training_losses(out[:, :1], x0, x_t, t, noise, vlb_weight=0.001)
    torch.testing.assert_close(terms["loss"], ((noise - out[:, :1]) ** 2).flatten(1).mean(1))


# --- default sizes -------------------------------------------------------------------------------

def test_default_configs_fit_one_16_mib_weights_file():
    g = count_parameters(UNetGenerator(Pix2PixConfig()))
    d = count_parameters(PatchDiscriminator(Pix2PixConfig()))
    e = count_parameters(iddpm.ConcatUNet(IDDPMConfig()))
    assert 5e6 < g and g * 2 < 15 * 2**20  # fp16 model.safetensors (the generator only)
    assert 2e6 < d < 4e6  # 70x70 PatchGAN with ndf = 64
    assert 5e6 < e and e * 2 < 15 * 2**20
