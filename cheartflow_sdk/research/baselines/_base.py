"""The loop shared by the baselines: data on the device, per-step seeding, resumable sharded state, metrics.

A baseline trainer subclass owns its networks and optimizers and implements `train_step`; this base
class runs the shared step loop (training/loop.py) under a time limit, logs metrics.jsonl, and writes
(atomically, every file under 16 MiB) the resumable state in `train_state/` and the inference weights
in `model.safetensors`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..._version import __version__
from ...atomic import atomic_write_text
from ...config import CONFIG_FILENAME
from ...errors import InvalidInputError
from ...training.checkpoint import (
    flatten_optimizer_state,
    load_sharded,
    save_sharded,
    unflatten_optimizer_state,
)
from ...torch_device import resolve_device
from ...training.loop import append_metrics, device_label, run_steps, truncate_metrics
from ...weights_file import load_weights, save_weights

log = logging.getLogger(__name__)

MODEL_FILENAME = "model.safetensors"
STATE_DIRNAME = "train_state"
# Fields that may change when a run is resumed (everything else must equal the saved config).
RESUMABLE_CHANGES = frozenset({"steps", "log_every", "checkpoint_every"})


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for a config's `amp` field: None (fp32) on CPU or when off; bf16 for 'auto'."""
    if device.type != "cuda" or amp == "off":
        return None
    return torch.float16 if amp == "fp16" else torch.bfloat16


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


def check_training_data(images: np.ndarray, sketches: np.ndarray, resolution: int) -> None:
    """images float [N,1,R,R] in [-1,1] and sketches float [N,1,R,R] in [0,1], finite, as many of each."""
    r = resolution
    for name, arr, lo, hi in (("images", images, -1.0, 1.0), ("sketches", sketches, 0.0, 1.0)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 4 or arr.shape[1:] != (1, r, r):
            got = arr.shape if isinstance(arr, np.ndarray) else type(arr).__name__
            raise InvalidInputError(f"training {name}: expected a float array [N, 1, {r}, {r}] (config resolution {r}), got {got}")
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"training {name} contain NaN or inf")
        if arr.size and (arr.min() < lo - 1e-4 or arr.max() > hi + 1e-4):
            raise InvalidInputError(f"training {name}: expected values in [{lo:g}, {hi:g}], got [{arr.min():.3g}, {arr.max():.3g}]")
    if len(images) != len(sketches) or len(images) == 0:
        raise InvalidInputError(f"need as many sketches as images (>0), got {len(images)} images and {len(sketches)} sketches")


