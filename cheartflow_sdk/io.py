"""Reading sketches from disk and writing images (PNG, grids) atomically.

Sketches are returned in the SDK layout float32 [B,1,H,W] in [0, 1]; written images are
8-bit grayscale PNGs. Every write goes through :func:`atomic_output`, so an interrupted
write never leaves a truncated file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .atomic import atomic_output, atomic_write_bytes, atomic_write_text
from .errors import InvalidInputError
from .validation import MAP_MAX, as_sketch_batch, describe, integer_sketch_values

__all__ = [
    "SKETCH_EXTENSIONS",
    "SketchFile",
    "read_sketch_files",
    "read_sketches",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "to_uint8",
    "write_png",
    "write_pngs",
    "make_grid",
    "write_grid",
]

logger = logging.getLogger(__name__)

SKETCH_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy", ".nii", ".nii.gz")
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_GRID_PAD_VALUE = 230  # light gray between tiles and behind the titles
_GRID_TEXT_VALUE = 0

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- reading


def _extension(path: Path) -> str:
    """The supported extension of `path` (lower case, ``.nii.gz`` as one), or ``""``."""
    low = path.name.lower()
    for ext in sorted(SKETCH_EXTENSIONS, key=len, reverse=True):
        if low.endswith(ext) and len(low) > len(ext):
            return ext
    return ""


def _stem(path: Path, ext: str) -> str:
    return path.name[: len(path.name) - len(ext)]


@dataclass
class SketchFile:
    """The sketches of one input file: float32 [n,1,H,W] in [0, 1], one name per sketch, and for a NIfTI input
    its nibabel image (header, affine), so that outputs can keep its geometry."""

    path: Path
    names: list[str]
    sketches: np.ndarray
    nifti: Any = None


def read_sketch_files(path: PathLike, kind: str | None = None, drawing: bool = False,
                      size: int | None = None) -> list[SketchFile]:
    """Like :func:`read_sketches`, one :class:`SketchFile` per input file (same order, rules and checks).

    kind: the model's sketch kind, which settles integer maps (see
    :func:`cheartflow_sdk.validation.integer_sketch_values`). drawing: image files are hand drawings, turned
    into model sketches of `size` by :func:`cheartflow_sdk.sketch.normalize_drawing` (dark or coloured lines
    on light paper, thick lines; the aspect ratio is kept by padding).
    """
    root = Path(path)
    if not root.exists():
        raise InvalidInputError(
            f"{root}: no such file or folder (expected a sketch file or a folder of them)"
        )
    if drawing and kind is None:
        raise InvalidInputError("drawing=True needs kind ('edges' or 'labels'): the model's sketch kind")
    files = _list_sketch_files(root) if root.is_dir() else [root]
    out: list[SketchFile] = []
    first: tuple[Path, tuple[int, int]] | None = None
    for file, stem in zip(files, _unique_stems(files)):
        item = _read_file(file, stem, kind, drawing, size)
        shape = (item.sketches.shape[2], item.sketches.shape[3])
        if first is None:
            first = (file, shape)
        elif shape != first[1]:
            raise InvalidInputError(
                f"all sketches must share one size H x W: {first[0]} is {first[1][0]}x{first[1][1]} "
                f"but {file} is {shape[0]}x{shape[1]}"
            )
        out.append(item)
    return out


def read_sketches(path: PathLike, kind: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Read sketches from one file or a folder; returns float32 [B,1,H,W] in [0, 1] and one name per image.

    A folder is read non-recursively: files with an extension in ``SKETCH_EXTENSIONS``
    (case-insensitive) are read in order of their names; other files, sub-folders and
    hidden files (name starting with ".", e.g. temporary files of atomic writes) are skipped.
    Names are file stems; a 3-D NIfTI gives ``{stem}_z000, ...`` (one per slice) and a .npy
    holding more than one image gives ``{stem}_i000, ...``. Files with the same stem
    (``a.png`` and ``a.npy``) get the extension appended (``a_png``, ``a_npy``).
    All images must share H and W. Per-format value rules: see :func:`_read_image`,
    :func:`_read_npy` and :func:`_read_nifti`; integer data of every format follows one rule
    (:func:`cheartflow_sdk.validation.integer_sketch_values`), settled by `kind` (the model's sketch kind).
    """
    items = read_sketch_files(path, kind)
    names = [n for item in items for n in item.names]
    out = items[0].sketches if len(items) == 1 else np.concatenate([item.sketches for item in items], axis=0)
    logger.debug("read %d sketches of size %dx%d from %s", out.shape[0], out.shape[2], out.shape[3], path)
    return out, names


