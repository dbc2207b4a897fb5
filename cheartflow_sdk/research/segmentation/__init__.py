"""The evaluation segmenter: a small 2-D U-Net for the ACDC classes (torch), and Dice (numpy).

    seg, _ = train_segmenter(slices.images, slices.labels, SegmenterConfig(), SegTrainConfig(), "runs/segmenter")
    seg = load_segmenter("runs/segmenter")            # None: the bundled one
    labels = seg.segment(images)                      # images [N,1,128,128] in [-1,1] -> uint8 [N,128,128]
    feats = seg.bottleneck_features(images)           # [N, 128]
    mean_foreground_dice(labels, slices.labels)       # [N]

`import cheartflow_sdk.research.segmentation` imports numpy only; the network and training load torch when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import (
    SegmenterConfig,
    SegTrainConfig,
    read_segmenter_config,
    seg_train_config_from_dict,
)
from .dice import CLASS_NAMES, FOREGROUND, dice_per_class, mean_foreground_dice

_LAZY = {
    "SegUNet": "model", "Segmenter": "model", "load_segmenter": "model", "save_segmenter": "model",
    "default_segmenter_dir": "model", "SegTrainer": "train", "SegStepResult": "train", "train_segmenter": "train",
    "soft_dice_loss": "train",
}

__all__ = [
    "CLASS_NAMES", "FOREGROUND", "SegTrainConfig", "SegmenterConfig", "dice_per_class", "mean_foreground_dice",
    "read_segmenter_config", "seg_train_config_from_dict", *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ..._optional import require

        require("torch")
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'cheartflow_sdk.research.segmentation' has no attribute {name!r}")
