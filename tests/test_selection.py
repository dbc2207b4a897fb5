"""Choosing the checkpoint on val: scores, the best/ folder, resume, and the CLI's --val."""

import json
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cheartflow_sdk.config import ModelConfig, TrainConfig, read_config  # noqa: E402
from cheartflow_sdk.errors import InvalidInputError  # noqa: E402
from cheartflow_sdk.research.metrics.image import psnr, ssim  # noqa: E402
from cheartflow_sdk.training import Trainer, load_encoder  # noqa: E402
from cheartflow_sdk.training.selection import (  # noqa: E402
    BestCheckpoint,
    ValidationResult,
    ValidationSet,
    score_one_step,
)

from conftest import TINY_MODEL  # noqa: E402


def _val_lines_file(path):
    return [r for r in map(json.loads, path.read_text().splitlines()) if "val_ssim" in r]


def _val_lines(run):
    return _val_lines_file(run / "metrics.jsonl")


def _split(phantom_set):
    images, _, sketches = phantom_set
    return (images[:64], sketches[:64]), (images[64:], sketches[64:])


def test_validation_set_is_a_fixed_even_spread(phantom_set):
    images, _, sketches = phantom_set
    val = ValidationSet.from_arrays(images, sketches, max_slices=4)
    np.testing.assert_array_equal(val.images, images[[0, 32, 63, 95]])
    assert val.fingerprint == ValidationSet.from_arrays(images, sketches, 4).fingerprint
    assert val.fingerprint != ValidationSet.from_arrays(images, sketches, 5).fingerprint
    assert len(ValidationSet.from_arrays(images, sketches, 1000).images) == len(images)
    with pytest.raises(InvalidInputError, match="one shape"):
        ValidationSet.from_arrays(images, sketches[:5], 4)
    with pytest.raises(InvalidInputError, match="val_metric"):
        TrainConfig(val_metric="lpips")


def test_score_is_one_step_ssim_and_psnr(phantom_set):
    images, _, sketches = phantom_set
    encoder = Trainer(images[:8], sketches[:8], ModelConfig(**TINY_MODEL), TrainConfig(steps=1), "/tmp/unused-cf-sel",
                      device="cpu", resume=False).encoder
    val = ValidationSet.from_arrays(images, sketches, 10)
    result = score_one_step(encoder, val, step=7, batch_size=3)  # batches of 3 must not change the result
    with torch.no_grad():
        out = encoder(torch.from_numpy(val.sketches) * 2 - 1, torch.ones(len(val.images))).numpy()
    fake, real = np.clip((out + 1) / 2, 0, 1), (val.images + 1) / 2
    assert result.step == 7
    assert result.val_ssim == pytest.approx(ssim(fake, real).mean(), abs=1e-6)
    assert result.val_psnr == pytest.approx(psnr(fake, real).mean(), abs=1e-4)
    assert encoder.training  # scoring leaves the encoder's mode as it was


def test_training_with_val_keeps_the_best_checkpoint(phantom_set, tmp_path):
    (images, sketches), val = _split(phantom_set)
    cfg = TrainConfig(steps=40, batch_size=8, lr=2e-3, warmup_steps=5, ema_decay=0.9, curriculum_start=16,
                      curriculum_end=16, log_every=10, checkpoint_every=10, val_slices=16)
    trainer = Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, tmp_path, device="cpu", val=val)
    trainer.run(progress=False)
    scores = _val_lines(tmp_path)
    assert [r["step"] for r in scores] == [10, 20, 30, 40]  # every checkpoint, once
    best_line = max(scores, key=lambda r: r["val_ssim"])
    _, _, doc = read_config(tmp_path / "best")
    record = doc["selected_on_val"]
    assert record["step"] == best_line["step"] == doc["steps_trained"]
    assert record["value"] == pytest.approx(best_line["val_ssim"]) and record["val_slices"] == 16
    # the kept weights are that checkpoint's (stored in fp16, so scores agree to fp16 rounding)
    rescored = score_one_step(load_encoder(tmp_path / "best"), ValidationSet.from_arrays(*val, 16), 0)
    assert rescored.val_ssim == pytest.approx(record["val_ssim"], abs=2e-3)

    import cheartflow_sdk as cf

    pipe = cf.load_pipeline(tmp_path / "best", backend="torch")
    assert pipe.synthesize(val[1][:2], steps=1).shape == (2, 1, 32, 32)


def test_best_is_read_back_and_only_beaten_by_a_better_score(phantom_set, tmp_path, caplog):
    images, _, sketches = phantom_set
    val = ValidationSet.from_arrays(images, sketches, 8)
    saved = []

    def save(folder, record):
        saved.append(record["step"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"model": {**TINY_MODEL}, "selected_on_val": record}))

    best = BestCheckpoint(tmp_path, val)
    assert best.offer(ValidationResult(10, 0.5, 20.0), save)
    assert not best.offer(ValidationResult(20, 0.4, 25.0), save)  # worse SSIM: kept the old one
    assert not best.offer(ValidationResult(30, float("nan"), 25.0), save)
    assert BestCheckpoint(tmp_path, val).record["step"] == 10  # a resumed run compares with what is on disk
    assert BestCheckpoint(tmp_path, val, metric="psnr").record is None  # chosen by another metric
    with caplog.at_level(logging.WARNING):
        other = BestCheckpoint(tmp_path, ValidationSet.from_arrays(images, sketches, 9))
    assert other.record is None and "other validation slices" in caplog.text
    assert other.offer(ValidationResult(40, 0.1, 5.0), save)
    assert saved == [10, 40]

    def interrupted(folder, record):
        raise KeyboardInterrupt  # e.g. killed between writing the weights and the config

    with pytest.raises(KeyboardInterrupt):
        other.offer(ValidationResult(50, 0.9, 30.0), interrupted)
    assert not (tmp_path / "best" / "config.json").exists()  # no record that could describe other weights
    assert BestCheckpoint(tmp_path, val).record is None