def _list_sketch_files(folder: Path) -> list[Path]:
    files = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not entry.is_file() or not _extension(entry):
            logger.debug("skipping %s (hidden, not a file, or not a sketch extension)", entry)
            continue
        files.append(entry)
    if not files:
        raise InvalidInputError(
            f"{folder}: folder holds no sketch files (supported extensions: {', '.join(SKETCH_EXTENSIONS)})"
        )
    return files


def _unique_stems(files: list[Path]) -> list[str]:
    exts = [_extension(f) for f in files]
    stems = [_stem(f, e) if e else f.stem for f, e in zip(files, exts)]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    return [f"{s}_{e.lstrip('.').replace('.', '_')}" if counts[s] > 1 else s for s, e in zip(stems, exts)]


def _read_file(file: Path, stem: str, kind: str | None = None, drawing: bool = False,
               size: int | None = None) -> SketchFile:
    ext = _extension(file)
    if not file.is_file():
        raise InvalidInputError(f"{file}: not a regular file (expected a sketch file or a folder of them)")
    if ext in _IMAGE_EXTENSIONS:
        if drawing:
            from .sketch import normalize_drawing

            return SketchFile(file, [stem], normalize_drawing(_decode_drawing(file), kind, size))
        return SketchFile(file, [stem], _read_image(file, kind)[None, None])
    if ext == ".npy":
        batch = _read_npy(file, kind)
        if batch.shape[0] == 1:
            return SketchFile(file, [stem], batch)
        return SketchFile(file, _numbered(stem, "i", batch.shape[0]), batch)
    if ext in (".nii", ".nii.gz"):
        batch, names, image = _read_nifti(file, stem, kind)
        return SketchFile(file, names, batch, image)
    raise InvalidInputError(
        f"{file}: unsupported file extension (supported: {', '.join(SKETCH_EXTENSIONS)})"
    )


def _numbered(stem: str, letter: str, n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"{stem}_{letter}{i:0{width}d}" for i in range(n)]


