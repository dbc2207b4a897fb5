"""The training recipe: bridge preconditioning, the gap schedule of Eq. 1, bf16 autocast choice, legacy configs."""

import json
from pathlib import Path

import numpy as np
import pytest

from cheartflow_sdk import bridge, cpu_features
from cheartflow_sdk.config import ModelConfig, TrainConfig, model_config_from_dict, read_config, train_config_from_dict
from cheartflow_sdk.errors import InvalidInputError

torch = pytest.importorskip("torch")

from cheartflow_sdk.models import build_encoder  # noqa: E402
from cheartflow_sdk.models.precond import scalings  # noqa: E402
from cheartflow_sdk.training import Trainer, amp_dtype, data_scales, discretization, load_encoder  # noqa: E402

from conftest import TINY_MODEL  # noqa: E402

LEGACY_MODEL = Path(__file__).parent / "data" / "legacy_tiny"  # saved by the SDK before `preconditioning` existed
SCALES = dict(sigma=0.5, sigma_x0=0.45, sigma_x1=0.6)


def test_bridge_scalings_boundary_values():
    args = tuple(SCALES.values())
    assert bridge.bridge_c_skip(0.0, *args) == 1.0 and bridge.bridge_c_out(0.0, *args) == 0.0
    assert bridge.bridge_c_skip(1.0, *args) == 0.0
    assert bridge.bridge_c_out(1.0, *args) == pytest.approx(SCALES["sigma_x0"])  # all network at t = 1
    assert bridge.bridge_c_in(1.0, *args) == pytest.approx(1 / SCALES["sigma_x1"])
    t = np.linspace(0.0, 1.0, 1001)
    for fn in (bridge.bridge_c_in, bridge.bridge_c_skip, bridge.bridge_c_out):
        assert np.isfinite(fn(t, *args)).all()


def test_bridge_scalings_are_the_variance_decomposition():
    """c_skip = Cov(x0, x_t)/Var(x_t) and c_out^2 = Var(x0 - c_skip x_t), checked against sampled bridges."""
    rng = np.random.default_rng(0)
    s, s0, s1 = SCALES.values()
    x0, x1, eps = rng.normal(0, s0, 400_000), rng.normal(0, s1, 400_000), rng.standard_normal(400_000)
    t = 0.3
    x_t = bridge.bridge_sample(x0, x1, t, s, eps)
    c_skip, c_out = bridge.bridge_c_skip(t, s, s0, s1), bridge.bridge_c_out(t, s, s0, s1)
    assert np.cov(x0, x_t)[0, 1] / x_t.var() == pytest.approx(c_skip, rel=0.01)
    assert np.std(x0 - c_skip * x_t) == pytest.approx(c_out, rel=0.01)
    assert np.std(bridge.bridge_c_in(t, s, s0, s1) * x_t) == pytest.approx(1.0, rel=0.01)


def test_bridge_encoder_is_exact_at_t0_and_all_network_at_t1():
    enc = build_encoder(ModelConfig(**TINY_MODEL, **SCALES))
    torch.nn.init.normal_(enc.net.out_conv.weight)  # make F non-zero so the test means something
    x = torch.randn(3, 1, 32, 32)
    assert torch.equal(enc(x, torch.zeros(3)), x)
    with torch.no_grad():
        at_one = enc(x, torch.ones(3))
        raw = enc.net(x / SCALES["sigma_x1"], torch.ones(3))
    torch.testing.assert_close(at_one, SCALES["sigma_x0"] * raw)  # c_skip(1) = 0: no copy of the sketch
    c_in, c_skip, c_out = scalings(enc.config, torch.tensor([0.0, 1.0]))
    assert c_skip.flatten().tolist() == [1.0, 0.0] and c_out.flatten()[0] == 0.0


