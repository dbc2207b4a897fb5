"""The demo's edge sketches: the chest phantom they come from, and their closeness to the training edges."""

from __future__ import annotations

import numpy as np
import pytest

import cheartflow_sdk as cf
from cheartflow_sdk.data.phantom import make_chest_phantom, make_phantom
from cheartflow_sdk.examples import (
    EXAMPLE_COUNT,
    EXAMPLE_SEED,
    edge_components,
    edge_density,
    heart_crops,
    make_example_sketches,
)
from cheartflow_sdk.sketch import canny

# ACDC training edge sketches (canny of packed/train-128.npz, 1269 slices), measured by
# benchmarks/demo_sketches.py (benchmarks/results/demo-sketches.json): edge-pixel fraction
# 5th percentile 0.077, quartiles 0.091 / 0.100 / 0.110, 95th percentile 0.123; 8-connected
# fragments 5th percentile 29, quartiles 39 / 46 / 53. The demo's examples measure 0.104 [0.096, 0.106]
# and 36 [31, 38]; the plain-phantom curves the demo used before, 0.039 and 4.
ACDC_DENSITY_P5_P95 = (0.077, 0.123)
ACDC_DENSITY_IQR = (0.091, 0.110)
ACDC_FRAGMENTS_P5 = 29


def test_chest_phantom_is_deterministic_and_labelled_like_acdc():
    images, labels = make_chest_phantom(3, size=128, seed=1)
    again, again_labels = make_chest_phantom(3, size=128, seed=1)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(images, make_chest_phantom(3, size=128, seed=2)[0])
    assert images.shape == (3, 1, 128, 128) and images.dtype == np.float32
    assert labels.shape == (3, 128, 128) and labels.dtype == np.uint8
    assert images.min() >= -1 and images.max() <= 1
    for img, lab in zip(images[:, 0], labels):
        assert set(np.unique(lab)) == {0, 1, 2, 3}
        # bSSFP contrast: bright blood pools, dark myocardium
        assert img[lab == 3].mean() > img[lab == 2].mean() + 0.5
        assert img[lab == 1].mean() > img[lab == 2].mean() + 0.4


def test_chest_phantom_checks_its_arguments():
    with pytest.raises(cf.InvalidInputError, match="n must be"):
        make_chest_phantom(-1)
    with pytest.raises(cf.InvalidInputError, match="size must be"):
        make_chest_phantom(2, size=8)
    empty_images, empty_labels = make_chest_phantom(0)
    assert empty_images.shape == (0, 1, 256, 256) and empty_labels.shape == (0, 256, 256)


def test_edge_examples_are_binary_and_as_dense_as_training_edges():
    # (that they are deterministic and equal to the shipped PNGs: test_default_models.py)
    sketches = make_example_sketches("edges")
    assert sketches.shape == (EXAMPLE_COUNT, 1, 128, 128) and sketches.dtype == np.float32
    assert set(np.unique(sketches)) == {0.0, 1.0}
    density, fragments = edge_density(sketches), edge_components(sketches)
    assert ((density > ACDC_DENSITY_P5_P95[0]) & (density < ACDC_DENSITY_P5_P95[1])).all(), density
    assert ACDC_DENSITY_IQR[0] <= np.median(density) <= ACDC_DENSITY_IQR[1], density
    assert np.median(fragments) >= ACDC_FRAGMENTS_P5, fragments
    # the plain heart phantom's edges (what the demo showed before): far sparser, a few clean curves
    old = canny(heart_crops(*make_phantom(EXAMPLE_COUNT, size=256, seed=EXAMPLE_SEED))[0])
    assert np.median(density) > 2 * np.median(edge_density(old))
    assert np.median(fragments) > 5 * np.median(edge_components(old))


def test_edge_statistics_on_hand_made_sketches():
    sketches = np.zeros((2, 1, 8, 8), np.float32)
    sketches[0, 0, 1, 1:5] = 1  # one line of 4 pixels
    sketches[0, 0, 6, 6] = 1  # and a separate dot
    sketches[1, 0, 2:5, 2] = 1  # one line, diagonal neighbour joins it (8-connectivity)
    sketches[1, 0, 5, 3] = 1
    np.testing.assert_allclose(edge_density(sketches), [5 / 64, 4 / 64])
    np.testing.assert_array_equal(edge_components(sketches), [2, 1])