def _decode(file: Path) -> np.ndarray:
    try:
        raw = np.frombuffer(file.read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise InvalidInputError(f"{file}: cannot read file ({exc})") from exc
    try:
        img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    except cv2.error as exc:  # some decoders raise instead of returning None
        raise InvalidInputError(f"{file}: cannot decode image ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if img is None or img.size == 0:
        raise InvalidInputError(f"{file}: cannot decode image (file is corrupt or not a {file.suffix} image)")
    return img


def _decode_drawing(file: Path) -> np.ndarray:
    """A drawing as float32 [H,W] or RGB(A) [H,W,3|4] in [0, 1] for normalize_drawing."""
    img = _decode(file)
    if img.dtype.kind == "f":
        scale = 1.0
    elif img.dtype in (np.uint8, np.uint16):
        scale = 255.0 if int(img.max()) <= 255 else 65535.0
    else:
        raise InvalidInputError(f"{file}: unsupported pixel type {img.dtype} (expected 8-bit, 16-bit or float images)")
    img = img.astype(np.float32) / np.float32(scale)
    if img.ndim == 3 and img.shape[2] == 2:  # gray + alpha -> RGBA
        img = np.dstack([img[:, :, 0]] * 3 + [img[:, :, 1]])
    elif img.ndim == 3 and img.shape[2] in (3, 4):  # BGR(A) -> RGB(A)
        img = np.ascontiguousarray(img[:, :, [2, 1, 0, 3][:img.shape[2]]])
    if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
        raise InvalidInputError(f"{file}: a float drawing must hold finite values in [0, 1]")
    return img


def _read_image(file: Path, kind: str | None = None) -> np.ndarray:
    """Decode an image file to float32 [H,W] in [0, 1].

    Decoded with ``cv2.imdecode(IMREAD_UNCHANGED)`` (same decoders as ``cv2.imread``, but
    works with non-ASCII paths). Integer images follow the one integer rule
    (:func:`cheartflow_sdk.validation.integer_sketch_values`): a gray image with values in 0..3 is a
    map (0/1 edges, 0..3 labels); else values up to 255 are divided by 255 (16-bit files too), and
    16-bit values above 255 by 65535; float images (TIFF) must already be in [0, 1]. Color (BGR) is
    converted to gray with ``cv2.COLOR_BGR2GRAY``; an alpha channel is composited onto black
    (gray * alpha), so transparent pixels become background 0. Only the first page of a multi-page
    TIFF is read.
    """
    img = _decode(file)
    if img.dtype in (np.uint8, np.uint16):
        hi = int(img.max())
        if img.ndim == 2 and hi <= MAP_MAX:
            return integer_sketch_values(img, kind, str(file))
        scale = 255.0 if hi <= 255 else 65535.0
    elif img.dtype.kind == "f":
        scale = 1.0
    else:
        raise InvalidInputError(
            f"{file}: unsupported pixel type {img.dtype} (expected 8-bit, 16-bit or float [0, 1] images)"
        )
    gray = _to_gray(img.astype(np.float32) / np.float32(scale), file)
    return as_sketch_batch(gray, name=str(file))[0, 0]


def _to_gray(img: np.ndarray, file: Path) -> np.ndarray:
    if img.ndim == 2:
        return img
    channels = img.shape[2]
    if channels == 1:
        return img[:, :, 0]
    if channels == 2:  # gray + alpha
        return img[:, :, 0] * img[:, :, 1]
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if channels == 4:
        return cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY) * img[:, :, 3]
    raise InvalidInputError(f"{file}: unsupported image with {channels} channels (expected 1, 2, 3 or 4)")


def _read_npy(file: Path, kind: str | None = None) -> np.ndarray:
    """Load a .npy (no pickles) and validate it with :func:`as_sketch_batch` (uint8 or float [0, 1])."""
    try:
        arr = np.load(file, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a corrupt header raises anything (SyntaxError, TokenError, ...)
        raise InvalidInputError(f"{file}: cannot load .npy file ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray):  # e.g. a .npz archive saved under a .npy name
        with contextlib.suppress(Exception):
            arr.close()
        raise InvalidInputError(f"{file}: expected a .npy array, got {describe(arr)}")
    return as_sketch_batch(arr, name=str(file), kind=kind)


def _read_nifti(file: Path, stem: str, kind: str | None = None) -> tuple[np.ndarray, list[str], Any]:
    """Read a NIfTI [X,Y] or [X,Y,Z] volume (trailing size-1 axes dropped); slices are ``data[:, :, z]``.
    Returns the sketches, their names and the nibabel image (header and affine, for NIfTI output).

    Value rule, per file: integer-valued data (integer dtype, or floats holding whole numbers) in
    0..3 is a map read by the one integer rule with `kind`, where kind None means labels: label / 3
    (so a label map using only labels 0/1 is still a label map); for an edges model a 0/1 map is
    read as 0/1. Else data already in [0, 1] is kept; else it is min-max scaled to [0, 1] (a
    constant volume becomes 0). NaN/inf are rejected.
    """
    try:
        import nibabel as nib  # lazily: only NIfTI input needs it

        image = nib.load(str(file), mmap=False)
        data = np.asarray(image.dataobj)
    except Exception as exc:  # nibabel, gzip, zlib and OS errors: any failure means unreadable
        raise InvalidInputError(f"{file}: cannot read NIfTI file ({type(exc).__name__}: {exc})") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3) or data.dtype.kind not in "buif":
        raise InvalidInputError(
            f"{file}: expected a real-valued 2-D [X,Y] or 3-D [X,Y,Z] NIfTI volume, got {describe(data)}"
        )
    volume = _nifti_values(data.astype(np.float64), file, kind)
    if volume.ndim == 2:
        return as_sketch_batch(volume, name=str(file)), [stem], image
    slices = np.ascontiguousarray(np.moveaxis(volume, 2, 0))
    return as_sketch_batch(slices, name=str(file)), _numbered(stem, "z", slices.shape[0]), image


def _nifti_values(v: np.ndarray, file: Path, kind: str | None = None) -> np.ndarray:
    if v.size == 0:
        raise InvalidInputError(f"{file}: the NIfTI volume is empty (shape {v.shape})")
    finite = np.isfinite(v)
    if not finite.all():
        raise InvalidInputError(f"{file}: NIfTI volume holds {int(v.size - finite.sum())} NaN/inf values")
    lo, hi = float(v.min()), float(v.max())
    if lo >= 0.0 and hi <= MAP_MAX and np.array_equal(v, np.round(v)):
        logger.debug("%s: integer map with values 0..%g, read as a %s map", file, hi, kind or "labels")
        return integer_sketch_values(v.astype(np.int64), kind or "labels", str(file)).astype(np.float64)
    if lo >= 0.0 and hi <= 1.0:
        return v
    if hi == lo:
        logger.warning("%s: constant NIfTI volume (value %g) read as all zeros", file, lo)
        return np.zeros_like(v)
    logger.debug("%s: values in [%g, %g], min-max scaled to [0, 1]", file, lo, hi)
    return (v - lo) / (hi - lo)


# --------------------------------------------------------------------------- writing images


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images [..., H, W] in [0, 1] -> uint8: clip to [0, 1], then round x * 255 to nearest (ties up).

    uint8 input is returned unchanged, bool becomes {0, 255}; NaN is rejected.
    """
    if not isinstance(images, np.ndarray):
        raise InvalidInputError(f"images: expected a numpy array, got {describe(images)}")
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.bool_:
        return images.astype(np.uint8) * np.uint8(255)
    if images.dtype.kind != "f":
        raise InvalidInputError(f"images: expected float images in [0, 1] or uint8, got {describe(images)}")
    n_nan = int(np.isnan(images).sum())
    if n_nan:
        raise InvalidInputError(f"images: expected values in [0, 1], found {n_nan} NaN values")
    scaled = np.clip(images.astype(np.float32, copy=False), 0.0, 1.0) * np.float32(255.0)
    scaled += np.float32(0.5)
    return np.floor(scaled, out=scaled).astype(np.uint8)


def _as_2d(image: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"{name}: expected a numpy array [H,W], got {describe(image)}")
    img = image
    while img.ndim > 2 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2 or img.size == 0:
        raise InvalidInputError(
            f"{name}: expected one image [H,W], [1,H,W] or [1,1,H,W], got {describe(image)}"
        )
    return img


def _encode_png(img_u8: np.ndarray, where: object) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img_u8))
    if not ok:
        raise InvalidInputError(f"{where}: cv2.imencode could not encode a {describe(img_u8)} as PNG")
    return buf.tobytes()


def write_png(path: PathLike, image: np.ndarray) -> Path:
    """Write one image (float [0, 1] or uint8; [H,W], [1,H,W] or [1,1,H,W]) as 8-bit gray PNG, atomically."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise InvalidInputError(f"{path}: expected a file name ending in .png, got suffix {target.suffix!r}")
    img = to_uint8(_as_2d(image, str(path)))
    return atomic_write_bytes(target, _encode_png(img, path))


def _check_name(name: object, i: int) -> str:
    bad = not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0")
    if bad:
        raise InvalidInputError(f"names[{i}]: expected a plain file name without separators, got {name!r}")
    return name


def write_pngs(folder: PathLike, images: np.ndarray, names: Sequence[str]) -> list[Path]:
    """Write each image of `images` [B,1,H,W] (or [B,H,W]) to ``folder/{name}.png``; returns the paths.

    `names` must hold B distinct plain file names (no separators); the folder is created.
    """
    if not isinstance(images, np.ndarray) or images.ndim not in (3, 4) or (
        images.ndim == 4 and images.shape[1] != 1
    ):
        raise InvalidInputError(f"images: expected an array [B,1,H,W] or [B,H,W], got {describe(images)}")
    if isinstance(names, str) or len(names) != images.shape[0]:
        raise InvalidInputError(
            f"names: expected {images.shape[0]} names (one per image), got {describe(names)}"
        )
    checked = [_check_name(n, i) for i, n in enumerate(names)]
    if len(set(checked)) != len(checked):
        dupes = sorted({n for n in checked if checked.count(n) > 1})
        raise InvalidInputError(f"names: expected distinct names, got duplicates {dupes}")
    out_dir = Path(folder)
    return [write_png(out_dir / f"{n}.png", images[i]) for i, n in enumerate(checked)]


def _grid_columns(columns: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(columns, np.ndarray) or not isinstance(columns, Sequence) or len(columns) == 0:
        raise InvalidInputError(
            f"columns: expected a non-empty list of arrays [B,1,H,W], got {describe(columns)}"
        )
    out = []
    for i, col in enumerate(columns):
        if not isinstance(col, np.ndarray) or col.ndim not in (3, 4) or (col.ndim == 4 and col.shape[1] != 1):
            raise InvalidInputError(
                f"columns[{i}]: expected an array [B,1,H,W] or [B,H,W], got {describe(col)}"
            )
        col = to_uint8(col.reshape(col.shape[0], col.shape[-2], col.shape[-1]))
        if col.size == 0:
            raise InvalidInputError(f"columns[{i}]: expected a non-empty array, got {describe(col)}")
        if out and col.shape != out[0].shape:
            raise InvalidInputError(
                f"columns: all columns must share B, H and W; columns[0] has B,H,W = {out[0].shape}, "
                f"columns[{i}] has B,H,W = {col.shape}"
            )
        out.append(col)
    return out


def _title_header(titles: Sequence[str], n_cols: int, w: int, pad: int) -> np.ndarray:
    if isinstance(titles, str) or len(titles) != n_cols:
        raise InvalidInputError(f"titles: expected {n_cols} titles (one per column), got {describe(titles)}")
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = float(np.clip(w / 320.0, 0.3, 1.0))
    (_, text_h), base = cv2.getTextSize("Ag", font, scale, thick)
    margin = max(2, text_h // 3)
    header = np.full((text_h + base + 2 * margin, n_cols * w + (n_cols + 1) * pad), _GRID_PAD_VALUE, np.uint8)
    for c, title in enumerate(titles):
        text = str(title).encode("ascii", "replace").decode("ascii")  # Hershey fonts are ASCII-only
        while text and cv2.getTextSize(text, font, scale, thick)[0][0] > w:
            text = text[:-1]
        tw = cv2.getTextSize(text, font, scale, thick)[0][0]
        x0 = pad + c * (w + pad) + (w - tw) // 2
        cv2.putText(header, text, (x0, margin + text_h), font, scale, _GRID_TEXT_VALUE, thick, cv2.LINE_AA)
    return header


def make_grid(
    columns: Sequence[np.ndarray], titles: Sequence[str] | None = None, pad: int = 2
) -> np.ndarray:
    """Tile images into a uint8 grid [Hg, Wg]: one row per batch item, one column per array.

    Each column is [B,1,H,W] (or [B,H,W]) float in [0, 1] or uint8; all share B, H, W.
    Tiles are separated and surrounded by `pad` pixels of light gray (230), so
    ``Wg = C*W + (C+1)*pad`` and ``Hg = header + B*H + (B+1)*pad``. With `titles` (one per
    column) a header strip with centered black titles (ASCII, cut to the tile width) is added on top.
    """
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise InvalidInputError(f"pad: expected an int >= 0, got {pad!r}")
    cols = _grid_columns(columns)
    b, h, w = cols[0].shape
    n = len(cols)
    grid = np.full((b * h + (b + 1) * pad, n * w + (n + 1) * pad), _GRID_PAD_VALUE, np.uint8)
    for c, col in enumerate(cols):
        x0 = pad + c * (w + pad)
        for r in range(b):
            y0 = pad + r * (h + pad)
            grid[y0 : y0 + h, x0 : x0 + w] = col[r]
    if titles is not None:
        grid = np.concatenate([_title_header(titles, n, w, pad), grid], axis=0)
    return grid


def write_grid(
    path: PathLike, columns: Sequence[np.ndarray], titles: Sequence[str] | None = None, pad: int = 2
) -> Path:
    """Write :func:`make_grid` of `columns` as an 8-bit gray PNG at `path`, atomically; returns the Path."""
    return write_png(path, make_grid(columns, titles, pad))


# --------------------------------------------------------------------------- output paths


def check_output_dir(out: PathLike, input_path: PathLike | None = None, flag: str = "--out") -> Path:
    """Check, before any work, that `out` can be the output folder: not an existing file, not the input folder
    itself, and writable (probed with a temporary file in it, or in its nearest existing parent: it is
    created later). Raises InvalidInputError naming what was expected."""
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{flag} {target}: exists and is a file; expected a folder (created if missing)")
    if input_path is not None:
        src = Path(input_path)
        if src.is_dir() and target.resolve() == src.resolve():
            raise InvalidInputError(f"{flag} {target}: is the input folder; expected another folder, so that the "
                                    "outputs never mix with (or are read back as) the inputs")
    probe_dir = target
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    try:
        import tempfile

        fd, name = tempfile.mkstemp(prefix=".cheartflow-probe-", dir=probe_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise InvalidInputError(f"{flag} {target}: cannot write there ({probe_dir}: {exc.strerror or exc}); "
                                "expected a writable folder") from None
    return target


def check_output_files(paths: Sequence[PathLike], overwrite: bool = False) -> None:
    """Check, before any work, that each output file can be written: no folder sits at its name, and it does not
    exist yet unless `overwrite` (CLI: --overwrite). Raises InvalidInputError listing the offending paths."""
    folders = [Path(p) for p in paths if Path(p).is_dir()]
    if folders:
        raise InvalidInputError(f"output {folders[0]}: is a folder; expected a file name that is free "
                                f"({len(folders)} output name(s) taken by folders)")
    if not overwrite:
        existing = [Path(p) for p in paths if Path(p).exists()]
        if existing:
            shown = ", ".join(str(p) for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
            raise InvalidInputError(f"{len(existing)} output file(s) already exist ({shown}); pass --overwrite "
                                    "(overwrite=True) to replace them, or choose another --out")
