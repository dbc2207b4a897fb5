"""Load ACDC short-axis slices into arrays, and save/load them as one compact ``.npz`` file.

ACDC layout (as in ``../shared/data/acdc``)::

    root/splits.json                              {"train": [...], "val": [...], "test": [...]}
    root/patientNNN/patientNNN_frame01.nii.gz     image, end-diastole (ED)
    root/patientNNN/patientNNN_frame01_gt.nii.gz  labels 0 bg, 1 RV, 2 MYO, 3 LV
    root/patientNNN/patientNNN_frame02[_gt].nii.gz  end-systole (ES)

Volumes are NIfTI ``[X, Y, Z]``; ``[:, :, z]`` is one short-axis slice, preprocessed with
:func:`cheartflow_sdk.data.preprocess.preprocess`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ..atomic import atomic_output
from .preprocess import PreprocessConfig, preprocess

logger = logging.getLogger(__name__)

SLICES_FORMAT = 1  # version of the .npz layout written by save_slices
FRAMES = (("frame01", "ED"), ("frame02", "ES"))  # ACDC file tag and the cardiac phase it holds


@dataclass
class SliceSet:
    """Preprocessed slices with their origin (one entry per slice in every field)."""

    images: np.ndarray  # float32 [N, 1, S, S] in [-1, 1]
    labels: np.ndarray  # uint8 [N, S, S], 0 bg, 1 RV, 2 MYO, 3 LV
    patients: list[str] = field(default_factory=list)  # patient id of each slice
    frames: list[str] = field(default_factory=list)  # "ED" or "ES"
    slice_index: list[int] = field(default_factory=list)  # z index in the source volume

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[1] != 1 or self.labels.shape != (n, *self.images.shape[2:]):
            raise InvalidInputError(
                "SliceSet expects images [N, 1, S, S] and labels [N, S, S], "
                f"got {self.images.shape} and {self.labels.shape}"
            )
        if not len(self.patients) == len(self.frames) == len(self.slice_index) == n:
            raise InvalidInputError(
                f"SliceSet expects {n} entries in patients, frames and slice_index, got "
                f"{len(self.patients)}, {len(self.frames)} and {len(self.slice_index)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: Sequence[int] | np.ndarray) -> SliceSet:
        """The slices at ``indices`` (in that order), with their origin."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise InvalidInputError(f"SliceSet.subset indices must lie in [0, {len(self)}), got {idx.min()}..{idx.max()}")
        return SliceSet(self.images[idx], self.labels[idx], [self.patients[i] for i in idx],
                        [self.frames[i] for i in idx], [self.slice_index[i] for i in idx])


def load_acdc(
    root: str | os.PathLike,
    split: str,
    *,
    config: PreprocessConfig = PreprocessConfig(),
    require_labels: bool = True,
    progress: bool = True,
) -> SliceSet:
    """Load and preprocess every slice of both frames of the patients in ``split``.

    ``require_labels=True`` drops slices whose labels are all 0 (no heart). Raises
    InvalidInputError for a missing root, missing or invalid ``splits.json``, unknown split,
    missing or unreadable file, or image/label shape mismatch.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    patients = read_split(root, split)
    start = time.perf_counter()
    images, labels, pids, frames, zs = [], [], [], [], []
    for pid in tqdm(patients, desc=f"ACDC {split}", unit="patient", disable=not progress):
        for tag, frame in FRAMES:
            vol, lab = _load_pair(root, pid, tag)
            for z in range(vol.shape[2]):
                if require_labels and not np.any(lab[:, :, z]):
                    continue
                try:
                    img_z, lab_z = preprocess(vol[:, :, z], lab[:, :, z], config)
                except InvalidInputError as exc:
                    raise InvalidInputError(f"{pid} {tag} slice {z}: {exc}") from exc
                images.append(img_z)
                labels.append(lab_z)
                pids.append(pid)
                frames.append(frame)
                zs.append(z)
    s = config.size
    out = SliceSet(
        images=np.stack(images)[:, None] if images else np.zeros((0, 1, s, s), np.float32),
        labels=np.stack(labels) if labels else np.zeros((0, s, s), np.uint8),
        patients=pids,
        frames=frames,
        slice_index=zs,
    )
    elapsed = time.perf_counter() - start
    logger.info("loaded %d slices of %d patients (%s) in %.1f s", len(out), len(patients), split, elapsed)
    return out


def read_split(root: str | os.PathLike, split: str) -> list[str]:
    """The patient ids of ``split`` from ``root/splits.json``, with clear errors."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(
            f"ACDC root folder not found: {root} (expected a folder with splits.json and patientNNN/)"
        )
    path = root / "splits.json"
    if not path.is_file():
        raise InvalidInputError(
            f"splits.json not found in {root} (expected {{\"train\": [...], \"val\": [...], \"test\": [...]}})"
        )
    try:
        splits = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(splits, dict) or not all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in splits.values()
    ):
        raise InvalidInputError(
            f"{path} must map split names to lists of patient ids, e.g. {{\"train\": [\"patient001\"]}}"
        )
    if split not in splits:
        raise InvalidInputError(f"unknown split {split!r}; {path} has: {', '.join(sorted(splits))}")
    return list(splits[split])


