"""Training of the evaluation segmenter: AdamW on cross-entropy + soft Dice, optional flips and intensity jitter."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ...errors import InvalidInputError
from ...training.base import TrainerBase, check_training_arrays, optimizer_step
from ...training.loop import truncate_metrics
from .config import SegmenterConfig, SegTrainConfig
from .dice import mean_foreground_dice
from .model import Segmenter, SegUNet, save_segmenter

log = logging.getLogger(__name__)


@dataclass
class SegStepResult:
    """What one optimizer step did (plus validation Dice on the steps where it was measured)."""

    step: int  # step number after this update (1-based)
    loss: float  # cross-entropy + dice_weight * soft Dice loss
    ce: float  # cross-entropy part
    dice_loss: float  # 1 - mean foreground soft Dice of the batch
    lr: float  # learning rate used
    val_dice: float | None = None  # mean foreground Dice on the validation slices (when given and logged)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - mean_c (2 sum p_c y_c + eps) / (sum p_c + sum y_c + eps)`` over the foreground classes (batch-pooled)."""
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = (2 * inter + eps) / (total + eps)
    return 1.0 - dice[1:].mean()


def _check_data(images: np.ndarray, labels: np.ndarray, cfg: SegmenterConfig, what: str) -> None:
    r = cfg.resolution
    check_training_arrays({"images": (images, (1, r, r)), "labels": (labels, (r, r))}, "segmenter", what=what)
    if labels.min() < 0 or labels.max() >= cfg.num_classes:
        raise InvalidInputError(f"{what}: labels must lie in 0..{cfg.num_classes - 1}, got {labels.min()}..{labels.max()}")


