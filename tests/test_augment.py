"""Geometric augmentation of training pairs: small affine moves, the sketch made again from the moved image."""

import json
import math

import numpy as np
import pytest

from cheartflow_sdk.config import ModelConfig, TrainConfig
from cheartflow_sdk.errors import InvalidInputError
from cheartflow_sdk.sketch import canny, from_labels

torch = pytest.importorskip("torch")

from cheartflow_sdk.training import Trainer, augment  # noqa: E402

from conftest import TINY_MODEL  # noqa: E402

MOVES = dict(augment_rotate_deg=10.0, augment_scale=0.1, augment_shift=0.04)
IDENTITY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_off_by_default_and_when_nothing_moves():
    assert not augment.enabled(TrainConfig())
    assert not augment.enabled(TrainConfig(augment_prob=1.0))  # no rotation, scale or shift to apply
    assert not augment.enabled(TrainConfig(augment_prob=0.0, **MOVES))
    assert augment.enabled(TrainConfig(augment_prob=0.5, augment_rotate_deg=5.0))


def test_random_affine_stays_within_its_bounds_and_moves_about_prob_of_the_pairs():
    cfg = TrainConfig(augment_prob=0.5, **MOVES)
    theta, moved = augment.random_affine(4000, cfg, torch.Generator().manual_seed(0))
    linear = theta[:, :, :2]
    scale = 1 / torch.linalg.det(linear).sqrt()  # the grid's matrix is R(angle) / scale
    angle = torch.atan2(theta[:, 1, 0], theta[:, 0, 0])
    assert torch.equal(moved, (theta - IDENTITY).abs().amax((1, 2)) > 0)  # the mask names exactly the moved pairs
    assert 0.45 < float(moved.float().mean()) < 0.55
    assert float(angle.abs().max()) <= math.radians(10.0) + 1e-6
    assert float((scale - 1).abs().max()) <= 0.1 + 1e-5
    assert float(theta[:, :, 2].abs().max()) <= 2 * 0.04 + 1e-6  # normalized coordinates span 2 per side
    assert torch.equal(theta[~moved], IDENTITY.expand(int((~moved).sum()), 2, 3))


def test_identity_warp_returns_the_input():
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(augment.warp(x, IDENTITY.expand(3, 2, 3), "bilinear"), x, atol=1e-5, rtol=0)
    assert torch.equal(augment.warp(x, IDENTITY.expand(3, 2, 3), "nearest"), x)


def test_edge_sketches_are_remade_by_canny_of_the_moved_image(phantom_set):
    images, _, sketches = phantom_set
    x0, x1 = torch.from_numpy(images[:16]), torch.from_numpy(sketches[:16] * 2 - 1)
    cfg = TrainConfig(augment_prob=0.5, **MOVES)
    new_x0, new_x1 = augment.augment_pairs(x0, x1, "edges", cfg, torch.Generator().manual_seed(3))
    moved = (new_x0 != x0).flatten(1).any(1)
    assert 0 < int(moved.sum()) < 16
    assert torch.equal(new_x1[~moved], x1[~moved])  # pairs left alone keep their own sketch
    np.testing.assert_array_equal(new_x1[moved].numpy(), canny(new_x0[moved].numpy()) * 2 - 1)
    assert float(new_x0.min()) >= -1 and float(new_x0.max()) <= 1


def test_label_sketches_are_warped_and_keep_their_levels(phantom_set):
    images, labels, _ = phantom_set
    x0, x1 = torch.from_numpy(images[:8]), torch.from_numpy(from_labels(labels[:8]) * 2 - 1)
    cfg = TrainConfig(augment_prob=1.0, **MOVES)
    new_x0, new_x1 = augment.augment_pairs(x0, x1, "labels", cfg, torch.Generator().manual_seed(1))
    assert not torch.equal(new_x1, x1)
    assert set(np.unique(new_x1.numpy())) <= set(np.unique(x1.numpy()))
    # the image moved by the same map as its labels
    theta, moved = augment.random_affine(8, cfg, torch.Generator().manual_seed(1))
    assert bool(moved.all())  # augment_prob = 1 moves every pair
    torch.testing.assert_close(new_x0, augment.warp(x0, theta, "bilinear").clamp(-1, 1))


def test_config_rejects_bad_augmentation_values():
    for bad in (dict(augment_prob=1.5), dict(augment_prob=float("nan")), dict(augment_rotate_deg=90.0),
                dict(augment_scale=-0.1), dict(augment_shift=0.5)):
        with pytest.raises(InvalidInputError, match="augment"):
            TrainConfig(**bad)


@pytest.mark.parametrize("kind", ["edges", "labels"])
def test_training_with_augmentation_runs_and_repeats_for_a_seed(phantom_set, tmp_path, kind):
    images, labels, edges = phantom_set
    sketches = edges if kind == "edges" else from_labels(labels)
    cfg = TrainConfig(steps=3, batch_size=8, warmup_steps=1, log_every=1, checkpoint_every=10**6, augment_prob=1.0, **MOVES)
    losses = []
    for run in ("a", "b"):
        trainer = Trainer(images, sketches, ModelConfig(**TINY_MODEL, sketch_kind=kind), cfg, tmp_path / run,
                          device="cpu", resume=False)
        losses.append([r.loss for r in trainer.run(progress=False)])
    assert all(np.isfinite(losses[0])) and losses[0] == losses[1]


def test_fit_gap_scores_both_splits(trained_model_dir, tmp_path, quality_script):
    from cheartflow_sdk.data import SliceSet, save_slices
    from cheartflow_sdk.data.phantom import make_phantom

    from conftest import RES

    paths = {}
    for split, seed in (("train", 0), ("val", 5)):
        images, labels = make_phantom(8, size=RES, seed=seed)
        paths[split] = save_slices(tmp_path / f"{split}.npz", SliceSet(
            images=images, labels=labels.astype(np.uint8), patients=["p"] * 8, frames=["ED"] * 8, slice_index=list(range(8))))
    out = tmp_path / "fit_gap.json"
    assert quality_script("fit_gap").main(["--model", f"tiny={trained_model_dir}", "--train", str(paths["train"]),
                                            "--val", str(paths["val"]), "--count", "8", "--out", str(out)]) == 0
    scores = json.loads(out.read_text())["models"]["tiny"]
    assert set(scores) == {"train", "val"} and scores["train"] != scores["val"]
    assert all(-1 <= s["ssim"] <= 1 and np.isfinite(s["psnr"]) for s in scores.values())