def read_run_config(run_dir: str | Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(kind, config fields, whole document) of a baseline run's config.json."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    if not path.is_file():
        raise InvalidInputError(f"expected a baseline config at {path} (written by train_baseline / `cheartflow train-baseline`)")
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

class BaselineTrainer:
    """Base of the baseline trainers: owns the data, the run folder, the loop and the resumable state.

    Subclasses set `kind` and `StepResult`, build their networks and optimizers in `build()`, and
    implement `train_step(x0, cond) -> StepResult` (x0 images in [-1,1], cond sketches mapped to [-1,1]).
    Everything random in a step comes from the global torch RNG reseeded per step inside fork_rng, so a
    resumed run repeats the same batches, noise and dropout masks (same device) without leaking RNG state.
    """

    kind: str = ""
    StepResult: type = object

    def __init__(self, images: np.ndarray, sketches: np.ndarray, cfg: Any, out_dir: str | Path,
                 device: str | torch.device = "auto", resume: bool = True):
        check_training_data(images, sketches, cfg.resolution)
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest convolutions
        self.x0 = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device)
        self.cond = torch.from_numpy(np.ascontiguousarray(sketches, dtype=np.float32) * 2 - 1).to(self.device)
        self.amp_dtype = amp_dtype(cfg.amp, self.device)
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(cfg.seed)
            self.modules: dict[str, nn.Module] = {}
            self.optimizers: dict[str, torch.optim.Optimizer] = {}
            self.scalers: dict[str, torch.amp.GradScaler] = {}
            self.build()
        self.step_count = 0
        if resume:
            self._check_resume_config()
            self._load_state()
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

    # the loop ---------------------------------------------------------------------------------
    def make_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, enabled only for fp16 autocast."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def _rng_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.x0), (self.cfg.batch_size,), device=self.device)
        x0, cond = self.x0[idx], self.cond[idx]
        if self.cfg.augment_flip:
            flip = (torch.rand(len(idx), device=self.device) < 0.5)[:, None, None, None]
            x0, cond = torch.where(flip, x0.flip(2), x0), torch.where(flip, cond.flip(2), cond)
        return x0, cond

    def step(self) -> Any:
        """One training step, seeded by (seed, step) so that resuming repeats it exactly."""
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.step_count + 1)
            x0, cond = self._batch()
            res = self.train_step(x0, cond)
        self.step_count += 1
        return res

    def run(self, until_step: int | None = None, time_limit_s: float | None = None, progress: bool = True) -> list[Any]:
        """Train until `until_step` (default: cfg.steps) or the time limit; checkpoints on the way and at the end."""

        def on_log(res: Any) -> dict[str, str]:
            append_metrics(self.out_dir, res)
            return self.postfix(res)

        results = run_steps(self.step, done=self.step_count, until=min(until_step or self.cfg.steps, self.cfg.steps),
                            log_every=self.cfg.log_every, checkpoint_every=self.cfg.checkpoint_every, on_log=on_log,
                            checkpoint=self.save, time_limit_s=time_limit_s, progress=progress, desc=f"train {self.kind}")
        self.save()
        return results

    def postfix(self, res: Any) -> dict[str, str]:
        return {"loss": f"{res.loss:.4f}"}

    # state ------------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write the resumable state (sharded, step-tagged, manifest last) and model.safetensors + config.json."""
        folder = self.out_dir / STATE_DIRNAME
        folder.mkdir(parents=True, exist_ok=True)
        tag = f"s{self.step_count:08d}"
        manifest: dict[str, Any] = {"kind": self.kind, "step": self.step_count, "modules": {}, "optimizers": {}, "scalers": {}}
        for name, module in self.modules.items():
            manifest["modules"][name] = save_sharded(dict(module.state_dict()), folder / f"{name}-{tag}")
        for name, opt in self.optimizers.items():
            tensors, scalars = flatten_optimizer_state(opt)
            manifest["optimizers"][name] = {"shards": save_sharded(tensors, folder / f"opt_{name}-{tag}"), "scalars": scalars}
        for name, scaler in self.scalers.items():
            manifest["scalers"][name] = scaler.state_dict() if scaler.is_enabled() else {}
        atomic_write_text(folder / "state.json", json.dumps(manifest))  # written last: marks the state complete
        keep = {n for names in manifest["modules"].values() for n in names}
        keep |= {n for o in manifest["optimizers"].values() for n in o["shards"]}
        for path in folder.glob("*.safetensors"):  # shards of older checkpoints
            if path.name not in keep:
                path.unlink(missing_ok=True)
        save_inference_weights(self.inference_module(), self.out_dir / MODEL_FILENAME)
        atomic_write_text(self.out_dir / CONFIG_FILENAME, self.config_json())
        return self.out_dir / MODEL_FILENAME

    def config_json(self) -> str:
        doc = {
            "kind": self.kind,
            "config": dataclasses.asdict(self.cfg),
            "steps_trained": self.step_count,
            "sdk_version": __version__,
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": device_label(self.device),
            "torch_version": torch.__version__,
        }
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

    def _load_state(self) -> None:
        folder = self.out_dir / STATE_DIRNAME
        path = folder / "state.json"
        if not path.is_file():
            return
        manifest = json.loads(path.read_text())
        for name, module in self.modules.items():
            module.load_state_dict(load_sharded(folder, manifest["modules"][name]))
        for name, opt in self.optimizers.items():
            entry = manifest["optimizers"][name]
            opt.load_state_dict(unflatten_optimizer_state(load_sharded(folder, entry["shards"]), entry["scalars"]))
        for name, scaler in self.scalers.items():
            if manifest["scalers"].get(name) and scaler.is_enabled():
                scaler.load_state_dict(manifest["scalers"][name])
        self.step_count = int(manifest["step"])
        truncate_metrics(self.out_dir, self.step_count)
        log.info("resumed %s run in %s at step %d", self.kind, self.out_dir, self.step_count)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters())

