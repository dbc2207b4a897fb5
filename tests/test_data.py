"""Preprocessing, ACDC loading and slice files (generated data only, never /work/shared)."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

from cheartflow_sdk.data import (
    PreprocessConfig,
    SliceSet,
    load_acdc,
    load_slices,
    preprocess,
    save_slices,
    write_phantom_acdc,
)
from cheartflow_sdk.errors import InvalidInputError


def _off_centre_heart(shape=(160, 200), centre=(40, 140), radius=12, seed=0):
    """A noisy image with a bright disc (LV) in a ring (MYO) away from the image centre."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - centre[0], xx - centre[1])
    labels = np.where(r < radius, 3, np.where(r < radius + 5, 2, 0)).astype(np.uint8)
    image = 0.3 + 0.05 * rng.standard_normal(shape)
    image[labels == 3] = 0.9
    image[labels == 2] = 0.1
    return image, labels


# ---------------------------------------------------------------- preprocess


def test_preprocess_shape_dtype_range():
    image, labels = _off_centre_heart()
    out, lab = preprocess(image, labels, PreprocessConfig(size=64))
    assert out.shape == (64, 64) and out.dtype == np.float32
    assert lab.shape == (64, 64) and lab.dtype == np.uint8
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert out.min() == -1.0 and out.max() == 1.0  # the percentiles reach both ends
    assert set(np.unique(lab)) == {0, 2, 3}


def test_preprocess_centres_the_crop_on_the_heart():
    image, labels = _off_centre_heart(centre=(40, 140))
    _, lab = preprocess(image, labels, PreprocessConfig(size=64, crop_scale=2.0, min_crop=16))
    rows, cols = np.nonzero(lab)
    assert abs(rows.mean() - 31.5) < 1.5 and abs(cols.mean() - 31.5) < 1.5
    # crop side 2 x bbox (34 px) = 68 px -> the heart spans about half the output
    assert 28 <= rows.max() - rows.min() + 1 <= 36


def test_preprocess_pads_when_the_crop_leaves_the_image():
    image, labels = _off_centre_heart(shape=(100, 100), centre=(10, 90), radius=6)
    out, lab = preprocess(image, labels, PreprocessConfig(size=64, crop_scale=3.0, min_crop=16))
    rows, cols = np.nonzero(lab)
    assert abs(rows.mean() - 31.5) < 1.5 and abs(cols.mean() - 31.5) < 1.5
    assert lab[0].max() == 0  # labels are padded with background
    assert np.isfinite(out).all()


def test_preprocess_centre_crop_without_labels():
    image = np.zeros((100, 160), dtype=np.float32)
    image[40:60, 70:90] = 1.0  # a square at the centre
    out, lab = preprocess(image, None, PreprocessConfig(size=60, centre_crop_fraction=0.6, min_crop=8))
    assert lab is None
    # crop side 60 (0.6 x 100) -> no resize; the square sits at rows/cols 20..39
    bright = np.argwhere(out > 0)
    assert bright.min(axis=0).tolist() == [20, 20] and bright.max(axis=0).tolist() == [39, 39]
    # empty labels behave like no labels
    out2, lab2 = preprocess(image, np.zeros(image.shape, np.uint8), PreprocessConfig(size=60, min_crop=8))
    np.testing.assert_array_equal(out, out2)
    assert lab2.max() == 0


def test_preprocess_constant_image_maps_to_minus_one():
    out, _ = preprocess(np.full((50, 70), 0.4), None, PreprocessConfig(size=32))
    assert out.dtype == np.float32 and np.all(out == -1.0)


def test_preprocess_resizes_up_and_down():
    image, labels = _off_centre_heart(shape=(300, 300), centre=(150, 150), radius=40)
    out, lab = preprocess(image, labels, PreprocessConfig(size=64))  # shrink (crop ~160 px)
    assert out.shape == lab.shape == (64, 64)
    out, lab = preprocess(image, labels, PreprocessConfig(size=256))  # enlarge
    assert out.shape == lab.shape == (256, 256)
    assert set(np.unique(lab)) <= {0, 2, 3}


@pytest.mark.parametrize(
    "image, labels, match",
    [
        (np.zeros((4, 8, 8)), None, "2-D image"),
        (np.full((8, 8), np.nan), None, "finite"),
        (np.array([["a"] * 8] * 8), None, "numeric"),
        (np.zeros((8, 8)), np.zeros((8, 9), np.uint8), "labels of the image's shape"),
        (np.zeros((8, 8)), np.full((8, 8), 4, np.uint8), "0..3"),
        (np.zeros((8, 8)), np.full((8, 8), -1, np.int32), "0..3"),
        (np.zeros((8, 8)), np.full((8, 8), 1.5), "integer labels"),
    ],
)
def test_preprocess_rejects_bad_inputs(image, labels, match):
    with pytest.raises(InvalidInputError, match=match):
        preprocess(image, labels, PreprocessConfig(size=16))


def test_preprocess_config_validation():
    with pytest.raises(InvalidInputError, match="percentile"):
        PreprocessConfig(low_percentile=99, high_percentile=1)
    with pytest.raises(InvalidInputError, match="crop_scale"):
        PreprocessConfig(crop_scale=0)


# ---------------------------------------------------------------- load_acdc


@pytest.fixture(scope="module")
def acdc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("acdc")
    splits = write_phantom_acdc(root, n_patients=5, slices_per_volume=4, size=48, seed=2)
    return root, splits


