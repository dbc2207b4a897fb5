"""Example sketches shipped with the package, made by the project (procedural phantoms, no ACDC data).

Each example is a phantom slice rendered at twice the model resolution and passed through the
training preprocessing (:func:`cheartflow_sdk.data.preprocess`), so it is framed like the ACDC
training crops: heart-centred, the heart about half the field of view. Its sketches are the
training sketches of that crop: Canny edges (:func:`~cheartflow_sdk.sketch.canny` with the training
defaults) and the label map. The shipped PNGs under ``cheartflow_sdk/examples/{edges,labels}/`` are
exactly what :func:`make_example_sketches` returns for the default arguments (a test checks this),
so they can be regenerated with :func:`write_example_sketches`.

The edge examples come from the chest phantom (:func:`~cheartflow_sdk.data.phantom.make_chest_phantom`:
heart, chest wall, lungs with vessels, liver, aorta, spine), whose Canny edges are as dense as those
of the ACDC training crops; the plain heart phantom gave only the three clean curves of the heart
(a 0.039 median edge-pixel fraction against ACDC's 0.100), far from what the edges model was
trained on. ``benchmarks/demo_sketches.py`` measures both against the training set. The label
examples come from the plain heart phantom (:func:`~cheartflow_sdk.data.phantom.make_phantom`).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import InvalidInputError
from .sketch import SKETCH_KINDS

EXAMPLE_COUNT = 8  # examples per sketch kind
EXAMPLE_SEED = 2026  # phantom seed of the shipped examples
EXAMPLE_SIZE = 128  # side of the shipped examples (the default models' resolution)


def example_dir(kind: str) -> Path:
    """Folder of the shipped example sketches of ``kind`` (``"edges"`` or ``"labels"``)."""
    _check_kind(kind)
    return Path(str(resources.files("cheartflow_sdk") / "examples" / kind))


def load_example_sketches(kind: str) -> tuple[np.ndarray, list[str]]:
    """The shipped example sketches of ``kind``: float32 ``[B,1,128,128]`` in [0, 1] and their names."""
    from .io import read_sketches

    return read_sketches(example_dir(kind))


def make_example_sketches(
    kind: str, n: int = EXAMPLE_COUNT, size: int = EXAMPLE_SIZE, seed: int = EXAMPLE_SEED
) -> np.ndarray:
    """``n`` heart-centred phantom sketches of ``kind``, float32 ``[n,1,size,size]`` in [0, 1]."""
    from .data.phantom import make_chest_phantom, make_phantom
    from .sketch import make_sketch

    _check_kind(kind)
    phantom = make_chest_phantom if kind == "edges" else make_phantom
    images, labels = heart_crops(*phantom(n, size=2 * size, seed=seed), size=size)
    return make_sketch(kind, images=images, labels=labels)


def heart_crops(images: np.ndarray, labels: np.ndarray, size: int = EXAMPLE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Phantom slices (images ``[n,1,S,S]`` in [-1,1], labels ``[n,S,S]``) cropped around the heart as in training.

    Returns images float32 ``[n,1,size,size]`` in [-1,1] and labels uint8 ``[n,size,size]``.
    """
    from .data.preprocess import PreprocessConfig, preprocess

    config = PreprocessConfig(size=size, min_crop=size // 2)
    crops = [preprocess((img[0] + 1.0) / 2.0, lab, config) for img, lab in zip(images, labels)]
    if not crops:
        return np.zeros((0, 1, size, size), np.float32), np.zeros((0, size, size), np.uint8)
    return np.stack([c[0] for c in crops])[:, None], np.stack([c[1] for c in crops])


def edge_density(sketches: np.ndarray) -> np.ndarray:
    """Fraction of edge pixels of each edge sketch ``[B,1,H,W]``: float64 ``[B]``."""
    return (np.asarray(sketches) > 0.5).reshape(len(sketches), -1).mean(axis=1)


def edge_components(sketches: np.ndarray) -> np.ndarray:
    """Number of 8-connected edge fragments of each edge sketch ``[B,1,H,W]``: int ``[B]``."""
    import cv2

    return np.array([cv2.connectedComponents((s[0] > 0.5).astype(np.uint8), connectivity=8)[0] - 1
                     for s in np.asarray(sketches)], dtype=np.int64)


def write_example_sketches(root: str | os.PathLike, **kwargs) -> dict[str, list[Path]]:
    """Write :func:`make_example_sketches` of both kinds as ``root/{kind}/example_NN.png``; returns the paths."""
    from .io import write_pngs

    written = {}
    for kind in SKETCH_KINDS:
        sketches = make_example_sketches(kind, **kwargs)
        names = [f"example_{i:02d}" for i in range(len(sketches))]
        written[kind] = write_pngs(Path(root) / kind, sketches, names)
    return written


def _check_kind(kind: str) -> None:
    if kind not in SKETCH_KINDS:
        raise InvalidInputError(f"example sketches exist for kinds {SKETCH_KINDS}, got {kind!r}")
