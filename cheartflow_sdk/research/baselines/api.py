"""train_baseline / load_baseline: one entry point per direction for both baselines."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...config import config_from_dict
from ...errors import InvalidInputError, ModelMismatchError
from ...torch_device import resolve_device
from ...training.base import amp_dtype, autocast
from ...validation import as_sketch_batch, check_seed
from . import iddpm, pix2pix
from ._base import (
    MODEL_FILENAME,
    BaselineTrainer,
    load_inference_weights,
    read_run_config,
)

KINDS: dict[str, tuple[type, type[BaselineTrainer]]] = {
    "pix2pix": (pix2pix.Pix2PixConfig, pix2pix.Pix2PixTrainer),
    "iddpm": (iddpm.IDDPMConfig, iddpm.IDDPMTrainer),
}


def _kind(kind: str) -> tuple[type, type[BaselineTrainer]]:
    if kind not in KINDS:
        raise InvalidInputError(f"baseline kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind]


def default_config(kind: str, **overrides: Any) -> Any:
    """The config dataclass of `kind` with its defaults, `overrides` applied (unknown fields rejected)."""
    return config_from_dict(_kind(kind)[0], overrides)


def make_trainer(kind: str, images: np.ndarray, sketches: np.ndarray, out_dir: str | Path, config: Any = None,
                 device: str = "auto", resume: bool = True) -> BaselineTrainer:
    """The trainer of `kind` on (images [N,1,R,R] in [-1,1], sketches [N,1,R,R] in [0,1]), resumed from out_dir."""
    cfg_cls, trainer_cls = _kind(kind)
    if config is None:
        config = cfg_cls()
    elif isinstance(config, dict):
        config = config_from_dict(cfg_cls, config)
    elif not isinstance(config, cfg_cls):
        raise InvalidInputError(f"a {kind!r} baseline needs a {cfg_cls.__name__}, got {type(config).__name__}")
    return trainer_cls(images, sketches, config, out_dir, device=device, resume=resume)


def train_baseline(kind: str, images: np.ndarray, sketches: np.ndarray, out_dir: str | Path, config: Any = None,
                   device: str = "auto", time_limit_s: float | None = None, resume: bool = True,
                   progress: bool = True) -> list[Any]:
    """Train (or resume) a pix2pix or iDDPM baseline in out_dir until config.steps or the time limit.

    Writes out_dir/model.safetensors (fp16 inference weights), config.json, metrics.jsonl and the
    resumable train_state/ (sharded, < 16 MiB per file); calling again with the same arguments continues
    where the last call stopped. Returns the step results (Pix2PixStep / IDDPMStep) of this call.
    """
    trainer = make_trainer(kind, images, sketches, out_dir, config, device=device, resume=resume)
    return trainer.run(time_limit_s=time_limit_s, progress=progress)


class BaselineSynthesizer:
    """A trained baseline as `sketches [B,1,H,W] in [0,1] -> images float32 [B,1,H,W] in [0,1]` (numpy).

    Accepts the sketch forms of Pipeline.synthesize (uint8 [B,H,W] or float [B,1,H,W] in [0,1], or a
    torch tensor). `steps` is the number of network evaluations: 1 for pix2pix; for iDDPM the respaced
    sampling steps (default config.sample_steps, the paper uses 200 and 1000). iDDPM noise comes from a
    torch generator seeded with `seed` on the model's device, so a (seed, batch_size) pair gives the same
    images on the same device; pix2pix is deterministic and ignores the seed.
    """

    def __init__(self, kind: str, config: Any, net: torch.nn.Module, device: torch.device, source: Path,
                 amp: torch.dtype | None):
        self.kind, self.config, self.net, self.device, self.source, self.amp = kind, config, net, device, source, amp
        self.sketch_kind: str = config.sketch_kind
        self.resolution: int = config.resolution
        self.default_steps: int = 1 if kind == "pix2pix" else config.sample_steps

    def __repr__(self) -> str:
        return (f"BaselineSynthesizer(kind={self.kind!r}, sketch_kind={self.sketch_kind!r}, resolution={self.resolution}, "
                f"default_steps={self.default_steps}, device='{self.device}', source='{self.source}')")

    def __call__(self, sketches: Any, steps: int | None = None, seed: int = 0, batch_size: int = 64,
                 sketch_kind: str | None = None, progress: bool = False) -> np.ndarray:
        if torch.is_tensor(sketches):
            sketches = sketches.detach().cpu().numpy()
        x = as_sketch_batch(sketches, resolution=self.resolution)
        if sketch_kind is not None and sketch_kind != self.sketch_kind:
            raise ModelMismatchError(f"this {self.kind} baseline was trained on {self.sketch_kind!r} sketches but the input is declared {sketch_kind!r}")
        steps = self._check_steps(steps)
        seed = check_seed(seed)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
        gen = torch.Generator(device=self.device).manual_seed(seed % 2**63)
        outs = []
        for start in range(0, len(x), batch_size):
            part = torch.from_numpy(x[start:start + batch_size]).to(self.device)
            if self.kind == "pix2pix":
                with autocast(self.device, self.amp):
                    y = pix2pix.generate(self.net, part)
            else:
                y = iddpm.sample(self.net, self.config, part, steps, gen, amp=self.amp, progress=progress)
            outs.append(y.float().clamp(0, 1).cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    def _check_steps(self, steps: int | None) -> int:
        if steps is None:
            return self.default_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise InvalidInputError(f"steps must be an int, got {steps!r}")
        steps = int(steps)
        if self.kind == "pix2pix" and steps != 1:
            raise InvalidInputError(f"pix2pix is a one-step generator: steps must be 1 or None, got {steps}")
        if self.kind == "iddpm" and not 2 <= steps <= self.config.diffusion_steps:
            raise InvalidInputError(f"iDDPM steps must lie in [2, {self.config.diffusion_steps}] (respaced from the trained T), got {steps}")
        return steps


def load_baseline(run_dir: str | Path, device: str = "auto", amp: str = "auto") -> BaselineSynthesizer:
    """Load a baseline run folder (config.json + model.safetensors) as a sketch -> image callable.

    amp: "auto"/"bf16" run the network under bf16 autocast on CUDA (fp32 on CPU), "fp16", or "off".
    """
    run_dir = Path(run_dir)
    kind, values, _ = read_run_config(run_dir)
    cfg_cls, _ = _kind(kind)
    cfg = config_from_dict(cfg_cls, values)
    dev = resolve_device(device)
    net: torch.nn.Module = pix2pix.UNetGenerator(cfg) if kind == "pix2pix" else iddpm.ConcatUNet(cfg)
    load_inference_weights(net, run_dir / MODEL_FILENAME)
    net = net.to(dev).eval().requires_grad_(False)
    return BaselineSynthesizer(kind, cfg, net, dev, run_dir, amp_dtype(amp, dev, on_cpu=False))


def config_fields(kind: str) -> list[str]:
    """Names of the config fields of `kind` (for `--set FIELD=VALUE` on the command line)."""
    return [f.name for f in dataclasses.fields(_kind(kind)[0])]
