"""The models and example sketches that ship inside the package, and the demo that uses them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cheartflow_sdk as cf
from cheartflow_sdk.examples import EXAMPLE_COUNT, example_dir, load_example_sketches, make_example_sketches
from cheartflow_sdk.pipeline import default_model_dir

KINDS = ("edges", "labels")


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_examples_are_the_regenerable_phantom_sketches(kind):
    shipped, names = load_example_sketches(kind)
    assert names == [f"example_{i:02d}" for i in range(EXAMPLE_COUNT)]
    assert shipped.shape == (EXAMPLE_COUNT, 1, 128, 128)
    np.testing.assert_array_equal(shipped, make_example_sketches(kind))
    levels = np.array({"edges": [0, 1], "labels": [0, 1 / 3, 2 / 3, 1]}[kind], np.float32)
    np.testing.assert_allclose(levels[np.abs(shipped[..., None] - levels).argmin(-1)], shipped, atol=1e-6)
    assert (shipped > 0).mean() > 0.01  # each set draws a heart, not an empty canvas


def test_example_kind_is_checked():
    with pytest.raises(cf.InvalidInputError, match="edges"):
        example_dir("scribbles")


@pytest.mark.parametrize("kind", KINDS)
def test_bundled_model_files_and_config(kind):
    folder = default_model_dir(kind)
    for name in ("model.onnx", "model.fp16.onnx", "model.safetensors", "config.json"):
        assert (folder / name).is_file(), f"{folder / name} is missing from the package"
    doc = json.loads((folder / "config.json").read_text())
    assert doc["model"]["sketch_kind"] == kind and doc["model"]["resolution"] == 128
    assert doc["steps_trained"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_bundled_model_loads_without_a_path_and_synthesizes_the_examples(kind):
    pipe = cf.load_pipeline(None, sketch_kind=kind)
    assert pipe.backend.startswith("onnxruntime") and pipe.config.sketch_kind == kind
    sketches, _ = load_example_sketches(kind)
    one = pipe.synthesize(sketches, steps=1, seed=3)
    two = pipe.synthesize(sketches, steps=2, seed=3)
    assert one.shape == two.shape == sketches.shape and one.dtype == np.float32
    assert np.isfinite(one).all() and one.min() >= 0 and one.max() <= 1
    assert one.std(axis=(1, 2, 3)).min() > 0.05  # real contrast, not a flat image
    np.testing.assert_array_equal(two, pipe.synthesize(sketches, steps=2, seed=3))


def test_bundled_labels_model_draws_bright_blood_and_dark_myocardium():
    # Cine bSSFP contrast: the LV blood pool (label 3) is bright and the myocardium (label 2) dark.
    pipe = cf.load_pipeline(None, sketch_kind="labels")
    sketches, _ = load_example_sketches("labels")
    images = pipe.synthesize(sketches, steps=1, seed=0)[:, 0]
    labels = np.rint(sketches[:, 0] * 3).astype(int)
    for img, lab in zip(images, labels):
        assert img[lab == 3].mean() > img[lab == 2].mean() + 0.1


@pytest.mark.parametrize("engine", ["model.onnx", "model.fp16.onnx"])
@pytest.mark.parametrize("kind", KINDS)
def test_bundled_onnx_matches_its_checkpoint(kind, engine):
    pytest.importorskip("torch")
    from cheartflow_sdk.export import verify_engine

    report = verify_engine(default_model_dir(kind) / engine, device="cpu")
    assert report.passed and report.source_matches, report.summary()


def test_missing_bundled_model_raises_an_actionable_error(monkeypatch, tmp_path):
    from cheartflow_sdk import pipeline

    monkeypatch.setattr(pipeline, "default_model_dir", lambda kind="edges": tmp_path / kind)
    with pytest.raises(cf.ModelNotAvailableError, match="cheartflow train"):
        cf.load_pipeline(None)


def test_demo_writes_a_grid_of_both_bundled_models(tmp_path):
    import cv2

    from cheartflow_sdk.cli import main

    assert main(["-q", "demo", "--out", str(tmp_path)]) == 0
    grid = cv2.imread(str(tmp_path / "grid.png"), cv2.IMREAD_GRAYSCALE)
    assert grid is not None
    assert grid.shape[1] == 6 * 128 + 7 * 2  # edges sketch | 1-step | 2-step | labels sketch | 1-step | 2-step
    assert grid.shape[0] > EXAMPLE_COUNT * 128


def test_demo_without_bundled_models_falls_back_to_the_phantom_demo(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from cheartflow_sdk import pipeline
    from cheartflow_sdk.cli import main

    monkeypatch.setattr(pipeline, "default_model_dir", lambda kind="edges": tmp_path / "none" / kind)
    assert main(["-q", "demo", "--out", str(tmp_path / "demo"), "--train-steps", "3"]) == 0
    assert (tmp_path / "demo" / "grid.png").is_file() and (tmp_path / "demo" / "model" / "model.onnx").is_file()


def test_bundled_segmenter_recovers_the_anatomy_the_labels_model_drew():
    pytest.importorskip("torch")
    from cheartflow_sdk.research.segmentation import load_segmenter, mean_foreground_dice

    sketches, _ = load_example_sketches("labels")
    labels = np.rint(sketches[:, 0] * 3).astype(np.uint8)
    images = cf.load_pipeline(None, sketch_kind="labels").synthesize(sketches, steps=1, seed=0)
    dice = mean_foreground_dice(load_segmenter(None).segment(images * 2 - 1), labels)
    # Measured 0.61-0.91 per example (mean 0.76) for the shipped preview models; a broken model or
    # segmenter gives ~0.
    assert dice.mean() > 0.6 and dice.min() > 0.4
