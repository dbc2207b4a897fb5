"""Sketch extraction and hand-drawing normalisation (generated data only)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cheartflow_sdk import sketch
from cheartflow_sdk.data import make_phantom
from cheartflow_sdk.errors import InvalidInputError


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(4, size=96, seed=5)


def test_canny_on_phantom_follows_label_boundaries(phantom):
    images, labels = phantom
    edges = sketch.canny(images)
    assert edges.shape == images.shape and edges.dtype == np.float32
    assert set(np.unique(edges)) <= {0.0, 1.0}
    for edge, lab in zip(edges[:, 0], labels):
        lv = (lab == 3).astype(np.uint8)
        boundary = cv2.morphologyEx(lv, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        near = cv2.dilate(boundary.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert edge[near].mean() > 0.1  # the LV/myocardium border is traced
        assert edge[near].sum() > 0.8 * boundary.sum() / 2


def test_canny_accepts_uint8_and_explicit_thresholds(phantom):
    images, _ = phantom
    u8 = np.rint((images[:, 0] + 1) * 127.5).astype(np.uint8)
    np.testing.assert_array_equal(sketch.canny(u8), sketch.canny(images))
    few = sketch.canny(images, low=200, high=250)
    assert few.sum() < sketch.canny(images, low=10, high=30).sum()
    lo, hi = sketch.auto_thresholds(np.full((8, 8), 100, np.uint8))
    assert (lo, hi) == (66.0, 133.0)
    assert sketch.auto_thresholds(np.zeros((8, 8), np.uint8)) == (sketch.AUTO_MIN_LOW, 2 * sketch.AUTO_MIN_LOW)


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((2, 3, 8, 8), np.float32), r"\[B, 1, H, W\]"),
        (np.full((1, 1, 8, 8), 2.0, np.float32), r"in \[-1, 1\]"),
        (np.full((1, 1, 8, 8), np.nan, np.float32), "finite"),
        (np.zeros((8, 8), np.uint8), r"\[B, H, W\]"),
        (np.zeros((1, 8, 8), np.int32), "dtype"),
    ],
)
def test_canny_rejects_bad_inputs(images, match):
    with pytest.raises(InvalidInputError, match=match):
        sketch.canny(images)


def test_canny_rejects_bad_thresholds():
    with pytest.raises(InvalidInputError, match="low <= high"):
        sketch.canny(np.zeros((1, 8, 8), np.uint8), low=50, high=10)


def test_from_labels_levels():
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    out = sketch.from_labels(labels)
    assert out.shape == (1, 1, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [[0, 1 / 3], [2 / 3, 1]])
    assert sketch.from_labels(np.stack([labels] * 3).astype(np.int64)).shape == (3, 1, 2, 2)
    with pytest.raises(InvalidInputError, match="0..3"):
        sketch.from_labels(np.full((2, 2), 5))
    with pytest.raises(InvalidInputError, match="shape"):
        sketch.from_labels(np.zeros((2, 2, 2, 2)))


def test_make_sketch_dispatch(phantom):
    images, labels = phantom
    np.testing.assert_array_equal(sketch.make_sketch("edges", images=images), sketch.canny(images))
    np.testing.assert_array_equal(sketch.make_sketch("labels", labels=labels), sketch.from_labels(labels))
    with pytest.raises(InvalidInputError, match="unknown sketch kind 'scribble'.*edges, labels"):
        sketch.make_sketch("scribble", images=images)
    with pytest.raises(InvalidInputError, match="needs images"):
        sketch.make_sketch("edges", labels=labels)
    with pytest.raises(InvalidInputError, match="needs labels"):
        sketch.make_sketch("labels", images=images)


def _drawing(h=256, w=320, thickness=6):
    """Dark circles on white paper, like a pen drawing, uint8 [H, W]."""
    paper = np.full((h, w), 255, np.uint8)
    cv2.circle(paper, (w // 2, h // 2), 60, 0, thickness)
    cv2.circle(paper, (w // 2, h // 2), 90, 0, thickness)
    return paper


def test_normalize_drawing_edges_dark_on_light():
    out = sketch.normalize_drawing(_drawing(), "edges", size=128)
    assert out.shape == (1, 1, 128, 128) and out.dtype == np.float32
    assert set(np.unique(out)) == {0.0, 1.0}
    assert out[0, 0, 0, 0] == 0 and out.mean() < 0.1  # inverted: background 0, lines 1
    # the strokes are thinned to about one pixel: the 256x320 drawing is padded to 320x320 (never stretched),
    # so the circles of radii 60 and 90 become circles of radii 24 and 36 px at 128 (perimeters ~150 + ~225)
    assert 250 < out.sum() < 700
    eroded = cv2.erode(out[0, 0].astype(np.uint8), np.ones((2, 2), np.uint8))
    assert eroded.sum() < 0.1 * out.sum()  # almost no 2x2 blocks of line


def test_normalize_drawing_rgb_rgba_and_native_size():
    gray = _drawing(128, 128, thickness=3)
    rgb = np.stack([gray] * 3, axis=-1)
    out_gray = sketch.normalize_drawing(gray, "edges")
    out_rgb = sketch.normalize_drawing(rgb, "edges")
    assert out_rgb.shape == (1, 1, 128, 128)
    np.testing.assert_array_equal(out_gray, out_rgb)
    rgba = np.concatenate([rgb, np.full((128, 128, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(sketch.normalize_drawing(rgba, "edges"), out_gray)
    float_in = sketch.normalize_drawing(gray.astype(np.float32) / 255, "edges")
    np.testing.assert_array_equal(float_in, out_gray)


def test_normalize_drawing_keeps_thin_lines_when_shrinking():
    paper = np.full((1024, 1024), 255, np.uint8)
    cv2.circle(paper, (512, 512), 300, 0, 1)  # a one-pixel pen line, 8x larger than the output
    out = sketch.normalize_drawing(paper, "edges", size=128)
    perimeter = 2 * np.pi * 300 / 8
    assert 0.8 * perimeter < out.sum() < 1.3 * perimeter


def test_normalize_drawing_light_on_dark_is_not_inverted():
    out = sketch.normalize_drawing(255 - _drawing(128, 128, 2), "edges")
    assert out[0, 0, 0, 0] == 0 and 0 < out.mean() < 0.1


def test_normalize_drawing_labels_snaps_levels():
    rng = np.random.default_rng(0)
    labels = np.zeros((200, 200), np.uint8)
    labels[40:160, 40:160] = 1
    labels[70:130, 70:130] = 2
    labels[90:110, 90:110] = 3
    drawn = np.clip(labels.astype(np.float32) * 85 + rng.normal(0, 10, labels.shape), 0, 255).astype(np.uint8)
    out = sketch.normalize_drawing(drawn, "labels", size=100)
    assert out.shape == (1, 1, 100, 100)
    np.testing.assert_allclose(out[0, 0], labels[::2, ::2] / 3, atol=1e-6)


@pytest.mark.parametrize(
    "image, kind, match",
    [
        (np.zeros((8, 8)), "colour", "unknown sketch kind"),
        (np.zeros((2, 8, 8, 3)), "edges", "shape"),
        (np.zeros((8, 8, 2)), "edges", "shape"),
        (np.full((8, 8), 2.0), "edges", r"in \[0, 1\]"),
        (np.full((8, 8), np.nan), "edges", "finite"),
        (np.zeros((8, 8), np.int64), "labels", "dtype"),
    ],
)
def test_normalize_drawing_rejects_bad_inputs(image, kind, match):
    with pytest.raises(InvalidInputError, match=match):
        sketch.normalize_drawing(image, kind)


def test_normalize_drawing_rejects_bad_size():
    with pytest.raises(InvalidInputError, match="size"):
        sketch.normalize_drawing(np.zeros((8, 8)), "edges", size=0)
