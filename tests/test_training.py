"""Training on phantoms: the objective, curriculum, learning, checkpoint resume, config round-trip."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cheartflow_sdk.config import ModelConfig, TrainConfig, read_config  # noqa: E402
from cheartflow_sdk.errors import InvalidInputError  # noqa: E402
from cheartflow_sdk.training import Trainer, load_encoder  # noqa: E402
from cheartflow_sdk.training import discretization, losses  # noqa: E402
from cheartflow_sdk.training.checkpoint import MAX_SHARD_BYTES, MODEL_FILENAME  # noqa: E402

from conftest import TINY_MODEL  # noqa: E402


def test_pseudo_huber_and_l2():
    a, b = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    c = 0.1 * 2.0  # c_per_sqrt_dim * sqrt(4)
    np.testing.assert_allclose(losses.pseudo_huber(a, b, 0.1).numpy(), np.sqrt(4 + c * c) - c, rtol=1e-6)
    assert losses.pseudo_huber(a, a, 0.1).abs().max() == 0
    np.testing.assert_allclose(losses.l2(a, b).numpy(), 1.0)


def test_ssim_dissimilarity_is_one_minus_the_val_metric_and_differentiable():
    from cheartflow_sdk.research.metrics.image import ssim
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (3, 1, 24, 24)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1).astype(np.float32)
    pred = torch.tensor(a, requires_grad=True)
    d = losses.ssim_dissimilarity(pred, torch.tensor(b))
    np.testing.assert_allclose(d.detach().numpy(), 1 - ssim((a + 1) / 2, (b + 1) / 2), atol=1e-5)
    assert torch.equal(losses.ssim_dissimilarity(torch.tensor(a), torch.tensor(a)), torch.zeros(3))
    d.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_ssim_weight_adds_the_ssim_term_to_the_distance(phantom_set):
    images, _, sketches = phantom_set
    plain, weighted = TrainConfig(steps=1), TrainConfig(steps=1, ssim_weight=0.5)
    x0, x1 = torch.from_numpy(images[:4]), torch.from_numpy(sketches[:4] * 2 - 1)
    values = []
    for cfg in (plain, weighted):
        trainer = Trainer(images[:8], sketches[:8], ModelConfig(**TINY_MODEL), cfg, "/tmp/unused-cf", device="cpu", resume=False)
        values.append(float(trainer.loss(x0, x1, torch.Generator().manual_seed(0))[0]))
    assert values[1] > values[0] > 0  # same pairs and weights (one seed), plus 0.5 sqrt(dim) (1 - SSIM) > 0
    with pytest.raises(InvalidInputError, match="ssim_weight"):
        TrainConfig(ssim_weight=-1.0)


def test_curriculum_doubles_to_the_end():
    cfg = TrainConfig(steps=600, curriculum_start=10, curriculum_end=80)
    ns = [discretization.intervals_at(s, cfg) for s in range(0, 600, 50)]
    assert ns[0] == 10 and ns[-1] == 80 and ns == sorted(ns)
    assert set(ns) == {10, 20, 40, 80}


def test_grid_and_pairs():
    cfg = TrainConfig(grid="power", grid_rho=2.0, pair_schedule="adjacent", pair_weighting="inverse_gap")
    g = discretization.grid(4, cfg)
    np.testing.assert_allclose(g.numpy(), [0, 1 / 16, 1 / 4, 9 / 16, 1])
    t1, t2, w = discretization.sample_pairs(1000, 4, cfg, torch.Generator().manual_seed(0))
    assert torch.all(t1 < t2) and torch.all((t1 >= 0) & (t2 <= 1))
    assert w.mean().item() == pytest.approx(1.0)
    gaps = (t2 - t1)
    assert torch.allclose(w * gaps, (w * gaps)[0].expand_as(gaps))  # inverse-gap weighting


def test_target_at_t0_is_the_image(phantom_set):
    """With t1 = 0 on the grid, the stop-gradient target E(x_0, 0) is exactly x0 (boundary condition)."""
    images, _, sketches = phantom_set
    trainer = Trainer(images[:8], sketches[:8], ModelConfig(**TINY_MODEL), TrainConfig(steps=1), "/tmp/unused-cf", device="cpu", resume=False)
    x0 = torch.from_numpy(images[:4])
    assert torch.equal(trainer.encoder(x0, torch.zeros(4)), x0)


def _one_step_mse(encoder, images, sketches):
    with torch.no_grad():
        out = encoder(torch.from_numpy(sketches * 2 - 1), torch.ones(len(images)))
    return float(((out - torch.from_numpy(images)) ** 2).mean())


def test_training_on_phantoms_learns(phantom_set, tmp_path):
    images, _, sketches = phantom_set
    cfg = TrainConfig(steps=150, batch_size=16, lr=2e-3, warmup_steps=10, ema_decay=0.9, curriculum_start=16,
                      curriculum_end=16, log_every=10, checkpoint_every=10**6)
    trainer = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, tmp_path, device="cpu")
    before = _one_step_mse(trainer.ema, images, sketches)
    results = trainer.run(progress=False)
    after = _one_step_mse(trainer.ema, images, sketches)
    first = np.mean([r.loss for r in results[:20]])
    last = np.mean([r.loss for r in results[-20:]])
    assert last < 0.7 * first, (first, last)
    assert after < 0.5 * before, (before, after)  # the one-step output moved toward the images
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(10, 151, 10))


def test_training_with_the_ssim_term_lowers_the_loss_and_raises_one_step_ssim(phantom_set, tmp_path):
    from cheartflow_sdk.research.metrics.image import ssim, to_unit_range
    images, _, sketches = phantom_set
    cfg = TrainConfig(steps=100, batch_size=16, lr=2e-3, warmup_steps=10, ema_decay=0.9, gap_stage_steps=10**6,
                      ssim_weight=0.5, log_every=10, checkpoint_every=10**6)
    trainer = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, tmp_path, device="cpu")

    def one_step_ssim():
        with torch.no_grad():
            out = trainer.ema(torch.from_numpy(sketches * 2 - 1), torch.ones(len(images))).numpy()
        return float(ssim(to_unit_range(out), to_unit_range(images)).mean())

    before = one_step_ssim()
    results = trainer.run(progress=False)
    assert np.mean([r.loss for r in results[-10:]]) < 0.7 * np.mean([r.loss for r in results[:10]])
    assert one_step_ssim() > before + 0.05, before


def test_resume_continues_exactly(phantom_set, tmp_path):
    images, _, sketches = phantom_set
    mc = ModelConfig(**TINY_MODEL)
    cfg = TrainConfig(steps=12, batch_size=4, warmup_steps=2, log_every=1, checkpoint_every=6)
    straight = Trainer(images, sketches, mc, cfg, tmp_path / "a", device="cpu")
    straight.run(progress=False)
    part = Trainer(images, sketches, mc, cfg, tmp_path / "b", device="cpu")
    part.run(until_step=6, progress=False)
    resumed = Trainer(images, sketches, mc, cfg, tmp_path / "b", device="cpu")
    assert resumed.step_count == 6
    resumed.run(progress=False)
    for p, q in zip(straight.ema.parameters(), resumed.ema.parameters()):
        torch.testing.assert_close(p, q)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_resume_refuses_other_model_config(phantom_set, tmp_path):
    images, _, sketches = phantom_set
    Trainer(images, sketches, ModelConfig(**TINY_MODEL), TrainConfig(steps=1), tmp_path, device="cpu").run(progress=False)
    other = ModelConfig(**{**TINY_MODEL, "base_channels": 16})
    with pytest.raises(InvalidInputError, match="different model config"):
        Trainer(images, sketches, other, TrainConfig(steps=1), tmp_path, device="cpu")


def test_saved_model_and_config(trained_model_dir):
    cfg, train_cfg, doc = read_config(trained_model_dir)
    assert cfg == ModelConfig(**TINY_MODEL) and train_cfg.steps == 40 and doc["steps_trained"] == 40
    from safetensors.numpy import load_file

    assert all(v.dtype == np.float16 for v in load_file(str(trained_model_dir / MODEL_FILENAME)).values())
    assert load_encoder(trained_model_dir).config == cfg
    for f in (trained_model_dir / "train_state").iterdir():
        assert f.stat().st_size < MAX_SHARD_BYTES + 2**16


def test_default_model_fits_16_mib():
    from cheartflow_sdk.models import build_encoder

    n = sum(p.numel() for p in build_encoder(ModelConfig()).parameters())
    assert n * 2 < 16 * 2**20


def test_bad_training_data(phantom_set):
    images, _, sketches = phantom_set
    with pytest.raises(InvalidInputError, match=r"expected \[N, 1, 32, 32\]"):
        Trainer(images[:, :, :16], sketches, ModelConfig(**TINY_MODEL), TrainConfig(steps=1), "/tmp/unused-cf", device="cpu", resume=False)
    bad = images.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        Trainer(bad, sketches, ModelConfig(**TINY_MODEL), TrainConfig(steps=1), "/tmp/unused-cf", device="cpu", resume=False)


def test_config_rejects_bad_values():
    with pytest.raises(InvalidInputError, match="sketch_kind"):
        ModelConfig(sketch_kind="scribbles")
    with pytest.raises(InvalidInputError, match="divisible"):
        ModelConfig(resolution=100)
    with pytest.raises(InvalidInputError, match="distance"):
        TrainConfig(distance="l1")


LEGACY_RUN = Path(__file__).parent / "data" / "legacy_run"  # written by the SDK before the shared trainer base


def test_resumes_a_run_folder_of_the_earlier_layout(tmp_path):
    """A run stopped at step 3 by the earlier SDK resumes to the weights and losses of its 6-step straight run."""
    from safetensors.torch import load_file

    data = np.load(LEGACY_RUN / "data.npz")
    saved_cfg, train_cfg, doc = read_config(LEGACY_RUN / "run")
    run = tmp_path / "run"
    shutil.copytree(LEGACY_RUN / "run", run)
    kept = (run / "at-0min" / "model.safetensors").read_bytes()
    val = (data["val_images"], data["val_sketches"])
    resumed = Trainer(data["images"], data["sketches"], saved_cfg, train_cfg, run, device="cpu", val=val)
    assert resumed.step_count == 3 and resumed.train_seconds == pytest.approx(60 * doc["train_minutes"], abs=0.6)
    assert resumed.selection.record["step"] in (1, 2, 3)  # best/ of the earlier run is read back
    results = resumed.run(progress=False)
    reference = json.loads((LEGACY_RUN / "reference.json").read_text())
    assert [r.step for r in results] == [4, 5, 6]
    np.testing.assert_allclose([r.loss for r in results], reference["losses"][3:], rtol=1e-4)
    ema = load_file(str(LEGACY_RUN / "reference_ema.safetensors"))
    for name, value in resumed.ema.state_dict().items():
        torch.testing.assert_close(value, ema[name], rtol=1e-4, atol=1e-5)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == list(range(1, 7))
    assert read_config(run)[2]["steps_trained"] == 6
    shards = sorted(f.name for f in (run / "train_state").glob("*.safetensors"))
    assert shards and all("s00000006" in name for name in shards)  # the earlier layout's shards are replaced
    assert (run / "at-0min" / "model.safetensors").read_bytes() == kept  # a kept budget snapshot is not rewritten
    cont = Trainer(data["images"], data["sketches"], saved_cfg, train_cfg, tmp_path / "cont", device="cpu",
                   init_from=LEGACY_RUN / "run")  # --init-from an earlier run's model folder
    assert cont.step_count == 3 and cont._initialized_from["step"] == 3