def _load_pair(root: Path, pid: str, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """Image and label volumes ``[X, Y, Z]`` of one patient frame, checked to match."""
    folder = root / pid
    if not folder.is_dir():
        raise InvalidInputError(f"patient folder not found: {folder} (listed in {root / 'splits.json'})")
    vol = _read_nifti(folder / f"{pid}_{tag}.nii.gz")
    lab = _read_nifti(folder / f"{pid}_{tag}_gt.nii.gz")
    if vol.shape != lab.shape:
        raise InvalidInputError(
            f"image and labels of {pid} {tag} differ in shape: {vol.shape} vs {lab.shape} (expected equal [X, Y, Z])"
        )
    return vol, np.rint(lab).astype(np.int16)


def _read_nifti(path: Path) -> np.ndarray:
    """A NIfTI volume as float ``[X, Y, Z]`` (a 2-D file gives Z = 1), naming the file on error."""
    import nibabel as nib

    if not path.is_file():
        raise InvalidInputError(f"file not found: {path}")
    try:
        data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types for corrupt files (gzip, header, EOF)
        raise InvalidInputError(f"cannot read NIfTI file {path}: {type(exc).__name__}: {exc}") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise InvalidInputError(f"NIfTI file {path} has shape {data.shape}; expected a volume [X, Y, Z]")
    if not np.all(np.isfinite(data)):
        raise InvalidInputError(f"NIfTI file {path} contains NaN or infinite values")
    return data


def save_slices(path: str | os.PathLike, slices: SliceSet) -> Path:
    """Write ``slices`` to ``path`` as a compressed ``.npz`` (images float16), atomically.

    An existing file at ``path`` is never left half-written (see :func:`cheartflow_sdk.io.atomic_output`).
    ``path`` is used exactly as given (no ``.npz`` is appended).
    """
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:  # a file object: numpy appends no ".npz"
        np.savez_compressed(
            fh,
            format_version=np.int32(SLICES_FORMAT),
            images=slices.images.astype(np.float16),
            labels=slices.labels.astype(np.uint8),
            patients=np.asarray(slices.patients, dtype=np.str_),
            frames=np.asarray(slices.frames, dtype=np.str_),
            slice_index=np.asarray(slices.slice_index, dtype=np.int32),
        )
    logger.info("saved %d slices to %s (%.1f MB)", len(slices), path, path.stat().st_size / 1e6)
    return path


def load_slices(path: str | os.PathLike) -> SliceSet:
    """Read a file written by :func:`save_slices` (images back to float32)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"slices file not found: {path}")
    keys = ("format_version", "images", "labels", "patients", "frames", "slice_index")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise InvalidInputError(f"{path} is not a save_slices file: missing {', '.join(missing)}")
            data = {k: npz[k] for k in keys}
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"cannot read slices file {path}: {type(exc).__name__}: {exc}") from exc
    if int(data["format_version"]) != SLICES_FORMAT:
        raise InvalidInputError(f"{path} has format version {int(data['format_version'])}; expected {SLICES_FORMAT}")
    return SliceSet(
        images=data["images"].astype(np.float32),
        labels=data["labels"].astype(np.uint8),
        patients=[str(p) for p in data["patients"]],
        frames=[str(f) for f in data["frames"]],
        slice_index=[int(z) for z in data["slice_index"]],
    )
