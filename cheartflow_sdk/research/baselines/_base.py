"""What the baselines add to the shared trainer base (training/base.py): a kind, per-step seeding of the
global RNG, a resume check against the saved config, and model.safetensors + config.json of the kind.

A baseline trainer subclass owns its networks and optimizers and implements `train_step`; the base
runs the shared step loop under a time limit, logs metrics.jsonl, and writes (atomically, every file
under 16 MiB) the resumable state in `train_state/` and the inference weights in `model.safetensors`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...atomic import atomic_write_text
from ...config import CONFIG_FILENAME, config_file
from ...errors import InvalidInputError
from ...training.base import TrainerBase, amp_dtype, autocast, check_image_pairs, step_seed
from ...training.checkpoint import STATE_DIRNAME
from ...training.loop import truncate_metrics
from ...weights_file import load_weights, save_weights

__all__ = [
    "CONFIG_FILENAME", "MODEL_FILENAME", "RESUMABLE_CHANGES", "STATE_DIRNAME", "BaselineTrainer", "check_common_config",
    "count_parameters", "load_inference_weights", "read_run_config", "save_inference_weights",
]

MODEL_FILENAME = "model.safetensors"
# Fields that may change when a run is resumed (everything else must equal the saved config).
RESUMABLE_CHANGES = frozenset({"steps", "log_every", "checkpoint_every"})


def check_common_config(cfg: Any) -> None:
    """Validate the fields every baseline config has (sketch kind, resolution, loop settings)."""
    from ...config import SKETCH_KINDS

    if cfg.sketch_kind not in SKETCH_KINDS:
        raise InvalidInputError(f"sketch_kind must be one of {SKETCH_KINDS}, got {cfg.sketch_kind!r}")
    if cfg.resolution < 16:
        raise InvalidInputError(f"resolution must be >= 16, got {cfg.resolution}")
    if cfg.amp not in ("auto", "bf16", "fp16", "off"):
        raise InvalidInputError(f"amp must be one of auto, bf16, fp16, off; got {cfg.amp!r}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.log_every < 1 or cfg.checkpoint_every < 1:
        raise InvalidInputError("steps, batch_size, log_every and checkpoint_every must be >= 1")
    cfg.betas = tuple(float(b) for b in cfg.betas)
    if len(cfg.betas) != 2:
        raise InvalidInputError(f"betas must be two Adam betas, got {cfg.betas}")


def read_run_config(run_dir: str | Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(kind, config fields, whole document) of a baseline run's config.json."""
    path = config_file(run_dir, "a baseline config", "train_baseline / `cheartflow train-baseline`")
    try:
        doc = json.loads(path.read_text())
        kind, values = doc["kind"], dict(doc["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path} is not a baseline config.json (need 'kind' and 'config'): {exc}") from exc
    return kind, values, doc


def save_inference_weights(module: nn.Module, path: Path) -> None:
    """Floating tensors as fp16 (integer buffers as they are) in one safetensors file."""
    save_weights(module, path, fmt="cheartflow-baseline")


def load_inference_weights(module: nn.Module, path: Path) -> None:
    """Load weights written by save_inference_weights into `module` (as fp32), with actionable errors."""
    if not path.is_file():
        raise InvalidInputError(f"expected baseline weights at {path} (written by train_baseline)")
    load_weights(module, path, path.parent / CONFIG_FILENAME)


# --- the trainer ---------------------------------------------------------------------------------

class BaselineTrainer(TrainerBase):
    """Base of the baseline trainers: owns the data, the run folder and the resumable state.

    Subclasses set `kind` and `StepResult`, build their networks and optimizers (into `modules`,
    `optimizers`, `scalers`) in `build()`, and implement `train_step(x0, cond) -> StepResult` (x0 images
    in [-1,1], cond sketches mapped to [-1,1]). Everything random in a step comes from the global torch
    RNG reseeded per step inside `seeded_rng`, so a resumed run repeats the same batches, noise and
    dropout masks (same device) without leaking RNG state.
    """

    kind: str = ""
    StepResult: type = object

    def __init__(self, images: np.ndarray, sketches: np.ndarray, cfg: Any, out_dir: str | Path,
                 device: str | torch.device = "auto", resume: bool = True):
        check_image_pairs(images, sketches, cfg.resolution, "config", strict=True)
        super().__init__(cfg, out_dir, device)
        self.cfg = cfg
        self.desc = f"train {self.kind}"
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest convolutions
        self.x0 = self.on_device(images)
        self.cond = self.on_device(np.asarray(sketches, dtype=np.float32) * 2 - 1)
        self.amp_dtype = amp_dtype(cfg.amp, self.device, on_cpu=False)
        with self.seeded_rng(cfg.seed):
            self.build()
        if resume:
            self._check_resume_config()
            self.resume()
        else:
            truncate_metrics(self.out_dir, 0)  # a fresh run in this folder: drop an earlier run's metrics

    # hooks ------------------------------------------------------------------------------------
    def build(self) -> None:
        """Create self.modules, self.optimizers and self.scalers (same keys as optimizers)."""
        raise NotImplementedError

    def inference_module(self) -> nn.Module:
        """The module whose weights go to model.safetensors."""
        raise NotImplementedError

    def train_step(self, x0: torch.Tensor, cond: torch.Tensor) -> Any:
        """One optimizer update on a batch; returns self.StepResult with step = self.step_count + 1."""
        raise NotImplementedError

    # the step ---------------------------------------------------------------------------------
    def autocast(self) -> Any:
        return autocast(self.device, self.amp_dtype)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.x0), (self.cfg.batch_size,), device=self.device)
        x0, cond = self.x0[idx], self.cond[idx]
        if self.cfg.augment_flip:
            flip = (torch.rand(len(idx), device=self.device) < 0.5)[:, None, None, None]
            x0, cond = torch.where(flip, x0.flip(2), x0), torch.where(flip, cond.flip(2), cond)
        return x0, cond

    def step(self) -> Any:
        """One training step, seeded by (seed, step) so that resuming repeats it exactly."""
        with self.seeded_rng(step_seed(self.cfg.seed, self.step_count + 1)):
            x0, cond = self._batch()
            res = self.train_step(x0, cond)
        self.step_count += 1
        return res

    # state ------------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write the resumable state (sharded, step-tagged, manifest last) and model.safetensors + config.json."""
        self.save_state(kind=self.kind)
        save_inference_weights(self.inference_module(), self.out_dir / MODEL_FILENAME)
        atomic_write_text(self.out_dir / CONFIG_FILENAME, self.config_json())
        return self.out_dir / MODEL_FILENAME

    def config_json(self) -> str:
        doc = {"kind": self.kind, "config": dataclasses.asdict(self.cfg), **self.provenance()}
        return json.dumps(doc, indent=2, sort_keys=True)

    def _check_resume_config(self) -> None:
        if not (self.out_dir / CONFIG_FILENAME).is_file():
            return
        kind, saved, _ = read_run_config(self.out_dir)
        if kind != self.kind:
            raise InvalidInputError(f"{self.out_dir} holds a {kind!r} run, not {self.kind!r}; use another output folder")
        mine = json.loads(json.dumps(dataclasses.asdict(self.cfg)))  # tuples -> lists, as saved
        diff = sorted(k for k in set(mine) | set(saved) if k not in RESUMABLE_CHANGES and mine.get(k) != saved.get(k))
        if diff:
            raise InvalidInputError(
                f"{self.out_dir} holds a run with a different config ({', '.join(f'{k}: saved {saved.get(k)!r}, now {mine.get(k)!r}' for k in diff)}); "
                f"use another output folder or the same config (only {sorted(RESUMABLE_CHANGES)} may change on resume)"
            )


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters())

