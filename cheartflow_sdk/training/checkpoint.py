"""Resumable training state (sharded safetensors); the model files themselves live in `models.files` (re-exported here)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import atomic_output, atomic_write_text
from ..config import (
    CONFIG_FILENAME,
    ModelConfig,
    TrainConfig,
    read_config,
    train_config_from_dict,
)
from ..errors import InvalidInputError
from ..models.files import MODEL_FILENAME, load_encoder, save_model

__all__ = [  # the model-file names are re-exported: training code and older callers import them from here
    "MAX_SHARD_BYTES", "MODEL_FILENAME", "STATE_DIRNAME", "STATE_FILENAME", "check_resume_config", "flatten_optimizer_state",
    "load_encoder", "load_sharded", "load_train_state", "save_model", "save_sharded", "save_train_state",
    "train_history", "unflatten_optimizer_state",
]

STATE_DIRNAME = "train_state"
STATE_FILENAME = "state.json"  # the manifest of a resumable state
MAX_SHARD_BYTES = 15 * 2**20  # keep every file under 16 MiB (the GPU machine's file limit)


def flatten_optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as (tensors for safetensors, JSON-able scalars and param groups)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for pid, pstate in sd["state"].items():
        scalars["state"][str(pid)] = {}
        for name, value in pstate.items():
            if torch.is_tensor(value) and value.ndim > 0:
                tensors[f"{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"][str(pid)][name] = value.item() if torch.is_tensor(value) else value
    return tensors, scalars


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    """The inverse of flatten_optimizer_state: a state dict for `optimizer.load_state_dict`."""
    state: dict[int, dict[str, Any]] = {}
    for pid, values in scalars["state"].items():
        state[int(pid)] = {k: torch.tensor(v, dtype=torch.float32) if k == "step" else v for k, v in values.items()}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_sharded(tensors: dict[str, torch.Tensor], stem: Path) -> list[str]:
    """Write tensors as `stem-000.safetensors`, `stem-001...`, each under MAX_SHARD_BYTES; returns the file names."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(tensors):
        nbytes = tensors[key].numel() * tensors[key].element_size()
        if shards[-1] and size + nbytes > MAX_SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][key] = tensors[key].detach().cpu().contiguous()
        size += nbytes
    names = []
    for i, shard in enumerate(shards):
        path = stem.with_name(f"{stem.name}-{i:03d}.safetensors")
        with atomic_output(path) as tmp:
            save_file(shard, str(tmp))
        names.append(path.name)
    return names


def load_sharded(folder: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """Read the shards `names` (from save_sharded) in `folder` into one dict."""
    out: dict[str, torch.Tensor] = {}
    for name in names:
        out.update(load_file(str(folder / name)))
    return out


def save_train_state(out_dir: Path, step: int, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                     scalers: dict[str, torch.amp.GradScaler] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write everything needed to resume: the named modules and optimizers (sharded, step-tagged), the enabled
    loss scalers, the step and `extra`; the manifest comes last, then the shards of older states go."""
    folder = Path(out_dir) / STATE_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"s{step:08d}"
    manifest: dict[str, Any] = {**(extra or {}), "step": step, "modules": {}, "optimizers": {}, "scalers": {}}
    for name, module in modules.items():
        manifest["modules"][name] = save_sharded(dict(module.state_dict()), folder / f"{name}-{tag}")
    for name, opt in optimizers.items():
        tensors, scalars = flatten_optimizer_state(opt)
        manifest["optimizers"][name] = {"shards": save_sharded(tensors, folder / f"opt_{name}-{tag}"), "scalars": scalars}
    for name, scaler in (scalers or {}).items():
        manifest["scalers"][name] = scaler.state_dict() if scaler.is_enabled() else {}
    atomic_write_text(folder / STATE_FILENAME, json.dumps(manifest))  # written last: marks the state complete
    keep = {n for names in manifest["modules"].values() for n in names}
    keep |= {n for o in manifest["optimizers"].values() for n in o["shards"]}
    for path in folder.glob("*.safetensors"):  # shards of older states
        if path.name not in keep:
            path.unlink(missing_ok=True)


def load_train_state(out_dir: Path, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                     scalers: dict[str, torch.amp.GradScaler] | None = None) -> dict[str, Any] | None:
    """Restore a state written by save_train_state (or by the consistency trainer before it); None when out_dir holds none."""
    folder = Path(out_dir) / STATE_DIRNAME
    manifest_path = folder / STATE_FILENAME
    if not manifest_path.is_file():
        return None
    manifest = _shared_layout(json.loads(manifest_path.read_text()))
    for name, module in modules.items():
        module.load_state_dict(load_sharded(folder, manifest["modules"][name]))
    for name, opt in optimizers.items():
        entry = manifest["optimizers"][name]
        opt.load_state_dict(unflatten_optimizer_state(load_sharded(folder, entry["shards"]), entry["scalars"]))
    for name, scaler in (scalers or {}).items():
        if manifest["scalers"].get(name) and scaler.is_enabled():
            scaler.load_state_dict(manifest["scalers"][name])
    return manifest


def _shared_layout(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest of the consistency trainer's earlier flat layout ("online", "ema", "optimizer" shard lists) in the shared one."""
    if "modules" in manifest:
        return manifest
    flat = {"online", "ema", "optimizer", "optimizer_scalars"}
    return {**{k: v for k, v in manifest.items() if k not in flat},
            "modules": {"online": manifest["online"], "ema": manifest["ema"]},
            "optimizers": {"online": {"shards": manifest["optimizer"], "scalars": manifest["optimizer_scalars"]}},
            "scalers": {}}


def train_history(out_dir: str | Path, step: int, train_cfg: TrainConfig) -> list[dict[str, Any]]:
    """The train-config segments ``[{"from_step", "train"}]`` of a run resumed at `step` with `train_cfg`.

    A run may be resumed with other training settings (a longer run, a fixed curriculum); each saved
    checkpoint records the settings that actually produced it. Segments that began after `step` are
    dropped (that part of the run is being redone); `train_cfg` starts a new segment when it differs.
    """
    current = _as_json(train_cfg)
    if step == 0:
        return [{"from_step": 0, "train": current}]
    doc = read_config(out_dir)[2] if (Path(out_dir) / CONFIG_FILENAME).is_file() else {}
    saved = doc.get("train_history") or ([{"from_step": 0, "train": doc["train"]}] if "train" in doc else [])
    segments = [seg for seg in saved if seg["from_step"] < step]
    if not segments or _as_json(train_config_from_dict(segments[-1]["train"])) != current:  # new fields: defaults
        segments.append({"from_step": step, "train": current})
    return segments


def _as_json(train_cfg: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(train_cfg)))  # tuples as JSON lists, for comparison


def check_resume_config(out_dir: Path, model_cfg: ModelConfig) -> None:
    """Refuse to resume a run whose saved model config differs from the requested one."""
    if not (Path(out_dir) / CONFIG_FILENAME).is_file():
        return
    saved, _, _ = read_config(out_dir)
    if saved != model_cfg:
        raise InvalidInputError(
            f"{out_dir} holds a run with a different model config ({saved}); use another output folder or the same config"
        )