def test_resumed_unscored_state_is_scored_first(phantom_set, tmp_path):
    (images, sketches), val = _split(phantom_set)
    mc = ModelConfig(**TINY_MODEL)
    Trainer(images, sketches, mc, TrainConfig(steps=6, batch_size=4, log_every=2), tmp_path, device="cpu").run(progress=False)
    assert not _val_lines(tmp_path) and not (tmp_path / "best").exists()
    cfg = TrainConfig(steps=10, batch_size=4, log_every=2, checkpoint_every=100, val_slices=8)
    Trainer(images, sketches, mc, cfg, tmp_path, device="cpu", val=val).run(progress=False)
    assert [r["step"] for r in _val_lines(tmp_path)] == [6, 10]
    again = Trainer(images, sketches, mc, cfg, tmp_path, device="cpu", val=val)
    again.run(progress=False)  # nothing left to train, nothing left to score
    assert [r["step"] for r in _val_lines(tmp_path)] == [6, 10]


def test_bundle_ships_the_checkpoint_chosen_on_val(phantom_set, tmp_path, monkeypatch, quality_script):
    bundle = quality_script("bundle_models")
    monkeypatch.setattr(bundle, "PACKAGE_MODELS", tmp_path / "package")
    monkeypatch.setattr(bundle, "TRAINING_LOGS", tmp_path / "logs")

    (images, sketches), val = _split(phantom_set)
    run = tmp_path / "run"
    cfg = TrainConfig(steps=20, batch_size=8, lr=2e-3, warmup_steps=2, log_every=5, checkpoint_every=5, val_slices=8)
    Trainer(images, sketches, ModelConfig(**TINY_MODEL), cfg, run, device="cpu", val=val).run(progress=False)
    chosen = read_config(run / "best")[2]["selected_on_val"]["step"]

    bundle.bundle_model("edges", run)
    shipped = tmp_path / "package" / "edges"
    assert (shipped / "model.safetensors").read_bytes() == (run / "best" / "model.safetensors").read_bytes()
    assert read_config(shipped)[2]["selected_on_val"]["step"] == chosen
    assert (shipped / "model.onnx").is_file() and (shipped / "model.fp16.onnx").is_file()
    assert (tmp_path / "logs" / "edges-metrics.jsonl").read_bytes() == (run / "metrics.jsonl").read_bytes()
    with pytest.raises(InvalidInputError, match="not 'labels'"):
        bundle.bundle_model("labels", run)


def test_budgeted_training_sizes_the_run_and_returns_the_chosen_model(phantom_set, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from cheartflow_sdk.data import SliceSet, save_slices

    images, labels, _ = phantom_set
    n = len(images)
    slices = SliceSet(images, labels, [f"p{i // 8}" for i in range(n)], ["ED"] * n, list(range(n)))
    save_slices(tmp_path / "train.npz", slices.subset(range(64)))
    save_slices(tmp_path / "val.npz", slices.subset(range(64, n)))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "quality" / "train_budgeted.py"
    res = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(script), "--data", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"),
         "--out", str(tmp_path / "run"), "--preset", "tiny", "--resolution", "32", "--budget-s", "4",
         "--probe-steps", "3", "--set", "batch_size=4", "--device", "cpu", "--results-dir", str(res)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((res / "train-edges.json").read_text())
    assert {"device", "date", "versions", "command", "metrics"} <= set(doc)
    m = doc["metrics"]
    assert m["steps_planned"] >= 10 and 0 < m["steps_trained"] <= m["steps_planned"]
    assert m["chosen_step"] == doc["selected_on_val"]["step"] and 0 < m["chosen_step"] <= m["steps_trained"]
    assert (res / "train-edges-best.safetensors").read_bytes() == (tmp_path / "run" / "best" / "model.safetensors").read_bytes()
    assert json.loads((res / "train-edges-best-config.json").read_text())["selected_on_val"]["step"] == m["chosen_step"]
    assert len(_val_lines_file(res / "train-edges-metrics.jsonl")) >= 1


def test_resumed_run_with_other_settings_records_what_made_each_checkpoint(phantom_set, tmp_path):
    (images, sketches), val = _split(phantom_set)
    mc = ModelConfig(**TINY_MODEL)
    first = TrainConfig(steps=6, batch_size=4, log_every=2, curriculum_start=10, curriculum_end=20)
    Trainer(images, sketches, mc, first, tmp_path, device="cpu").run(progress=False)
    longer = TrainConfig(steps=10, batch_size=4, log_every=2, curriculum_start=20, curriculum_end=20, val_slices=8)
    resumed = Trainer(images, sketches, mc, longer, tmp_path, device="cpu", val=val)
    resumed.validate()  # the resumed state (step 6) was made by the first settings alone
    _, best_cfg, best_doc = read_config(tmp_path / "best")
    assert best_doc["selected_on_val"]["step"] == 6 and best_cfg == first and "train_history" not in best_doc
    resumed.run(progress=False)

    _, train_cfg, doc = read_config(tmp_path)  # the final weights: 6 steps of one setting, 4 of the other
    assert train_cfg == longer
    assert [(seg["from_step"], seg["train"]["curriculum_start"]) for seg in doc["train_history"]] == [(0, 10), (6, 20)]
    # resuming again with the same settings adds no segment
    Trainer(images, sketches, mc, longer, tmp_path, device="cpu").run(progress=False)
    assert len(read_config(tmp_path)[2]["train_history"]) == 2