def test_config_without_preconditioning_field_loads_legacy_and_gives_its_outputs():
    cfg, _, doc = read_config(LEGACY_MODEL)
    assert "preconditioning" not in doc["model"] and cfg.preconditioning == "consistency"
    enc = load_encoder(LEGACY_MODEL)
    ref = np.load(LEGACY_MODEL / "reference.npz")  # computed by the SDK version that wrote the model
    with torch.no_grad():
        out = enc(torch.from_numpy(ref["x"]), torch.from_numpy(ref["t"]))
    # The same formula and weights; only the convolutions' float summation order may differ with the thread count.
    np.testing.assert_allclose(out.numpy(), ref["y"], rtol=0, atol=1e-6)
    assert ModelConfig().preconditioning == "bridge"  # new models get the bridge form
    assert model_config_from_dict({"preconditioning": "bridge"}).preconditioning == "bridge"


def test_train_config_without_schedule_field_is_the_adjacent_grid():
    saved = json.loads(json.dumps({"steps": 10}))
    assert train_config_from_dict(saved).pair_schedule == "adjacent"
    assert TrainConfig().pair_schedule == "gap"


def test_gap_schedule_starts_at_regression_and_never_grows():
    cfg = TrainConfig(gap_stage_steps=100, gap_shrink=0.5, gap_min=0.02, t2_one_fraction=0.25)
    gen = torch.Generator().manual_seed(0)
    t1, t2, w = discretization.sample_gap_pairs(512, 0, cfg, gen)
    assert torch.all(t1 == 0) and torch.all((t2 > 0) & (t2 <= 1))  # stage 0: pure regression toward x0
    assert (t2 == 1).sum() == 128 and w.mean().item() == pytest.approx(1.0)
    assert [discretization.gap_stage(s, cfg) for s in (0, 99, 100, 250)] == [0, 0, 1, 2]
    t2 = discretization.sample_t2(4096, cfg, torch.Generator().manual_seed(1))
    previous = None
    for stage in range(12):
        gap = discretization.pair_gap(t2, stage, cfg)
        t1 = torch.clamp(t2 - gap, min=0.0)
        assert torch.all((t1 >= 0) & (t1 < t2) & (t2 <= 1))
        if previous is not None:
            assert torch.all(gap <= previous)
        previous = gap
    assert torch.all(previous >= cfg.gap_min)
    assert (t2 > 0.5).float().mean() > 0.7  # t2 weighted toward t = 1