def test_load_acdc_round_trip(acdc_root):
    root, splits = acdc_root
    cfg = PreprocessConfig(size=32, min_crop=16)
    data = load_acdc(root, "train", config=cfg, progress=False)
    n_train = len(splits["train"])
    assert len(data) == n_train * 2 * 3  # 2 frames x 3 slices with a heart (the 4th is empty)
    assert data.images.shape == (len(data), 1, 32, 32) and data.images.dtype == np.float32
    assert data.labels.shape == (len(data), 32, 32) and data.labels.dtype == np.uint8
    assert data.images.min() >= -1 and data.images.max() <= 1
    assert set(data.patients) == set(splits["train"])
    assert set(data.frames) == {"ED", "ES"}
    assert set(data.slice_index) == {0, 1, 2}
    assert all(lab.max() > 0 for lab in data.labels)

    everything = load_acdc(root, "test", config=cfg, require_labels=False, progress=False)
    assert len(everything) == len(splits["test"]) * 2 * 4
    assert set(everything.patients) == set(splits["test"])
    assert sum(lab.max() == 0 for lab in everything.labels) == len(splits["test"]) * 2


def test_load_acdc_errors(acdc_root, tmp_path):
    root, _ = acdc_root
    with pytest.raises(InvalidInputError, match="root folder not found"):
        load_acdc(tmp_path / "nowhere", "train", progress=False)
    with pytest.raises(InvalidInputError, match=r"unknown split 'training'.*test, train, val"):
        load_acdc(root, "training", progress=False)
    with pytest.raises(InvalidInputError, match="splits.json not found"):
        load_acdc(tmp_path, "train", progress=False)
    (tmp_path / "splits.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        load_acdc(tmp_path, "train", progress=False)
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["patient404"]}))
    with pytest.raises(InvalidInputError, match="patient folder not found"):
        load_acdc(tmp_path, "train", progress=False)


def test_load_acdc_missing_and_corrupt_files(tmp_path):
    write_phantom_acdc(tmp_path, n_patients=1, slices_per_volume=2, size=32, splits={"train": ["patient001"]})
    gt = tmp_path / "patient001" / "patient001_frame02_gt.nii.gz"
    gt.write_bytes(b"this is not a NIfTI file at all" * 10)
    with pytest.raises(InvalidInputError, match=r"cannot read NIfTI file .*patient001_frame02_gt\.nii\.gz"):
        load_acdc(tmp_path, "train", progress=False)
    gt.write_bytes(gzip.compress(b"\x00" * 400))  # valid gzip, invalid header
    with pytest.raises(InvalidInputError, match=r"patient001_frame02_gt\.nii\.gz"):
        load_acdc(tmp_path, "train", progress=False)
    gt.unlink()
    with pytest.raises(InvalidInputError, match=r"file not found: .*patient001_frame02_gt\.nii\.gz"):
        load_acdc(tmp_path, "train", progress=False)


def test_load_acdc_shape_mismatch(tmp_path):
    from cheartflow_sdk.data import write_acdc_like

    img = np.zeros((20, 24, 2), np.float32)
    lab = np.zeros((20, 20, 2), np.uint8)
    with pytest.raises(InvalidInputError):
        write_acdc_like(tmp_path, {"p1": [img, img]}, {"p1": [lab, lab]}, {"train": ["p1"]})
    import nibabel as nib

    write_acdc_like(tmp_path, {"p1": [img, img]}, {"p1": [img.astype(np.uint8)] * 2}, {"train": ["p1"]})
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(tmp_path / "p1" / "p1_frame01_gt.nii.gz"))
    with pytest.raises(InvalidInputError, match="differ in shape"):
        load_acdc(tmp_path, "train", progress=False)


# ---------------------------------------------------------------- slice files


def _small_set(n=6, size=16):
    rng = np.random.default_rng(0)
    return SliceSet(
        images=rng.uniform(-1, 1, (n, 1, size, size)).astype(np.float32),
        labels=rng.integers(0, 4, (n, size, size)).astype(np.uint8),
        patients=[f"patient{i:03d}" for i in range(n)],
        frames=["ED", "ES"] * (n // 2),
        slice_index=list(range(n)),
    )


def test_save_and_load_slices_round_trip(tmp_path):
    data = _small_set()
    path = save_slices(tmp_path / "sub" / "train.npz", data)
    back = load_slices(path)
    assert back.images.dtype == np.float32 and back.images.shape == data.images.shape
    np.testing.assert_allclose(back.images, data.images, atol=1e-3)  # stored as float16
    np.testing.assert_array_equal(back.labels, data.labels)
    assert (back.patients, back.frames, back.slice_index) == (data.patients, data.frames, data.slice_index)
    assert os.listdir(path.parent) == ["train.npz"]  # no temporary file left behind


def test_save_slices_failure_keeps_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "train.npz"
    save_slices(path, _small_set(n=2))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        save_slices(path, _small_set(n=4))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["train.npz"]
    monkeypatch.undo()
    assert len(load_slices(path)) == 2


def test_load_slices_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        load_slices(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="cannot read slices file"):
        load_slices(bad)
    other = tmp_path / "other.npz"
    np.savez_compressed(other, images=np.zeros((1, 1, 4, 4)))
    with pytest.raises(InvalidInputError, match="missing"):
        load_slices(other)


def test_sliceset_validates_lengths():
    data = _small_set(n=2)
    with pytest.raises(InvalidInputError, match="entries"):
        SliceSet(images=data.images, labels=data.labels, patients=["a"], frames=["ED"], slice_index=[0])
