"""Tests of cheartflow_sdk.io: reading sketch files, atomic writes, PNG and grid writing."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from cheartflow_sdk import io as cio
from cheartflow_sdk.errors import InvalidInputError

RNG = np.random.default_rng(0)


def _png(path: Path, img: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), img)
    return path


def _nii(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _no_tmp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp-" in p.name]


# ----------------------------------------------------------------- reading formats


def test_read_png_8bit(tmp_path):
    img = RNG.integers(0, 256, (12, 10), dtype=np.uint8)
    x, names = cio.read_sketches(_png(tmp_path / "heart.png", img))
    assert x.dtype == np.float32 and x.shape == (1, 1, 12, 10)
    assert names == ["heart"]
    np.testing.assert_allclose(x[0, 0], img / 255.0, atol=1e-7)


def test_read_png_16bit(tmp_path):
    img = RNG.integers(0, 65536, (6, 7), dtype=np.uint16)
    x, _ = cio.read_sketches(_png(tmp_path / "a16.png", img))
    np.testing.assert_allclose(x[0, 0], img / 65535.0, atol=1e-6)


def test_read_rgb_png_to_gray(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 1] = 200  # pure green
    x, _ = cio.read_sketches(_png(tmp_path / "rgb.png", bgr))
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[0, 0] / 255.0
    assert x.shape == (1, 1, 4, 5)
    np.testing.assert_allclose(x[0, 0], expected, atol=1.5 / 255)


def test_read_rgba_composited_onto_black(tmp_path):
    bgra = np.full((3, 3, 4), 255, np.uint8)
    bgra[..., 3] = 0
    bgra[1, 1, 3] = 255
    bgra[0, 0, 3] = 128
    x, _ = cio.read_sketches(_png(tmp_path / "rgba.png", bgra))
    assert x[0, 0, 1, 1] == pytest.approx(1.0)
    assert x[0, 0, 0, 0] == pytest.approx(128 / 255, abs=1e-6)
    assert x[0, 0, 2, 2] == 0.0


def test_read_jpg_bmp_tif(tmp_path):
    img = np.zeros((8, 8), np.uint8)
    img[2:6, 2:6] = 255
    for ext in (".jpg", ".BMP", ".tiff"):
        x, names = cio.read_sketches(_png(tmp_path / f"s{ext}", img))
        assert x.shape == (1, 1, 8, 8) and names == ["s"]
        assert x[0, 0, 4, 4] > 0.9 and x[0, 0, 0, 0] < 0.1


@pytest.mark.parametrize(
    "arr,names",
    [
        (np.full((6, 6), 255, np.uint8), ["m"]),
        (np.zeros((3, 6, 6), np.uint8), ["m_i000", "m_i001", "m_i002"]),
        (np.full((2, 1, 6, 6), 0.5, np.float32), ["m_i000", "m_i001"]),
        (np.full((1, 1, 6, 6), 0.5, np.float32), ["m"]),
    ],
)
def test_read_npy(tmp_path, arr, names):
    np.save(tmp_path / "m.npy", arr)
    x, got = cio.read_sketches(tmp_path / "m.npy")
    assert got == names
    assert x.shape == (len(names), 1, 6, 6) and x.dtype == np.float32
    want = arr / 255.0 if arr.dtype == np.uint8 else arr
    np.testing.assert_allclose(x.reshape(-1), np.asarray(want, np.float32).reshape(-1))


def test_read_nifti_volume_in_unit_range(tmp_path):
    vol = RNG.random((8, 9, 3)).astype(np.float32)
    x, names = cio.read_sketches(_nii(tmp_path / "vol.nii.gz", vol))
    assert names == ["vol_z000", "vol_z001", "vol_z002"]
    assert x.shape == (3, 1, 8, 9)
    for z in range(3):
        np.testing.assert_allclose(x[z, 0], vol[:, :, z], atol=1e-7)


def test_read_nifti_label_map(tmp_path):
    lab = RNG.integers(0, 4, (8, 8, 2)).astype(np.int16)
    lab[0, 0, 0], lab[0, 1, 0] = 0, 3
    x, names = cio.read_sketches(_nii(tmp_path / "lab.nii", lab))
    assert names == ["lab_z000", "lab_z001"]
    np.testing.assert_allclose(x[1, 0], lab[:, :, 1] / 3.0, atol=1e-7)
    assert np.isin(np.unique(x), np.float32([0, 1 / 3, 2 / 3, 1])).all()


def test_read_nifti_label_map_stored_as_float(tmp_path):
    lab = np.zeros((4, 4), np.float32)
    lab[1, 1] = 2.0
    x, names = cio.read_sketches(_nii(tmp_path / "lab2d.nii.gz", lab))
    assert names == ["lab2d"] and x.shape == (1, 1, 4, 4)
    assert x[0, 0, 1, 1] == pytest.approx(2 / 3)


def test_read_nifti_minmax_per_volume(tmp_path):
    vol = np.linspace(-100.0, 300.0, 4 * 4 * 2).reshape(4, 4, 2)
    x, _ = cio.read_sketches(_nii(tmp_path / "mr.nii.gz", vol))
    assert x.min() == 0.0 and x.max() == pytest.approx(1.0)
    np.testing.assert_allclose(x[:, 0], np.moveaxis((vol + 100) / 400, 2, 0), atol=1e-6)


# ----------------------------------------------------------------- folders


def test_read_folder_sorted_and_filtered(tmp_path, caplog):
    for name, value in [("b.png", 100), ("a.png", 50), ("c.PNG", 200)]:
        _png(tmp_path / name, np.full((5, 5), value, np.uint8))
    (tmp_path / "notes.txt").write_text("ignore me")
    (tmp_path / ".hidden.png").write_bytes(b"not a png")
    (tmp_path / "sub.png").mkdir()
    np.save(tmp_path / "d.npy", np.zeros((2, 5, 5), np.uint8))
    with caplog.at_level(logging.DEBUG, logger="cheartflow_sdk.io"):
        x, names = cio.read_sketches(tmp_path)
    assert names == ["a", "b", "c", "d_i000", "d_i001"]
    assert x.shape == (5, 1, 5, 5)
    np.testing.assert_allclose(x[:3, 0, 0, 0], np.array([50, 100, 200]) / 255.0, atol=1e-7)
    assert "notes.txt" in caplog.text


def test_read_folder_same_stem_disambiguated(tmp_path):
    _png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    np.save(tmp_path / "a.npy", np.zeros((4, 4), np.uint8))
    _png(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
    _, names = cio.read_sketches(str(tmp_path))
    assert names == ["a_npy", "a_png", "b"]


# ----------------------------------------------------------------- reading errors


def test_missing_path(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file or folder") as e:
        cio.read_sketches(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(e.value)


def test_empty_folder(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(InvalidInputError, match="no sketch files") as e:
        cio.read_sketches(tmp_path)
    assert ".png" in str(e.value) and ".nii.gz" in str(e.value)


def test_unsupported_extension(tmp_path):
    p = tmp_path / "sketch.gif"
    p.write_bytes(b"GIF89a")
    with pytest.raises(InvalidInputError, match="unsupported file extension") as e:
        cio.read_sketches(p)
    assert str(p) in str(e.value)


def test_corrupt_png(tmp_path):
    p = tmp_path / "bad.png"
    p.write_bytes(RNG.integers(0, 256, 200, dtype=np.uint8).tobytes())
    with pytest.raises(InvalidInputError, match="cannot decode image") as e:
        cio.read_sketches(p)
    assert str(p) in str(e.value)


def test_empty_png_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="cannot decode"):
        cio.read_sketches(p)


def test_corrupt_png_in_folder_names_file(tmp_path):
    _png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b.png").write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="b.png"):
        cio.read_sketches(tmp_path)


def test_corrupt_nifti(tmp_path):
    p = tmp_path / "bad.nii.gz"
    p.write_bytes(b"garbage" * 20)
    with pytest.raises(InvalidInputError, match="cannot read NIfTI") as e:
        cio.read_sketches(p)
    assert str(p) in str(e.value)


def test_truncated_nifti(tmp_path):
    good = _nii(tmp_path / "good.nii.gz", np.zeros((16, 16, 4), np.float32))
    p = tmp_path / "trunc.nii.gz"
    p.write_bytes(good.read_bytes()[:60])
    with pytest.raises(InvalidInputError, match="trunc.nii.gz"):
        cio.read_sketches(p)


def test_nifti_nan(tmp_path):
    vol = np.zeros((4, 4, 2), np.float32)
    vol[0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="1 NaN/inf"):
        cio.read_sketches(_nii(tmp_path / "nan.nii", vol))


def test_nifti_4d_rejected(tmp_path):
    with pytest.raises(InvalidInputError, match=r"2-D \[X,Y\] or 3-D"):
        cio.read_sketches(_nii(tmp_path / "t.nii", np.zeros((4, 4, 2, 3), np.float32)))


def test_corrupt_npy(tmp_path):
    p = tmp_path / "bad.npy"
    p.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InvalidInputError, match="cannot load .npy") as e:
        cio.read_sketches(p)
    assert str(p) in str(e.value)


def test_pickled_npy_rejected(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match="obj.npy"):
        cio.read_sketches(p)


def test_mixed_sizes(tmp_path):
    _png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    _png(tmp_path / "b.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(InvalidInputError) as e:
        cio.read_sketches(tmp_path)
    msg = str(e.value)
    assert "a.png" in msg and "8x8" in msg and "b.png" in msg and "8x9" in msg


def test_npy_nan(tmp_path):
    arr = np.zeros((2, 1, 4, 4), np.float32)
    arr[1, 0, 2, 2] = np.nan
    p = tmp_path / "nan.npy"
    np.save(p, arr)
    with pytest.raises(InvalidInputError, match="1 NaN") as e:
        cio.read_sketches(p)
    assert str(p) in str(e.value)


def test_npy_out_of_range_float(tmp_path):
    p = tmp_path / "range.npy"
    np.save(p, np.linspace(0, 255, 16, dtype=np.float32).reshape(4, 4))
    with pytest.raises(InvalidInputError, match=r"max 255") as e:
        cio.read_sketches(p)
    assert str(p) in str(e.value)


# ----------------------------------------------------------------- atomic writes


def test_atomic_write_bytes_and_text(tmp_path):
    target = tmp_path / "deep" / "dir" / "out.bin"
    assert cio.atomic_write_bytes(target, b"\x00\x01") == target
    assert target.read_bytes() == b"\x00\x01"
    cio.atomic_write_text(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    assert _no_tmp_files(target.parent)


def test_atomic_output_temp_name_keeps_suffix(tmp_path):
    with cio.atomic_output(tmp_path / "vol.nii.gz") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".vol.nii.gz.tmp-") and tmp.name.endswith(".nii.gz")
        assert tmp.exists()
        tmp.write_bytes(b"data")
    assert (tmp_path / "vol.nii.gz").read_bytes() == b"data"
    with cio.atomic_output(tmp_path / "img.png") as tmp:
        assert tmp.suffix == ".png"
        assert cv2.imwrite(str(tmp), np.zeros((2, 2), np.uint8))
    assert cv2.imread(str(tmp_path / "img.png")) is not None
    assert _no_tmp_files(tmp_path)


def test_atomic_output_failure_keeps_old_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with cio.atomic_output(target) as tmp:
            tmp.write_text("new, half written")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _no_tmp_files(tmp_path)


def test_atomic_output_failure_without_old_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with cio.atomic_output(tmp_path / "new.txt") as tmp:
            tmp.write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_gives_the_umask_mode_even_when_the_writer_makes_a_private_file(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        with cio.atomic_output(tmp_path / "weights.bin") as tmp:
            tmp.unlink()  # like safetensors: replace the temporary file with a new 0600 one
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
    finally:
        os.umask(old)
    assert (tmp_path / "weights.bin").stat().st_mode & 0o777 == 0o640


# ----------------------------------------------------------------- PNG writing


def test_to_uint8_rounding_and_clipping():
    x = np.array([[-0.5, 0.0, 0.6 / 255, 0.4 / 255, 1.0, 2.0]], dtype=np.float32)
    assert cio.to_uint8(x).tolist() == [[0, 0, 1, 0, 255, 255]]
    assert cio.to_uint8(np.float64(127.6) / 255 * np.ones((1, 1))).tolist() == [[128]]
    u = np.arange(4, dtype=np.uint8).reshape(2, 2)
    assert cio.to_uint8(u) is u
    assert cio.to_uint8(np.array([[True, False]])).tolist() == [[255, 0]]
    with pytest.raises(InvalidInputError, match="1 NaN"):
        cio.to_uint8(np.array([[np.nan, 0.5]]))
    with pytest.raises(InvalidInputError, match="int64"):
        cio.to_uint8(np.zeros((2, 2), np.int64))


@pytest.mark.parametrize("shape", [(9, 11), (1, 9, 11), (1, 1, 9, 11)])
def test_write_png_round_trip(tmp_path, shape):
    img = RNG.random(shape).astype(np.float32)
    p = cio.write_png(tmp_path / "o" / "x.png", img)
    x, names = cio.read_sketches(p)
    assert names == ["x"] and x.shape == (1, 1, 9, 11)
    assert np.abs(x[0, 0] - img.reshape(9, 11)).max() <= 0.5 / 255 + 1e-6
    assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    assert _no_tmp_files(p.parent)


def test_write_png_errors(tmp_path):
    with pytest.raises(InvalidInputError, match=r"\[H,W\], \[1,H,W\] or \[1,1,H,W\]"):
        cio.write_png(tmp_path / "x.png", np.zeros((2, 4, 4)))
    with pytest.raises(InvalidInputError, match=".png"):
        cio.write_png(tmp_path / "x.jpg", np.zeros((4, 4)))


def test_write_pngs(tmp_path):
    imgs = RNG.random((3, 1, 6, 6)).astype(np.float32)
    paths = cio.write_pngs(tmp_path / "out", imgs, ["a", "b_z001", "c"])
    assert [p.name for p in paths] == ["a.png", "b_z001.png", "c.png"]
    x, names = cio.read_sketches(tmp_path / "out")
    assert names == ["a", "b_z001", "c"]
    assert np.abs(x - imgs).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("names", [["a"], ["a", "a"], ["a", "../b"], ["a", ""], "ab"])
def test_write_pngs_bad_names(tmp_path, names):
    with pytest.raises(InvalidInputError, match="names"):
        cio.write_pngs(tmp_path, np.zeros((2, 1, 4, 4), np.float32), names)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- grids


def test_make_grid_layout():
    a = np.zeros((2, 1, 4, 5), np.float32)
    b = np.ones((2, 1, 4, 5), np.float32)
    g = cio.make_grid([a, b], pad=2)
    assert g.dtype == np.uint8 and g.shape == (2 * 4 + 3 * 2, 2 * 5 + 3 * 2)
    assert (g[2:6, 2:7] == 0).all() and (g[8:12, 2:7] == 0).all()  # column 0 rows 0, 1
    assert (g[2:6, 9:14] == 255).all() and (g[8:12, 9:14] == 255).all()  # column 1
    assert (g[0:2] == 230).all() and (g[:, 7:9] == 230).all()  # padding
    assert cio.make_grid([a], pad=0).shape == (8, 5)


def test_make_grid_titles():
    cols = [np.zeros((1, 1, 64, 64), np.float32), np.ones((1, 1, 64, 64), np.float32)]
    plain = cio.make_grid(cols)
    g = cio.make_grid(cols, titles=["sketch", "output"])
    header = g.shape[0] - plain.shape[0]
    assert header > 5 and g.shape[1] == plain.shape[1]
    np.testing.assert_array_equal(g[header:], plain)
    assert (g[:header] < 100).any()  # some dark text pixels were drawn
    cio.make_grid(cols, titles=["a very long title that cannot fit", "ü"])  # cut / ASCII-replaced


def test_make_grid_errors():
    a = np.zeros((2, 1, 4, 4), np.float32)
    msg = r"columns\[0\] has B,H,W = \(2, 4, 4\), columns\[1\] has B,H,W = \(3, 4, 4\)"
    with pytest.raises(InvalidInputError, match=msg):
        cio.make_grid([a, np.zeros((3, 1, 4, 4), np.float32)])
    with pytest.raises(InvalidInputError, match=r"\(2, 4, 5\)"):
        cio.make_grid([a, np.zeros((2, 1, 4, 5), np.float32)])
    with pytest.raises(InvalidInputError, match="non-empty list"):
        cio.make_grid([])
    with pytest.raises(InvalidInputError, match=r"columns\[0\]"):
        cio.make_grid([np.zeros((2, 3, 4, 4))])
    with pytest.raises(InvalidInputError, match="2 titles"):
        cio.make_grid([a, a], titles=["only one"])
    with pytest.raises(InvalidInputError, match="pad"):
        cio.make_grid([a], pad=-1)


def test_write_grid(tmp_path):
    cols = [RNG.random((3, 1, 8, 8)).astype(np.float32), np.zeros((3, 8, 8), np.uint8)]
    p = cio.write_grid(tmp_path / "grid.png", cols, titles=["in", "out"])
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(img, cio.make_grid(cols, titles=["in", "out"]))
    assert _no_tmp_files(tmp_path)