def test_autocast_choice(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setenv("CHEARTFLOW_NATIVE_BF16", "1")
    assert amp_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setenv("CHEARTFLOW_NATIVE_BF16", "0")
    assert amp_dtype("auto", cpu) is None  # emulated bf16 is slower than fp32
    assert amp_dtype("bf16", cpu) == torch.bfloat16  # asked for explicitly
    assert amp_dtype("fp16", cpu) is None and amp_dtype("off", cuda) is None
    assert amp_dtype("auto", cuda) == torch.bfloat16 and amp_dtype("fp16", cuda) == torch.float16


def test_native_bf16_read_from_cpu_flags(monkeypatch):
    monkeypatch.delenv("CHEARTFLOW_NATIVE_BF16", raising=False)
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert cpu_features.has_native_bf16()
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert not cpu_features.has_native_bf16()


def test_data_scales_are_the_training_stds(phantom_set):
    images, _, sketches = phantom_set
    cfg = data_scales(ModelConfig(**TINY_MODEL), images, sketches)
    assert cfg.sigma_x0 == pytest.approx(images.std(), abs=1e-3)
    assert cfg.sigma_x1 == pytest.approx((sketches * 2 - 1).std(), abs=1e-3)


@pytest.mark.slow
def test_gap_recipe_lowers_the_loss_and_logs_speed(phantom_set, tmp_path):
    images, _, sketches = phantom_set
    model_cfg = data_scales(ModelConfig(**TINY_MODEL), images, sketches)
    cfg = TrainConfig(steps=120, batch_size=16, lr=2e-3, warmup_steps=10, ema_decay=0.9, gap_stage_steps=80,
                      log_every=10, checkpoint_every=10**6, amp="bf16")
    trainer = Trainer(images, sketches, model_cfg, cfg, tmp_path, device="cpu")
    with torch.no_grad():
        before = float(((trainer.ema(torch.from_numpy(sketches * 2 - 1), torch.ones(len(images)))
                         - torch.from_numpy(images)) ** 2).mean())
    results = trainer.run(progress=False)
    with torch.no_grad():
        after = float(((trainer.ema(torch.from_numpy(sketches * 2 - 1), torch.ones(len(images)))
                        - torch.from_numpy(images)) ** 2).mean())
    assert np.mean([r.loss for r in results[-10:]]) < 0.7 * np.mean([r.loss for r in results[:10]])
    assert after < 0.8 * before, (before, after)  # E starts at c_skip(1) x1 = 0, i.e. MSE = mean(x0^2)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in lines} == {0, 1}
    assert all(r["sec_per_step"] > 0 and r["images_per_sec"] > 0 for r in lines)
    assert read_config(tmp_path)[0].preconditioning == "bridge"


def test_budget_snapshots_and_training_minutes_survive_resume(phantom_set, tmp_path):
    images, _, sketches = phantom_set
    cfg = TrainConfig(steps=6, batch_size=4, warmup_steps=1, log_every=2, checkpoint_every=3, keep_at_minutes=(0.0, 10**6))
    first = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, tmp_path, device="cpu")
    first.run(until_step=3, progress=False)
    assert (tmp_path / "at-0min" / "model.safetensors").is_file() and not (tmp_path / "at-1e+06min").exists()
    kept_minutes = read_config(tmp_path / "at-0min")[2]["train_minutes"]
    resumed = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, tmp_path, device="cpu")
    assert resumed.train_seconds == pytest.approx(first.train_seconds) and resumed.train_seconds > 0
    resumed.run(progress=False)
    minutes = [json.loads(line)["train_minutes"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert minutes == sorted(minutes) and minutes[-1] >= kept_minutes
    assert read_config(tmp_path)[2]["train_minutes"] == pytest.approx(resumed.train_seconds / 60, abs=0.01)


def test_training_curve_minutes_and_png(tmp_path, quality_script):
    curve = quality_script("training_curve")
    old = [{"step": 25, "loss": 1.0, "time": 1000.0}, {"step": 50, "loss": 1.0, "time": 1060.0},
           {"step": 50, "val_ssim": 0.3, "val_psnr": 13.0, "time": 1061.0},
           {"step": 75, "loss": 1.0, "time": 9000.0},  # resumed much later: the pause is not training
           {"step": 100, "loss": 1.0, "time": 9060.0}, {"step": 100, "val_ssim": 0.32, "val_psnr": 13.2, "time": 9061.0}]
    new = [{"step": 25, "loss": 1.0, "train_minutes": 1.0, "time": 5.0}, {"step": 25, "val_ssim": 0.5, "val_psnr": 17.0},
           {"step": 50, "loss": 1.0, "train_minutes": 2.5, "time": 99999.0}, {"step": 50, "val_ssim": 0.6, "val_psnr": 18.0}]
    assert [round(m, 3) for m, *_ in curve.val_curve(old)] == [round(61 / 60, 3), round(122 / 60, 3)]
    assert curve.val_curve(new) == [(1.0, 0.5, 17.0, 25), (2.5, 0.6, 18.0, 50)]
    logs = {}
    for name, records in (("old", old), ("new", new)):
        logs[name] = tmp_path / f"{name}.jsonl"
        logs[name].write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "curve.png"
    assert curve.main(["--run", f"old recipe={logs['old']}", "--run", f"new recipe={logs['new']}", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ema_warmup_follows_the_online_weights_early(phantom_set):
    images, _, sketches = phantom_set
    cfg = TrainConfig(steps=1, ema_decay=0.999, ema_warmup=10.0)
    trainer = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, "/tmp/unused-cf", device="cpu", resume=False)
    assert trainer.ema_decay() == pytest.approx(0.1)  # step 0: (1 + 0) / (10 + 0)
    trainer.step_count = 100_000
    assert trainer.ema_decay() == 0.999
    assert train_config_from_dict({"steps": 1}).ema_warmup == 0.0  # runs saved before the field: plain EMA


def test_init_from_a_model_carries_weights_steps_and_minutes(phantom_set, tmp_path):
    images, _, sketches = phantom_set
    cfg = TrainConfig(steps=4, batch_size=4, warmup_steps=3, log_every=2, checkpoint_every=10**6)
    Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, tmp_path / "first", device="cpu").run(progress=False)
    saved = read_config(tmp_path / "first")[2]
    cont_cfg = TrainConfig(steps=6, batch_size=4, warmup_steps=3, log_every=2, checkpoint_every=10**6,
                           keep_at_minutes=(0.0,))
    cont = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cont_cfg, tmp_path / "cont", device="cpu",
                   init_from=tmp_path / "first")
    first_ema = load_encoder(tmp_path / "first").state_dict()
    for name, value in cont.ema.state_dict().items():
        torch.testing.assert_close(value, first_ema[name])
    assert cont.step_count == 4 and cont.train_seconds == pytest.approx(60 * saved["train_minutes"])
    assert cont._lr() == pytest.approx(cfg.lr / 3)  # a fresh optimizer warms up again from the carried step
    cont.run(progress=False)
    doc = read_config(tmp_path / "cont")[2]
    assert doc["steps_trained"] == 6 and doc["initialized_from"]["step"] == 4
    assert doc["train_minutes"] >= saved["train_minutes"]
    assert not (tmp_path / "cont" / "at-0min").exists()  # a budget the first run had passed is not relabelled
    resumed = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cont_cfg, tmp_path / "cont", device="cpu",
                      init_from=tmp_path / "first")  # a resumable state wins over --init-from
    assert resumed.step_count == 6 and resumed._initialized_from["step"] == 4
    other = ModelConfig(**{**TINY_MODEL, "base_channels": TINY_MODEL["base_channels"] * 2})
    with pytest.raises(InvalidInputError, match="another config"):
        Trainer(images, sketches, other, cont_cfg, tmp_path / "bad", device="cpu", init_from=tmp_path / "first")


