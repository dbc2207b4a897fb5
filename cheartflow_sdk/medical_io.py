"""Scanner-side outputs: NIfTI volumes that keep their input's geometry, and DICOM series (MR image storage).

Every output says it is synthetic: the NIfTI header's ``descrip`` and the DICOM ``SeriesDescription`` /
``ImageComments`` name cheartflow-sdk, its version, the model, the steps and the seed; no patient identity
is copied from anywhere. Writes are atomic. nibabel is a base dependency; pydicom comes with the ``[dicom]``
extra and is imported only when DICOM is written.
"""

from __future__ import annotations

import datetime as _dt
import io as _io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .atomic import atomic_output, atomic_write_bytes
from .errors import InvalidInputError

__all__ = ["MR_IMAGE_STORAGE", "synthetic_description", "write_nifti", "write_dicom_series", "synthesize_nifti",
           "dicom_geometry"]

log = logging.getLogger(__name__)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_NIFTI_DESCRIP_BYTES = 79  # the header field holds 80 bytes, NUL-terminated
_DICOM_MAX = 65535
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def synthetic_description(model: str, steps: int, seed: Any, backend: str | None = None) -> str:
    """'SYNTHETIC cheartflow-sdk 0.1.0 model=... steps=2 seed=0': what every output records about itself."""
    text = f"SYNTHETIC cheartflow-sdk {__version__} model={model} steps={int(steps)} seed={seed}"
    return text + (f" backend={backend}" if backend else "")


def _check_images(images: Any, name: str = "images") -> np.ndarray:
    y = np.asarray(images)
    if y.ndim == 3:
        y = y[:, None]
    if y.ndim != 4 or y.shape[1] != 1 or y.shape[0] == 0 or y.dtype.kind not in "fu":
        raise InvalidInputError(f"{name}: expected images [n,1,H,W] (float in [0, 1] or uint8), got {y.dtype} {y.shape}")
    if y.dtype == np.uint8:
        return y.astype(np.float32) / np.float32(255)
    if not np.isfinite(y).all():
        raise InvalidInputError(f"{name}: expected finite values in [0, 1]")
    return np.clip(y.astype(np.float32), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------- NIfTI


def write_nifti(path: str | os.PathLike, images: Any, reference: Any, description: str) -> Path:
    """Write `images` [Z,1,H,W] (one per slice ``data[:, :, z]`` of `reference`, in order) as a float32 NIfTI
    volume of the reference's shape, affine, qform/sform (and codes), voxel sizes and orientation; the header's
    descrip holds `description` (cut to 79 bytes). Values are the images in [0, 1]."""
    import nibabel as nib

    y = _check_images(images)
    shape = tuple(int(d) for d in reference.shape)
    core = shape
    while len(core) > 3 and core[-1] == 1:
        core = core[:-1]
    want = (core[2] if len(core) == 3 else 1, 1, core[0], core[1])
    if y.shape != want:
        raise InvalidInputError(f"images: expected {want[0]} slices of {core[0]}x{core[1]} for a NIfTI volume of "
                                f"shape {shape}, got {y.shape}")
    data = np.ascontiguousarray(np.moveaxis(y[:, 0], 0, 2)).reshape(shape)
    header = reference.header.copy()
    cls = type(reference) if isinstance(reference, (nib.Nifti1Image, nib.Nifti2Image)) else nib.Nifti1Image
    out = cls(data.astype(np.float32), reference.affine, header=header)
    out.set_data_dtype(np.float32)
    qform, qcode = reference.get_qform(coded=True)
    sform, scode = reference.get_sform(coded=True)
    if qform is not None:
        out.set_qform(qform, code=int(qcode))
    else:
        out.set_qform(None, code=0)
    if sform is not None:
        out.set_sform(sform, code=int(scode))
    else:
        out.set_sform(None, code=0)
    out.header.set_slope_inter(1.0, 0.0)
    out.header["cal_min"], out.header["cal_max"] = 0.0, 1.0
    out.header["descrip"] = description.encode("ascii", "replace")[:_NIFTI_DESCRIP_BYTES]
    target = Path(path)
    with atomic_output(target) as tmp:
        nib.save(out, str(tmp))
    return target


def synthesize_nifti(pipe: Any, path: str | os.PathLike, out: str | os.PathLike, steps: int = 1, schedule: Any = None,
                     seed: Any = 0, resize: bool = False, batch_size: int = 64, **kwargs: Any) -> Path:
    """NIfTI in, NIfTI out: synthesize every slice ``data[:, :, z]`` of the volume at `path` with `pipe` and write
    them to `out` as a volume of the same shape, slice order and geometry (see :func:`write_nifti`).

    resize: slices of another in-plane size than the model's are fitted in and the images back out
    (:mod:`cheartflow_sdk.resize`, interpolation documented there) instead of refused.
    """
    from .io import read_sketch_files
    from .resize import fit_sketches, restore_images

    items = read_sketch_files(path, kind=pipe.config.sketch_kind)
    item = items[0]
    if item.nifti is None:
        raise InvalidInputError(f"{path}: expected a NIfTI file (.nii or .nii.gz)")
    x, fit = item.sketches, None
    if resize:
        x, fit = fit_sketches(x, pipe.config.resolution, pipe.config.sketch_kind)
    images = pipe.synthesize(x, steps=steps, schedule=schedule, seed=seed, batch_size=batch_size, **kwargs)
    if fit is not None:
        images = restore_images(images, fit)
    desc = synthetic_description(Path(str(pipe.source)).name, steps, seed)
    return write_nifti(out, images, item.nifti, desc)


# ----------------------------------------------------------------------------------------------- DICOM


def dicom_geometry(reference: Any, n: int, height: int, width: int) -> list[dict[str, Any]]:
    """Per slice: ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness (DICOM LPS mm)
    from a NIfTI image's affine (RAS mm; slice z is ``data[:, :, z]``, DICOM rows along the first voxel axis,
    columns along the second), or a unit grid at the origin without a reference."""
    if reference is None:
        return [{"ImagePositionPatient": [0.0, 0.0, float(z)], "ImageOrientationPatient": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                 "PixelSpacing": [1.0, 1.0], "SliceThickness": 1.0} for z in range(n)]
    affine = np.asarray(reference.affine, dtype=np.float64)
    m = _RAS_TO_LPS @ affine[:3, :3]
    along_rows, along_cols, along_slices = m[:, 0], m[:, 1], m[:, 2]  # voxel axes i (rows), j (columns), k
    si, sj, sk = (float(np.linalg.norm(v)) for v in (along_rows, along_cols, along_slices))
    if min(si, sj) <= 0:
        raise InvalidInputError("NIfTI affine has a zero-length in-plane axis; cannot derive DICOM geometry")
    orientation = [*(along_cols / sj), *(along_rows / si)]  # row direction (column index grows), column direction
    out = []
    for z in range(n):
        pos = _RAS_TO_LPS @ (affine @ np.array([0.0, 0.0, float(z), 1.0]))[:3]
        out.append({"ImagePositionPatient": [round(float(v), 6) for v in pos],
                    "ImageOrientationPatient": [round(float(v), 8) for v in orientation],
                    "PixelSpacing": [round(si, 6), round(sj, 6)], "SliceThickness": round(sk if sk > 0 else 1.0, 6)})
    return out


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6g}"


