"""The procedural phantom and the ACDC-layout writer (generated data only)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from cheartflow_sdk.data import make_phantom, write_phantom_acdc
from cheartflow_sdk.errors import InvalidInputError


def test_phantom_shapes_dtypes_and_range():
    images, labels = make_phantom(10, size=64, seed=3)
    assert images.shape == (10, 1, 64, 64) and images.dtype == np.float32
    assert labels.shape == (10, 64, 64) and labels.dtype == np.uint8
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    for lab in labels:  # every image has all four classes
        assert set(np.unique(lab)) == {0, 1, 2, 3}


def test_phantom_is_deterministic_and_seed_dependent():
    a_img, a_lab = make_phantom(4, size=48, seed=7)
    b_img, b_lab = make_phantom(4, size=48, seed=7)
    c_img, _ = make_phantom(4, size=48, seed=8)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)


def test_phantom_intensities_follow_labels():
    images, labels = make_phantom(20, size=96, seed=0)
    img = images[:, 0]
    lv, myo, bg = img[labels == 3].mean(), img[labels == 2].mean(), img[labels == 0].mean()
    assert lv > myo + 0.5  # bright blood pool, dark myocardium
    assert img[labels == 1].mean() > myo + 0.5
    assert lv > bg


def test_phantom_rejects_bad_arguments():
    with pytest.raises(InvalidInputError, match="size"):
        make_phantom(2, size=4)
    with pytest.raises(InvalidInputError, match="n must be"):
        make_phantom(-1)


def test_phantom_zero_images():
    images, labels = make_phantom(0, size=32)
    assert images.shape == (0, 1, 32, 32) and labels.shape == (0, 32, 32)


def test_write_phantom_acdc_layout(tmp_path):
    splits = write_phantom_acdc(tmp_path, n_patients=3, slices_per_volume=3, size=32, seed=1)
    assert json.loads((tmp_path / "splits.json").read_text()) == splits
    assert sorted(sum(splits.values(), [])) == ["patient001", "patient002", "patient003"]
    assert all(len(v) == 1 for v in splits.values())
    for tag in ("frame01", "frame02"):
        img = nib.load(str(tmp_path / "patient002" / f"patient002_{tag}.nii.gz")).get_fdata()
        gt = nib.load(str(tmp_path / "patient002" / f"patient002_{tag}_gt.nii.gz")).get_fdata()
        assert img.shape == gt.shape == (32, 48, 3)  # non-square, like ACDC
        assert 0.0 <= img.min() and img.max() <= 1.0
        assert gt[:, :, :2].max() == 3 and gt[:, :, 2].max() == 0  # the last slice has no heart
