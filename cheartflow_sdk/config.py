"""Model and training configuration: flat, typed fields with defaults, saved as JSON beside the weights."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidInputError

SKETCH_KINDS = ("edges", "labels")
CONFIG_FILENAME = "config.json"


@dataclass
class ModelConfig:
    """What defines a model: its architecture, its sketch kind and the bridge it was trained on."""

    sketch_kind: str = "edges"  # "edges" (Canny) or "labels" (label map rendered to one channel)
    resolution: int = 128  # square input/output side in pixels
    sigma: float = 0.5  # bridge diffusion scale: noise std at t is t(1-t)sigma^2 (paper Eq. 2)
    sigma_data: float = 0.5  # preconditioning data scale of c_skip/c_out (consistency models)
    base_channels: int = 32  # U-Net channels at full resolution
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)  # channel multiplier per resolution level
    blocks_per_level: int = 2  # residual blocks per level in the encoder half
    attention_levels: tuple[int, ...] = (3,)  # level indices (0 = full res) with self-attention
    time_embed_dim: int = 128  # width of the time-embedding MLP
    groups: int = 8  # GroupNorm groups
    dropout: float = 0.0  # dropout inside residual blocks
    default_schedule: tuple[float, ...] = (0.5,)  # default t_k of the re-noise steps (two-step sampling)

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attention_levels = tuple(int(a) for a in self.attention_levels)
        self.default_schedule = tuple(float(t) for t in self.default_schedule)
        if self.sketch_kind not in SKETCH_KINDS:
            raise InvalidInputError(f"sketch_kind must be one of {SKETCH_KINDS}, got {self.sketch_kind!r}")
        levels = len(self.channel_mult)
        if self.resolution % (2 ** (levels - 1)) != 0:
            raise InvalidInputError(
                f"resolution must be divisible by 2**(levels-1) = {2 ** (levels - 1)} for {levels} U-Net levels, got {self.resolution}"
            )
        if any((self.base_channels * m) % self.groups for m in self.channel_mult):
            raise InvalidInputError(f"every level's channel count must be divisible by groups={self.groups}")
        if not all(0.0 < t < 1.0 for t in self.default_schedule):
            raise InvalidInputError(f"default_schedule values must lie strictly in (0, 1), got {self.default_schedule}")


VAL_METRICS = ("ssim", "psnr")  # what can choose the checkpoint on val (one-step scores)


@dataclass
class TrainConfig:
    """Every hyperparameter of a training run (paper Eq. 1-2 with improved-consistency-training choices)."""

    steps: int = 100_000  # total optimizer steps
    batch_size: int = 64  # images per step
    lr: float = 2e-4  # AdamW learning rate
    betas: tuple[float, float] = (0.9, 0.995)  # AdamW betas
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 1000  # linear learning-rate warm-up
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    ema_decay: float = 0.9995  # EMA of weights used for sampling and export
    distance: str = "pseudo_huber"  # "pseudo_huber" (iCT) or "l2"
    huber_c: float = 0.00054  # pseudo-Huber c per sqrt(dimension): c = huber_c * sqrt(C*H*W)
    grid: str = "power"  # discretization grid of t in [0,1]: "uniform" or "power" (denser near t=0)
    grid_rho: float = 2.0  # exponent of the "power" grid: t_i = (i/N)**rho
    pair_weighting: str = "inverse_gap"  # loss weight of a pair: "inverse_gap" 1/(t2-t1) or "uniform"
    curriculum_start: int = 10  # grid intervals N at the start of training
    curriculum_end: int = 320  # grid intervals N at the end (doubles in equal stages)
    amp: str = "auto"  # mixed precision: "auto" (bf16 on CUDA, off on CPU), "bf16", "fp16", "off"
    seed: int = 0  # seed of initialization, batches and noise
    log_every: int = 50  # metrics log interval (steps)
    checkpoint_every: int = 2000  # resumable checkpoint interval (steps)
    augment_flip: bool = False  # random vertical flips of image+sketch pairs (keeps RV/LV side)
    val_slices: int = 64  # validation slices scored at every checkpoint (when a val set is given)
    val_metric: str = "ssim"  # what picks the best checkpoint on val: "ssim" or "psnr" (one-step)

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        if self.distance not in ("pseudo_huber", "l2"):
            raise InvalidInputError(f"distance must be 'pseudo_huber' or 'l2', got {self.distance!r}")
        if self.grid not in ("uniform", "power"):
            raise InvalidInputError(f"grid must be 'uniform' or 'power', got {self.grid!r}")
        if self.pair_weighting not in ("inverse_gap", "uniform"):
            raise InvalidInputError(f"pair_weighting must be 'inverse_gap' or 'uniform', got {self.pair_weighting!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise InvalidInputError(f"amp must be one of auto, bf16, fp16, off; got {self.amp!r}")
        if not (2 <= self.curriculum_start <= self.curriculum_end):
            raise InvalidInputError("need 2 <= curriculum_start <= curriculum_end")
        if self.val_metric not in VAL_METRICS:
            raise InvalidInputError(f"val_metric must be one of {VAL_METRICS}, got {self.val_metric!r}")
        if self.val_slices < 1:
            raise InvalidInputError(f"val_slices must be >= 1, got {self.val_slices}")
        if self.steps < 1 or self.batch_size < 1:
            raise InvalidInputError("steps and batch_size must be >= 1")


def config_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build the config dataclass `cls` from a dict, rejecting unknown fields with the known ones listed."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InvalidInputError(f"unknown {cls.__name__} fields {unknown}; known fields: {sorted(names)}")
    return cls(**values)


def model_config_from_dict(values: dict[str, Any]) -> ModelConfig:
    """Build a ModelConfig from a dict, rejecting unknown fields."""
    return config_from_dict(ModelConfig, values)


def train_config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a dict, rejecting unknown fields."""
    return config_from_dict(TrainConfig, values)


def config_to_json(model: ModelConfig, train: TrainConfig | None = None, **extra: Any) -> str:
    """Serialize the configs (and extra provenance fields) as the `config.json` text."""
    doc: dict[str, Any] = {"model": dataclasses.asdict(model)}
    if train is not None:
        doc["train"] = dataclasses.asdict(train)
    doc.update(extra)
    return json.dumps(doc, indent=2, sort_keys=True)


def read_config(path: str | Path) -> tuple[ModelConfig, TrainConfig | None, dict[str, Any]]:
    """Read `config.json` (or the folder holding it): (model config, train config or None, the whole document)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    if not path.is_file():
        raise InvalidInputError(f"expected a model config file at {path} (written by `cheartflow train`)")
    try:
        doc = json.loads(path.read_text())
        model = model_config_from_dict(doc["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path} is not a valid cheartflow config.json (need a 'model' object): {exc}") from exc
    train = train_config_from_dict(doc["train"]) if "train" in doc else None
    return model, train, doc
