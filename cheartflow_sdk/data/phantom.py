"""A procedural short-axis cardiac MR phantom, and tiny datasets in the ACDC folder layout.

The phantom is for tests and demos only: a body ellipse with smooth tissue texture, a bright LV
blood pool (label 3) inside a dark-grey myocardial ring (label 2), and a bright RV crescent
(label 1) beside it, with fine noise. Labels follow ACDC: 0 background, 1 RV, 2 MYO, 3 LV.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .acdc import FRAMES

logger = logging.getLogger(__name__)

_CHUNK = 128  # images rendered at once (bounds the memory of the vectorized renderer)


def make_phantom(n: int, size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random phantom slices: images float32 ``[n,1,size,size]`` in [-1,1], labels uint8 ``[n,size,size]``.

    Deterministic for a given ``(n, size, seed)``.
    """
    _check_count("n", n, minimum=0)
    _check_count("size", size, minimum=16)
    rng = np.random.default_rng(seed)
    images01, labels = _render(rng, int(n), int(size), int(size), heart=np.ones(int(n), dtype=bool))
    return (images01 * 2.0 - 1.0)[:, None].astype(np.float32), labels


def write_acdc_like(
    root: str | os.PathLike,
    images: Mapping[str, Sequence[np.ndarray]],
    labels: Mapping[str, Sequence[np.ndarray]],
    splits: Mapping[str, Sequence[str]],
) -> Path:
    """Write volumes in the ACDC layout under ``root`` and return ``root``.

    ``images[pid]`` and ``labels[pid]`` are ``(ED, ES)`` volumes ``[X, Y, Z]`` (images float in
    [0, 1], labels 0..3); they become ``pid/pid_frame01[_gt].nii.gz`` and ``pid/pid_frame02[_gt].nii.gz``
    (float32 images, uint8 labels, identity affine). ``splits`` (split name -> patient ids) is
    written as ``splits.json``.
    """
    import nibabel as nib

    root = Path(root)
    if set(images) != set(labels):
        raise InvalidInputError("write_acdc_like expects the same patient ids in images and labels")
    for pid in images:
        if len(images[pid]) != len(FRAMES) or len(labels[pid]) != len(FRAMES):
            raise InvalidInputError(f"write_acdc_like expects (ED, ES) volumes for patient {pid!r}")
        folder = root / pid
        folder.mkdir(parents=True, exist_ok=True)
        for (tag, _), vol, lab in zip(FRAMES, images[pid], labels[pid]):
            vol, lab = np.asarray(vol), np.asarray(lab)
            if vol.ndim != 3 or vol.shape != lab.shape:
                raise InvalidInputError(
                    f"write_acdc_like expects image and label volumes [X, Y, Z] of one shape for {pid!r}, "
                    f"got {vol.shape} and {lab.shape}"
                )
            nib.save(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), str(folder / f"{pid}_{tag}.nii.gz"))
            nib.save(nib.Nifti1Image(lab.astype(np.uint8), np.eye(4)), str(folder / f"{pid}_{tag}_gt.nii.gz"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "splits.json").write_text(json.dumps({k: list(v) for k, v in splits.items()}, indent=1))
    return root


def write_phantom_acdc(
    root: str | os.PathLike,
    n_patients: int = 6,
    slices_per_volume: int = 4,
    size: int = 96,
    seed: int = 0,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """Write a tiny phantom dataset in the ACDC layout under ``root``; return its splits.

    Each volume is ``[size, size + 16, slices_per_volume]`` (non-square, like ACDC) with intensities
    in [0, 1]; its last slice has no heart (all labels 0), like an ACDC slice beyond the apex.
    Patients are ``patient001``.. ; the default split is about 70/10/20 % with at least one
    patient in each split when ``n_patients >= 3``.
    """
    _check_count("n_patients", n_patients, minimum=1)
    _check_count("slices_per_volume", slices_per_volume, minimum=1)
    _check_count("size", size, minimum=16)
    rng = np.random.default_rng(seed)
    pids = [f"patient{i + 1:03d}" for i in range(n_patients)]
    heart = np.arange(slices_per_volume) < max(slices_per_volume - 1, 1)
    images: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[np.ndarray]] = {}
    for pid in pids:
        vols = [_render(rng, slices_per_volume, size, size + 16, heart=heart) for _ in FRAMES]
        images[pid] = [np.ascontiguousarray(v.transpose(1, 2, 0)) for v, _ in vols]
        labels[pid] = [np.ascontiguousarray(lab.transpose(1, 2, 0)) for _, lab in vols]
    split_map = {k: list(v) for k, v in splits.items()} if splits is not None else default_splits(pids)
    write_acdc_like(root, images, labels, split_map)
    logger.debug("wrote phantom ACDC dataset with %d patients to %s", n_patients, root)
    return split_map


def default_splits(pids: Sequence[str]) -> dict[str, list[str]]:
    """Split patient ids about 70/10/20 % into train/val/test, at least one each when possible."""
    n = len(pids)
    n_val = max(1, round(0.1 * n)) if n >= 3 else 0
    n_test = max(1, round(0.2 * n)) if n >= 3 else 0
    n_train = n - n_val - n_test
    return {
        "train": list(pids[:n_train]),
        "val": list(pids[n_train : n_train + n_val]),
        "test": list(pids[n_train + n_val :]),
    }


def _render(
    rng: np.random.Generator, n: int, height: int, width: int, heart: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` slices in chunks: images float32 [n,H,W] in [0,1], labels uint8 [n,H,W]."""
    params = _draw_params(rng, n, height, width)
    params["heart"] = np.asarray(heart, dtype=bool)
    images = np.empty((n, height, width), dtype=np.float32)
    labels = np.empty((n, height, width), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        chunk = {k: v[sl] for k, v in params.items()}
        images[sl], labels[sl] = _render_chunk(rng, chunk, height, width)
    return images, labels


def _draw_params(rng: np.random.Generator, n: int, height: int, width: int) -> dict[str, np.ndarray]:
    """Per-image random geometry and intensities, each an array of length ``n`` (in pixels / [0,1])."""
    s = min(height, width)
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    return {
        "cy": height / 2 + u(-0.12, 0.12) * s,  # LV centre row
        "cx": width / 2 + u(-0.12, 0.12) * s,  # LV centre column
        "r_lv": u(0.07, 0.12) * s,  # LV blood pool radius
        "ecc": u(0.85, 1.15),  # LV axis ratio
        "thick": u(0.03, 0.055) * s,  # myocardium thickness
        "theta": u(0.0, 2 * np.pi),  # rotation; the RV lies in this direction
        "rv_scale": u(0.9, 1.2),  # RV size relative to the epicardium
        "body_a": u(0.38, 0.46) * s,  # body ellipse half-axes
        "body_b": u(0.30, 0.40) * s,
        "body_rot": u(-0.4, 0.4),
        "tissue": u(0.22, 0.38),  # mean tissue intensity
        "lv_int": u(0.75, 0.95),  # LV blood intensity
        "rv_int": u(0.65, 0.9),  # RV blood intensity
        "myo_int": u(0.1, 0.22),  # myocardium intensity
        "noise": u(0.01, 0.035),  # fine noise std
        "gamma": u(0.8, 1.25),  # per-image contrast
        "phase": rng.uniform(0.0, 2 * np.pi, (n, 4)),  # low-frequency texture phases
        "freq": rng.uniform(0.5, 2.5, (n, 4, 2)),  # low-frequency texture (cycles per image side)
    }


def _render_chunk(
    rng: np.random.Generator, p: dict[str, np.ndarray], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Render one chunk of images from its parameter arrays (vectorized over the batch)."""
    e = lambda name: p[name][:, None, None].astype(np.float32)  # noqa: E731
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy[None], xx[None]
    # body ellipse and smooth tissue texture
    by, bx = yy - height / 2, xx - width / 2
    cb, sb = np.cos(e("body_rot")), np.sin(e("body_rot"))
    body_r = np.hypot((cb * bx + sb * by) / e("body_a"), (-sb * bx + cb * by) / e("body_b"))
    body = _soft(body_r, 1.0, e("body_a") * 0.5)
    side = float(min(height, width))
    texture = np.zeros_like(body)
    for k in range(p["phase"].shape[1]):
        fy = p["freq"][:, k, 0, None, None] * 2 * np.pi / side
        fx = p["freq"][:, k, 1, None, None] * 2 * np.pi / side
        texture += np.sin(fy * yy + fx * xx + p["phase"][:, k, None, None]).astype(np.float32)
    img = body * (e("tissue") + 0.03 * texture) + (1 - body) * 0.03
    # heart: LV ellipse, myocardial ring, RV crescent
    dy, dx = yy - e("cy"), xx - e("cx")
    ct, st = np.cos(e("theta")), np.sin(e("theta"))
    u, v = ct * dx + st * dy, -st * dx + ct * dy  # u points towards the RV
    r_lv, ecc = e("r_lv"), e("ecc")
    r_epi = r_lv + e("thick")
    lv_r = np.hypot(u, v * ecc) / r_lv
    epi_r = np.hypot(u, v * ecc) / r_epi
    rv_a = r_epi * e("rv_scale")  # the RV is an ellipse beside the LV, minus the epicardium
    rv_r = np.hypot((u - 0.7 * r_epi) / (0.8 * rv_a), v / (1.3 * rv_a))
    heart = p["heart"][:, None, None]
    m_epi = _soft(epi_r, 1.0, r_epi) * heart
    m_lv = _soft(lv_r, 1.0, r_lv) * heart
    m_rv = _soft(rv_r, 1.0, rv_a) * (1 - m_epi) * heart
    img = img * (1 - m_epi) + e("myo_int") * m_epi
    img = img * (1 - m_lv) + e("lv_int") * m_lv
    img = img * (1 - m_rv) + e("rv_int") * m_rv
    img = img + rng.normal(0.0, 1.0, img.shape).astype(np.float32) * e("noise")
    img = np.clip(img, 0.0, 1.0) ** e("gamma")
    labels = np.zeros(img.shape, dtype=np.uint8)
    labels[(rv_r < 1) & heart] = 1
    labels[(epi_r < 1) & heart] = 2
    labels[(lv_r < 1) & heart] = 3
    return img.astype(np.float32), labels


def _soft(radius: np.ndarray, edge: float | np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Anti-aliased inside-mask of ``radius < edge``; ``scale`` converts radius units to pixels."""
    dist_px = (radius - edge) * scale
    return (0.5 - 0.5 * np.tanh(dist_px / 0.7)).astype(np.float32)


def _check_count(name: str, value: int, minimum: int) -> None:
    """Raise InvalidInputError unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
