"""The output files of a synthesis run: which files each input gives (PNG, NIfTI, DICOM) and writing them.

`cheartflow synth` and the Ray path (ray_synth.py) both plan the outputs first, so that every path is
checked before any work, and write them the same way, so that both give the same files for the same inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError


def plan_outputs(items, formats: list[str], out: Path, input_path: Path):
    """(item, kinds of output) per input file and every output path, for the checks before any work."""
    plan, paths = [], []
    dicom_series = f"{input_path.name.split('.')[0] or 'sketches'}_synth_dicom"
    for item in items:
        kinds = set()
        for f in formats:
            kinds.add(("nifti" if item.nifti is not None else "png") if f == "auto" else f)
        if "nifti" in kinds and item.nifti is None:
            raise InvalidInputError(f"--format nifti: {item.path} is not a NIfTI file; NIfTI output keeps a NIfTI "
                                    "input's geometry (use --format png or dicom for other inputs)")
        stem = item.path.name[: -len(".nii.gz")] if item.path.name.lower().endswith(".nii.gz") else item.path.stem
        series = out / (f"{stem}_synth_dicom" if item.nifti is not None else dicom_series)
        entry = {"item": item, "kinds": kinds, "nifti": out / f"{stem}_synth.nii.gz", "series": series}
        if "png" in kinds:
            paths += [out / f"{n}_synth.png" for n in item.names]
        if "nifti" in kinds:
            paths.append(entry["nifti"])
        if "dicom" in kinds:
            paths += [series / f"{n}.dcm" for n in item.names]
        plan.append(entry)
    return plan, paths


def write_planned_outputs(plan: list, images: Any, out: Path, desc: str, settings: str) -> int:
    """Write each input's images in the formats `plan_outputs` chose (PNG, NIfTI, DICOM); returns the file count.

    `images` holds the inputs' images in plan order. DICOM of the inputs that are not volumes goes into one series."""

    from . import io
    from .medical_io import write_dicom_series, write_nifti

    a = written = 0
    loose: list = []
    for entry in plan:
        item = entry["item"]
        part = images[a:a + len(item.names)]
        a += len(item.names)
        if "png" in entry["kinds"]:
            io.write_pngs(out, part, [f"{n}_synth" for n in item.names])
            written += len(part)
        if "nifti" in entry["kinds"]:
            write_nifti(entry["nifti"], part, item.nifti, desc)
            written += 1
        if "dicom" in entry["kinds"] and item.nifti is not None:  # one series per input volume
            write_dicom_series(entry["series"], part, item.names, desc, settings, reference=item.nifti)
            written += len(part)
        elif "dicom" in entry["kinds"]:
            loose.append((entry["series"], part, item.names))
    if loose:
        write_dicom_series(loose[0][0], np.concatenate([p for _, p, _ in loose]), [n for _, _, ns in loose for n in ns],
                           desc, settings)
        written += sum(len(p) for _, p, _ in loose)
    return written
