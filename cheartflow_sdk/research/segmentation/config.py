"""Configuration of the evaluation segmenter: flat typed fields, saved as JSON beside the weights."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import config_file, config_from_dict
from ...errors import InvalidInputError

CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "segmenter.safetensors"
CONFIG_KEY = "segmenter"  # top-level key of config.json (an encoder's config.json has "model" instead)


@dataclass
class SegmenterConfig:
    """Architecture of the 2-D U-Net segmenter."""

    resolution: int = 128  # square input side in pixels (images [N,1,R,R] in [-1,1])
    num_classes: int = 4  # ACDC: 0 background, 1 RV, 2 MYO, 3 LV
    base_channels: int = 16  # channels at full resolution
    channel_mult: tuple[int, ...] = (1, 2, 4, 8)  # per level; the bottleneck has base*mult[-1] channels = feature size
    groups: int = 8  # GroupNorm groups (batch-size independent, same in train and eval)

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if self.num_classes < 2 or self.base_channels < 1 or not self.channel_mult:
            raise InvalidInputError("SegmenterConfig needs num_classes >= 2, base_channels >= 1 and a channel_mult")
        if self.resolution % (2 ** (len(self.channel_mult) - 1)):
            raise InvalidInputError(
                f"resolution must be divisible by {2 ** (len(self.channel_mult) - 1)} for {len(self.channel_mult)} levels, got {self.resolution}"
            )
        if any((self.base_channels * m) % self.groups for m in self.channel_mult):
            raise InvalidInputError(f"every level's channel count must be divisible by groups={self.groups}")

    @property
    def feature_dim(self) -> int:
        """Size of :meth:`Segmenter.bottleneck_features` vectors."""
        return self.base_channels * self.channel_mult[-1]


@dataclass
class SegTrainConfig:
    """Hyperparameters of segmenter training (AdamW, cross-entropy + soft Dice)."""

    steps: int = 6000  # optimizer steps
    batch_size: int = 32  # slices per step
    lr: float = 1e-3  # peak AdamW learning rate (linear warm-up, cosine decay to lr * min_lr_ratio)
    min_lr_ratio: float = 0.05  # final learning rate as a fraction of lr
    warmup_steps: int = 200  # linear warm-up steps
    weight_decay: float = 1e-4  # AdamW weight decay
    dice_weight: float = 1.0  # weight of the soft Dice loss (mean over foreground classes) added to cross-entropy
    augment_flip: bool = True  # random vertical and horizontal flips of image+labels
    augment_intensity: float = 0.1  # random gamma/contrast jitter amplitude (0 disables); makes the segmenter less brittle on synthetic images
    seed: int = 0  # seed of initialization and batches
    log_every: int = 100  # metrics.jsonl interval (steps)
    checkpoint_every: int = 1000  # write the weights every this many steps (0: only at the end)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InvalidInputError("SegTrainConfig needs steps >= 1, batch_size >= 1 and lr > 0")
        if not 0 <= self.min_lr_ratio <= 1 or self.augment_intensity < 0 or self.dice_weight < 0:
            raise InvalidInputError("SegTrainConfig needs 0 <= min_lr_ratio <= 1, augment_intensity >= 0, dice_weight >= 0")


def config_json(cfg: SegmenterConfig, train: SegTrainConfig | None = None, **extra: Any) -> str:
    """The config.json text: ``{"segmenter": {...}, "train": {...}, ...provenance}``."""
    doc: dict[str, Any] = {CONFIG_KEY: dataclasses.asdict(cfg)}
    if train is not None:
        doc["train"] = dataclasses.asdict(train)
    doc.update(extra)
    return json.dumps(doc, indent=2, sort_keys=True)


def read_segmenter_config(path: str | Path) -> tuple[SegmenterConfig, dict[str, Any]]:
    """Read config.json (or the folder holding it): (segmenter config, the whole document)."""
    path = config_file(path, "a segmenter config file", "train_segmenter / `cheartflow train-seg`")
    try:
        doc = json.loads(path.read_text())
        cfg = config_from_dict(SegmenterConfig, doc[CONFIG_KEY])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path} is not a segmenter config.json (need a {CONFIG_KEY!r} object): {exc}") from exc
    return cfg, doc


def seg_train_config_from_dict(values: dict[str, Any]) -> SegTrainConfig:
    """Build a SegTrainConfig from a dict, rejecting unknown fields."""
    return config_from_dict(SegTrainConfig, values)
