"""Model and training configuration: flat, typed fields with defaults, saved as JSON beside the weights."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidInputError

SKETCH_KINDS = ("edges", "labels")
CONFIG_FILENAME = "config.json"
PRECONDITIONINGS = ("bridge", "consistency")
PAIR_SCHEDULES = ("gap", "adjacent")
# What a config.json written before a field existed meant by it (so old runs and engines keep working).
LEGACY_MODEL_FIELDS = {"preconditioning": "consistency", "max_steps": 2}  # max_steps: old models were evaluated at 1 and 2 steps
LEGACY_TRAIN_FIELDS = {"pair_schedule": "adjacent", "ema_warmup": 0.0}


@dataclass
class UNetShape:
    """The shape of a time-conditioned U-Net (`models.unet`): the fields the encoder and the iDDPM baseline share."""

    base_channels: int = 32  # U-Net channels at full resolution
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)  # channel multiplier per resolution level
    blocks_per_level: int = 2  # residual blocks per level in the encoder half
    attention_levels: tuple[int, ...] = (3,)  # level indices (0 = full res) with self-attention
    time_embed_dim: int = 128  # width of the time-embedding MLP
    groups: int = 8  # GroupNorm groups
    dropout: float = 0.0  # dropout inside residual blocks


@dataclass
class ModelConfig(UNetShape):
    """What defines a model: its architecture, its sketch kind and the bridge it was trained on."""

    sketch_kind: str = "edges"  # "edges" (Canny) or "labels" (label map rendered to one channel)
    resolution: int = 128  # square input/output side in pixels
    sigma: float = 0.5  # bridge diffusion scale: noise std at t is t(1-t)sigma^2 (paper Eq. 2)
    sigma_data: float = 0.5  # data scale of the "consistency" preconditioning's c_skip/c_out
    preconditioning: str = "bridge"  # "bridge": c_in/c_skip/c_out from the bridge's variances, c_skip(1) = 0; "consistency": the legacy sigma_data form
    sigma_x0: float = 0.5  # std of the images x0 in [-1, 1] ("bridge" preconditioning; `cheartflow train` measures it)
    sigma_x1: float = 0.5  # std of the sketches x1 in [-1, 1] ("bridge" preconditioning; measured the same way)
    default_schedule: tuple[float, ...] = (0.5,)  # default t_k of the re-noise steps (two-step sampling)
    max_steps: int = 8  # largest step count this model was validated for (more: allow_unvalidated_steps=True)
    patch_size: int = 1  # space-to-depth factor of the stem (PixelUnshuffle; 2: the U-Net levels run at half resolution on 4x the input channels; with twice the width, the FLOPs stay those of p=1)
    sketch_condition: bool = False  # also feed the sketch x1 to the U-Net as a second channel at every t (DDBM/I2SB conditioning); torch backend only

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attention_levels = tuple(int(a) for a in self.attention_levels)
        self.default_schedule = tuple(float(t) for t in self.default_schedule)
        if self.sketch_kind not in SKETCH_KINDS:
            raise InvalidInputError(f"sketch_kind must be one of {SKETCH_KINDS}, got {self.sketch_kind!r}")
        levels = len(self.channel_mult)
        if not (isinstance(self.patch_size, int) and self.patch_size >= 1):
            raise InvalidInputError(f"patch_size must be an int >= 1, got {self.patch_size!r}")
        factor = self.patch_size * 2 ** (levels - 1)
        if self.resolution % factor != 0:
            raise InvalidInputError(
                f"resolution must be divisible by patch_size * 2**(levels-1) = {factor} for {levels} U-Net levels "
                f"and patch_size {self.patch_size}, got {self.resolution}"
            )
        if any((self.base_channels * m) % self.groups for m in self.channel_mult):
            raise InvalidInputError(f"every level's channel count must be divisible by groups={self.groups}")
        if self.preconditioning not in PRECONDITIONINGS:
            raise InvalidInputError(f"preconditioning must be one of {PRECONDITIONINGS}, got {self.preconditioning!r}")
        if not (self.sigma_x0 > 0 and self.sigma_x1 > 0):
            raise InvalidInputError(f"sigma_x0 and sigma_x1 must be > 0, got {self.sigma_x0} and {self.sigma_x1}")
        if not all(0.0 < t < 1.0 for t in self.default_schedule):
            raise InvalidInputError(f"default_schedule values must lie strictly in (0, 1), got {self.default_schedule}")


VAL_METRICS = ("ssim", "psnr")  # what can choose the checkpoint on val (one-step scores)


def _float_tuple(name: str, value: Any) -> tuple[float, ...]:
    """A config field that holds numbers, given as one number (`--set keep_at_minutes=180`) or a sequence."""
    items = value if isinstance(value, (list, tuple)) else (value,)
    try:
        return tuple(float(item) for item in items)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} expects a number or a list of numbers, got {value!r}") from None


@dataclass
class TrainConfig:
    """Every hyperparameter of a training run (paper Eq. 1-2 with improved-consistency-training choices)."""

    steps: int = 100_000  # total optimizer steps
    batch_size: int = 64  # images per step
    lr: float = 2e-4  # AdamW learning rate
    betas: tuple[float, float] = (0.9, 0.995)  # AdamW betas
    weight_decay: float = 0.0  # AdamW weight decay
    warmup_steps: int = 1000  # linear learning-rate warm-up
    lr_decay_start: int = 0  # step where a cosine decay of the learning rate begins; 0 = constant after warm-up
    lr_decay_steps: int = 1000  # length of that decay in steps; the rate then stays at lr * lr_final_fraction
    lr_final_fraction: float = 0.05  # learning rate at the end of the decay, as a fraction of lr
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    ema_decay: float = 0.9995  # EMA of weights used for sampling and export
    ema_warmup: float = 10.0  # EMA decay at step n is min(ema_decay, (1 + n) / (ema_warmup + n)), so early checkpoints are not the initial weights; 0 = off
    distance: str = "pseudo_huber"  # "pseudo_huber" (iCT) or "l2"
    huber_c: float = 0.00054  # pseudo-Huber c per sqrt(dimension): c = huber_c * sqrt(C*H*W)
    ssim_weight: float = 0.0  # adds ssim_weight * sqrt(C*H*W) * (1 - SSIM) to the distance (the val metric's SSIM); 0 = off
    grid: str = "power"  # discretization grid of t in [0,1]: "uniform" or "power" (denser near t=0)
    grid_rho: float = 2.0  # exponent of the "power" grid: t_i = (i/N)**rho
    pair_schedule: str = "gap"  # pairs of Eq. 1: "gap" (t1 = max(0, t2 - gap), gap shrinking per stage, ECT) or "adjacent" (grid, iCT)
    gap_stage_steps: int = 2000  # "gap": optimizer steps per stage; stage 0 has gap = t2, i.e. t1 = 0 (regression to x0)
    gap_shrink: float = 0.5  # "gap": factor the gap t2 - t1 is multiplied by at each new stage
    gap_min: float = 0.02  # "gap": floor of the gap, so t1 < t2 always
    t2_one_fraction: float = 0.25  # "gap": share of each batch at t2 = 1 exactly (the one-step map)
    t2_power: float = 0.5  # "gap": the other t2 are u**t2_power, u ~ U(0, 1]; below 1 puts more weight near t = 1
    pair_weighting: str = "uniform"  # loss weight of a pair: "uniform" or "inverse_gap" 1/(t2-t1)
    curriculum_start: int = 10  # "adjacent": grid intervals N at the start of training
    curriculum_end: int = 320  # "adjacent": grid intervals N at the end (doubles in equal stages)
    amp: str = "auto"  # mixed precision: "auto" (bf16 on CUDA and on CPUs with native bf16, else off), "bf16", "fp16", "off"
    channels_last: bool = False  # channels-last memory format for the U-Net (measure before turning it on; see README)
    threads: int = 0  # torch intra-op threads on CPU; 0 = every usable core
    keep_at_minutes: tuple[float, ...] = ()  # also keep the EMA model in RUN/at-<m>min/ after m minutes of training (equal-budget comparisons)
    seed: int = 0  # seed of initialization, batches and noise
    log_every: int = 50  # metrics log interval (steps)
    checkpoint_every: int = 2000  # resumable checkpoint interval (steps)
    augment_flip: bool = False  # random vertical flips of image+sketch pairs (keeps RV/LV side)
    augment_prob: float = 0.0  # share of pairs moved by a random small affine map (the sketch made again from the moved image); 0 = off
    augment_rotate_deg: float = 0.0  # that map's rotation: uniform in +- this many degrees
    augment_scale: float = 0.0  # its isotropic scale: uniform in 1 +- this
    augment_shift: float = 0.0  # its shift along each axis: uniform in +- this fraction of the side
    val_slices: int = 64  # validation slices scored at every checkpoint (when a val set is given)
    val_metric: str = "ssim"  # what picks the best checkpoint on val: "ssim" or "psnr" (one-step)

    def __post_init__(self) -> None:
        self.betas = _float_tuple("betas", self.betas)
        self.keep_at_minutes = _float_tuple("keep_at_minutes", self.keep_at_minutes)
        if self.distance not in ("pseudo_huber", "l2"):
            raise InvalidInputError(f"distance must be 'pseudo_huber' or 'l2', got {self.distance!r}")
        if not (math.isfinite(self.ssim_weight) and self.ssim_weight >= 0):
            raise InvalidInputError(f"ssim_weight must be a finite number >= 0 (0 = off), got {self.ssim_weight}")
        if self.grid not in ("uniform", "power"):
            raise InvalidInputError(f"grid must be 'uniform' or 'power', got {self.grid!r}")
        if self.pair_weighting not in ("inverse_gap", "uniform"):
            raise InvalidInputError(f"pair_weighting must be 'inverse_gap' or 'uniform', got {self.pair_weighting!r}")
        if self.pair_schedule not in PAIR_SCHEDULES:
            raise InvalidInputError(f"pair_schedule must be one of {PAIR_SCHEDULES}, got {self.pair_schedule!r}")
        if self.gap_stage_steps < 1 or not (0.0 < self.gap_shrink <= 1.0) or not (0.0 < self.gap_min <= 1.0):
            raise InvalidInputError("need gap_stage_steps >= 1, 0 < gap_shrink <= 1 and 0 < gap_min <= 1")
        if not (0.0 <= self.t2_one_fraction <= 1.0) or self.t2_power <= 0:
            raise InvalidInputError("need 0 <= t2_one_fraction <= 1 and t2_power > 0")
        if self.lr_decay_start < 0 or self.lr_decay_steps < 1 or not (0.0 <= self.lr_final_fraction <= 1.0):
            raise InvalidInputError("need lr_decay_start >= 0 (0 = off), lr_decay_steps >= 1 and 0 <= lr_final_fraction <= 1")
        if self.ema_warmup < 0:
            raise InvalidInputError(f"ema_warmup must be >= 0 (0 = off), got {self.ema_warmup}")
        if self.threads < 0:
            raise InvalidInputError(f"threads must be >= 0 (0 = every usable core), got {self.threads}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise InvalidInputError(f"amp must be one of auto, bf16, fp16, off; got {self.amp!r}")
        if not (2 <= self.curriculum_start <= self.curriculum_end):
            raise InvalidInputError("need 2 <= curriculum_start <= curriculum_end")
        if not (0.0 <= self.augment_prob <= 1.0):
            raise InvalidInputError(f"augment_prob must be in [0, 1] (0 = off), got {self.augment_prob}")
        if not (0.0 <= self.augment_rotate_deg <= 45.0 and 0.0 <= self.augment_scale < 0.5 and 0.0 <= self.augment_shift <= 0.25):
            raise InvalidInputError("need 0 <= augment_rotate_deg <= 45, 0 <= augment_scale < 0.5 and 0 <= augment_shift <= 0.25 "
                                    f"(small moves of a centred crop), got {self.augment_rotate_deg}, {self.augment_scale}, "
                                    f"{self.augment_shift}")
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
    """Build a ModelConfig from a saved dict, rejecting unknown fields; fields it predates get their legacy value."""
    return config_from_dict(ModelConfig, {**LEGACY_MODEL_FIELDS, **values})


def train_config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a saved dict, rejecting unknown fields; fields it predates get their legacy value."""
    return config_from_dict(TrainConfig, {**LEGACY_TRAIN_FIELDS, **values})


