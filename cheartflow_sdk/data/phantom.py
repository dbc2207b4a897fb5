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


# --------------------------------------------------------------------------- chest phantom (realistic demo images)


def make_chest_phantom(n: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` short-axis cine-like chest slices: images float32 ``[n,1,size,size]`` in [-1,1], labels uint8.

    Unlike :func:`make_phantom` (a heart on a plain body, for tests), these slices carry the
    anatomy around the heart that a real short-axis bSSFP cine shows: bright subcutaneous and
    epicardial fat, layered chest-wall muscle and ribs, dark lungs with bright vessels, liver,
    stomach, descending aorta, spine, a trabeculated LV with papillary muscles and a thin-walled
    RV, under a smooth coil bias field with tissue texture and Rician noise. Their Canny edges are
    about as dense as those of ACDC crops (see :mod:`cheartflow_sdk.examples`), so they make
    in-distribution demo sketches for the edges model. Labels follow ACDC (papillary muscles count
    as LV cavity). The LV epicardial radius is 7.5-9.5 % of ``size``, so
    :func:`~cheartflow_sdk.data.preprocess` crops about half of a slice around the heart.
    Deterministic for ``(n, size, seed)``.
    """
    _check_count("n", n, minimum=0)
    _check_count("size", size, minimum=32)
    rng = np.random.default_rng(seed)
    images = np.empty((int(n), 1, int(size), int(size)), dtype=np.float32)
    labels = np.empty((int(n), int(size), int(size)), dtype=np.uint8)
    for i in range(int(n)):
        scene = _Scene(rng, int(size))
        body, cavity = _paint_chest_wall(scene)
        _paint_lungs_and_abdomen(scene, cavity)
        _paint_mediastinum(scene, body, cavity)
        labels[i] = _paint_heart(scene)
        images[i, 0] = _acquire(scene) * 2.0 - 1.0
    return images, labels


_NEAR = (-4.0, 4.0, -3.0, 3.5)  # scene box (x0, x1, y0, y1) that the heart-centred crop sees


class _Scene:
    """One slice being painted, in canonical scene coordinates in units of the LV epicardial radius.

    ``x`` points to the patient's left (image right), ``y`` posterior (image down), before the
    slice's random in-plane rotation; ``px`` is that unit in pixels; ``img`` the canvas in [0, ~1].
    """

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng, self.size = rng, size
        self.px = rng.uniform(0.075, 0.095) * size
        centre = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
        angle = rng.uniform(-0.9, 0.9)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        dy, dx = (yy - centre[0]) / self.px, (xx - centre[1]) / self.px
        self.x = np.cos(angle) * dx + np.sin(angle) * dy
        self.y = -np.sin(angle) * dx + np.cos(angle) * dy
        self._centre, self._angle = centre, angle
        self.img = np.full((size, size), rng.uniform(0.0, 0.02), np.float32)  # air

    def paint(self, mask: np.ndarray, value: float | np.ndarray) -> None:
        """Cover the canvas with ``value`` where ``mask`` (coverage in [0, 1]) says."""
        self.img = self.img * (1 - mask) + value * mask

    def radius(self, cx, cy, a, b, rot=0.0, wobble=0.0, lobes=4) -> np.ndarray:
        """Normalized radius of an ellipse (1 on its outline), its outline made wavy by ``wobble`` (relative)."""
        u, v = self.x - cx, self.y - cy
        u, v = np.cos(rot) * u + np.sin(rot) * v, -np.sin(rot) * u + np.cos(rot) * v
        rho = np.hypot(u / a, v / b)
        if wobble:
            theta = np.arctan2(v, u)
            amps = self.rng.uniform(0, wobble, lobes) / np.arange(1, lobes + 1) ** 0.5
            phases = self.rng.uniform(0, 2 * np.pi, lobes)
            rho = rho / (1 + sum(amp * np.cos((k + 1) * theta + ph) for k, (amp, ph) in enumerate(zip(amps, phases))))
        return rho

    def mask(self, rho: np.ndarray, a: float, edge_px: float = 0.7) -> np.ndarray:
        """Anti-aliased inside of ``rho < 1`` for a shape of mean half-axis ``a`` (scene units)."""
        return (0.5 - 0.5 * np.tanh((rho - 1.0) * a * self.px / edge_px)).astype(np.float32)

    def texture(self, sigma_px: float) -> np.ndarray:
        """Smooth zero-mean, unit-std random field with correlation length ``sigma_px`` pixels."""
        import cv2

        field = cv2.GaussianBlur(self.rng.standard_normal((self.size, self.size)).astype(np.float32), (0, 0), sigma_px)
        return field / max(float(field.std()), 1e-6)

    def tissue(self, mean: float, amp: float, sigma_px: float = 2.5) -> np.ndarray:
        """A tissue's intensity: ``mean`` modulated by texture of relative amplitude ``amp``."""
        return mean * (1 + amp * self.texture(sigma_px))

    def dots(self, count: int, radius_px: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
        """``count`` small blobs (vessels in cross-section) at random places near the heart, as intensities."""
        out = np.zeros((self.size, self.size), np.float32)
        cos, sin = np.cos(self._angle), np.sin(self._angle)
        for _ in range(count):
            x, y = self.rng.uniform(_NEAR[0], _NEAR[1]), self.rng.uniform(_NEAR[2], _NEAR[3])
            rad, peak = self.rng.uniform(*radius_px), self.rng.uniform(*value)
            row = self._centre[0] + (sin * x + cos * y) * self.px  # the blob's centre in pixels
            col = self._centre[1] + (cos * x - sin * y) * self.px
            r0, r1 = max(int(row - 4 * rad), 0), min(int(row + 4 * rad) + 2, self.size)  # blob is ~0 beyond 4 rad
            c0, c1 = max(int(col - 4 * rad), 0), min(int(col + 4 * rad) + 2, self.size)
            if r0 >= r1 or c0 >= c1:
                continue
            rr, cc = np.mgrid[r0:r1, c0:c1].astype(np.float32)
            blob = peak * np.exp(-((rr - row) ** 2 + (cc - col) ** 2) / (2 * rad**2))
            out[r0:r1, c0:c1] = np.maximum(out[r0:r1, c0:c1], blob)
        return out

    def streaks(self, count: int, length: tuple[float, float], width: float) -> np.ndarray:
        """Coverage of ``count`` thin ellipses (fat planes) at random places and angles near the heart."""
        out = np.zeros((self.size, self.size), np.float32)
        for _ in range(count):
            x, y = self.rng.uniform(_NEAR[0], _NEAR[1]), self.rng.uniform(_NEAR[2], _NEAR[3])
            rho = self.radius(x, y, self.rng.uniform(*length), width, rot=self.rng.uniform(0, np.pi))
            out = np.maximum(out, self.mask(rho, width))
        return out


def _paint_chest_wall(sc: _Scene) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """Body, subcutaneous fat, muscle layers with fat planes, ribs; returns the body ellipse and the cavity mask."""
    u = sc.rng.uniform
    body = bx, by, ba, bb = u(-1.0, -0.4), u(1.0, 1.5), u(4.6, 5.6), u(2.9, 3.4)  # heart left-anterior in it
    m_body = sc.mask(sc.radius(bx, by, ba, bb, wobble=0.03), bb)
    sc.paint(m_body, sc.tissue(u(0.7, 0.9), 0.1))  # subcutaneous fat
    depth = u(0.12, 0.35)
    for layer in range(int(sc.rng.integers(1, 3))):
        muscle = sc.tissue(u(0.18, 0.32), 0.12, 3.0)
        sc.paint(sc.mask(sc.radius(bx, by, ba - depth, bb - depth, wobble=0.04), bb), muscle)
        depth += u(0.15, 0.35)
        if layer < 2:  # a fat plane under the muscle layer
            sc.paint(sc.mask(sc.radius(bx, by, ba - depth, bb - depth, wobble=0.04), bb), sc.tissue(u(0.5, 0.8), 0.1))
            depth += u(0.04, 0.1)
    m_cavity = sc.mask(sc.radius(bx, by, ba - depth, bb - depth, wobble=0.04), bb)
    for t in np.sort(u(-2.7, -0.45, int(sc.rng.integers(3, 7)))):  # ribs: dark cortex, grey marrow
        rx, ry = bx + (ba - depth / 2) * np.cos(t), by + (bb - depth / 2) * np.sin(t)
        rib_a, rib_b = u(0.25, 0.45), u(0.1, 0.16)
        cortex = sc.radius(rx, ry, rib_a + 0.06, rib_b + 0.06, rot=t + np.pi / 2)
        sc.paint(sc.mask(cortex, rib_b) * (1 - m_cavity), u(0.04, 0.1))
        sc.paint(sc.mask(sc.radius(rx, ry, rib_a, rib_b, rot=t + np.pi / 2), rib_b) * (1 - m_cavity), u(0.3, 0.5))
    planes = sc.streaks(int(sc.rng.integers(8, 20)), (0.2, 0.7), 0.06)  # short fat planes between muscles
    sc.paint(planes * m_body * (1 - m_cavity), u(0.5, 0.8))
    return body, m_cavity


def _paint_lungs_and_abdomen(sc: _Scene, m_cavity: np.ndarray) -> None:
    """Dark lungs with bright vessels filling the cavity, then liver and stomach under the diaphragm."""
    u = sc.rng.uniform
    vessels = sc.dots(int(sc.rng.integers(80, 150)), (0.7, 1.5), (0.4, 1.0))
    vessels = np.maximum(vessels, sc.dots(int(sc.rng.integers(40, 80)), (0.5, 0.8), (0.7, 1.0)))  # tiny specks
    sc.paint(m_cavity, sc.tissue(u(0.03, 0.08), 0.3, 4.0) + vessels)
    if u() < 0.85:  # liver: patient's right, posterior
        liver = sc.radius(u(-3.4, -2.2), u(1.9, 2.8), u(2.4, 3.2), u(1.3, 1.9), rot=u(-0.5, 0.2), wobble=0.08)
        hepatic = sc.dots(int(sc.rng.integers(4, 12)), (0.8, 1.8), (0.15, 0.4))
        sc.paint(sc.mask(liver, 2.0) * m_cavity, sc.tissue(u(0.3, 0.45), 0.2, 2.0) + hepatic)
    if u() < 0.6:  # stomach: patient's left
        stomach = sc.radius(u(1.5, 2.8), u(2.0, 2.8), u(1.2, 2.0), u(0.8, 1.3), rot=u(-0.6, 0.6), wobble=0.12)
        sc.paint(sc.mask(stomach, 1.0) * m_cavity, sc.tissue(u(0.35, 0.7), 0.15, 1.5))


def _paint_mediastinum(sc: _Scene, body: tuple[float, float, float, float], m_cavity: np.ndarray) -> None:
    """Spine with paraspinal muscles, descending aorta, oesophagus and hilar vessels beside the heart."""
    u = sc.rng.uniform
    bx, by, _, bb = body
    sx, sy = bx + u(-0.2, 0.4), by + bb - u(1.1, 1.4)
    sc.paint(sc.mask(sc.radius(sx, sy + 0.2, 2.0, 1.1, wobble=0.05), 1.2), sc.tissue(u(0.2, 0.3), 0.12))
    sc.paint(sc.mask(sc.radius(sx, sy - 0.4, 0.75, 0.6), 0.7), u(0.05, 0.12))  # vertebral cortex
    sc.paint(sc.mask(sc.radius(sx, sy - 0.4, 0.65, 0.5), 0.6), sc.tissue(u(0.35, 0.5), 0.1))  # marrow
    sc.paint(sc.mask(sc.radius(sx, sy + 0.45, 0.25, 0.22), 0.25), u(0.7, 0.95))  # spinal canal (CSF)
    ax, ay, ar = sx + u(0.7, 1.1), sy - u(1.0, 1.3), u(0.28, 0.4)
    sc.paint(sc.mask(sc.radius(ax, ay, ar + 0.08, ar + 0.08), ar), u(0.1, 0.2))  # aortic wall
    sc.paint(sc.mask(sc.radius(ax, ay, ar, ar), ar), sc.tissue(u(0.55, 0.95), 0.05))
    if u() < 0.7:
        sc.paint(sc.mask(sc.radius(ax - u(0.6, 0.9), ay - 0.1, 0.25, 0.18), 0.2), u(0.25, 0.45))  # oesophagus
    for _ in range(int(sc.rng.integers(2, 6))):  # hilar vessels: discs with a dark wall
        ang, dist, vr = u(-np.pi, np.pi), u(1.4, 2.4), u(0.12, 0.3)
        vx, vy = dist * np.cos(ang), dist * np.sin(ang)
        sc.paint(sc.mask(sc.radius(vx, vy, vr + 0.07, vr + 0.07), vr) * m_cavity, u(0.05, 0.15))
        sc.paint(sc.mask(sc.radius(vx, vy, vr, vr), vr) * m_cavity, u(0.3, 0.9))


def _paint_heart(sc: _Scene) -> np.ndarray:
    """Pericardium, epicardial fat, RV and LV at the scene origin; returns the ACDC labels."""
    u = sc.rng.uniform
    rv_dir = np.pi + 0.35 + u(-0.3, 0.3)  # direction from the LV to the RV (patient's right, anterior)
    ecc, r_lv, rv_size = u(0.92, 1.08), u(0.45, 0.72), u(0.7, 1.05)  # small r_lv and RV: apical slices
    rv_off = u(0.75, 1.0)
    rv_ellipse = (rv_off * np.cos(rv_dir), rv_off * np.sin(rv_dir), rv_size * u(1.05, 1.35), rv_size * u(0.7, 0.95))
    rv_rot = rv_dir + np.pi / 2  # the RV's long axis wraps around the septum
    epi = sc.radius(0, 0, 1.0, ecc, wobble=0.03)
    rv = sc.radius(*rv_ellipse, rot=rv_rot, wobble=0.06)
    # epicardial fat (thin over the RV, thickest in the interventricular grooves), the dark pericardium outside it
    lv_fat, rv_fat = u(1.05, 1.2), u(1.0, 1.08)
    rv_fat_rho = sc.radius(*rv_ellipse[:2], rv_ellipse[2] * rv_fat, rv_ellipse[3] * rv_fat, rot=rv_rot, wobble=0.1)
    m_fat = np.maximum(sc.mask(epi / lv_fat, 1.0), sc.mask(rv_fat_rho, rv_ellipse[3]))
    for sign in (-1, 1):
        gx, gy = np.cos(rv_dir + sign * 1.3), np.sin(rv_dir + sign * 1.3)
        m_fat = np.maximum(m_fat, sc.mask(sc.radius(gx, gy, u(0.25, 0.5), u(0.2, 0.35), wobble=0.1), 0.3))
    sc.paint(np.clip(m_fat * 1.6, 0, 1), u(0.04, 0.12))  # pericardium: the fat mask's outer rim
    sc.paint(np.clip((m_fat - 0.5) * 3, 0, 1), sc.tissue(u(0.55, 0.85), 0.15, 1.5))
    myo = sc.tissue(u(0.18, 0.3), 0.1, 2.0)
    blood = sc.tissue(u(0.8, 0.95), 0.04, 3.0)
    sc.paint(sc.mask(rv * 0.93, rv_ellipse[3]), myo)  # RV free wall
    m_rv = sc.mask(rv, rv_ellipse[3]) * (1 - sc.mask(epi * 0.93, 1.0))
    sc.paint(m_rv, blood * u(0.85, 1.0))
    sc.paint((sc.texture(1.0) > u(1.4, 2.0)) * m_rv * (rv > 0.8), myo)  # RV trabeculations along the free wall
    sc.paint(sc.mask(epi, 1.0), myo)
    lv = sc.radius(u(-0.05, 0.05), u(-0.05, 0.05), r_lv, r_lv * ecc, wobble=0.12, lobes=8)
    m_lv = sc.mask(lv, r_lv)
    sc.paint(m_lv, blood)
    for ang in (u(-1.2, -0.6), u(0.6, 1.3)):  # anterolateral and inferoseptal papillary muscles, on the wall
        pr = u(0.08, 0.15)
        pap = sc.radius((r_lv - pr) * np.cos(ang), (r_lv - pr) * np.sin(ang), pr, pr * u(1.0, 1.6), rot=ang)
        sc.paint(sc.mask(pap, pr) * m_lv, myo)
    sc.paint((sc.texture(1.0) > u(1.6, 2.2)) * m_lv * (lv > 0.75), myo)  # LV trabeculations
    labels = np.zeros((sc.size, sc.size), np.uint8)
    labels[m_rv > 0.5] = 1
    labels[(epi < 1) & (m_rv <= 0.5)] = 2
    labels[lv < 1] = 3
    return labels


def _acquire(sc: _Scene) -> np.ndarray:
    """The canvas as the scanner shows it: coil bias (brighter anteriorly), Rician noise, contrast; [0,1]."""
    u = sc.rng.uniform
    bias = 1 + u(0.1, 0.35) * np.tanh(-sc.y / 4) + 0.1 * sc.texture(sc.size / 6)
    img = np.clip(sc.img * bias, 0, None)
    sigma = u(0.015, 0.035)
    img = np.hypot(img + sigma * sc.rng.standard_normal(img.shape), sigma * sc.rng.standard_normal(img.shape))
    img = np.clip(img / max(float(np.percentile(img, 99.5)), 1e-6), 0, 1) ** u(0.85, 1.15)
    return img.astype(np.float32)
