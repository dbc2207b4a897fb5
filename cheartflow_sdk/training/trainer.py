"""The training loop of paper Eq. 1: pseudo-Huber (or L2) distance between the encodings of a bridge pair."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import bridge
from ..cpu_features import usable_cores
from ..config import ModelConfig, TrainConfig, read_config, train_config_from_dict
from ..errors import InvalidInputError
from ..models import ConsistencyEncoder, build_encoder
from . import augment, checkpoint, discretization, losses
from .base import TrainerBase, amp_dtype, autocast, check_image_pairs, ema_update, optimizer_step
from .loop import append_metrics, device_label, truncate_metrics
from .selection import BestCheckpoint, ValidationSet, score_one_step, val_logged

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """What one optimizer step did."""

    step: int  # the step number after this update (1-based)
    loss: float  # weighted mean distance of the batch
    grad_norm: float  # global gradient norm before clipping
    intervals: int  # "adjacent" schedule: grid intervals N at this step (0 under the "gap" schedule)
    lr: float  # learning rate used
    stage: int = 0  # "gap" schedule: the stage (gap = t2 * gap_shrink**stage); 0 under "adjacent"
    sec_per_step: float = 0.0  # wall-clock seconds per step since the previous log line
    images_per_sec: float = 0.0  # training images per second since the previous log line
    train_minutes: float = 0.0  # wall-clock minutes of training so far, over every resumed chunk


def data_scales(model_cfg: ModelConfig, images: np.ndarray, sketches: np.ndarray) -> ModelConfig:
    """The model config with sigma_x0/sigma_x1 set to the stds of the images and of the sketches in [-1, 1]."""
    sigma_x0 = round(float(np.std(images, dtype=np.float64)), 4)
    sigma_x1 = round(float(np.std(sketches, dtype=np.float64)) * 2, 4)  # sketches come in [0, 1]
    return dataclasses.replace(model_cfg, sigma_x0=max(sigma_x0, 1e-3), sigma_x1=max(sigma_x1, 1e-3))


class Trainer(TrainerBase):
    """Owns the encoder, its EMA, the optimizer and the run folder; resumes from the folder when it holds a state.

    With validation data, every checkpoint's EMA encoder is scored on it (one-step SSIM/PSNR, logged to
    metrics.jsonl) and the best one is kept in ``out_dir/best/`` (see `selection`).
    """

    def __init__(self, images: np.ndarray, sketches: np.ndarray, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 out_dir: str | Path, device: str = "auto", resume: bool = True,
                 val: tuple[np.ndarray, np.ndarray] | None = None, init_from: str | Path | None = None):
        """images: float32 [N,1,S,S] in [-1,1]; sketches: float32 [N,1,S,S] in [0,1] (the SDK's sketch form);
        val: (images, sketches) of the validation split in the same form, or None;
        init_from: a model folder (written by `cheartflow train`) to continue from when out_dir holds no
        resumable state: its weights start the online and EMA encoders, and its steps and training minutes
        carry on (the optimizer's moments start afresh, with a new learning-rate warm-up)."""
        check_image_pairs(images, sketches, model_cfg.resolution, "model")
        if val is not None:
            check_image_pairs(*val, model_cfg.resolution, "model")
        super().__init__(train_cfg, out_dir, device)
        self.model_cfg, self.cfg = model_cfg, train_cfg
        if self.device.type == "cpu":
            torch.set_num_threads(train_cfg.threads or usable_cores())
        self.x0 = self.on_device(images)
        self.x1 = self.on_device(np.asarray(sketches, dtype=np.float32) * 2 - 1)
        torch.manual_seed(train_cfg.seed)
        self.encoder = build_encoder(model_cfg).to(self.device).train()
        if train_cfg.channels_last:
            self.encoder = self.encoder.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.encoder).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.encoder.parameters(), lr=train_cfg.lr, betas=train_cfg.betas,
                                           weight_decay=train_cfg.weight_decay)
        self.amp_dtype = amp_dtype(train_cfg.amp, self.device)
        log.info("training on %s with %d threads, autocast %s", device_label(self.device), torch.get_num_threads(),
                 self.amp_dtype or "off")
        self.scaler = self.make_scaler(self.amp_dtype)
        self.modules = {"online": self.encoder, "ema": self.ema}
        self.optimizers, self.scalers = {"online": self.optimizer}, {"online": self.scaler}
        self.train_seconds = 0.0  # wall-clock of training (steps, checkpoints, validation) over all chunks
        self._clock = time.monotonic()
        self.selection: BestCheckpoint | None = None
        if val is not None:
            self.selection = BestCheckpoint(self.out_dir, ValidationSet.from_arrays(*val, train_cfg.val_slices), train_cfg.val_metric)
        self._validated_step = -1
        self._warmup_from = 0  # the step the learning-rate warm-up counts from
        self._initialized_from: dict[str, Any] | None = None
        state = None
        if resume:
            checkpoint.check_resume_config(self.out_dir, model_cfg)
            state = self.resume()
            if state is not None:
                self.train_seconds = float(state.get("train_seconds", 0.0))
                self._initialized_from = state.get("initialized_from")
                self._warmup_from = self._initialized_from["step"] if self._initialized_from else 0
                self._validated_step = self.step_count if val_logged(self.out_dir, self.step_count) else -1
        history_dir = self.out_dir
        if init_from is not None and state is None:
            self._init_from_model(Path(init_from))
            history_dir = Path(init_from)  # the settings that trained the weights we start from
        self._history = checkpoint.train_history(history_dir, self.step_count, train_cfg)  # settings per step range

    def _init_from_model(self, model_dir: Path) -> None:
        saved_cfg, _, doc = read_config(model_dir)
        if saved_cfg != self.model_cfg:
            raise InvalidInputError(f"--init-from {model_dir} holds a model with another config ({saved_cfg}); "
                                    f"expected {self.model_cfg}")
        weights = checkpoint.load_encoder(model_dir, self.device).state_dict()
        self.encoder.load_state_dict(weights)
        self.ema.load_state_dict(weights)
        self.step_count = self._warmup_from = int(doc.get("steps_trained", 0))
        self.train_seconds = 60.0 * float(doc.get("train_minutes", 0.0))
        self._initialized_from = {"model": str(model_dir), "step": self.step_count,
                                  "train_minutes": round(self.train_seconds / 60, 2)}
        truncate_metrics(self.out_dir, self.step_count)
        log.info("initialized %s from %s (step %d, %.1f training minutes; fresh optimizer state)", self.out_dir,
                 model_dir, self.step_count, self.train_seconds / 60)

    def ema_decay(self) -> float:
        """This step's EMA decay: ``ema_decay``, lowered early in training by ``ema_warmup``."""
        n = self.step_count
        if self.cfg.ema_warmup <= 0:
            return self.cfg.ema_decay
        return min(self.cfg.ema_decay, (1.0 + n) / (self.cfg.ema_warmup + n))

    def _lr(self) -> float:
        warm = min(1.0, (self.step_count - self._warmup_from + 1) / max(1, self.cfg.warmup_steps))
        return self.cfg.lr * warm * self._lr_decay()

    def _lr_decay(self) -> float:
        """Cosine from 1 to lr_final_fraction over lr_decay_steps from lr_decay_start (1 when the decay is off)."""
        start = self.cfg.lr_decay_start
        if start <= 0 or self.step_count < start:
            return 1.0
        progress = min(1.0, (self.step_count - start) / self.cfg.lr_decay_steps)
        final = self.cfg.lr_final_fraction
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def pairs(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
        """(t1, t2, weight, grid intervals N, gap stage) of this step's pairs under the configured schedule."""
        if self.cfg.pair_schedule == "gap":
            stage = discretization.gap_stage(self.step_count, self.cfg)
            return (*discretization.sample_gap_pairs(batch, stage, self.cfg, gen, self.device), 0, stage)
        n = discretization.intervals_at(self.step_count, self.cfg)
        return (*discretization.sample_pairs(batch, n, self.cfg, gen, self.device), n, 0)

    def loss(self, x0: torch.Tensor, x1: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, int, int]:
        """Eq. 1 on one batch: d(E(x_t2, t2), stopgrad E(x_t1, t1)), both points from the same (x0, x1, eps).

        Returns (loss, grid intervals N, gap stage)."""
        t1, t2, weight, n, stage = self.pairs(len(x0), gen)
        eps = torch.randn(x0.shape, generator=gen).to(self.device)
        x_t1 = bridge.bridge_sample(x0, x1, t1, self.model_cfg.sigma, eps)
        x_t2 = bridge.bridge_sample(x0, x1, t2, self.model_cfg.sigma, eps)
        with autocast(self.device, self.amp_dtype):
            pred = self.encoder(x_t2, t2, x1)  # the sketch reaches the network only if the model is sketch-conditioned
            if bool((t1 == 0).all()):
                target = x0  # E(x_0, 0) = x0 exactly (the boundary condition): the pure-regression stage
            else:
                with torch.no_grad():
                    target = self.encoder(x_t1, t1, x1)
        if self.cfg.distance == "pseudo_huber":
            dist = losses.pseudo_huber(pred, target.detach(), self.cfg.huber_c)
        else:
            dist = losses.l2(pred, target.detach())
        if self.cfg.ssim_weight > 0:
            # in sqrt(dim) units, as pseudo-Huber's ~||a - b|| scales, so one weight fits every resolution
            dist = dist + self.cfg.ssim_weight * math.sqrt(pred[0].numel()) * losses.ssim_dissimilarity(pred, target.detach())
        return (weight * dist).mean(), n, stage

    def step(self) -> StepResult:
        """One optimizer step: loss, backward, clip, AdamW, EMA update."""
        gen = self.step_generator()
        idx = torch.randint(0, len(self.x0), (self.cfg.batch_size,), generator=gen).to(self.device)
        x0, x1 = self.x0[idx], self.x1[idx]
        if self.cfg.augment_flip:
            flip = (torch.rand(len(idx), generator=gen) < 0.5).to(self.device)[:, None, None, None]
            x0, x1 = torch.where(flip, x0.flip(2), x0), torch.where(flip, x1.flip(2), x1)
        if augment.enabled(self.cfg):
            x0, x1 = augment.augment_pairs(x0, x1, self.model_cfg.sketch_kind, self.cfg, gen)
        lr = self._lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, n, stage = self.loss(x0, x1, gen)
        grad_norm = optimizer_step(self.optimizer, self.scaler, loss, clip=self.encoder, grad_clip=self.cfg.grad_clip)
        ema_update(self.ema, self.encoder, self.ema_decay())
        self.step_count += 1
        return StepResult(self.step_count, float(loss.item()), float(grad_norm.item()), n, lr, stage)

    def run(self, until_step: int | None = None, time_limit_s: float | None = None, progress: bool = True) -> list[StepResult]:
        """Train until `until_step` (default: cfg.steps) or the time limit; checkpoints on the way and at the end."""
        if self.selection is not None and self.step_count > 0 and self._validated_step != self.step_count:
            self.validate()  # a resumed state that was never scored on val is a candidate too

        self._clock = time.monotonic()
        self._last_log = (self.train_seconds, self.step_count)
        return super().run(until_step, time_limit_s, progress)

    def annotate(self, res: StepResult) -> StepResult:
        """The step result with the seconds per step and images per second since the last log line, and the minutes so far."""
        self._account_time()
        seconds, step = self._last_log
        per_step = (self.train_seconds - seconds) / max(1, res.step - step)
        self._last_log = (self.train_seconds, res.step)
        return dataclasses.replace(res, sec_per_step=round(per_step, 4), train_minutes=round(self.train_seconds / 60, 3),
                                   images_per_sec=round(self.cfg.batch_size / max(per_step, 1e-9), 2))

    def after_log(self, res: StepResult) -> None:
        self._keep_budget_snapshots()

    def postfix(self, res: StepResult) -> dict[str, str]:
        schedule = {"stage": str(res.stage)} if self.cfg.pair_schedule == "gap" else {"N": str(res.intervals)}
        return {"loss": f"{res.loss:.4f}", **schedule, "s/step": f"{res.sec_per_step:.2f}"}

    def _account_time(self) -> None:
        now = time.monotonic()
        self.train_seconds += now - self._clock
        self._clock = now

    def _keep_budget_snapshots(self) -> None:
        """Save the EMA model into at-<m>min/ for every `keep_at_minutes` budget reached and not yet kept."""
        started_at = self._initialized_from["train_minutes"] if self._initialized_from else None
        for minutes in self.cfg.keep_at_minutes:
            if started_at is not None and minutes <= started_at:
                continue  # that budget was reached in the run we continued from: these weights are later ones
            folder = self.out_dir / f"at-{minutes:g}min"
            if self.train_seconds >= 60 * minutes and not (folder / checkpoint.CONFIG_FILENAME).is_file():
                checkpoint.save_model(self.ema, folder, **self._provenance())
                log.info("kept the step-%d EMA model after %.1f training minutes in %s", self.step_count,
                         self.train_seconds / 60, folder)

    def save(self) -> Path:
        """Write the resumable state and the EMA model (fp16 safetensors + config.json); validate if there is val data."""
        self._account_time()
        self.save_state(train_seconds=self.train_seconds, initialized_from=self._initialized_from)
        path = checkpoint.save_model(self.ema, self.out_dir, **self._provenance())
        if self.selection is not None and self._validated_step != self.step_count:
            self.validate()
        return path

    def validate(self) -> None:
        """Score the EMA encoder on the validation slices, log it, and keep it in best/ if it is the best so far."""
        if self.selection is None:
            raise InvalidInputError("Trainer.validate() needs validation data: pass val=(images, sketches)")
        result = score_one_step(self.ema, self.selection.val, self.step_count)
        append_metrics(self.out_dir, result)
        self._validated_step = self.step_count
        self.selection.offer(result, lambda folder, record: checkpoint.save_model(
            self.ema, folder, **self._provenance(), selected_on_val=record))

    def _provenance(self) -> dict[str, Any]:
        """save_model's train config and provenance for the current weights: the settings that produced them."""
        segments = [seg for seg in self._history if seg["from_step"] < self.step_count] or self._history[:1]
        extra: dict[str, Any] = {"train_history": segments} if len(segments) > 1 else {}
        if self._initialized_from is not None:
            extra["initialized_from"] = self._initialized_from
        return dict(train_cfg=train_config_from_dict(segments[-1]["train"]), train_minutes=round(self.train_seconds / 60, 2),
                    **self.provenance(), **extra)


def train(images: np.ndarray, sketches: np.ndarray, model_cfg: ModelConfig, train_cfg: TrainConfig,
          out_dir: str | Path, device: str = "auto", resume: bool = True, time_limit_s: float | None = None,
          progress: bool = True, val: tuple[np.ndarray, np.ndarray] | None = None,
          init_from: str | Path | None = None) -> tuple[ConsistencyEncoder, list[StepResult]]:
    """Train (or resume) a run in out_dir; returns the EMA encoder and the step results of this call.

    With `val` (images, sketches), checkpoints are scored on it and the best is kept in out_dir/best/.
    """
    trainer = Trainer(images, sketches, model_cfg, train_cfg, out_dir, device=device, resume=resume, val=val,
                      init_from=init_from)
    results = trainer.run(time_limit_s=time_limit_s, progress=progress)
    return trainer.ema, results