def write_dicom_series(folder: str | os.PathLike, images: Any, names: Sequence[str], description: str,
                       settings: str = "", reference: Any = None) -> list[Path]:
    """Write `images` [n,1,H,W] as one DICOM series (MR Image Storage, one file ``{name}.dcm`` per slice).

    New Study/Series/SOP Instance UIDs; ImageType DERIVED\\SECONDARY; SeriesDescription `description` (cut to
    64 characters) and ImageComments stating it is synthetic and made by cheartflow-sdk with its `settings`;
    BurnedInAnnotation NO; empty patient name and ID (no identity is copied from anywhere); geometry
    (ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness) from the NIfTI `reference`
    when given. Pixels: unsigned 16-bit MONOCHROME2, value = round(image * 65535).
    """
    from ._optional import require

    pydicom = require("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    from .io import _check_name

    y = _check_images(images)
    n, h, w = y.shape[0], y.shape[2], y.shape[3]
    if isinstance(names, str) or len(names) != n:
        raise InvalidInputError(f"names: expected {n} names (one per image), got {names!r}")
    checked = [_check_name(v, i) for i, v in enumerate(names)]
    geometry = dicom_geometry(reference, n, h, w)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    now = _dt.datetime.now()
    comments = f"SYNTHETIC image made by cheartflow-sdk {__version__} (not a scan of a patient). {settings}".strip()
    paths = []
    for z in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        sop = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = "MR"
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.SeriesDescription = description[:64]
        ds.ImageComments = comments[:10240]
        ds.BurnedInAnnotation = "NO"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "", "", "", ""
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "", "", ""
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.Manufacturer = "cheartflow-sdk"
        ds.SoftwareVersions = __version__
        ds.SeriesNumber, ds.InstanceNumber = 1, z + 1
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "RM", "NONE", "", "2D"
        g = geometry[z]
        ds.ImagePositionPatient = [_ds(v) for v in g["ImagePositionPatient"]]
        ds.ImageOrientationPatient = [_ds(v) for v in g["ImageOrientationPatient"]]
        ds.PixelSpacing = [_ds(v) for v in g["PixelSpacing"]]
        ds.SliceThickness = _ds(g["SliceThickness"])
        ds.Rows, ds.Columns = h, w
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.WindowCenter, ds.WindowWidth = "32767.5", "65536"
        pixels = np.rint(y[z, 0] * np.float32(_DICOM_MAX)).astype("<u2")
        ds.PixelData = pixels.tobytes()
        buf = _io.BytesIO()
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
        paths.append(atomic_write_bytes(Path(folder) / f"{checked[z]}.dcm", buf.getvalue()))
    log.debug("wrote a DICOM series of %d slices to %s", n, folder)
    return paths