def test_learning_rate_cosine_decay(phantom_set):
    images, _, sketches = phantom_set
    cfg = TrainConfig(steps=1, lr=1e-3, warmup_steps=1, lr_decay_start=100, lr_decay_steps=50, lr_final_fraction=0.1)
    trainer = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, "/tmp/unused-cf", device="cpu", resume=False)
    rates = []
    for step in (99, 100, 125, 150, 500):
        trainer.step_count = step
        rates.append(trainer._lr())
    assert rates == pytest.approx([1e-3, 1e-3, 0.55e-3, 1e-4, 1e-4])
    assert TrainConfig().lr_decay_start == 0  # off unless asked for: constant after warm-up
    with pytest.raises(InvalidInputError, match="lr_final_fraction"):
        TrainConfig(lr_final_fraction=1.5)


def test_report_carries_budget_rows_of_an_earlier_run(tmp_path, quality_script):
    report = quality_script("report")
    earlier = [{"method": "pix2pix", "sketch": "edges", "nfe": 1, "ssim": 0.4},
               {"method": "cHeartFlow 1-step (37 min)", "sketch": "edges", "nfe": 1, "ssim": 0.51},
               {"method": "cHeartFlow 1-step (37 min)", "sketch": "labels", "nfe": 1, "ssim": 0.3},
               {"method": "cHeartFlow 1-step", "sketch": "edges", "nfe": 1, "ssim": 0.53}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(earlier))
    methods = report.budget_methods(path)
    assert methods == {"cHeartFlow 1-step (37 min)"}
    rows, note = report.carried_rows(path, ["edges"], methods=methods)
    assert [(r["method"], r["ssim"], r["carried_from"]) for r in rows] == [("cHeartFlow 1-step (37 min)", 0.51, str(path))]
    assert "carried" in note
    path.write_text("not json")
    with pytest.raises(SystemExit, match="--carry-budget-rows"):
        report.budget_methods(path)


def test_number_list_fields_take_one_number_and_reject_text():
    # `--set keep_at_minutes=180` parses to an int, not a list
    assert TrainConfig(keep_at_minutes=180).keep_at_minutes == (180.0,)
    assert TrainConfig(keep_at_minutes=[13, 37.5]).keep_at_minutes == (13.0, 37.5)
    with pytest.raises(InvalidInputError, match="keep_at_minutes expects a number"):
        TrainConfig(keep_at_minutes="soon")
