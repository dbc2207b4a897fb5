"""Calibration inputs of int8 engines: the encoder inputs real sampling produces, from real sketches.

The encoder sees two kinds of input when sampling: the sketch itself at t = 1 (one-step, and the first step
of every multi-step run) and, for each re-noise time t_k of the model's default schedule, the bridge point
between the fp32 model's own estimate and the sketch (paper Eq. 3). Calibration feeds both, so the int8
ranges cover what the engine will meet.

Sources: a packed slices file (`cheartflow pack`, e.g. packed/val-128.npz: its images and labels make the
model's sketch kind), a folder or file of sketches (anything `cheartflow synth` reads), or None for the
procedural phantom (tests only: phantom ranges are not ACDC's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError

log = logging.getLogger(__name__)
DEFAULT_COUNT = 64  # sketches; each gives 1 + len(default_schedule) encoder inputs


@dataclass
class Calibration:
    """Encoder inputs for calibration: x float32 [N,1,R,R] in model range, t float32 [N]; `source` describes them."""

    x: np.ndarray
    t: np.ndarray
    source: str

    def batches(self, batch_size: int = 8):
        """(x, t) chunks of at most `batch_size` rows."""
        for a in range(0, len(self.x), batch_size):
            yield self.x[a:a + batch_size], self.t[a:a + batch_size]


def calibration_sketches(source: str | Path | None, cfg: Any, count: int = DEFAULT_COUNT,
                         seed: int = 0) -> tuple[np.ndarray, str]:
    """Up to `count` sketches float32 [N,1,R,R] in [0, 1] of the model's kind and resolution, evenly spread
    over `source` (see the module doc), and a description of where they came from."""
    from ..sketch import make_sketch

    r = cfg.resolution
    if count < 1:
        raise InvalidInputError(f"calibration count must be >= 1, got {count}")
    if source is None:
        from ..data.phantom import make_phantom

        images, labels = make_phantom(count, size=r, seed=seed)
        return make_sketch(cfg.sketch_kind, images=images, labels=labels).astype(np.float32), f"phantom x{count}"
    path = Path(source)
    if path.is_file() and path.suffix == ".npz":
        from ..data import load_slices

        slices = load_slices(path)
        if slices.images.shape[-1] != r:
            raise InvalidInputError(f"{path} holds {slices.images.shape[-1]}px slices; the model is {r}px")
        pick = np.unique(np.linspace(0, len(slices.images) - 1, min(count, len(slices.images))).round().astype(int))
        images = slices.images[pick].astype(np.float32)
        sketches = make_sketch(cfg.sketch_kind, images=images, labels=slices.labels[pick])
        return sketches.astype(np.float32), f"{path.name} x{len(pick)} ({cfg.sketch_kind} sketches of its slices)"
    from ..io import read_sketches

    sketches, _ = read_sketches(path)
    if sketches.shape[-1] != r or sketches.shape[-2] != r:
        raise InvalidInputError(f"calibration sketches in {path} are {sketches.shape[-2]}x{sketches.shape[-1]}; "
                                f"the model is {r}x{r}")
    pick = np.unique(np.linspace(0, len(sketches) - 1, min(count, len(sketches))).round().astype(int))
    return sketches[pick].astype(np.float32), f"{path.name} x{len(pick)} (sketch files)"


def calibration_inputs(reference: Any, source: str | Path | None, count: int = DEFAULT_COUNT,
                       seed: int = 0) -> Calibration:
    """Encoder inputs of one- and multi-step sampling on the calibration sketches; `reference` is the fp32
    encoder (numpy callable with `.config`) whose one-step estimate the re-noised inputs are built from."""
    from ..bridge import bridge_sample

    cfg = reference.config
    sketches, description = calibration_sketches(source, cfg, count, seed)
    x1 = sketches * 2 - 1
    ones = np.ones(len(x1), np.float32)
    xs, ts = [x1], [ones]
    times = tuple(cfg.default_schedule) or (0.5,)
    if times:
        x0_hat = np.concatenate([reference(x1[a:a + 16], ones[a:a + 16]) for a in range(0, len(x1), 16)])
        rng = np.random.default_rng(seed)
        for t_k in times:
            tv = np.full(len(x1), t_k, np.float32)
            eps = rng.standard_normal(x1.shape).astype(np.float32)
            xs.append(bridge_sample(x0_hat, x1, tv, cfg.sigma, eps).astype(np.float32))
            ts.append(tv)
    log.info("calibration: %d encoder inputs from %s at t in %s", sum(len(x) for x in xs), description,
             [1.0, *times])
    return Calibration(np.concatenate(xs), np.concatenate(ts), description)
