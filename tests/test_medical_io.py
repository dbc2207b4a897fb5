"""NIfTI in -> NIfTI out with the geometry kept, optional resize in/out, and DICOM series out (issue 15, items 1-2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cheartflow_sdk import medical_io
from cheartflow_sdk.config import ModelConfig
from cheartflow_sdk.errors import InvalidInputError
from cheartflow_sdk.pipeline import Pipeline
from cheartflow_sdk.resize import Fit, fit_sketches, restore_images

from conftest import RES, TINY_MODEL

nib = pytest.importorskip("nibabel")


class _Echo:
    name = "echo"

    def __init__(self, kind="labels"):
        self.config = ModelConfig(**{**TINY_MODEL, "sketch_kind": kind})

    def __call__(self, x, t):
        return np.asarray(x, np.float32).copy()


def _volume(shape=(RES, RES, 3)):
    lab = np.zeros(shape, np.int16)
    for z in range(shape[2]):  # each slice differs, so the slice order is visible in the output
        lab[4 + z:shape[0] - 4, 6:shape[1] - 6, z] = 1
        lab[10:20, 10 + z:20 + z, z] = 2
        lab[13:16, 13:16, z] = 3
    affine = np.array([[0.0, -1.25, 0.0, 40.0], [1.5, 0.0, 0.0, -20.0], [0.0, 0.0, 8.0, 5.0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(lab, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=2)
    return img, lab


def test_nifti_in_nifti_out_keeps_shape_affine_forms_and_slice_order(tmp_path):
    img, lab = _volume()
    nib.save(img, str(tmp_path / "vol.nii.gz"))
    pipe = Pipeline(_Echo("labels"), Path("models/labels-v2"))
    out = medical_io.synthesize_nifti(pipe, tmp_path / "vol.nii.gz", tmp_path / "vol_synth.nii.gz", steps=2, seed=3)
    got = nib.load(str(out))
    assert got.shape == lab.shape
    np.testing.assert_array_equal(got.affine, img.affine)
    np.testing.assert_array_equal(got.get_qform(), img.get_qform())
    np.testing.assert_array_equal(got.get_sform(), img.get_sform())
    assert int(got.header["qform_code"]) == 1 and int(got.header["sform_code"]) == 2
    assert nib.aff2axcodes(got.affine) == nib.aff2axcodes(img.affine)
    np.testing.assert_allclose(got.header.get_zooms(), img.header.get_zooms())
    data = np.asarray(got.dataobj)
    assert data.dtype == np.float32
    # the echo encoder returns its input: one-step gives the sketch, slice z in place z
    pipe1 = medical_io.synthesize_nifti(pipe, tmp_path / "vol.nii.gz", tmp_path / "one.nii.gz", steps=1)
    np.testing.assert_allclose(np.asarray(nib.load(str(pipe1)).dataobj), lab / 3, atol=1e-6)
    desc = got.header["descrip"].tobytes().decode().rstrip("\x00")
    assert desc.startswith("SYNTHETIC cheartflow-sdk") and "model=labels-v2" in desc and "steps=2" in desc and "seed=3" in desc


def test_nifti_resize_in_and_out_keeps_the_slice_size(tmp_path):
    img, lab = _volume((48, 40, 2))
    nib.save(img, str(tmp_path / "big.nii.gz"))
    pipe = Pipeline(_Echo("labels"), Path("m"))
    from cheartflow_sdk.errors import ModelMismatchError

    with pytest.raises(ModelMismatchError, match="expects 32x32 sketches, got 48x40"):
        medical_io.synthesize_nifti(pipe, tmp_path / "big.nii.gz", tmp_path / "o.nii.gz")
    out = medical_io.synthesize_nifti(pipe, tmp_path / "big.nii.gz", tmp_path / "o.nii.gz", resize=True)
    got = np.asarray(nib.load(str(out)).dataobj)
    assert got.shape == (48, 40, 2)
    # nearest in, cubic/area out: the echoed label levels come back close to the input labels
    assert np.mean(np.abs(got - lab / 3) < 0.2) > 0.9


def test_fit_and_restore_edges_pad_never_stretch():
    x = np.zeros((1, 1, 40, 80), np.float32)
    x[0, 0, 20, 10:70] = 1  # a horizontal line
    y, fit = fit_sketches(x, 32, "edges")
    assert fit == Fit(40, 80, 32) and y.shape == (1, 1, 32, 32)
    rows = np.nonzero(y[0, 0].any(axis=1))[0]
    assert len(rows) <= 2 and abs(rows[0] - 16) <= 1  # still one thin line, centred (padding above and below)
    back = restore_images(y, fit)
    assert back.shape == (1, 1, 40, 80)


def test_dicom_series_tags_and_pixel_round_trip(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    img, _ = _volume()
    rng = np.random.default_rng(0)
    images = rng.random((3, 1, RES, RES)).astype(np.float32)
    paths = medical_io.write_dicom_series(tmp_path / "series", images, ["a_z000", "a_z001", "a_z002"],
                                          "SYNTHETIC cheartflow-sdk test", "steps=2 seed=0", reference=img)
    assert [p.name for p in paths] == ["a_z000.dcm", "a_z001.dcm", "a_z002.dcm"]
    dss = [pydicom.dcmread(str(p)) for p in paths]
    for z, ds in enumerate(dss):
        assert ds.SOPClassUID == medical_io.MR_IMAGE_STORAGE == ds.file_meta.MediaStorageSOPClassUID
        assert ds.Modality == "MR" and list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert "SYNTHETIC" in ds.SeriesDescription and "cheartflow-sdk" in ds.ImageComments
        assert "steps=2 seed=0" in ds.ImageComments and ds.BurnedInAnnotation == "NO"
        assert str(ds.PatientName) == "" and ds.PatientID == ""
        np.testing.assert_array_equal(ds.pixel_array, np.rint(images[z, 0] * 65535).astype(np.uint16))
        assert ds.InstanceNumber == z + 1
    assert len({ds.SOPInstanceUID for ds in dss}) == 3
    assert len({ds.SeriesInstanceUID for ds in dss}) == 1 and len({ds.StudyInstanceUID for ds in dss}) == 1
    # geometry from the NIfTI affine (RAS) in DICOM LPS: voxel (0, 0, z)
    lps = np.diag([-1, -1, 1])
    for z, ds in enumerate(dss):
        want = lps @ (img.affine @ [0, 0, z, 1])[:3]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], want, atol=1e-5)
    np.testing.assert_allclose([float(v) for v in dss[0].PixelSpacing], [1.5, 1.25])
    assert float(dss[0].SliceThickness) == 8.0
    row_dir, col_dir = np.array(dss[0].ImageOrientationPatient[:3], float), np.array(dss[0].ImageOrientationPatient[3:], float)
    np.testing.assert_allclose(col_dir, lps @ img.affine[:3, 0] / 1.5, atol=1e-6)  # down the rows: voxel axis i
    np.testing.assert_allclose(row_dir, lps @ img.affine[:3, 1] / 1.25, atol=1e-6)  # along a row: voxel axis j
    second = medical_io.write_dicom_series(tmp_path / "s2", images[:1], ["x"], "d")
    assert pydicom.dcmread(str(second[0])).StudyInstanceUID != dss[0].StudyInstanceUID  # new UIDs every time


def test_dicom_without_pydicom_names_the_extra(tmp_path, monkeypatch):
    import sys

    from cheartflow_sdk.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"cheartflow-sdk\[dicom\]"):
        medical_io.write_dicom_series(tmp_path, np.zeros((1, 1, 4, 4), np.float32), ["a"], "d")


def test_write_nifti_refuses_a_mismatched_stack(tmp_path):
    img, _ = _volume()
    with pytest.raises(InvalidInputError, match=r"expected 3 slices of 32x32"):
        medical_io.write_nifti(tmp_path / "x.nii.gz", np.zeros((2, 1, RES, RES), np.float32), img, "d")


def test_cli_nifti_in_nifti_and_dicom_out(tmp_path, trained_model_dir):
    pytest.importorskip("pydicom")
    from cheartflow_sdk.cli import main

    img, lab = _volume()
    edges = (lab > 0).astype(np.int16)  # a 0/1 map: edges for an edges model
    src = nib.Nifti1Image(edges, img.affine)
    nib.save(src, str(tmp_path / "vol.nii.gz"))
    assert main(["-q", "synth", str(tmp_path / "vol.nii.gz"), "--model", str(trained_model_dir), "--out",
                 str(tmp_path / "o"), "--sketch-kind", "edges", "--steps", "2", "--format", "auto", "--format", "dicom",
                 "--format", "png"]) == 0
    got = nib.load(str(tmp_path / "o" / "vol_synth.nii.gz"))
    assert got.shape == edges.shape and np.array_equal(got.affine, src.affine)
    assert len(list((tmp_path / "o" / "vol_synth_dicom").glob("*.dcm"))) == 3
    assert len(list((tmp_path / "o").glob("vol_z*_synth.png"))) == 3