class SegTrainer(TrainerBase):
    """Owns the network, the optimizer and (optionally) the output folder; not resumable."""

    desc = "train-seg"

    def __init__(self, images: np.ndarray, labels: np.ndarray, cfg: SegmenterConfig | None = None,
                 train_cfg: SegTrainConfig | None = None, out_dir: str | os.PathLike | None = None,
                 device: str = "auto", val: tuple[np.ndarray, np.ndarray] | None = None):
        """images float32 ``[N,1,R,R]`` in [-1,1]; labels ``[N,R,R]`` 0..C-1; val: optional (images, labels).

        cfg / train_cfg: None for the defaults."""
        cfg = cfg if cfg is not None else SegmenterConfig()
        train_cfg = train_cfg if train_cfg is not None else SegTrainConfig()
        images, labels = np.asarray(images, dtype=np.float32), np.asarray(labels)
        _check_data(images, labels, cfg, "segmenter training data")
        if val is not None:
            _check_data(np.asarray(val[0], dtype=np.float32), np.asarray(val[1]), cfg, "segmenter validation data")
        super().__init__(train_cfg, out_dir, device)
        self.cfg = cfg
        self.x = self.on_device(images)
        self.y = self.on_device(labels, dtype=np.int64)
        self.val = val
        torch.manual_seed(train_cfg.seed)
        self.net = SegUNet(cfg).to(self.device).train()
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        self.scaler = self.make_scaler(None)  # fp32: a pass-through, for the shared optimizer step

    def _lr(self) -> float:
        c = self.train_cfg
        if self.step_count < c.warmup_steps:
            return c.lr * (self.step_count + 1) / c.warmup_steps
        progress = (self.step_count - c.warmup_steps) / max(1, c.steps - c.warmup_steps)
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))

    def _batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.train_cfg
        idx = torch.randint(0, len(self.x), (c.batch_size,), generator=gen).to(self.device)
        x, y = self.x[idx], self.y[idx]
        if c.augment_flip:
            for dim in (2, 3):
                flip = (torch.rand(len(idx), generator=gen) < 0.5).to(self.device)
                x = torch.where(flip[:, None, None, None], x.flip(dim), x)
                y = torch.where(flip[:, None, None], y.flip(dim - 1), y)
        if c.augment_intensity > 0:
            a = c.augment_intensity
            u = (torch.rand(len(idx), 2, generator=gen) * 2 - 1).to(self.device)
            gamma = torch.exp(a * u[:, 0])[:, None, None, None]  # gamma in [e^-a, e^a] on [0, 1] intensities
            contrast = (1 + a * u[:, 1])[:, None, None, None]
            x01 = ((x + 1) * 0.5).clamp(0, 1) ** gamma
            x = ((x01 - 0.5) * contrast + 0.5).clamp(0, 1) * 2 - 1
        return x, y

    def step(self) -> SegStepResult:
        """One AdamW step on a random batch."""
        x, y = self._batch(self.step_generator())
        lr = self._lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        logits = self.net(x)
        ce = F.cross_entropy(logits, y)
        dice = soft_dice_loss(logits, y)
        loss = ce + self.train_cfg.dice_weight * dice
        optimizer_step(self.optimizer, self.scaler, loss)
        self.step_count += 1
        return SegStepResult(self.step_count, float(loss.item()), float(ce.item()), float(dice.item()), lr)

    def segmenter(self) -> Segmenter:
        """The current network as a :class:`Segmenter` (shares the weights; puts the net in eval mode).
        Its features are normalized with the constants of the last :meth:`calibrate` (run at the end)."""
        return Segmenter(self.net, self.device, source=self.out_dir)

    def validate(self) -> float | None:
        """Mean foreground Dice (slice-averaged, NaN-skipping) on the validation slices, or None."""
        if self.val is None:
            return None
        seg = self.segmenter()
        pred = seg.segment(np.asarray(self.val[0], dtype=np.float32))
        self.net.train()
        return float(np.nanmean(mean_foreground_dice(pred, np.asarray(self.val[1]))))

    def annotate(self, res: SegStepResult) -> SegStepResult:
        res.val_dice = self.validate()
        return res

    def postfix(self, res: SegStepResult) -> dict[str, str]:
        return {"loss": f"{res.loss:.4f}", **({"val_dice": f"{res.val_dice:.3f}"} if res.val_dice is not None else {})}

    def checkpoint(self) -> None:
        """Calibrate the feature normalization, then write the weights (when there is an output folder)."""
        self.calibrate()
        self.save()

    def calibrate(self, max_images: int = 4096) -> None:
        """Measure the feature normalization on (up to ``max_images`` evenly spaced) training images."""
        idx = torch.linspace(0, len(self.x) - 1, min(len(self.x), max_images)).round().long().to(self.device)
        self.net.calibrate_features(self.x[idx])
        self.net.train()

    def save(self) -> Path | None:
        """Write segmenter.safetensors + config.json (with provenance) when an output folder was given."""
        if self.out_dir is None:
            return None
        return save_segmenter(self.net, self.out_dir, self.train_cfg, feature_scale=float(self.net.feature_scale),
                              **self.provenance())


def train_segmenter(images: np.ndarray, labels: np.ndarray, cfg: SegmenterConfig | None = None,
                    train_cfg: SegTrainConfig | None = None, out_dir: str | os.PathLike | None = None,
                    device: str = "auto", val: tuple[np.ndarray, np.ndarray] | None = None,
                    time_limit_s: float | None = None, progress: bool = True) -> tuple[Segmenter, list[SegStepResult]]:
    """Train a segmenter from scratch (not resumable); returns it (eval mode) and the step results.

    With ``out_dir`` the weights and config.json are written atomically every
    ``train_cfg.checkpoint_every`` steps and at the end, and metrics go to ``metrics.jsonl``.
    """
    if out_dir is not None:
        truncate_metrics(out_dir, 0)  # a fresh run: no stale metrics from an earlier one
    trainer = SegTrainer(images, labels, cfg, train_cfg, out_dir, device, val)
    results = trainer.run(time_limit_s=time_limit_s, progress=progress)
    return trainer.segmenter(), results
