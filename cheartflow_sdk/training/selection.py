"""Choosing the checkpoint on the validation split.

Every checkpoint's EMA encoder is scored by one-step synthesis on a fixed set of validation slices
(SSIM and PSNR against the real images, both on [0, 1]); the best one so far is kept in
``<run>/best/`` (model.safetensors + config.json, loadable like the run folder), with its scores in
the config's ``selected_on_val`` field. That folder is the single record of the best score, so a
resumed run compares against what is actually on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import CONFIG_FILENAME, VAL_METRICS, read_config
from ..errors import InvalidInputError
from ..research.metrics.image import psnr, ssim, to_unit_range
from .loop import METRICS_FILENAME

log = logging.getLogger(__name__)

BEST_DIRNAME = "best"
SELECTION_KEY = "selected_on_val"


@dataclass(frozen=True)
class ValidationSet:
    """Validation slices: images float32 [N,1,S,S] in [-1,1], sketches float32 [N,1,S,S] in [0,1]."""

    images: np.ndarray
    sketches: np.ndarray
    fingerprint: str  # identifies the slices, so scores on other slices are never compared

    @classmethod
    def from_arrays(cls, images: np.ndarray, sketches: np.ndarray, max_slices: int) -> ValidationSet:
        """Up to `max_slices` slices evenly spread over the split (a fixed choice, the same every run)."""
        if images.shape != sketches.shape or images.ndim != 4 or len(images) == 0:
            raise InvalidInputError(f"validation set: expected images and sketches of one shape [N>0,1,S,S], "
                                    f"got {images.shape} and {sketches.shape}")
        if max_slices < 1:
            raise InvalidInputError(f"val_slices must be >= 1, got {max_slices}")
        idx = np.unique(np.linspace(0, len(images) - 1, min(max_slices, len(images))).round().astype(int))
        images = np.ascontiguousarray(images[idx], dtype=np.float32)
        sketches = np.ascontiguousarray(sketches[idx], dtype=np.float32)
        digest = hashlib.sha256(images.tobytes() + sketches.tobytes()).hexdigest()[:16]
        return cls(images, sketches, digest)


@dataclass
class ValidationResult:
    """One validation of the EMA encoder (a metrics.jsonl line)."""

    step: int
    val_ssim: float  # mean one-step SSIM over the validation slices
    val_psnr: float  # mean one-step PSNR (dB)


def val_logged(run_dir: str | Path, step: int) -> bool:
    """Whether the run's metrics.jsonl holds a validation line for `step`."""
    path = Path(run_dir) / METRICS_FILENAME
    if not path.is_file():
        return False
    records = (json.loads(line) for line in path.read_text().splitlines() if line)
    return any(r.get("step") == step and "val_ssim" in r for r in records)


@torch.no_grad()
def score_one_step(encoder: torch.nn.Module, val: ValidationSet, step: int, batch_size: int = 32) -> ValidationResult:
    """One-step synthesis E(x1, 1) of every validation sketch, scored against its real image."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    outputs = []
    for start in range(0, len(val.sketches), batch_size):
        x1 = torch.from_numpy(val.sketches[start:start + batch_size]).to(device) * 2 - 1
        x0_hat = encoder(x1, torch.ones(len(x1), device=device), x1)  # x1 is also the condition of a conditioned model
        outputs.append(x0_hat.float().cpu().numpy())
    encoder.train(was_training)
    fake, real = to_unit_range(np.concatenate(outputs)), to_unit_range(val.images)
    return ValidationResult(step, float(ssim(fake, real).mean()), float(psnr(fake, real).mean()))


class BestCheckpoint:
    """Keeps ``<run>/best/`` holding the checkpoint with the highest validation `metric` so far."""

    def __init__(self, run_dir: str | Path, val: ValidationSet, metric: str = "ssim"):
        if metric not in VAL_METRICS:
            raise InvalidInputError(f"val_metric must be one of {VAL_METRICS}, got {metric!r}")
        self.folder = Path(run_dir) / BEST_DIRNAME
        self.val, self.metric = val, metric
        self.record = self._read_record()

    def _read_record(self) -> dict[str, Any] | None:
        if not (self.folder / CONFIG_FILENAME).is_file():
            return None
        record = read_config(self.folder)[2].get(SELECTION_KEY)
        if not record or record.get("val_fingerprint") != self.val.fingerprint or record.get("metric") != self.metric:
            log.warning("%s was chosen on other validation slices or by another metric; the next checkpoint replaces it",
                        self.folder)
            return None
        return record

    def offer(self, result: ValidationResult, save: Callable[[Path, dict[str, Any]], Any]) -> bool:
        """Keep this checkpoint if it beats the best so far: ``save(folder, record)`` writes it. True if kept."""
        value = getattr(result, f"val_{self.metric}")
        if not np.isfinite(value) or (self.record is not None and value <= self.record["value"]):
            return False
        record = {"step": result.step, "metric": self.metric, "value": value, "val_ssim": result.val_ssim,
                  "val_psnr": result.val_psnr, "val_slices": len(self.val.images),
                  "val_fingerprint": self.val.fingerprint}
        # config.json (the record) goes first and comes back last, so an interrupted save never leaves
        # new weights under an old record: best/ then has no record and the next checkpoint replaces it.
        (self.folder / CONFIG_FILENAME).unlink(missing_ok=True)
        save(self.folder, record)
        self.record = record  # the best so far
        log.info("step %d: best on val so far (%s %.4f), kept in %s", result.step, self.metric, value, self.folder)
        return True
