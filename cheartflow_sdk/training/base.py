"""What every trainer shares: data checks, per-step seeding, the autocast choice, EMA, the optimizer update,
resumable state, config.json provenance, the metrics log and the time-limited step loop.

`TrainerBase` is subclassed by the consistency trainer (`trainer.Trainer`), the baselines
(`research.baselines`) and the evaluation segmenter (`research.segmentation.train`). A subclass builds
its networks and optimizers (listing the resumable ones in `modules`, `optimizers` and `scalers`),
implements `step()` and `save()`, and overrides the hooks of `run()` it needs.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..cpu_features import has_native_bf16
from ..errors import InvalidInputError
from ..torch_device import resolve_device
from . import checkpoint
from .loop import append_metrics, device_label, run_steps, truncate_metrics

log = logging.getLogger(__name__)


def check_training_arrays(arrays: dict[str, tuple[Any, tuple[int, ...]]], resolution_of: str, *, what: str = "training",
                          value_ranges: dict[str, tuple[float, float]] | None = None) -> None:
    """Every array ``[N, *shape]`` (name -> (array, shape)), finite, all with the same N > 0.

    value_ranges: name -> (lo, hi) for arrays that must lie in that range; given, the inputs must also
    be numpy arrays (the error then says "a float array")."""
    counts = {}
    for name, (arr, shape) in arrays.items():
        if not isinstance(arr, np.ndarray) or arr.shape[1:] != shape or arr.ndim != len(shape) + 1:
            got = arr.shape if isinstance(arr, np.ndarray) else type(arr).__name__
            form = "a float array " if value_ranges is not None else ""
            raise InvalidInputError(f"{what} {name}: expected {form}[N, {', '.join(map(str, shape))}] "
                                    f"({resolution_of} resolution {shape[-1]}), got {got}")
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"{what} {name} contain NaN or inf")
        lo, hi = (value_ranges or {}).get(name, (None, None))
        if lo is not None and arr.size and (arr.min() < lo - 1e-4 or arr.max() > hi + 1e-4):
            raise InvalidInputError(f"{what} {name}: expected values in [{lo:g}, {hi:g}], got [{arr.min():.3g}, {arr.max():.3g}]")
        counts[name] = len(arr)
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise InvalidInputError(f"need as many {' as '.join(reversed(counts))} (>0), got "
                                + " and ".join(f"{n} {name}" for name, n in counts.items()))


def check_image_pairs(images: Any, sketches: Any, resolution: int, resolution_of: str, strict: bool = False,
                      what: str = "training") -> None:
    """images [N,1,R,R] and sketches [N,1,R,R], finite, as many of each; `strict`: also numpy arrays in [-1,1] / [0,1]."""
    shape = (1, resolution, resolution)
    check_training_arrays({"images": (images, shape), "sketches": (sketches, shape)}, resolution_of, what=what,
                          value_ranges={"images": (-1.0, 1.0), "sketches": (0.0, 1.0)} if strict else None)


def amp_dtype(amp: str, device: torch.device, on_cpu: bool = True) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`: "auto" is bf16 on CUDA and on CPUs with native bf16, else none.

    fp16 autocast is CUDA-only; on a CPU without native bf16, bf16 is emulated and slower than fp32.
    on_cpu=False: no autocast on a CPU at all (the baselines)."""
    if amp == "off" or (amp == "fp16" and device.type != "cuda") or (not on_cpu and device.type != "cuda"):
        return None
    if amp == "auto" and device.type == "cpu" and not has_native_bf16():
        return None
    return torch.float16 if amp == "fp16" else torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to `dtype` on `device`'s type; a no-op context for None (fp32)."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def step_seed(seed: int, step: int) -> int:
    """The seed of one training step: batches and noise depend on (seed, step) only, so a resumed run repeats them."""
    return seed * 1_000_003 + step