def config_to_json(model: ModelConfig, train: TrainConfig | None = None, **extra: Any) -> str:
    """Serialize the configs (and extra provenance fields) as the `config.json` text."""
    doc: dict[str, Any] = {"model": dataclasses.asdict(model)}
    if train is not None:
        doc["train"] = dataclasses.asdict(train)
    doc.update(extra)
    return json.dumps(doc, indent=2, sort_keys=True)


def config_file(path: str | Path, expected: str, written_by: str) -> Path:
    """`path`, or the config.json in the folder `path`; an error naming what was `expected` when there is none."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    if not path.is_file():
        raise InvalidInputError(f"expected {expected} at {path} (written by {written_by})")
    return path


def read_config(path: str | Path) -> tuple[ModelConfig, TrainConfig | None, dict[str, Any]]:
    """Read `config.json` (or the folder holding it): (model config, train config or None, the whole document)."""
    path = config_file(path, "a model config file", "`cheartflow train`")
    try:
        doc = json.loads(path.read_text())
        model = model_config_from_dict(doc["model"])
        train = train_config_from_dict(doc["train"]) if "train" in doc else None
    except InvalidInputError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        raise InvalidInputError(f"{path} is not a valid cheartflow config.json (need a 'model' object of "
                                f"ModelConfig fields and an optional 'train' object): {exc}") from exc
    return model, train, doc
