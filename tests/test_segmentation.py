"""The evaluation segmenter: Dice math, a short training run on phantoms, features, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cheartflow_sdk.errors import InvalidInputError, ModelNotAvailableError
from cheartflow_sdk.research.segmentation import (
    SegmenterConfig,
    SegTrainConfig,
    dice_per_class,
    mean_foreground_dice,
    read_segmenter_config,
)

TINY_SEG = dict(resolution=32, base_channels=8, channel_mult=(1, 2, 4), groups=4)


def test_dice_per_class_hand_example():
    target = np.zeros((1, 4, 4), np.uint8)
    target[0, :2, :2] = 1  # 4 RV pixels
    target[0, 2:, 2:] = 3  # 4 LV pixels
    pred = np.zeros_like(target)
    pred[0, :2, :1] = 1  # 2 RV pixels, both right
    pred[0, 2:, 2:] = 3  # LV exact
    pred[0, 0, 3] = 2  # 1 MYO pixel where there is none
    d = dice_per_class(pred, target)
    np.testing.assert_allclose(d, [[2 * 2 / (2 + 4), 0.0, 1.0]])
    assert mean_foreground_dice(pred, target)[0] == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_dice_skips_classes_absent_from_both():
    target = np.zeros((2, 4, 4), np.uint8)
    target[0, 1:3, 1:3] = 3
    pred = target.copy()
    d = dice_per_class(pred, target)
    assert np.isnan(d[0, 0]) and np.isnan(d[0, 1]) and d[0, 2] == 1.0
    m = mean_foreground_dice(pred, target)
    assert m[0] == 1.0 and np.isnan(m[1])  # the second slice has no foreground anywhere
    with pytest.raises(InvalidInputError, match="one shape"):
        dice_per_class(pred, target[:1])
    with pytest.raises(InvalidInputError, match="integer label maps"):
        dice_per_class(pred.astype(np.float32), target)


def test_soft_dice_loss_is_near_zero_for_a_confident_correct_prediction():
    torch = pytest.importorskip("torch")
    from cheartflow_sdk.research.segmentation import soft_dice_loss

    target = torch.randint(0, 4, (2, 8, 8))
    logits = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float() * 50
    assert float(soft_dice_loss(logits, target)) < 1e-3
    assert float(soft_dice_loss(-logits, target)) > 0.9


@pytest.fixture(scope="module")
def trained_segmenter(tmp_path_factory):
    pytest.importorskip("torch")
    from cheartflow_sdk.data.phantom import make_phantom
    from cheartflow_sdk.research.segmentation import train_segmenter

    images, labels = make_phantom(128, size=32, seed=0)
    val = make_phantom(24, size=32, seed=1)
    out = tmp_path_factory.mktemp("segmenter")
    cfg = SegTrainConfig(steps=48, batch_size=16, lr=3e-3, warmup_steps=4, log_every=24, checkpoint_every=24)
    seg, results = train_segmenter(images, labels, SegmenterConfig(**TINY_SEG), cfg, out, device="cpu", val=val, progress=False)
    return seg, results, out, val


def test_training_on_phantoms_raises_dice(trained_segmenter):
    seg, results, out, (val_images, val_labels) = trained_segmenter
    assert len(results) == 48
    assert results[-1].loss < results[0].loss
    dice = float(np.nanmean(mean_foreground_dice(seg.segment(val_images), val_labels)))
    assert dice > 0.3, dice  # a random net scores ~0.1; the bar only checks that training works
    assert results[-1].val_dice == pytest.approx(dice)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [24, 48]


def test_features_and_labels_shapes(trained_segmenter):
    seg, _, _, (val_images, _) = trained_segmenter
    labels, feats = seg.run(val_images[:5], batch_size=2)
    assert labels.shape == (5, 32, 32) and labels.dtype == np.uint8 and labels.max() <= 3
    assert feats.shape == (5, seg.feature_dim) and seg.feature_dim == 8 * 4
    np.testing.assert_array_equal(seg.segment(val_images[:5]), labels)
    np.testing.assert_allclose(seg.bottleneck_features(val_images[:5]), feats, rtol=1e-4, atol=1e-4)  # unit-variance features


def test_features_are_normalized_on_the_training_images(trained_segmenter):
    from cheartflow_sdk.data.phantom import make_phantom

    seg, _, out, _ = trained_segmenter
    train_images, _ = make_phantom(128, size=32, seed=0)  # the training set of the fixture
    feats = seg.bottleneck_features(train_images)
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-4)
    assert feats.var(axis=0, ddof=1).mean() == pytest.approx(1.0, rel=1e-3)
    assert json.loads((out / "config.json").read_text())["feature_scale"] > 0


def test_save_load_round_trip(trained_segmenter):
    from cheartflow_sdk.research.segmentation import load_segmenter

    seg, _, out, (val_images, _) = trained_segmenter
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.jsonl", "segmenter.safetensors"]
    cfg, doc = read_segmenter_config(out)
    assert cfg == SegmenterConfig(**TINY_SEG) and doc["steps_trained"] == 48 and doc["train"]["steps"] == 48
    loaded = load_segmenter(out, device="cpu")
    np.testing.assert_array_equal(loaded.segment(val_images), seg.segment(val_images))
    np.testing.assert_allclose(loaded.bottleneck_features(val_images), seg.bottleneck_features(val_images), rtol=1e-4, atol=1e-4)


def test_bad_inputs_and_missing_files(trained_segmenter, tmp_path):
    from cheartflow_sdk.research.segmentation import load_segmenter, train_segmenter

    seg, _, out, (val_images, val_labels) = trained_segmenter
    with pytest.raises(InvalidInputError, match=r"\[N, 1, 32, 32\]"):
        seg.segment(np.zeros((2, 1, 16, 16), np.float32))
    with pytest.raises(InvalidInputError, match=r"\[-1, 1\]"):
        seg.segment(val_images * 3)
    with pytest.raises(ModelNotAvailableError, match="nowhere"):
        load_segmenter(tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text((out / "config.json").read_text())
    (tmp_path / "broken" / "segmenter.safetensors").write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="segmenter.safetensors"):
        load_segmenter(tmp_path / "broken")
    with pytest.raises(InvalidInputError, match="labels must lie in 0..3"):
        train_segmenter(val_images, val_labels.astype(np.int64) + 4, SegmenterConfig(**TINY_SEG), SegTrainConfig(steps=1),
                        device="cpu", progress=False)


def test_no_bundled_segmenter_gives_an_actionable_error(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    from cheartflow_sdk.research.segmentation import load_segmenter
    from cheartflow_sdk.research.segmentation import model as seg_model

    monkeypatch.setattr(seg_model, "default_segmenter_dir", lambda: tmp_path / "segmenter")
    with pytest.raises(ModelNotAvailableError, match="cheartflow train-seg"):
        load_segmenter(None)


def test_configs_validate():
    with pytest.raises(InvalidInputError, match="divisible"):
        SegmenterConfig(resolution=30, channel_mult=(1, 2, 4))
    with pytest.raises(InvalidInputError):
        SegTrainConfig(steps=0)
    assert SegmenterConfig().feature_dim == 128