@torch.no_grad()
def ema_update(ema: nn.Module, online: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * online, parameter by parameter."""
    torch._foreach_lerp_(list(ema.parameters()), list(online.parameters()), 1.0 - decay)


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor,
                   clip: nn.Module | None = None, grad_clip: float = 0.0) -> torch.Tensor | None:
    """Backward through the (fp16-scaled) loss and update; with `clip`, its global gradient norm before
    clipping to `grad_clip` (0: no clipping) is returned."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    grad_norm = None
    if clip is not None:
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(clip.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    scaler.step(optimizer)
    scaler.update()
    return grad_norm


class TrainerBase:
    """The run folder, the device, the step count, resumable state and the step loop of one trainer.

    `train_cfg` needs the loop fields ``steps``, ``log_every``, ``checkpoint_every`` and ``seed``. Without
    an `out_dir` nothing is written (the segmenter allows that).
    """

    desc = "train"  # the progress bar's label

    def __init__(self, train_cfg: Any, out_dir: str | Path | None, device: str | torch.device = "auto"):
        self.train_cfg = train_cfg
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(device)
        self.step_count = 0
        self.modules: dict[str, nn.Module] = {}  # what the resumable state holds
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}

    # data and randomness ---------------------------------------------------------------------------
    def on_device(self, array: np.ndarray, dtype: Any = np.float32) -> torch.Tensor:
        """A numpy array as a contiguous tensor of `dtype` on the training device."""
        return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(self.device)

    def step_generator(self) -> torch.Generator:
        """A CPU generator seeded by (seed, this step): everything random in the step draws from it."""
        return torch.Generator().manual_seed(step_seed(self.train_cfg.seed, self.step_count))

    @contextlib.contextmanager
    def seeded_rng(self, seed: int) -> Iterator[None]:
        """The global torch RNG (CPU and this CUDA device) seeded with `seed` inside, restored after."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def make_scaler(self, dtype: torch.dtype | None) -> torch.amp.GradScaler:
        """A loss scaler, enabled only for fp16 autocast."""
        return torch.amp.GradScaler(self.device.type, enabled=dtype == torch.float16)

    # the loop ----------------------------------------------------------------------------------------
    def step(self) -> Any:
        """One optimizer update; returns a step-result dataclass whose ``step`` is the new step count."""
        raise NotImplementedError

    def save(self) -> Any:
        """Write what a checkpoint holds (resumable state, weights, config.json)."""
        raise NotImplementedError

    def checkpoint(self) -> None:
        """What the loop does every ``checkpoint_every`` steps and at the end."""
        self.save()

    def annotate(self, result: Any) -> Any:
        """The step result as logged (a subclass adds timings or validation scores)."""
        return result

    def after_log(self, result: Any) -> None:
        """Called after a logged step's metrics line is written."""

    def postfix(self, result: Any) -> dict[str, str]:
        """The progress bar's fields for a logged step."""
        return {"loss": f"{result.loss:.4f}"}

    def _on_log(self, result: Any) -> dict[str, str]:
        result = self.annotate(result)
        if self.out_dir is not None:
            append_metrics(self.out_dir, result)
        self.after_log(result)
        return self.postfix(result)

    def run(self, until_step: int | None = None, time_limit_s: float | None = None, progress: bool = True) -> list[Any]:
        """Train until `until_step` (default: the config's steps) or the time limit; checkpoints on the way and at the end."""
        cfg = self.train_cfg
        results = run_steps(self.step, done=self.step_count, until=min(until_step or cfg.steps, cfg.steps),
                            log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every, on_log=self._on_log,
                            checkpoint=self.checkpoint if self.out_dir is not None else lambda: None,
                            time_limit_s=time_limit_s, progress=progress, desc=self.desc)
        self.checkpoint()
        return results

    # state and provenance ----------------------------------------------------------------------------
    def save_state(self, **extra: Any) -> None:
        """Write `modules`, `optimizers` and `scalers` as the resumable state, with `extra` in its manifest."""
        checkpoint.save_train_state(self.out_dir, self.step_count, self.modules, self.optimizers, self.scalers, extra)

    def resume(self) -> dict[str, Any] | None:
        """Load the resumable state of the run folder, if any; returns its manifest (None: a fresh start)."""
        manifest = checkpoint.load_train_state(self.out_dir, self.modules, self.optimizers, self.scalers)
        if manifest is not None:
            self.step_count = int(manifest["step"])
            truncate_metrics(self.out_dir, self.step_count)
            log.info("resumed %s at step %d", self.out_dir, self.step_count)
        return manifest

    def provenance(self) -> dict[str, Any]:
        """The config.json fields saying what wrote the current weights: steps, SDK and torch versions, device, time."""
        return dict(steps_trained=self.step_count, sdk_version=__version__, device=device_label(self.device),
                    torch_version=torch.__version__,
                    saved_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
